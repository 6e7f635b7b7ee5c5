/* random.h - random bytes and random hex ids from the kernel (getrandom).
 *
 * Client ids, long-poll session ids (the only credential of a session),
 * channel epochs and the generated API key are made here. A failure to get
 * randomness is not survivable for these: a guessable or all-zero id would
 * let one client take over another's session, so hr_random_bytes logs one
 * error line and aborts rather than return weaker bytes. getrandom(2) on
 * Linux >= 3.17 does not fail once the pool is initialised, so this only
 * fires on a broken system (seccomp filter, ancient kernel). */
#ifndef HERALD_CORE_RANDOM_H
#define HERALD_CORE_RANDOM_H

#include <stddef.h>
#include <sys/types.h>

/* Fill buf[0..n) with random bytes; logs and aborts when the kernel gives
 * none. */
void hr_random_bytes(void *buf, size_t n);

/* nbytes random bytes written as 2 * nbytes lowercase hex digits and a NUL
 * into out (2 * nbytes + 1 bytes). */
void hr_random_hex(char *out, size_t nbytes);

/* Tests only: the function hr_random_bytes reads from (getrandom's
 * signature); NULL restores getrandom. */
typedef ssize_t (*hr_random_source)(void *buf, size_t len, unsigned flags);
void hr_random_set_source(hr_random_source src);

#endif
