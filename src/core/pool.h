/* pool.h - per-worker pools (slabs) for small fixed-size objects.
 *
 * What a connection costs while idle is mostly a few small structs (the
 * connection, its WebSocket state, its front end's client, its
 * subscriptions). From malloc each pays an 8-byte header and rounding up to
 * 16 bytes; a pool carves objects of one size class (a multiple of 8 bytes,
 * 8 to 256) from 64 KiB blocks with neither.
 *
 * Threads: a pool set (hr_pools) is used by one thread at a time, without a
 * lock: a worker's set by that worker's thread (every object in it is made
 * and freed there), and after the worker stopped, by the thread tearing the
 * server down.
 *
 * Memory: a block whose objects are all free again becomes a spare; a set
 * keeps at most `spare_max` spare blocks (server.object_pool_spare_bytes / 64 KiB)
 * for the next objects, and gives any further empty block back to the
 * kernel at once (munmap), so a mass disconnect returns its memory.
 *
 * Sanitizers: under AddressSanitizer the blocks come from aligned_alloc (so
 * LeakSanitizer scans them) and free objects and never-used space are
 * poisoned: a use after free of a pooled object is reported (until the slot
 * is reused: the most recently freed object is handed out first). */
#ifndef HERALD_CORE_POOL_H
#define HERALD_CORE_POOL_H

#include <stddef.h>
#include <stdint.h>

#define HR_POOL_BLOCK_SIZE (64 * 1024)
#define HR_POOL_MAX_OBJECT 256
#define HR_POOL_CLASSES (HR_POOL_MAX_OBJECT / 8)

typedef struct hr_pool_block hr_pool_block;

/* One size class: its blocks with a free object (spare, empty ones last)
 * and its full blocks. */
typedef struct hr_pool_class {
    hr_pool_block *avail, *avail_tail;
    hr_pool_block *full;
    uint32_t size;                 /* object size, bytes (0: not used yet) */
    uint32_t per_block;            /* objects per block */
} hr_pool_class;

/* A thread's pools. All zero is a valid empty set that keeps no spare blocks. */
typedef struct hr_pools {
    hr_pool_class cls[HR_POOL_CLASSES]; /* by size: 8, 16, ..., 256 bytes */
    size_t spare_max;              /* empty blocks kept at most */
    size_t spare;                  /* empty blocks kept now */
    size_t blocks;                 /* blocks held now (spares included) */
    size_t objects;                /* objects handed out and not freed */
} hr_pools;

/* Keep at most spare_bytes of empty blocks (rounded down to whole blocks).
 * Set before use (the server does at start-up): empty blocks already kept
 * over a lowered bound stay until they are used again. */
void hr_pools_set_spare(hr_pools *ps, size_t spare_bytes);

/* A zeroed object of `size` bytes (1..HR_POOL_MAX_OBJECT, rounded up to 8;
 * 8-byte aligned). Aborts when out of memory, like hr_malloc. */
void *hr_pool_alloc(hr_pools *ps, size_t size);

/* Give an object of this set back (NULL: nothing). */
void hr_pool_free(hr_pools *ps, void *p);

/* Give every block back, objects still handed out included. */
void hr_pools_destroy(hr_pools *ps);

#endif
