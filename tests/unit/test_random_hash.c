/* test_random_hash.c - the one FNV-1a (src/core/hash.h) and the one random
 * hex-id generator (src/core/random.c): published FNV-1a 64 vectors; hex
 * ids of the right length and alphabet, different each time, filled across
 * short reads and EINTR; and when the kernel gives no randomness, every id
 * maker (client ids of raw/SSE clients, channel epochs, hex ids) logs one
 * line and aborts instead of returning zeros (it used to, for raw and
 * native client ids). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hash.h"
#include "core/random.h"
#include "engine/pub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_fnv1a_vectors(void **state)
{
    (void)state;
    /* the FNV authors' test vectors for 64-bit FNV-1a */
    static const struct {
        const char *s;
        uint64_t h;
    } cases[] = {
        {"", 0xcbf29ce484222325ull},
        {"a", 0xaf63dc4c8601ec8cull},
        {"foobar", 0x85944171f73967e8ull},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_true(hr_fnv1a(cases[i].s, strlen(cases[i].s)) == cases[i].h);
    assert_true(hr_fnv1a("\xff\x00", 2) != hr_fnv1a("\xff", 1)); /* bytes, not a C string */
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]) || !s[i]) return false;
    return s[n] == '\0';
}

static void test_hex_ids(void **state)
{
    (void)state;
    char a[33], b[33], big[2 * 200 + 1];
    hr_random_hex(a, 16);
    hr_random_hex(b, 16);
    assert_true(all_hex(a, 32));
    assert_true(all_hex(b, 32));
    assert_string_not_equal(a, b);
    hr_random_hex(big, 200); /* more than one internal chunk */
    assert_true(all_hex(big, 400));
    char epoch[HR_EPOCH_LEN + 1];
    hr_epoch_new(epoch);
    assert_true(all_hex(epoch, HR_EPOCH_LEN));
}

/* A kernel that answers one byte per call and is interrupted once. */
static int calls;
static ssize_t stingy(void *buf, size_t len, unsigned flags)
{
    (void)flags;
    if (calls++ == 3) {
        errno = EINTR;
        return -1;
    }
    if (!len) return 0;
    *(uint8_t *)buf = 0xab;
    return 1;
}

static void test_short_reads_and_eintr(void **state)
{
    (void)state;
    calls = 0;
    hr_random_set_source(stingy);
    char id[33];
    hr_random_hex(id, 16);
    hr_random_set_source(NULL);
    assert_string_equal(id, "abababababababababababababababab");
    assert_int_equal(calls, 17);
}

static ssize_t broken(void *buf, size_t len, unsigned flags)
{
    (void)buf;
    (void)len;
    (void)flags;
    errno = ENOSYS;
    return -1;
}

/* Run make_id in a child whose getrandom fails: it must die of SIGABRT,
 * with a log line naming the cause, and never print an id. */
static void expect_abort(void (*make_id)(char *out))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        dup2(fds[1], 1);
        hr_random_set_source(broken);
        char out[64] = "";
        make_id(out);
        printf("returned an id: \"%s\"\n", out);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    char log[1024] = "";
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(log) - 1 && (k = read(fds[0], log + n, sizeof(log) - 1 - n)) > 0) n += (size_t)k;
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) fail_msg("child did not abort; output: %s", log);
    assert_non_null(strstr(log, "getrandom failed"));
    assert_null(strstr(log, "returned an id"));
}

static void epoch(char *out) { hr_epoch_new(out); }
static void hex(char *out) { hr_random_hex(out, 16); }

static void test_no_entropy_aborts(void **state)
{
    (void)state;
    expect_abort(epoch);
    expect_abort(hex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_vectors),
        cmocka_unit_test(test_hex_ids),
        cmocka_unit_test(test_short_reads_and_eintr),
        cmocka_unit_test(test_no_entropy_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
