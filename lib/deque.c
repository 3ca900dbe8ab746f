/*
 * lib/deque.c - Chase-Lev deque, after Lê et al. 2013, fig. 1 (the C11
 * version). Each ordering names the access it pairs with.
 */
#include <errno.h>

#include "deque.h"

void weft__deque_init(struct weft_deque *dq) {
    atomic_init(&dq->top, 0);
    atomic_init(&dq->bottom, 0);
    for (int i = 0; i < WEFT_DEQUE_CAP; i++)
        atomic_init(&dq->slots[i], NULL);
}

int weft__deque_push(struct weft_deque *dq, struct weft_fiber *f) {
    /* relaxed: bottom is ours (I4). */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    /* acquire: pairs with the thieves' CAS on top, so a slot a thief has
     * just vacated is not overwritten before its read of the slot. */
    int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
    if (WEFT_UNLIKELY(b - t >= WEFT_DEQUE_CAP))
        return -EAGAIN;
    /* relaxed: published by the release store of bottom below. */
    atomic_store_explicit(&dq->slots[b & WEFT_DEQUE_MASK], f, memory_order_relaxed);
    /* release: pairs with the acquire load of bottom in steal(), making
     * the slot and the fiber it points to visible to the thief. */
    atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
    return 0;
}

struct weft_fiber *weft__deque_pop(struct weft_deque *dq) {
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed) - 1;
    /* Empty at a glance: top only grows (I3), so a stale top that is
     * already >= bottom means empty now; skip the fence. relaxed: see
     * weft__deque_size(). */
    if (atomic_load_explicit(&dq->top, memory_order_relaxed) > b)
        return NULL;
    atomic_store_explicit(&dq->bottom, b, memory_order_relaxed);
    /* Order the bottom store before the top load; pairs with the fence in
     * steal() (store-buffering: one of the two sides sees the other). */
    weft__fence_seq_cst();
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    if (t > b) {
        /* Empty: restore bottom (I1). */
        atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    struct weft_fiber *f =
        atomic_load_explicit(&dq->slots[b & WEFT_DEQUE_MASK], memory_order_relaxed);
    if (t == b) {
        /* The last element: race the thieves for it with a CAS on top. */
        if (!atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            f = NULL;
        atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
    }
    return f;
}

bool weft__deque_take(struct weft_deque *dq, struct weft_fiber *f, int max_depth) {
    /* relaxed: bottom is ours (I4); top is a stale lower bound (I3), used
     * only to bound the search; the fence below decides. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    int64_t i = -1;
    for (int d = 0; d < max_depth && b - 1 - d >= t; d++) {
        if (atomic_load_explicit(&dq->slots[(b - 1 - d) & WEFT_DEQUE_MASK],
                                 memory_order_relaxed) == f) {
            i = b - 1 - d;
            break;
        }
    }
    if (i < 0)
        return false;
    /* Hide [i, b) from the thieves, as pop() hides its one slot: after
     * the fence, a thief that reaches index i sees bottom == i (H1). */
    atomic_store_explicit(&dq->bottom, i, memory_order_relaxed);
    weft__fence_seq_cst();
    t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    if (t >= i) {
        /* t > i: f was stolen. t == i: f is the oldest, and the thieves
         * may still take it: race them with a CAS on top. Either way the
         * slots above it are untouched: restore bottom (I1). */
        bool won = t == i && atomic_compare_exchange_strong_explicit(
                                 &dq->top, &t, t + 1, memory_order_seq_cst,
                                 memory_order_relaxed);
        atomic_store_explicit(&dq->bottom, b, memory_order_relaxed);
        return won;
    }
    /* [i, b) is ours alone: close the gap, newer slots one down. */
    for (int64_t j = i; j < b - 1; j++)
        atomic_store_explicit(&dq->slots[j & WEFT_DEQUE_MASK],
                              atomic_load_explicit(&dq->slots[(j + 1) & WEFT_DEQUE_MASK],
                                                   memory_order_relaxed),
                              memory_order_relaxed);
    /* release: the moved slots, to thieves that acquire bottom (I2). */
    atomic_store_explicit(&dq->bottom, b - 1, memory_order_release);
    return true;
}

struct weft_fiber *weft__deque_steal(struct weft_deque *dq) {
    /* acquire: pairs with the CAS of other thieves, so the slots they
     * vacated are not read as ours. */
    int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
    /* Order the top load before the bottom load; pairs with the fence in
     * pop(). */
    weft__fence_seq_cst();
    /* acquire: pairs with the release store of bottom in push(). */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    /* relaxed: published by the acquire above; used only if the CAS wins. */
    struct weft_fiber *f =
        atomic_load_explicit(&dq->slots[t & WEFT_DEQUE_MASK], memory_order_relaxed);
    /* Claim slot t (I3). On failure the owner's pop() or another thief
     * took it first, and f must not be used. */
    if (!atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return WEFT_DEQUE_ABORT;
    return f;
}
