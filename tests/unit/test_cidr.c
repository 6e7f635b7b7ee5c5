/* test_cidr.c - addresses and CIDR ranges (src/core/cidr.c): parsing
 * addresses and ranges (IPv4, IPv6, IPv4-mapped, prefixes with host bits),
 * rejected spellings, matching at and around prefix boundaries, family
 * separation (::/0 is not IPv4), sets, and the socket address round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static hr_ipaddr ip(const char *s)
{
    hr_ipaddr a;
    if (hr_ipaddr_parse(s, strlen(s), &a)) fail_msg("not an address: %s", s);
    return a;
}

static bool in(const char *cidr, const char *addr)
{
    hr_cidr c;
    if (hr_cidr_parse(cidr, &c)) fail_msg("not a range: %s", cidr);
    hr_ipaddr a = ip(addr);
    return hr_cidr_match(&c, &a);
}

static void test_addresses(void **state)
{
    (void)state;
    static const char *const good[] = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "::", "::1", "2001:db8::1",
                                       "fe80::1:2:3:4", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8"};
    static const char *const bad[] = {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4", "01.2.3.4", " 1.2.3.4",
                                      "1.2.3.4 ", "localhost", "1::2::3", "2001:db8::g", "[::1]", "1.2.3.4/8",
                                      "1:2:3:4:5:6:7:8:9"};
    hr_ipaddr a;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (hr_ipaddr_parse(good[i], strlen(good[i]), &a)) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hr_ipaddr_parse(bad[i], strlen(bad[i]), &a) == 0) fail_msg("accepted \"%s\"", bad[i]);
    /* an embedded NUL and an over-long string */
    assert_int_equal(hr_ipaddr_parse("1.2.3.4\0", 8, &a), HR_ERR_INVALID);
    char longs[100];
    memset(longs, '1', sizeof(longs));
    assert_int_equal(hr_ipaddr_parse(longs, sizeof(longs), &a), HR_ERR_INVALID);
    /* length-delimited: the rest of the buffer is not read */
    assert_int_equal(hr_ipaddr_parse("10.0.0.1, 10.0.0.2", 8, &a), 0);
    char out[HR_IPADDR_STRLEN];
    assert_string_equal(hr_ipaddr_format(&a, out, sizeof(out)), "10.0.0.1");
    /* IPv4-mapped IPv6 is IPv4 */
    a = ip("::ffff:192.0.2.1");
    assert_true(a.v4);
    assert_string_equal(hr_ipaddr_format(&a, out, sizeof(out)), "192.0.2.1");
    a = ip("2001:db8::1");
    assert_false(a.v4);
    assert_string_equal(hr_ipaddr_format(&a, out, sizeof(out)), "2001:db8::1");
}

static void test_ranges_parse(void **state)
{
    (void)state;
    static const char *const good[] = {"10.0.0.0/8", "0.0.0.0/0", "192.0.2.7", "192.0.2.7/32", "::/0", "::1",
                                       "2001:db8::/32", "2001:db8::1/128", "::ffff:10.0.0.0/104", "10.1.2.3/8"};
    static const char *const bad[] = {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
                                      "10.0.0.0/08x", "10.0.0.0/1000", "/8", "10.0.0.0/8/8", "example.com/8",
                                      "10.0.0.0 /8", ""};
    hr_cidr c;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (hr_cidr_parse(good[i], &c)) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hr_cidr_parse(bad[i], &c) == 0) fail_msg("accepted \"%s\"", bad[i]);
    /* host bits are cleared */
    assert_int_equal(hr_cidr_parse("10.1.2.3/8", &c), 0);
    char out[HR_IPADDR_STRLEN];
    assert_string_equal(hr_ipaddr_format(&c.net, out, sizeof(out)), "10.0.0.0");
    assert_int_equal(c.bits, 96 + 8);
    assert_int_equal(hr_cidr_parse("2001:db8:ffff::1/33", &c), 0);
    assert_string_equal(hr_ipaddr_format(&c.net, out, sizeof(out)), "2001:db8:8000::");
}

