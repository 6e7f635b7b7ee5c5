/* hash.h - the one string hash of the tree: 64-bit FNV-1a, exactly as
 * published (offset basis 14695981039346656037, prime 2^40 + 2^8 + 0xb3).
 *
 * Used where a table or a shard is chosen by a name (channels in the hub,
 * the memory engine and the Redis shards, HTTP session ids): cheap, no
 * state, well spread for short keys. The Redis engine's shard of a channel
 * is jump_hash(hr_fnv1a(name)) and every node, and any program that writes
 * into the shards itself, must compute the same (docs/scaling.md). The four
 * copies this replaced used a basis with its last digit lost
 * (1469598103934665603), which is not FNV-1a. */
#ifndef HERALD_CORE_HASH_H
#define HERALD_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HR_FNV1A_OFFSET 14695981039346656037ull
#define HR_FNV1A_PRIME 1099511628211ull

/* FNV-1a of s[0..n). */
static inline uint64_t hr_fnv1a(const void *s, size_t n)
{
    const uint8_t *p = s;
    uint64_t h = HR_FNV1A_OFFSET;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * HR_FNV1A_PRIME;
    return h;
}

#endif
