/* test_metrics.c - the /metrics writers (transport/metrics.c): label values
 * escaped per the exposition format, histograms summed over workers with
 * cumulative buckets, +Inf equal to the count, the sum in seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "transport/metrics.h"

static char *text(hr_buf *b)
{
    hr_buf_append(b, "", 1);
    return (char *)b->data;
}

static void test_label_escaping(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    hr_metrics_label(&b, "shard", "a\\b\"c\nd");
    assert_string_equal(text(&b), "shard=\"a\\\\b\\\"c\\nd\"");
    hr_buf_free(&b);
}

static void test_histogram_sums_workers(void **state)
{
    (void)state;
    static hr_hist h[2];
    hr_hist_observe(&h[0], 500);      /* 0.5 ms: le 0.001 */
    hr_hist_observe(&h[1], 30000);    /* 30 ms: le 0.05 */
    hr_hist_observe(&h[1], 60000000); /* 60 s: +Inf only */
    hr_buf b = HR_BUF_INIT;
    hr_metrics_hist(&b, "x_seconds", "worker=\"0\"", h, 2, sizeof(hr_hist));
    const char *t = text(&b);
    assert_non_null(strstr(t, "x_seconds_bucket{worker=\"0\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{worker=\"0\",le=\"0.025\"} 1\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{worker=\"0\",le=\"0.05\"} 2\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{worker=\"0\",le=\"10\"} 2\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{worker=\"0\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "x_seconds_sum{worker=\"0\"} 60.030500\n"));
    assert_non_null(strstr(t, "x_seconds_count{worker=\"0\"} 3\n"));
    hr_buf_free(&b);
    hr_metrics_hist(&b, "y", NULL, h, 1, sizeof(hr_hist));
    t = text(&b);
    assert_non_null(strstr(t, "y_bucket{le=\"+Inf\"} 1\ny_sum 0.000500\ny_count 1\n"));
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_sums_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
