/* pmdeflate.c - permessage-deflate (RFC 7692): parses Sec-WebSocket-Extensions
 * (RFC 6455 §9.1 grammar), picks the first acceptable permessage-deflate
 * offer and writes the response; owns the raw-deflate stream helpers that
 * compress / decompress one message (see pmdeflate.h). No I/O. */
#include "codec/pmdeflate.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Header parsing                                                            */
/* ------------------------------------------------------------------------ */

/* RFC 7230 §3.2.6 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static void skip_ows(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

/* token = 1*tchar. Returns its length (0: none there). */
static size_t take_token(cursor *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
    return (size_t)(c->p - *start);
}

/* A parameter value after unescaping, kept only as far as we need it. */
#define PMD_VAL_KEEP 4
typedef struct pval {
    char v[PMD_VAL_KEEP];
    size_t len;   /* full unescaped length (may exceed PMD_VAL_KEEP) */
} pval;

static void pval_put(pval *v, char ch)
{
    if (v->len < PMD_VAL_KEEP) v->v[v->len] = ch;
    v->len++;
}

/* value = token | quoted-string; after unescaping a quoted-string the value
 * must itself be a token (RFC 6455 §9.1). Returns 0 or HR_ERR_PROTO. */
static int take_value(cursor *c, pval *v)
{
    v->len = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        for (;;) {
            if (c->p >= c->end) return HR_ERR_PROTO;   /* unterminated */
            unsigned char ch = (unsigned char)*c->p++;
            if (ch == '"') break;
            if (ch == '\\') {
                if (c->p >= c->end) return HR_ERR_PROTO;
                ch = (unsigned char)*c->p++;
            }
            if (!is_tchar(ch)) return HR_ERR_PROTO;
            pval_put(v, (char)ch);
        }
        return v->len ? 0 : HR_ERR_PROTO;
    }
    while (c->p < c->end && is_tchar((unsigned char)*c->p)) pval_put(v, *c->p++);
    return v->len ? 0 : HR_ERR_PROTO;
}

static bool tok_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* RFC 7692 window bits value: decimal 8..15 without leading zeros. */
static int parse_bits(const pval *v)
{
    if (v->len == 1 && (v->v[0] == '8' || v->v[0] == '9')) return v->v[0] - '0';
    if (v->len == 2 && v->v[0] == '1' && v->v[1] >= '0' && v->v[1] <= '5')
        return 10 + (v->v[1] - '0');
    return -1;
}

/* One permessage-deflate offer being collected. */
typedef struct pmd_offer {
    bool bad;                 /* declined: unknown/duplicate/bad parameter */
    bool snct, cnct;          /* *_no_context_takeover present */
    int smwb;                 /* server_max_window_bits value, 0 = absent */
    bool cmwb_present;
    int cmwb;                 /* client_max_window_bits value, 0 = no value */
} pmd_offer;

static void offer_param(pmd_offer *o, const char *name, size_t nlen, bool has_val,
                        const pval *val)
{
    if (o->bad) return;
    if (tok_eq(name, nlen, "server_no_context_takeover")) {
        if (has_val || o->snct) o->bad = true;
        o->snct = true;
    } else if (tok_eq(name, nlen, "client_no_context_takeover")) {
        if (has_val || o->cnct) o->bad = true;
        o->cnct = true;
    } else if (tok_eq(name, nlen, "server_max_window_bits")) {
        int b = has_val ? parse_bits(val) : -1;
        if (b < 0 || o->smwb) o->bad = true;
        o->smwb = b;
    } else if (tok_eq(name, nlen, "client_max_window_bits")) {
        int b = has_val ? parse_bits(val) : 0;
        if (b < 0 || o->cmwb_present) o->bad = true;
        o->cmwb_present = true;
        o->cmwb = b;
    } else {
        o->bad = true;
    }
}

