/* h2.h - HTTP/2 on a connection (nghttp2's memory API on Herald's loop):
 * each stream is a socketless hr_conn running the HTTP/1.1 transport
 * unchanged, through an I/O layer that turns HEADERS/DATA into HTTP/1.1
 * request bytes and the HTTP/1.1 response back into frames (see h2.c). */
#ifndef HERALD_TRANSPORT_H2_H
#define HERALD_TRANSPORT_H2_H

#include "transport/conn.h"

#define HR_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define HR_H2_PREFACE_LEN 24

/* The first bytes of a connection against the client preface: 1 it is the
 * preface, 0 a prefix of it (wait for more), -1 not HTTP/2. */
int hr_h2_preface(const uint8_t *data, size_t len);

/* Make c (an HTTP/1.1 connection that has read nothing yet) an HTTP/2
 * connection; peer_key: a trusted proxy's own address key (or 0). Returns
 * 0, or HR_ERR_NOMEM (c closed). */
int hr_h2_attach(hr_conn *c, uint32_t peer_key);
/* The same with another transport for the stream conns (the fuzz target's
 * stub); c may have no transport state yet (c->proto NULL). */
int hr_h2_attach_with(hr_conn *c, uint32_t peer_key, void (*attach)(hr_conn *stream));

#endif
