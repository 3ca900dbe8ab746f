/* lib/woken.c - a worker's woken ring (woken.h). */
#include "woken.h"

void weft__woken_init(struct weft_woken *r) {
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    for (size_t i = 0; i < WEFT_WOKEN_CAP; i++)
        atomic_init(&r->slots[i], NULL);
}

/* Races lost in a row before a thief gives up on this victim: each loss
 * means someone else took fibers from it, so it is being served. */
#define STEAL_TRIES 4

size_t weft__woken_steal(struct weft_woken *r, struct weft_fiber **out, size_t max) {
    for (int tries = 0; tries < STEAL_TRIES; tries++) {
        /* acquire, both: pairs with the owner's release of tail, so the
         * slots below it hold what the owner stored (K2); head first, so
         * tail >= head. */
        uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        uint64_t n = t - h;
        if (n == 0)
            return 0;
        if (n > WEFT_WOKEN_CAP)
            continue; /* head moved on meanwhile: a stale view */
        size_t k = (size_t)(n + 1) / 2;
        if (k > max)
            k = max;
        for (size_t i = 0; i < k; i++)
            out[i] = atomic_load_explicit(&r->slots[(h + i) & WEFT_WOKEN_MASK],
                                          memory_order_relaxed);
        /* release: the reads above come before the owner may overwrite
         * those slots (K3; its room check loads head with acquire). */
        if (atomic_compare_exchange_strong_explicit(&r->head, &h, h + k, memory_order_release,
                                                    memory_order_relaxed))
            return k;
    }
    return 0;
}
