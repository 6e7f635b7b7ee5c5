/* forwarded.h - the client address of a request relayed by trusted proxies,
 * from X-Forwarded-For or Forwarded (RFC 7239) header values.
 *
 * Each proxy appends the address it received the request from, so the list
 * reads client, proxy1, proxy2, ... and only the entries appended by proxies
 * we trust are true: the client (or anyone before the first trusted proxy)
 * can write anything on the left. The answer is therefore the rightmost entry
 * that is not a trusted proxy; when every entry is trusted, the leftmost one.
 *
 * Usage: hr_fwd_init, then hr_fwd_feed_xff / hr_fwd_feed_forwarded for each
 * header line in the order the lines came (several lines of one field are
 * one comma-separated list), then hr_fwd_result. One forward pass, no
 * allocation, linear in the header bytes. Codecs do no I/O. */
#ifndef HERALD_CODEC_FORWARDED_H
#define HERALD_CODEC_FORWARDED_H

#include "core/cidr.h"
#include "core/common.h"

typedef struct hr_fwd {
    const hr_cidr_set *trusted;
    size_t entries;          /* entries seen */
    hr_ipaddr first;         /* the leftmost entry */
    bool first_ok;           /* ... is an address */
    bool have_untrusted;
    hr_ipaddr untrusted;     /* the rightmost entry that is not a trusted proxy so far */
    bool untrusted_ok;       /* ... is an address */
} hr_fwd;

void hr_fwd_init(hr_fwd *f, const hr_cidr_set *trusted);
/* X-Forwarded-For: "203.0.113.5, 10.0.0.2". Entries may carry a port
 * ("203.0.113.5:41234", "[2001:db8::1]:41234"); empty entries are skipped. */
void hr_fwd_feed_xff(hr_fwd *f, const char *value, size_t len);
/* Forwarded: "for=203.0.113.5;proto=https, for=\"[2001:db8::1]:4711\"". An
 * element without for=, or whose for= is "unknown" or obfuscated ("_x"),
 * is an entry that is not an address. */
void hr_fwd_feed_forwarded(hr_fwd *f, const char *value, size_t len);

enum {
    HR_FWD_NONE = 0,         /* no entries at all */
    HR_FWD_ADDR = 1,         /* *out is the client */
    HR_FWD_UNKNOWN = 2,      /* the deciding entry is not an address (unknown, obfuscated, garbage) */
};
/* The client the headers name: HR_FWD_ADDR with *out set, or why not. */
int hr_fwd_result(const hr_fwd *f, hr_ipaddr *out);

/* One node: "192.0.2.1", "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]",
 * "[2001:db8::1]:80". Returns 0 or HR_ERR_INVALID. (Exposed for tests.) */
int hr_fwd_parse_node(const char *s, size_t len, hr_ipaddr *out);

#endif
