/* cidr.h - IP addresses and address ranges (CIDR) for deciding whom to
 * trust: server.trusted_proxies, and the client addresses that a PROXY
 * header or an X-Forwarded-For / Forwarded header names.
 *
 * An address is kept as 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * with `v4` set, so that 10.0.0.1 and ::ffff:10.0.0.1 are the same address
 * (a dual-stack socket reports the latter). A range matches addresses of its
 * own family only: "::/0" is every IPv6 address and no IPv4 address. No I/O,
 * no allocation except hr_cidr_set_parse's array. */
#ifndef HERALD_CORE_CIDR_H
#define HERALD_CORE_CIDR_H

#include "core/common.h"

#include <sys/socket.h>

#define HR_IPADDR_STRLEN 48 /* "[" + longest IPv6 text (45) + "]" + NUL, rounded */

typedef struct hr_ipaddr {
    uint8_t a[16];        /* network order; IPv4 as ::ffff:a.b.c.d */
    bool v4;
} hr_ipaddr;

typedef struct hr_cidr {
    hr_ipaddr net;        /* host bits cleared */
    uint8_t bits;         /* prefix length over the 16 bytes (IPv4 /n is 96 + n) */
} hr_cidr;

typedef struct hr_cidr_set {
    size_t n;
    hr_cidr *v;           /* owned */
} hr_cidr_set;

/* Parse a numeric address ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1")
 * from s[0..len) (not NUL-terminated). Returns 0 or HR_ERR_INVALID. */
int hr_ipaddr_parse(const char *s, size_t len, hr_ipaddr *out);
/* From raw network-order bytes: n = 4 (IPv4) or 16 (IPv6; IPv4-mapped ones become IPv4). */
void hr_ipaddr_set(hr_ipaddr *out, const uint8_t *bytes, size_t n);
/* From a socket address (AF_INET / AF_INET6). Returns 0 or HR_ERR_INVALID. */
int hr_ipaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, hr_ipaddr *out);
/* To a socket address with `port` (host order): sockaddr_in for IPv4,
 * sockaddr_in6 otherwise. Returns the length used. */
socklen_t hr_ipaddr_to_sockaddr(const hr_ipaddr *a, uint16_t port, struct sockaddr_storage *out);
/* Text form ("192.0.2.1", "2001:db8::1") into out (HR_IPADDR_STRLEN bytes). */
const char *hr_ipaddr_format(const hr_ipaddr *a, char *out, size_t outlen);

/* "10.0.0.0/8", "192.0.2.7" (= /32), "2001:db8::/32", "::1" (= /128). Host
 * bits after the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8). Returns 0
 * or HR_ERR_INVALID (not an address, prefix out of range or not decimal). */
int hr_cidr_parse(const char *s, hr_cidr *out);
bool hr_cidr_match(const hr_cidr *c, const hr_ipaddr *a);

/* Parse every entry of list[0..n) into set (replacing its contents). On a
 * bad entry returns HR_ERR_INVALID with *bad set to its index and the set
 * left empty. */
int hr_cidr_set_parse(hr_cidr_set *set, char *const *list, size_t n, size_t *bad);
void hr_cidr_set_free(hr_cidr_set *set);
/* True when some range of the set holds a (false for an empty or NULL set). */
bool hr_cidr_set_match(const hr_cidr_set *set, const hr_ipaddr *a);

#endif
