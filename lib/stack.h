/*
 * lib/stack.h - fiber stacks: reserved virtual memory carved from slabs,
 * committed only when touched, reused warm through per-worker caches.
 *
 * Slab layout (one mmap, MAP_NORESERVE; addresses grow to the right):
 *
 *   [header][pad page][slot 0][slot 1] ... [slot K-1]
 *   slot = [guard page, if guarded][usable stack ........][top reserve]
 *
 * The header (struct weft_stack_slab and its stack descriptors, whole
 * pages) shares the slab's memory: no malloc per slab.
 *
 * Regions: slabs are carved from a pool's regions, reservations that
 * double in size (2, 4, ... 256 slabs, at most 1 GiB unless one slab is
 * bigger), all unmapped at pool_fini. A mmap per slab took the address
 * space lock for writing thousands of times, and each time the other
 * workers' page faults and pre-faulting (which hold it for reading)
 * queued behind it.
 *
 * Each stack's canary word sits just below its slot: in the top reserve
 * of the slot beneath it (or in the pad page for slot 0). A stack that
 * overflows writes that word first, and the top of the slot beneath is a
 * page its own fiber already uses, so the canary costs no extra page per
 * stack (a million fibers need one resident page each, not two).
 *
 * Guard pages: where the kernel has guard regions (Linux 6.13+,
 * madvise(MADV_GUARD_INSTALL)), every stack gets one, marked in the page
 * tables without splitting the mapping. Elsewhere a guard is an mprotect
 * that splits the mapping; Linux allows vm.max_map_count (65530 by
 * default) mappings per process, so those are made only while a
 * process-wide budget (a quarter of max_map_count) lasts. Canaries are
 * always on, and checked at every switch-out (sched.c).
 *
 * Making a slab: its guards are installed, and the page each stack starts
 * on is faulted in, with one process_madvise() call each for all its
 * slots (Linux 6.15+; elsewhere one madvise per guard, no pre-faulting).
 * A fiber's first page faulted in by a trap cost ~1 us here, in a batch
 * ~0.6 us; a slab is made outside the pool lock.
 *
 * Returning memory: a finished fiber's stack goes to its worker's cache
 * (warm, reused first); beyond the cache's high-water mark half of it
 * goes to the runtime's pool. When every stack of a slab is back in the
 * pool, the whole slab's pages go back to the OS with one madvise: one
 * TLB shootdown per slab, not one per stack (per-stack madvise was the
 * largest cost of a million short-lived sleepers). The slab is queued
 * and trimmed by a worker about to park, outside the pool lock: not in
 * the way of a fiber's exit or of other workers' refills, and not at
 * all if a refill takes one of its stacks first. A runtime that never
 * goes idle keeps such slabs, and reuses them.
 *
 * Retention: a runtime's slabs are trimmed only once they have been all
 * free for WEFT_STACK_RETAIN_NS (parked workers wake for it), as an
 * allocator lets freed memory decay rather than return it at once. A
 * burst that follows another within that time finds its stacks'
 * pages still there: populating a fresh page costs 1.2-1.8 us of kernel
 * time here, and a million of them were half the CPU time of a million
 * sleepers started on an idle runtime that had just run as many.
 *
 * Invariants:
 *   S1  a stack is in exactly one place: a worker cache, its pool's free
 *       list, or in use by one fiber.
 *   S2  the canary of a stack in use holds weft__stack_canary_value().
 *   S3  slab->nfree counts its stacks in the pool's free list (pool lock);
 *       a slab is trimmed (its pages returned, canaries disarmed) only
 *       while nfree == nslots. While a trim is under way (slab->trimming)
 *       a refill sets the slab's stacks aside, still counted free, and
 *       the trimmer puts them back on the free list when done.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_STACK_MIN ((size_t)16 * 1024)
#define WEFT_STACK_MAX ((size_t)1 << 30)
#define WEFT_STACK_DEFAULT ((size_t)256 * 1024)
/* Power-of-two size classes from WEFT_STACK_MIN to WEFT_STACK_MAX. */
#define WEFT_STACK_CLASSES 17
/* Bytes kept free at the top of every slot for the next slot's canary. */
#define WEFT_STACK_TOP_RESERVE 64
/* How long a runtime keeps an all-free slab's pages (see "Retention"). */
#define WEFT_STACK_RETAIN_NS ((uint64_t)1000 * 1000 * 1000)