static void test_matching(void **state)
{
    (void)state;
    assert_true(in("10.0.0.0/8", "10.0.0.0"));
    assert_true(in("10.0.0.0/8", "10.255.255.255"));
    assert_false(in("10.0.0.0/8", "11.0.0.0"));
    assert_false(in("10.0.0.0/8", "9.255.255.255"));
    assert_true(in("192.0.2.128/25", "192.0.2.128"));
    assert_true(in("192.0.2.128/25", "192.0.2.255"));
    assert_false(in("192.0.2.128/25", "192.0.2.127"));
    assert_true(in("172.16.0.0/12", "172.31.255.1"));
    assert_false(in("172.16.0.0/12", "172.32.0.1"));
    assert_true(in("127.0.0.1", "127.0.0.1"));
    assert_false(in("127.0.0.1", "127.0.0.2"));
    assert_true(in("0.0.0.0/0", "203.0.113.5"));
    assert_true(in("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(in("2001:db8::/32", "2001:db9::1"));
    assert_true(in("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(in("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(in("::1", "::1"));
    assert_false(in("::1", "::2"));
    /* families do not mix: ::/0 is every IPv6 address and no IPv4 one */
    assert_true(in("::/0", "2001:db8::1"));
    assert_false(in("::/0", "10.0.0.1"));
    assert_false(in("0.0.0.0/0", "::1"));
    /* mapped addresses and mapped ranges are IPv4 */
    assert_true(in("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_true(in("::ffff:10.0.0.0/104", "10.1.2.3"));
    assert_false(in("::ffff:10.0.0.0/104", "11.1.2.3"));
}

static void test_sets(void **state)
{
    (void)state;
    char *list[] = {"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"};
    hr_cidr_set set = {0};
    assert_int_equal(hr_cidr_set_parse(&set, list, 3, NULL), 0);
    assert_int_equal(set.n, 3);
    hr_ipaddr a = ip("192.0.2.7");
    assert_true(hr_cidr_set_match(&set, &a));
    a = ip("192.0.2.8");
    assert_false(hr_cidr_set_match(&set, &a));
    a = ip("2001:db8::99");
    assert_true(hr_cidr_set_match(&set, &a));
    a = ip("10.9.9.9");
    assert_true(hr_cidr_set_match(&set, &a));
    char *badlist[] = {"10.0.0.0/8", "10.0.0.0/40", "::1"};
    size_t bad = 99;
    assert_int_equal(hr_cidr_set_parse(&set, badlist, 3, &bad), HR_ERR_INVALID);
    assert_int_equal(bad, 1);
    assert_int_equal(set.n, 0);
    assert_false(hr_cidr_set_match(&set, &a));
    assert_false(hr_cidr_set_match(NULL, &a));
    assert_int_equal(hr_cidr_set_parse(&set, list, 0, NULL), 0);
    assert_int_equal(set.n, 0);
    hr_cidr_set_free(&set);
}

static void test_sockaddr_round_trip(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    hr_ipaddr a = ip("203.0.113.5"), b;
    socklen_t sl = hr_ipaddr_to_sockaddr(&a, 41234, &ss);
    assert_int_equal(sl, sizeof(struct sockaddr_in));
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 41234);
    assert_int_equal(hr_ipaddr_from_sockaddr((struct sockaddr *)&ss, sl, &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    a = ip("2001:db8::5");
    sl = hr_ipaddr_to_sockaddr(&a, 80, &ss);
    assert_int_equal(sl, sizeof(struct sockaddr_in6));
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(hr_ipaddr_from_sockaddr((struct sockaddr *)&ss, sl, &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    /* a dual-stack socket's ::ffff:a.b.c.d peer is the IPv4 address */
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:198.51.100.7", &s6.sin6_addr);
    assert_int_equal(hr_ipaddr_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &b), 0);
    assert_true(b.v4);
    a = ip("198.51.100.7");
    assert_memory_equal(&a, &b, sizeof(a));
    /* other families and short lengths */
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(hr_ipaddr_from_sockaddr(&un, sizeof(un), &b), HR_ERR_INVALID);
    assert_int_equal(hr_ipaddr_from_sockaddr((struct sockaddr *)&s6, 8, &b), HR_ERR_INVALID);
    assert_int_equal(hr_ipaddr_from_sockaddr(NULL, 0, &b), HR_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_ranges_parse),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_sockaddr_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
