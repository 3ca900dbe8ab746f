/* lib/inject.c - the injection queue (inject.h). */
#include "fiber.h"
#include "inject.h"

void weft__inject_init(struct weft_inject *q) {
    /* Adaptive: a taker that finds the lock held spins a while before it
     * sleeps in the kernel; critical sections are short, and a futex
     * sleep and wake cost microseconds, milliseconds when the CPUs are
     * busy (the timer thread pushes while both workers pop). */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&q->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
}

void weft__inject_fini(struct weft_inject *q) { pthread_mutex_destroy(&q->lock); }

/* Longest chain kept whole: a longer one is cut into chains of this many
 * (the pusher's fibers are still in its cache; the taker's are not), so
 * that a taker of up to this many walks none of them under the lock. */
#define CHAIN_SEGMENT 16u

/* Record first..last (n fibers) as chains of at most CHAIN_SEGMENT (C1). */
static void mark_chains(struct weft_fiber *first, struct weft_fiber *last, size_t n) {
    while (n > CHAIN_SEGMENT) {
        struct weft_fiber *end = first;
        for (unsigned i = 1; i < CHAIN_SEGMENT; i++)
            end = end->qnext;
        first->qchain_last = end;
        first->qchain_len = CHAIN_SEGMENT;
        first = end->qnext;
        n -= CHAIN_SEGMENT;
    }
    first->qchain_last = last;
    first->qchain_len = n;
}

void weft__inject_push_chain(struct weft_inject *q, struct weft_fiber *first,
                             struct weft_fiber *last, size_t n) {
    last->qnext = NULL;
    mark_chains(first, last, n);
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->qnext = first;
    else
        q->head = first;
    q->tail = last;
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);
    /* relaxed: the mutex orders the list; len is only a hint (Q1). */
    atomic_store_explicit(&q->len, len + n, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
}

void weft__inject_push(struct weft_inject *q, struct weft_fiber *f) {
    weft__inject_push_chain(q, f, f, 1);
}

/* Lock held. Unlink the first chain's first k fibers (k < its length):
 * the rest becomes a chain of its own (C1). Walks k fibers. */
static struct weft_fiber *split_head(struct weft_inject *q, size_t k) {
    struct weft_fiber *first = q->head, *cut = first;
    for (size_t i = 1; i < k; i++)
        cut = cut->qnext;
    struct weft_fiber *rest = cut->qnext;
    rest->qchain_last = first->qchain_last;
    rest->qchain_len = first->qchain_len - k;
    q->head = rest;
    return first;
}

size_t weft__inject_pop_batch(struct weft_inject *q, struct weft_fiber **out,
                              size_t max) {
    if (max > WEFT_INJECT_POP_MAX)
        max = WEFT_INJECT_POP_MAX;
    if (weft__inject_len(q) == 0 || max == 0)
        return 0;
    /* The chains taken: walked after unlocking. */
    struct weft_fiber *chain[WEFT_INJECT_POP_MAX];
    size_t chain_len[WEFT_INJECT_POP_MAX];
    size_t nchains = 0, n = 0;
    pthread_mutex_lock(&q->lock);
    while (n < max && q->head) {
        struct weft_fiber *first = q->head;
        size_t k = first->qchain_len;
        if (k > max - n) {
            k = max - n;
            first = split_head(q, k);
        } else {
            q->head = first->qchain_last->qnext;
            if (!q->head)
                q->tail = NULL; /* producers no longer touch this chain */
        }
        chain[nchains] = first;
        chain_len[nchains++] = k;
        n += k;
    }
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);
    /* relaxed: as in push. */
    atomic_store_explicit(&q->len, len - n, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    /* Unlinked: nobody else reaches these fibers now. */
    size_t i = 0;
    for (size_t c = 0; c < nchains; c++) {
        struct weft_fiber *f = chain[c];
        for (size_t j = 0; j < chain_len[c]; j++) {
            struct weft_fiber *next = f->qnext;
            f->qnext = NULL;
            out[i++] = f;
            f = next;
        }
    }
    return n;
}