struct weft_stack_slab;
struct weft_stack_region;

/* A stack descriptor. Lives in its slab's header array, never freed
 * before the slab. Fields are immutable after the slab is made, except
 * `next` and `canary_set`, owned by whoever holds the stack (S1). */
struct weft_stack {
    void *lo;               /* usable region [lo, lo + size) */
    size_t size;
    uint64_t *canary;       /* just below the slot (S2) */
    struct weft_stack *next;
    struct weft_stack_slab *slab;
    uint8_t klass;
    bool guarded;
    bool canary_set;
};

/* Per-runtime, per-class pool: slabs and the stacks no worker caches.
 * Touched only when a cache over- or underflows. Protected by lock. */
struct weft_stack_pool {
    pthread_mutex_t lock;
    size_t slot_size;
    struct weft_stack *free;
    size_t nfree;
    struct weft_stack_slab *slabs;
    /* Address space slabs are carved from (see "Regions"). */
    struct weft_stack_region *regions;
    char *reserve;          /* next free byte of the newest region */
    size_t reserve_left;
    /* Slabs all free, waiting for weft__stack_pool_trim_one (S3),
     * oldest first. */
    struct weft_stack_slab *to_trim, *to_trim_tail;
    uint64_t retain_ns;     /* immutable after init; 0 = trim at once */
    _Atomic size_t ntrim;   /* their number: written under lock, read as a hint */
};

/* Per-worker cache, owner worker only. */
struct weft_stack_cache {
    struct weft_stack *head;
    unsigned count;
};

/* Round a requested size to its class; -1 if out of range. */
int weft__stack_class(size_t size);
size_t weft__stack_class_size(int klass);

void weft__stack_pool_init(struct weft_stack_pool *p, int klass);
void weft__stack_pool_fini(struct weft_stack_pool *p);

/* A stack of p's class: from the cache, else a batch from the pool, else
 * a new slab. NULL when out of memory. Owner of c only. */
struct weft_stack *weft__stack_get(struct weft_stack_pool *p,
                                   struct weft_stack_cache *c,
                                   unsigned high_water);
/* Trim one queued slab that has been all free for p->retain_ns by now,
 * if any, outside the pool lock (see above). Returns whether it did;
 * if not, lowers *due to the time the next one will be, if one waits.
 * Any thread. */
bool weft__stack_pool_trim_one(struct weft_stack_pool *p, uint64_t now, uint64_t *due);
/* Give a stack back. Beyond high_water, half the cache goes back to the
 * pool (S3). Owner of c only. */
void weft__stack_put(struct weft_stack_pool *p, struct weft_stack_cache *c,
                     unsigned high_water, struct weft_stack *s);
/* Return every cached stack to the pool (worker exit). */
void weft__stack_cache_drain(struct weft_stack_pool *p, struct weft_stack_cache *c);

/* The value the canary word at `canary` holds: its address mixed in, so
 * that a stack's data copied over a neighbour's does not pass. */
static inline uint64_t weft__canary_value_at(const uint64_t *canary) {
    return 0x5745465443414e59ull ^ (uint64_t)(uintptr_t)canary;
}
static inline uint64_t weft__stack_canary_value(const struct weft_stack *s) {
    return weft__canary_value_at(s->canary);
}
static inline bool weft__stack_canary_ok(const struct weft_stack *s) {
    return *s->canary == weft__stack_canary_value(s);
}

/* Whether a fault at addr with stack pointer sp is an overflow of s:
 * in its guard page, or sp below its usable region. */
bool weft__stack_fault_is_overflow(const struct weft_stack *s, uintptr_t addr,
                                   uintptr_t sp);

/* Slabs of p whose pages went back to the OS (for tests). */
size_t weft__stack_pool_trimmed(struct weft_stack_pool *p);

/* Mappings p made for its slabs (for tests). */
size_t weft__stack_pool_mappings(struct weft_stack_pool *p);

/* Stacks with guard pages this process may still make (for tests). */
long weft__stack_guard_budget(void);

#endif /* WEFT_STACK_H */
