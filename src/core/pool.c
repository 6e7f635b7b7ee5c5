/* pool.c - per-worker pools (slabs) for small fixed-size objects (see pool.h).
 *
 * A block is HR_POOL_BLOCK_SIZE bytes aligned to its size, so an object's
 * block is its address rounded down: freeing needs no lookup and no header
 * per object. The block's header (first 64 bytes) holds its free objects (a
 * list through their first word), the first never-used object (objects are
 * carved on demand, so a new block's untouched pages stay out of the
 * resident set) and its count of objects in use.
 *
 * A class lists the blocks that have a free object, non-empty ones first:
 * a block that stops being full goes to the front, one that becomes empty
 * to the back (or back to the kernel, past the spare budget), so
 * allocations fill partly used blocks before they touch a spare one, and
 * empty blocks are not reused while others have room. */
#include "core/pool.h"
#include "core/common.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif

#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HEADER 64

struct hr_pool_block {
    hr_pool_block *next, *prev;    /* in its class's avail list, or full list */
    hr_pool_class *cls;
    void *free;                    /* free objects, linked through their first word */
    char *bump;                    /* first object never handed out */
    uint32_t used;                 /* objects handed out */
};

_Static_assert(sizeof(hr_pool_block) <= HEADER, "block header");

static hr_pool_block *block_of(void *p)
{
    return (hr_pool_block *)((uintptr_t)p & ~(uintptr_t)(HR_POOL_BLOCK_SIZE - 1));
}

static void *map_block(void)
{
#ifdef POOL_ASAN
    return aligned_alloc(HR_POOL_BLOCK_SIZE, HR_POOL_BLOCK_SIZE);
#else
    /* map twice the size and trim to an aligned block */
    size_t len = 2 * (size_t)HR_POOL_BLOCK_SIZE;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)m + HR_POOL_BLOCK_SIZE - 1) & ~(uintptr_t)(HR_POOL_BLOCK_SIZE - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    size_t tail = (size_t)(m + len - (a + HR_POOL_BLOCK_SIZE));
    if (tail) munmap(a + HR_POOL_BLOCK_SIZE, tail);
    return a;
#endif
}

static void unmap_block(hr_pool_block *b)
{
#ifdef POOL_ASAN
    UNPOISON(b, HR_POOL_BLOCK_SIZE);
    free(b);
#else
    munmap(b, HR_POOL_BLOCK_SIZE);
#endif
}

/* ---- the class's lists ------------------------------------------------------------ */

static void avail_unlink(hr_pool_class *c, hr_pool_block *b)
{
    if (b->prev) b->prev->next = b->next;
    else c->avail = b->next;
    if (b->next) b->next->prev = b->prev;
    else c->avail_tail = b->prev;
    b->next = b->prev = NULL;
}

static void avail_push_front(hr_pool_class *c, hr_pool_block *b)
{
    b->prev = NULL;
    b->next = c->avail;
    if (c->avail) c->avail->prev = b;
    else c->avail_tail = b;
    c->avail = b;
}

static void avail_push_back(hr_pool_class *c, hr_pool_block *b)
{
    b->next = NULL;
    b->prev = c->avail_tail;
    if (c->avail_tail) c->avail_tail->next = b;
    else c->avail = b;
    c->avail_tail = b;
}

static void full_unlink(hr_pool_class *c, hr_pool_block *b)
{
    if (b->prev) b->prev->next = b->next;
    else c->full = b->next;
    if (b->next) b->next->prev = b->prev;
    b->next = b->prev = NULL;
}

static void full_push(hr_pool_class *c, hr_pool_block *b)
{
    b->prev = NULL;
    b->next = c->full;
    if (c->full) c->full->prev = b;
    c->full = b;
}

/* ---- blocks ----------------------------------------------------------------------- */

/* An empty block as if new: everything after the header never used. */
static void block_reset(hr_pool_block *b)
{
    b->free = NULL;
    b->bump = (char *)b + HEADER;
    POISON(b->bump, HR_POOL_BLOCK_SIZE - HEADER);
}

/* A new empty block at the back of c's avail list (counted as a spare). */
static hr_pool_block *block_new(hr_pools *ps, hr_pool_class *c)
{
    hr_pool_block *b = map_block();
    if (!b) {
        fprintf(stderr, "herald: out of memory allocating a %d-byte pool block\n", HR_POOL_BLOCK_SIZE);
        abort();
    }
    memset(b, 0, sizeof(*b));
    b->cls = c;
    block_reset(b);
    avail_push_back(c, b);
    ps->blocks++;
    ps->spare++;
    return b;
}

static void block_release(hr_pools *ps, hr_pool_block *b)
{
    avail_unlink(b->cls, b);
    ps->blocks--;
    unmap_block(b);
}

/* ---- the interface ---------------------------------------------------------------- */

void hr_pools_set_spare(hr_pools *ps, size_t spare_bytes)
{
    ps->spare_max = spare_bytes / HR_POOL_BLOCK_SIZE;
}

void *hr_pool_alloc(hr_pools *ps, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (size == 0 || size > HR_POOL_MAX_OBJECT) abort(); /* a caller's bug: sizes are compile-time constants */
    hr_pool_class *c = &ps->cls[size / 8 - 1];
    if (HR_UNLIKELY(!c->size)) {
        c->size = (uint32_t)size;
        c->per_block = (uint32_t)((HR_POOL_BLOCK_SIZE - HEADER) / size);
    }
    hr_pool_block *b = c->avail ? c->avail : block_new(ps, c);
    if (b->used == 0) ps->spare--;
    void *p;
    if (b->free) {
        p = b->free;
        UNPOISON(p, size);
        memcpy(&b->free, p, sizeof(void *));
    } else {
        p = b->bump;
        b->bump += size;
        UNPOISON(p, size);
    }
    if (++b->used == c->per_block) {
        avail_unlink(c, b);
        full_push(c, b);
    }
    ps->objects++;
    return memset(p, 0, size);
}

void hr_pool_free(hr_pools *ps, void *p)
{
    if (!p) return;
    hr_pool_block *b = block_of(p);
    hr_pool_class *c = b->cls;
    if (b->used == c->per_block) {
        full_unlink(c, b);
        avail_push_front(c, b);
    }
    memcpy(p, &b->free, sizeof(void *));
    b->free = p;
    POISON(p, c->size);
    ps->objects--;
    if (--b->used) return;
    if (ps->spare >= ps->spare_max) {
        block_release(ps, b);
        return;
    }
    block_reset(b);
    ps->spare++;
    if (b != c->avail_tail) {
        avail_unlink(c, b);
        avail_push_back(c, b);
    }
}

void hr_pools_destroy(hr_pools *ps)
{
    for (size_t i = 0; i < HR_POOL_CLASSES; i++) {
        hr_pool_class *c = &ps->cls[i];
        while (c->avail) block_release(ps, c->avail);
        while (c->full) {
            hr_pool_block *b = c->full;
            full_unlink(c, b);
            ps->blocks--;
            unmap_block(b);
        }
    }
    ps->spare = 0;
    ps->objects = 0;
}
