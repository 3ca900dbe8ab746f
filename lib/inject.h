/*
 * lib/inject.h - the injection queue: how fibers made runnable off the
 * workers (timer thread, plain threads) and the overflow of full deques
 * reach the workers. FIFO, many producers, many consumers.
 *
 * A runtime has two: the inject queue proper (new fibers, spills) and
 * the wake queue (fibers woken off the workers; see sched.c).
 *
 * It is a mutex-protected intrusive list plus an atomic length, so an
 * empty queue costs a worker one relaxed load (the common case), and the
 * lock is taken only when there is something to take or give. It is not
 * on the hot path: local spawns and wakes use the worker's own deque.
 *
 * The list is kept as the chains it was pushed in (a long one cut into
 * chains of 16 by its pusher): a taker unlinks a whole chain that fits
 * what it asked for in O(1) and walks it after unlocking. (Walking each fiber under the lock cost a cache miss per
 * fiber while the timer thread and the other worker waited: a sleeper
 * has slept long enough for its control block to go cold.) The lock
 * spins before it sleeps (adaptive): sections are a few loads and
 * stores, and a futex sleep costs milliseconds when the CPUs are busy.
 *
 * Invariants:
 *   Q1  len == the number of fibers linked from head (under lock); the
 *       atomic copy may lag but is never 0 while the list is non-empty
 *       once the pushing thread has released the lock.
 *   Q2  a fiber in the queue is linked through f->qnext only (I5 in
 *       deque.h).
 *   C1  the list is a sequence of chains; the first fiber of each holds
 *       its last fiber and its length in qchain_last and qchain_len
 *       (under lock). Other fibers' qchain fields mean nothing.
 */
#ifndef WEFT_INJECT_H
#define WEFT_INJECT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct weft_fiber;

struct weft_inject {
    pthread_mutex_t lock;
    struct weft_fiber *head; /* lock */
    struct weft_fiber *tail; /* lock */
    /* Written under lock, read without it (Q1). */
    alignas(WEFT_CACHELINE) _Atomic size_t len;
};

void weft__inject_init(struct weft_inject *q);
void weft__inject_fini(struct weft_inject *q);

/* Any thread. Append the chain first..last (n fibers linked by qnext). */
void weft__inject_push_chain(struct weft_inject *q, struct weft_fiber *first,
                             struct weft_fiber *last, size_t n);
void weft__inject_push(struct weft_inject *q, struct weft_fiber *f);

/* Any thread. Take up to max fibers (at most WEFT_INJECT_POP_MAX) from
 * the head into out[], oldest first; returns how many. */
#define WEFT_INJECT_POP_MAX 64
size_t weft__inject_pop_batch(struct weft_inject *q, struct weft_fiber **out,
                              size_t max);

static inline size_t weft__inject_len(struct weft_inject *q) {
    /* relaxed: a hint; a taker confirms under the lock, and the park
     * re-check orders this load with a fence ("Parking protocol"). */
    return atomic_load_explicit(&q->len, memory_order_relaxed);
}

#endif /* WEFT_INJECT_H */
