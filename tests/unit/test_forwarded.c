/* test_forwarded.c - the client of a relayed request from X-Forwarded-For
 * and Forwarded (src/codec/forwarded.c), from tables: the rightmost entry
 * that is not a trusted proxy wins, the leftmost when all are trusted, a
 * client's forged entries on the left never matter, ports and brackets,
 * several header lines, "unknown" and obfuscated nodes, and malformed
 * values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec/forwarded.h"

#include <string.h>

static hr_cidr_set trusted;

static int setup(void **state)
{
    (void)state;
    char *list[] = {"10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"};
    return hr_cidr_set_parse(&trusted, list, 3, NULL);
}

static int teardown(void **state)
{
    (void)state;
    hr_cidr_set_free(&trusted);
    return 0;
}

/* want: an address, "" for HR_FWD_NONE, "?" for HR_FWD_UNKNOWN */
static void check(int i, bool forwarded, const char *const *lines, const char *want)
{
    hr_fwd f;
    hr_fwd_init(&f, &trusted);
    for (const char *const *l = lines; *l; l++) {
        if (forwarded) hr_fwd_feed_forwarded(&f, *l, strlen(*l));
        else hr_fwd_feed_xff(&f, *l, strlen(*l));
    }
    hr_ipaddr a;
    int rc = hr_fwd_result(&f, &a);
    char got[HR_IPADDR_STRLEN];
    if (rc == HR_FWD_NONE) strcpy(got, "");
    else if (rc == HR_FWD_UNKNOWN) strcpy(got, "?");
    else hr_ipaddr_format(&a, got, sizeof(got));
    if (strcmp(got, want) != 0) fail_msg("%s case %d (%s...): got \"%s\", want \"%s\"", forwarded ? "Forwarded" : "XFF",
                                         i, lines[0] ? lines[0] : "", got, want);
}

typedef struct fcase {
    const char *lines[4];
    const char *want;
} fcase;

