/*
 * lib/woken.h - a worker's woken ring: the batch of fibers it took from
 * the wake queue, run oldest first, which idle workers may steal
 * ("Where a worker looks for work", step 2, in sched.c).
 *
 * A bounded FIFO ring. The owner pushes at the tail; the owner and
 * thieves take from the head, each take a CAS on head (Tokio's local
 * run queue works the same way). The owner pays one uncontended CAS per
 * pop, a few nanoseconds against the few hundred a wake costs; in return
 * a worker held by one long fiber, or blocked in a system call, no
 * longer holds the fibers woken with it.
 *
 * Who may run concurrently with whom (X: never, -: safe):
 *
 *            push  pop   steal
 *   push      X     X     -
 *   pop       X     X     -
 *   steal     -     -     -
 *
 * Invariants:
 *   K1  head <= tail; tail - head <= WEFT_WOKEN_CAP. Both are counters
 *       that never wrap (64 bits), so a CAS on head cannot succeed on a
 *       value that has come round again (no ABA).
 *   K2  tail is written by the owner only, with release, after the
 *       slots it covers; head changes only by CAS.
 *   K3  slots[i & MASK] for i in [head, tail) hold fibers that are in no
 *       other run queue (I5 in deque.h). A taker owns the fibers at
 *       [h, h + k) once its CAS moves head from h to h + k: it read them
 *       before the CAS, and the owner overwrites slot i & MASK (as index
 *       i + CAP) only after seeing head > i, that is after the CAS.
 */
#ifndef WEFT_WOKEN_H
#define WEFT_WOKEN_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct weft_fiber;

#define WEFT_WOKEN_CAP 32 /* power of two */
#define WEFT_WOKEN_MASK (WEFT_WOKEN_CAP - 1)
_Static_assert((WEFT_WOKEN_CAP & WEFT_WOKEN_MASK) == 0, "WEFT_WOKEN_CAP: power of two");

struct weft_woken {
    /* CAS by the owner's pop and by thieves (K2). */
    alignas(WEFT_CACHELINE) _Atomic uint64_t head;
    /* Written by the owner only (K2); its own line, apart from head. */
    alignas(WEFT_CACHELINE) _Atomic uint64_t tail;
    /* Atomic: a thief may read a slot the owner is overwriting after the
     * thief lost its race (its CAS then fails and the value is dropped). */
    _Atomic(struct weft_fiber *) slots[WEFT_WOKEN_CAP];
};

void weft__woken_init(struct weft_woken *r);

/* Any thread. An estimate of the number of fibers (may be stale). */
static inline size_t weft__woken_size(struct weft_woken *r) {
    /* relaxed: a hint for the pick order, victim choice and the park
     * re-check, which orders it with its own fence ("Parking protocol"
     * in sched.c). */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    return t > h ? (size_t)(t - h) : 0;
}

/* Owner only. Room for this many more fibers. */
static inline size_t weft__woken_room(struct weft_woken *r) {
    /* acquire: pairs with the takers' release CAS, so the slots they read
     * are read before we overwrite them (K3). */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    /* relaxed: our own store. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return WEFT_WOKEN_CAP - (size_t)(t - h);
}

/* Owner only. Append fibers[0..n), n <= weft__woken_room(). */
static inline void weft__woken_push(struct weft_woken *r, struct weft_fiber *const *fibers,
                                    size_t n) {
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&r->slots[(t + i) & WEFT_WOKEN_MASK], fibers[i],
                              memory_order_relaxed);
    /* release: the slots before the tail that covers them (K2). */
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
}

/* Owner only. The oldest fiber, or NULL when empty; *after is set to the
 * one behind it, or NULL: a hint for prefetching only, since a thief may
 * take that fiber at any moment. */
static inline struct weft_fiber *weft__woken_pop(struct weft_woken *r,
                                                 struct weft_fiber **after) {
    /* relaxed: our own store. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (h != t) {
        struct weft_fiber *f =
            atomic_load_explicit(&r->slots[h & WEFT_WOKEN_MASK], memory_order_relaxed);
        /* relaxed: we stored the slot ourselves, and nobody overwrites it
         * but us; the CAS only arbitrates with thieves (K3). A failure
         * reloads head. */
        if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + 1, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *after = h + 1 != t ? atomic_load_explicit(&r->slots[(h + 1) & WEFT_WOKEN_MASK],
                                                       memory_order_relaxed)
                                : NULL;
            return f;
        }
    }
    *after = NULL;
    return NULL;
}

/* Any thread but the owner. Take the older half (rounded up) of r's
 * fibers, at most max, into out[], oldest first; returns how many (0:
 * empty, or lost every race). */
size_t weft__woken_steal(struct weft_woken *r, struct weft_fiber **out, size_t max);

#endif /* WEFT_WOKEN_H */
