/* tls.h - TLS for Herald's listeners, on OpenSSL, on the worker's own
 * non-blocking event loop.
 *
 * Owns: the server's SSL_CTX (built from tls.cert / tls.key / tls.min_version
 * / tls.ciphers / tls.ciphersuites), its reload on SIGHUP, and the state of
 * one TLS connection (the SSL object, the handshake, and the read / write
 * adapters conn.c calls instead of read() / writev() / sendfile() when
 * c->tls is set). A plain connection pays one NULL pointer (hr_conn.tls).
 *
 * Threads: the SSL_CTX in use is swapped under a mutex by hr_tls_reload()
 * (main thread) and read by workers at accept (hr_tls_conn_new), which take
 * their own reference through SSL_new: connections accepted before a reload
 * keep the old context until they close. */
#ifndef HERALD_TRANSPORT_TLS_H
#define HERALD_TRANSPORT_TLS_H

#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct hr_config;
struct hr_server;
typedef struct hr_conn hr_conn;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct hr_tls_server hr_tls_server;
typedef struct hr_tls_conn hr_tls_conn;

/* "1.2" -> TLS1_2_VERSION, "1.3" -> TLS1_3_VERSION; HR_ERR_INVALID otherwise. */
int hr_tls_parse_min_version(const char *s);

/* A new context from the config's tls.* options. NULL with a message such as
 * "tls.key: the private key does not match the certificate in cert.pem" in
 * err (files unreadable, not PEM, mismatched key, bad cipher list). */
SSL_CTX *hr_tls_ctx_new(const struct hr_config *cfg, char *err, size_t errlen);

/* The server's TLS state (context + lock). Returns 0 or HR_ERR_INVALID with
 * a message in err. */
int hr_tls_server_new(hr_tls_server **out, const struct hr_config *cfg, char *err, size_t errlen);
void hr_tls_server_free(hr_tls_server *t);
/* Build a new context from the same files and swap it in; on failure keep
 * the old one. Returns 0 or HR_ERR_INVALID (message in err). */
int hr_tls_server_reload(hr_tls_server *t, char *err, size_t errlen);
/* SHA-256 fingerprint (hex) of the certificate new connections get. */
void hr_tls_server_fingerprint(hr_tls_server *t, char *out, size_t outlen);

/* SIGHUP hook: reload the certificate of server s if it speaks TLS, logging
 * the outcome. Safe while workers run. */
void hr_tls_reload(struct hr_server *s);

/* ---- per connection (worker thread) ------------------------------------ */

/* Attach a server-side SSL to c (fd already set). Returns 0 or HR_ERR_NOMEM. */
int hr_tls_conn_new(hr_conn *c, hr_tls_server *t);
/* Send close_notify if the session is up (best effort, never blocks), free. */
void hr_tls_conn_free(hr_conn *c);
/* True while the handshake is not finished. */
bool hr_tls_handshaking(const hr_conn *c);
/* Drive the handshake. Returns 0 when finished, 1 while it waits for the
 * socket, HR_ERR_CLOSED when it failed and c was closed. */
int hr_tls_handshake(hr_conn *c);
/* Read decrypted bytes: > 0 bytes, 0 end of stream (close_notify or FIN),
 * HR_ERR_AGAIN nothing more now, HR_ERR_IO failure. */
ssize_t hr_tls_read(hr_conn *c, uint8_t *dst, size_t cap);
/* True when the last hr_tls_read stopped because OpenSSL needs the socket
 * (so the next event will come); false when it stopped with a full buffer or
 * has an end / error still to report (read again). */
bool hr_tls_drained(const hr_conn *c);
/* The socket event (EPOLLIN / EPOLLOUT bits) a stalled read or write waits
 * for besides its own direction, so conn.c can retry on it. */
uint32_t hr_tls_retry_events(const hr_conn *c, uint32_t events);
/* Largest plaintext of one TLS record: conn.c coalesces small queue entries
 * (and reads file chunks) into hr_tls_wbuf() up to this size, so that one
 * publication of 50 bytes does not become one 50-byte record per entry. */
#define HR_TLS_CHUNK 16384
/* The calling worker thread's coalescing buffer (HR_TLS_CHUNK bytes). */
uint8_t *hr_tls_wbuf(void);
/* Encrypt and send up to len bytes: > 0 bytes taken (partial writes are
 * normal), HR_ERR_AGAIN the socket is full (retry later with at least the
 * same bytes at the front), HR_ERR_IO failure. */
ssize_t hr_tls_write(hr_conn *c, const uint8_t *p, size_t len);
/* Bytes at the front of the queue that OpenSSL has already encrypted after a
 * blocked write and that must be offered again (hr_conn_drop_queued keeps
 * them). 0 when nothing is pending. */
size_t hr_tls_committed(const hr_conn *c);
/* Half-close: close_notify then FIN. */
void hr_tls_shutdown_write(hr_conn *c);

#endif