static void test_xff(void **state)
{
    (void)state;
    static const fcase cases[] = {
        {{"203.0.113.5", NULL}, "203.0.113.5"},
        {{"203.0.113.5, 10.0.0.2", NULL}, "203.0.113.5"},
        {{"203.0.113.5,10.0.0.2,10.1.1.1", NULL}, "203.0.113.5"},
        /* a client writes anything on the left: the rightmost untrusted entry is what our proxy saw */
        {{"1.1.1.1, 203.0.113.5, 10.0.0.2", NULL}, "203.0.113.5"},
        {{"127.0.0.1, 203.0.113.5", NULL}, "203.0.113.5"},
        {{"garbage, 203.0.113.5", NULL}, "203.0.113.5"},
        /* every entry trusted: the leftmost */
        {{"10.0.0.9, 10.0.0.2", NULL}, "10.0.0.9"},
        {{"127.0.0.1", NULL}, "127.0.0.1"},
        /* ports and brackets */
        {{"203.0.113.5:41234, 10.0.0.2:80", NULL}, "203.0.113.5"},
        {{"[2001:db8::5]:41234", NULL}, "2001:db8::5"},
        {{"[2001:db8::5]", NULL}, "2001:db8::5"},
        {{"2001:db8::5, 2001:db8:ffff::1", NULL}, "2001:db8::5"},
        {{"::ffff:203.0.113.5", NULL}, "203.0.113.5"},
        /* spaces, tabs, empty entries */
        {{"  203.0.113.5 ,\t10.0.0.2  ", NULL}, "203.0.113.5"},
        {{"203.0.113.5,,10.0.0.2,", NULL}, "203.0.113.5"},
        {{"", NULL}, ""},
        {{" , ,", NULL}, ""},
        {{NULL}, ""},
        /* several lines are one list, in order */
        {{"203.0.113.5", "10.0.0.2", NULL}, "203.0.113.5"},
        {{"1.1.1.1", "203.0.113.5, 10.0.0.2", NULL}, "203.0.113.5"},
        {{"203.0.113.5", "198.51.100.9", NULL}, "198.51.100.9"},
        /* the deciding entry is not an address */
        {{"203.0.113.5, unknown", NULL}, "?"},
        {{"203.0.113.5, 10.0.0.2, not-an-ip", NULL}, "?"},
        {{"203.0.113.5:99999", NULL}, "?"},
        {{"203.0.113.5:", NULL}, "?"},
        {{"[203.0.113.5]", NULL}, "?"},
        {{"[2001:db8::5", NULL}, "?"},
        {{"[2001:db8::5]x", NULL}, "?"},
        {{"2001:db8::5]:80", NULL}, "?"},
        {{"203.0.113.5 10.0.0.2", NULL}, "?"},
        {{"_hidden", NULL}, "?"},
        /* all trusted but the leftmost is garbage */
        {{"unknown, 10.0.0.2", NULL}, "?"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) check((int)i, false, cases[i].lines, cases[i].want);
}

static void test_forwarded(void **state)
{
    (void)state;
    static const fcase cases[] = {
        {{"for=203.0.113.5", NULL}, "203.0.113.5"},
        {{"For=203.0.113.5;proto=https;by=10.0.0.2", NULL}, "203.0.113.5"},
        {{"proto=https; for=203.0.113.5", NULL}, "203.0.113.5"},
        {{"for=\"203.0.113.5:41234\"", NULL}, "203.0.113.5"},
        {{"for=\"[2001:db8::5]:4711\"", NULL}, "2001:db8::5"},
        {{"for=\"[2001:db8::5]\"", NULL}, "2001:db8::5"},
        {{"for=1.1.1.1, for=203.0.113.5, for=10.0.0.2", NULL}, "203.0.113.5"},
        {{"for=1.1.1.1", "for=203.0.113.5;proto=http, for=10.0.0.2", NULL}, "203.0.113.5"},
        {{"for=10.0.0.9, for=10.0.0.2", NULL}, "10.0.0.9"},
        /* a comma or semicolon inside a quoted value does not split */
        {{"for=203.0.113.5;x=\"a,b;c\", for=10.0.0.2", NULL}, "203.0.113.5"},
        {{"for=203.0.113.5;x=\"a\\\"b,c\", for=10.0.0.2", NULL}, "203.0.113.5"},
        /* not addresses */
        {{"for=unknown", NULL}, "?"},
        {{"for=_hidden", NULL}, "?"},
        {{"for=\"_hidden:_port\"", NULL}, "?"},
        {{"for=203.0.113.5, proto=https", NULL}, "?"},     /* an element without for= */
        {{"for=203.0.113.5;for=198.51.100.1", NULL}, "?"}, /* for= twice */
        {{"for=[2001:db8::5]", NULL}, "2001:db8::5"},        /* unquoted brackets: tolerated */
        {{"for=\"203.0.113.5", NULL}, "?"},
        {{"for=\"[2001:db8::5]:_abc\"", NULL}, "2001:db8::5"}, /* obfuscated port, real address */
        {{"for=\"a\\", NULL}, "?"},
        {{"", NULL}, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) check((int)i, true, cases[i].lines, cases[i].want);
}

static void test_nodes(void **state)
{
    (void)state;
    hr_ipaddr a;
    static const char *const good[] = {"1.2.3.4", "1.2.3.4:0", "1.2.3.4:65535", "::1", "[::1]", "[::1]:80",
                                       "[::1]:_x"};
    static const char *const bad[] = {"", "1.2.3.4:", "1.2.3.4:123456", "1.2.3.4:a", "[::1", "[1.2.3.4]", "[]",
                                      "[::1]:", "::1]", "1.2.3.4:_", "unknown"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (hr_fwd_parse_node(good[i], strlen(good[i]), &a)) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hr_fwd_parse_node(bad[i], strlen(bad[i]), &a) == 0) fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_xff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