/* Apply the server policy to a well-formed offer. Returns false to decline. */
static bool offer_accept(const pmd_offer *o, const hr_pmd_config *cfg, hr_pmd_params *p,
                         bool *say_smwb, bool *say_cmwb)
{
    if (o->bad) return false;
    p->server_no_context_takeover = o->snct || !cfg->server_context_takeover;
    p->client_no_context_takeover = o->cnct;

    if (o->smwb) {
        int s = HR_MIN(o->smwb, cfg->server_max_window_bits);
        if (s < 9) return false;   /* client wants 8: raw deflate can't do it */
        p->server_max_window_bits = (uint8_t)s;
        *say_smwb = true;          /* §7.1.2.1: must answer when offered */
    } else {
        p->server_max_window_bits = (uint8_t)cfg->server_max_window_bits;
        *say_smwb = cfg->server_max_window_bits < 15;
    }

    if (o->cmwb_present) {
        int m = HR_MIN(o->cmwb ? o->cmwb : 15, cfg->client_max_window_bits);
        p->client_max_window_bits = (uint8_t)m;
        *say_cmwb = m < 15 || o->cmwb;
    } else {
        p->client_max_window_bits = 15;   /* may not be limited (§7.1.2.2) */
        *say_cmwb = false;
    }
    return true;
}

