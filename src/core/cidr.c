/* cidr.c - IP addresses and CIDR ranges (see cidr.h). */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_v4(hr_ipaddr *out, const uint8_t b[4])
{
    memcpy(out->a, v4mapped, 12);
    memcpy(out->a + 12, b, 4);
    out->v4 = true;
}

static void set_v6(hr_ipaddr *out, const uint8_t b[16])
{
    if (memcmp(b, v4mapped, 12) == 0) {
        set_v4(out, b + 12);
        return;
    }
    memcpy(out->a, b, 16);
    out->v4 = false;
}

void hr_ipaddr_set(hr_ipaddr *out, const uint8_t *bytes, size_t n)
{
    if (n == 4) set_v4(out, bytes);
    else set_v6(out, bytes);
}

int hr_ipaddr_parse(const char *s, size_t len, hr_ipaddr *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf)) return HR_ERR_INVALID;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) return HR_ERR_INVALID; /* an embedded NUL */
    uint8_t b[16];
    if (!memchr(buf, ':', len)) {
        if (inet_pton(AF_INET, buf, b) != 1) return HR_ERR_INVALID;
        set_v4(out, b);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, b) != 1) return HR_ERR_INVALID;
    set_v6(out, b);
    return 0;
}

int hr_ipaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, hr_ipaddr *out)
{
    if (!sa) return HR_ERR_INVALID;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        set_v4(out, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        set_v6(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
        return 0;
    }
    return HR_ERR_INVALID;
}

socklen_t hr_ipaddr_to_sockaddr(const hr_ipaddr *a, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (a->v4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a->a + 12, 4);
        return sizeof(*s4);
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    memcpy(s6->sin6_addr.s6_addr, a->a, 16);
    return sizeof(*s6);
}

const char *hr_ipaddr_format(const hr_ipaddr *a, char *out, size_t outlen)
{
    if (!inet_ntop(a->v4 ? AF_INET : AF_INET6, a->v4 ? a->a + 12 : a->a, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
    return out;
}

static void mask_bits(uint8_t a[16], unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        int keep = (int)bits - 8 * (int)i;
        if (keep <= 0) a[i] = 0;
        else if (keep < 8) a[i] &= (uint8_t)(0xff << (8 - keep));
    }
}

int hr_cidr_parse(const char *s, hr_cidr *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (hr_ipaddr_parse(s, alen, &out->net)) return HR_ERR_INVALID;
    /* the prefix counts bits of the address as written: "::ffff:10.0.0.0/104" is 10.0.0.0/8 */
    bool v6text = memchr(s, ':', alen) != NULL;
    unsigned max = v6text ? 128 : 32, bits = max;
    if (slash) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 3) return HR_ERR_INVALID;
        bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9') return HR_ERR_INVALID;
            bits = bits * 10 + (unsigned)(p[i] - '0');
        }
        if (bits > max) return HR_ERR_INVALID;
    }
    if (v6text && out->net.v4 && bits < 96) return HR_ERR_INVALID; /* a mapped range reaching beyond IPv4 */
    out->bits = (uint8_t)(v6text ? bits : 96 + bits);
    mask_bits(out->net.a, out->bits);
    return 0;
}

bool hr_cidr_match(const hr_cidr *c, const hr_ipaddr *a)
{
    if (c->net.v4 != a->v4) return false;
    unsigned full = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(c->net.a, a->a, full) != 0) return false;
    if (!rest) return true;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (a->a[full] & m) == c->net.a[full];
}

int hr_cidr_set_parse(hr_cidr_set *set, char *const *list, size_t n, size_t *bad)
{
    hr_cidr_set_free(set);
    if (!n) return 0;
    hr_cidr *v = hr_calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        if (hr_cidr_parse(list[i], &v[i])) {
            hr_free(v);
            if (bad) *bad = i;
            return HR_ERR_INVALID;
        }
    }
    set->v = v;
    set->n = n;
    return 0;
}

void hr_cidr_set_free(hr_cidr_set *set)
{
    hr_free(set->v);
    set->v = NULL;
    set->n = 0;
}

bool hr_cidr_set_match(const hr_cidr_set *set, const hr_ipaddr *a)
{
    if (!set) return false;
    for (size_t i = 0; i < set->n; i++)
        if (hr_cidr_match(&set->v[i], a)) return true;
    return false;
}
