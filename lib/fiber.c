/* lib/fiber.c - control block allocation and reference counting. */
#include <stdlib.h>
#include <string.h>

#include "fiber.h"

struct weft_fiber *weft__fiber_new(struct weft_fiber_cache *cache,
                                   struct weft_sched *s, weft_fn fn, void *arg,
                                   int stack_class, bool has_handle) {
    struct weft_fiber *f;
    if (cache && cache->head) {
        f = cache->head;
        cache->head = f->qnext;
        cache->count--;
    } else {
        f = aligned_alloc(WEFT_CACHELINE,
                          (sizeof *f + WEFT_CACHELINE - 1) & ~(size_t)(WEFT_CACHELINE - 1));
        if (!f)
            return NULL;
    }
    f->stack = NULL;
    f->qnext = NULL;
    f->saved_errno = 0;
    f->wait_gen = 0;
    f->magic = WEFT_FIBER_MAGIC;
    f->fn = fn;
    f->arg = arg;
    f->sched = s;
    f->stack_class = (uint8_t)stack_class;
    f->inlined = false;
    /* relaxed: the block is private until published by a run-queue push
     * (release) or by the spawner handing out the handle. */
    atomic_store_explicit(&f->status, WEFT_FIBER_NEW, memory_order_relaxed);
    atomic_store_explicit(&f->wait, 0, memory_order_relaxed);
    atomic_store_explicit(&f->refs, has_handle ? 2u : 1u, memory_order_relaxed);
    atomic_store_explicit(&f->handle_live, has_handle ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&f->cancel, 0, memory_order_relaxed);
    atomic_store_explicit(&f->joiner, WEFT_JOINER_NONE, memory_order_relaxed);
    atomic_store_explicit(&f->fwd_lock, 0, memory_order_relaxed);
    f->forward_to = NULL;
    f->result = NULL;
    f->exit_err = 0;
    return f;
}

void weft__fiber_unref(struct weft_fiber *f, struct weft_fiber_cache *cache) {
    /* acq_rel: the last owner must see every write the other made before
     * its own unref (release), before it recycles the block (acquire). */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    f->magic = WEFT_FIBER_DEAD;
    if (cache && cache->count < WEFT_FIBER_CACHE_MAX) {
        f->qnext = cache->head;
        cache->head = f;
        cache->count++;
        return;
    }
    free(f);
}

void weft__fiber_cache_drain(struct weft_fiber_cache *cache) {
    while (cache->head) {
        struct weft_fiber *f = cache->head;
        cache->head = f->qnext;
        free(f);
    }
    cache->count = 0;
}