int hr_pmd_negotiate(const char *offer, size_t len, const hr_pmd_config *cfg,
                     hr_pmd_params *out, char *resp, size_t resp_cap)
{
    if (!cfg || !out || (!offer && len)) return HR_ERR_INVALID;
    if (!cfg->enabled) return 0;
    if (cfg->server_max_window_bits < 9 || cfg->server_max_window_bits > 15 ||
        cfg->client_max_window_bits < 9 || cfg->client_max_window_bits > 15)
        return HR_ERR_INVALID;

    if (!offer) offer = "";   /* len is 0: avoid NULL + 0 */
    cursor c = {offer, offer + len};
    size_t n_ext = 0;
    bool found = false;
    hr_pmd_params chosen = {0};
    bool say_smwb = false, say_cmwb = false;

    /* 1#extension with RFC 7230 #list rules: empty elements are allowed. */
    for (;;) {
        skip_ows(&c);
        if (c.p >= c.end) break;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        const char *name;
        size_t nlen = take_token(&c, &name);
        if (!nlen) return HR_ERR_PROTO;
        bool is_pmd = !found && tok_eq(name, nlen, "permessage-deflate");
        pmd_offer o = {0};

        for (;;) {
            skip_ows(&c);
            if (c.p >= c.end || *c.p != ';') break;
            c.p++;
            skip_ows(&c);
            const char *pname;
            size_t plen = take_token(&c, &pname);
            if (!plen) return HR_ERR_PROTO;
            skip_ows(&c);
            bool has_val = false;
            pval val = {{0}, 0};
            if (c.p < c.end && *c.p == '=') {
                c.p++;
                skip_ows(&c);
                if (take_value(&c, &val) < 0) return HR_ERR_PROTO;
                has_val = true;
            }
            if (is_pmd) offer_param(&o, pname, plen, has_val, &val);
        }
        if (c.p < c.end && *c.p != ',') return HR_ERR_PROTO;
        n_ext++;

        if (is_pmd) {
            hr_pmd_params p = {0};
            bool ss = false, sc = false;
            if (offer_accept(&o, cfg, &p, &ss, &sc)) {
                found = true;
                chosen = p;
                say_smwb = ss;
                say_cmwb = sc;
            }
        }
        /* the loop top consumes the ',' (or stops at the end) */
    }
    if (!n_ext) return HR_ERR_PROTO;   /* 1#: at least one extension */
    if (!found) return 0;

    if (!resp) return HR_ERR_INVALID;
    char smwb[32] = "", cmwb[32] = "";
    if (say_smwb)
        snprintf(smwb, sizeof smwb, "; server_max_window_bits=%d", chosen.server_max_window_bits);
    if (say_cmwb)
        snprintf(cmwb, sizeof cmwb, "; client_max_window_bits=%d", chosen.client_max_window_bits);
    int n = snprintf(resp, resp_cap, "permessage-deflate%s%s%s%s",
                     chosen.server_no_context_takeover ? "; server_no_context_takeover" : "",
                     chosen.client_no_context_takeover ? "; client_no_context_takeover" : "",
                     smwb, cmwb);
    if (n < 0 || (size_t)n >= resp_cap) {
        if (resp_cap) resp[0] = '\0';
        return HR_ERR_INVALID;
    }
    *out = chosen;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */
/* ------------------------------------------------------------------------ */

static voidpf pmd_zalloc(voidpf opaque, uInt items, uInt size)
{
    HR_UNUSED(opaque);
    if (size && items > SIZE_MAX / size) return Z_NULL;
    return hr_malloc((size_t)items * size);
}

static void pmd_zfree(voidpf opaque, voidpf p)
{
    HR_UNUSED(opaque);
    hr_free(p);
}

static int zerr(int zr)
{
    return zr == Z_MEM_ERROR ? HR_ERR_NOMEM : HR_ERR_INVALID;
}

int hr_pmd_deflater_init(z_stream *zs, int level, int window_bits, int mem_level)
{
    if (!zs) return HR_ERR_INVALID;
    memset(zs, 0, sizeof *zs);
    /* zlib >= 1.2.9 refuses raw deflate with an 8-bit window. */
    if (level < Z_DEFAULT_COMPRESSION || level > 9 || window_bits < 9 || window_bits > 15 ||
        mem_level < 1 || mem_level > 9)
        return HR_ERR_INVALID;
    zs->zalloc = pmd_zalloc;
    zs->zfree = pmd_zfree;
    int zr = deflateInit2(zs, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY);
    return zr == Z_OK ? 0 : zerr(zr);
}

int hr_pmd_inflater_init(z_stream *zs, int window_bits)
{
    if (!zs) return HR_ERR_INVALID;
    memset(zs, 0, sizeof *zs);
    if (window_bits < 8 || window_bits > 15) return HR_ERR_INVALID;
    /* A peer that agreed to 8 but compresses with zlib gets a 9-bit window
     * (zlib silently promotes 8 to 9); accepting 512-byte distances costs
     * 256 bytes and avoids failing those peers. */
    if (window_bits == 8) window_bits = 9;
    zs->zalloc = pmd_zalloc;
    zs->zfree = pmd_zfree;
    int zr = inflateInit2(zs, -window_bits);
    return zr == Z_OK ? 0 : zerr(zr);
}

void hr_pmd_deflater_end(z_stream *zs)
{
    if (zs) deflateEnd(zs);   /* harmless on a zeroed or ended stream */
}

void hr_pmd_inflater_end(z_stream *zs)
{
    if (zs) inflateEnd(zs);
}

static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

int hr_pmd_compress(z_stream *zs, const uint8_t *in, size_t len, bool reset, hr_buf *out)
{
    if (!zs || !out || (!in && len)) return HR_ERR_INVALID;
    size_t start = out->len;
    int rc = 0;

    if (len == 0) {
        /* An empty message is one empty stored block, i.e. "00" once the
         * 00 00 ff ff is stripped. Emitted by hand: right after a previous
         * sync flush zlib's deflate() makes no progress on empty input
         * (Z_BUF_ERROR, no marker). The stream stays byte aligned, so the
         * context is unaffected. deflatePending also checks the stream. */
        unsigned pending = 0;
        int bits = 0;
        if (deflatePending(zs, &pending, &bits) != Z_OK) return HR_ERR_INVALID;
        if (pending || bits) return HR_ERR_INVALID;   /* not left by us */
        hr_buf_append(out, pmd_tail, 1);
        goto done;
    }

    const uint8_t *p = in;
    size_t left = len;
    zs->avail_in = 0;
    for (;;) {
        if (zs->avail_in == 0 && left) {
            size_t n = HR_MIN(left, (size_t)UINT_MAX);
            zs->next_in = (Bytef *)(uintptr_t)p;
            zs->avail_in = (uInt)n;
            p += n;
            left -= n;
        }
        int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        if (out->cap - out->len < 64) {
            /* about half the remaining input, doubling via hr_buf_reserve */
            size_t want = (left + zs->avail_in) / 2 + 64;
            hr_buf_reserve(out, HR_MIN(want, (size_t)1 << 20));
        }
        size_t room = HR_MIN(out->cap - out->len, (size_t)UINT_MAX);
        zs->next_out = out->data + out->len;
        zs->avail_out = (uInt)room;
        int zr = deflate(zs, flush);
        out->len += room - zs->avail_out;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zerr(zr);
            goto fail;
        }
        if (flush == Z_SYNC_FLUSH && zs->avail_in == 0 && zs->avail_out != 0) break;
    }
    if (out->len - start < 4 || memcmp(out->data + out->len - 4, pmd_tail, 4) != 0) {
        rc = HR_ERR_INVALID;
        goto fail;
    }
    out->len -= 4;

done:
    if (reset) deflateReset(zs);
    return 0;

fail:
    out->len = start;
    deflateReset(zs);
    return rc;
}

/* Grow out by doubling, but never to more than max_out bytes in all (the
 * caller guarantees out->len < max_out), so a zip bomb cannot make us
 * allocate beyond the limit. */
