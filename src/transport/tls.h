/* tls.h - TLS for Herald's listeners, on OpenSSL, on the worker's own
 * non-blocking event loop.
 *
 * Owns: the server's SSL_CTX (built from tls.cert / tls.key / tls.min_version
 * / tls.ciphers / tls.ciphersuites), its reload on SIGHUP, and the state of
 * one TLS connection as the connection's I/O layer (conn.h: the SSL object,
 * the handshake, read / writev / shutdown / close through OpenSSL). A plain
 * connection pays nothing: its layer is the shared hr_conn_plain.
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

#include "transport/opts.h"

struct hr_shared;
typedef struct hr_conn hr_conn;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct hr_tls_server hr_tls_server;
typedef struct hr_tls_conn hr_tls_conn;

/* "1.2" -> TLS1_2_VERSION, "1.3" -> TLS1_3_VERSION; HR_ERR_INVALID otherwise. */
int hr_tls_parse_min_version(const char *s);

/* A new context from tls.* options. NULL with a message such as
 * "tls.key: the private key does not match the certificate in cert.pem" in
 * err (files unreadable, not PEM, mismatched key, bad cipher list). */
SSL_CTX *hr_tls_ctx_new(const hr_transport_opts *opt, char *err, size_t errlen);

/* The TLS state (context + lock). Returns 0 or HR_ERR_INVALID with
 * a message in err. */
int hr_tls_server_new(hr_tls_server **out, const hr_transport_opts *opt, char *err, size_t errlen);
void hr_tls_server_free(hr_tls_server *t);
/* Build a new context from the same files and swap it in; on failure keep
 * the old one. Returns 0 or HR_ERR_INVALID (message in err). */
int hr_tls_server_reload(hr_tls_server *t, char *err, size_t errlen);
/* SHA-256 fingerprint (hex) of the certificate new connections get. */
void hr_tls_server_fingerprint(hr_tls_server *t, char *out, size_t outlen);

/* SIGHUP hook: reload the certificate of the process s shares if it speaks TLS, logging
 * the outcome. Safe while workers run. */
void hr_tls_reload(struct hr_shared *s);

/* ---- per connection (worker thread) ------------------------------------ */

/* Make c's I/O layer a new server-side TLS connection on c's socket (fd
 * already set): the handshake runs as the layer's start on c's socket
 * events, then reads and writes go through OpenSSL (no sendfile: conn.c
 * writes files in chunks); the layer sends close_notify and frees itself
 * when c closes. Returns 0 or HR_ERR_NOMEM (c->layer unchanged). */
int hr_tls_conn_new(hr_conn *c, hr_tls_server *t);
#endif