static void grow_bounded(hr_buf *out, size_t max_out)
{
    size_t cap = out->cap < 512 ? 1024 : out->cap;
    cap = cap <= SIZE_MAX / 2 ? cap * 2 : SIZE_MAX;
    if (cap > max_out) cap = max_out;
    if (cap <= out->cap) return;
    out->data = hr_realloc(out->data, cap);
    out->cap = cap;
}

/* Run inflate over in[0..len) appending to out. Returns 0 or an error. */
static int inflate_feed(z_stream *zs, const uint8_t *in, size_t len, hr_buf *out,
                        size_t max_out)
{
    const uint8_t *p = in;
    size_t left = len;
    zs->avail_in = 0;
    for (;;) {
        if (zs->avail_in == 0 && left) {
            size_t n = HR_MIN(left, (size_t)UINT_MAX);
            zs->next_in = (Bytef *)(uintptr_t)p;
            zs->avail_in = (uInt)n;
            p += n;
            left -= n;
        }
        size_t room = max_out > out->len ? max_out - out->len : 0;
        uint8_t probe;
        if (room == 0) {
            /* At the limit: one more output byte means the message is too big,
             * but input that yields no output (block headers, the tail) is fine. */
            zs->next_out = &probe;
            zs->avail_out = 1;
        } else {
            if (out->cap == out->len) grow_bounded(out, max_out);
            room = HR_MIN(HR_MIN(room, out->cap - out->len), (size_t)UINT_MAX);
            zs->next_out = out->data + out->len;
            zs->avail_out = (uInt)room;
        }
        uInt before = zs->avail_out;
        int saved_type = zs->data_type;
        int zr = inflate(zs, Z_SYNC_FLUSH);
        /* A call that makes no progress (Z_BUF_ERROR) changes nothing that
         * matters, but zlib still rewrites data_type (it turns "at a block
         * header" into an internal twin state); keep what the last real step
         * reported so at_block_boundary() stays right. */
        if (zr == Z_BUF_ERROR) zs->data_type = saved_type;
        size_t produced = before - zs->avail_out;
        if (room == 0) {
            if (produced) return HR_ERR_TOO_BIG;
        } else {
            out->len += produced;
        }
        switch (zr) {
        case Z_OK:
        case Z_BUF_ERROR:   /* no progress possible: needs input or space */
            break;
        case Z_STREAM_END:
            /* A block with BFINAL set (RFC 7692 §7.2.3.5): what follows starts
             * a new DEFLATE stream. */
            inflateReset(zs);
            break;
        case Z_NEED_DICT:
        case Z_DATA_ERROR:
            return HR_ERR_PROTO;
        default:
            return zerr(zr);
        }
        if (zs->avail_in == 0 && left == 0 && zs->avail_out != 0) return 0;
    }
}

/* True when the inflater sits between blocks with no buffered bits: nothing
 * consumed since init/reset, or data_type says "at a block header, byte
 * aligned, not in the final block" (zlib.h: bits + 64*last + 128*at-type). */
static bool at_block_boundary(const z_stream *zs)
{
    return zs->total_in == 0 || zs->data_type == 128;
}

int hr_pmd_decompress(z_stream *zs, const uint8_t *in, size_t len, bool last,
                      bool reset, hr_buf *out, size_t max_out)
{
    if (!zs || !out || (!in && len)) return HR_ERR_INVALID;
    int rc = inflate_feed(zs, in, len, out, max_out);
    if (rc < 0) goto fail;
    if (!last) return 0;

    /* Appending 00 00 ff ff completes the empty stored block that the sender
     * stripped. If the inflater is already at a clean block boundary (an
     * empty payload, or one ending in a BFINAL block without the extra 0x00)
     * those bytes would open a stored block that never ends, so skip them. */
    if (!at_block_boundary(zs)) {
        rc = inflate_feed(zs, pmd_tail, sizeof pmd_tail, out, max_out);
        if (rc < 0) goto fail;
        /* A complete message always ends on a block boundary; anything else
         * is a truncated or corrupt payload that would poison the context. */
        if (!at_block_boundary(zs)) {
            rc = HR_ERR_PROTO;
            goto fail;
        }
    }
    if (reset) inflateReset(zs);
    return 0;

fail:
    /* The connection is going away (1007 / 1009), but leave the stream usable. */
    inflateReset(zs);
    return rc;
}
