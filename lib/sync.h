/*
 * lib/sync.h - what the synchronisation primitives (sync.c) and channels
 * (chan.c) share: a small spinlock and a FIFO queue of waiting fibers and
 * threads, each waiting through a weft_waiter (wait.h).
 *
 * Every primitive keeps its state and its queue under its own spinlock;
 * critical sections are a few loads and stores, never a switch. A waiter
 * is queued under the lock, then waits with the lock released; whoever
 * takes it off the queue (under the lock) sets its result, then signals
 * it after unlocking. A waiter whose wait ends without a signal (timeout,
 * cancel) takes the lock again and removes itself if still queued; if not,
 * somebody popped it and will signal it: it waits for that (W1 in wait.h).
 *
 * Invariants:
 *   Q1  a node is on at most one queue, and `queued` says so (lock held).
 *   Q2  a node's result and data are written by the one who dequeued it,
 *       before the signal; the waiter reads them after the wait ended.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wait.h"

/* ---- The objects' internal lock ---------------------------------------- */

/* A short spin, then a futex sleep. Plain threads share these objects
 * with fibers, and a thread may be preempted while it holds one: pure
 * spinning with sched_yield livelocked a 2-CPU machine with more threads
 * than CPUs. A holder never switches fibers, so a fiber that sleeps here
 * sleeps only for a few instructions of somebody else's critical section.
 *
 * Unlock is a plain release store, not a locked exchange (it runs twice
 * per channel hand-off): lockers that gave up spinning count themselves
 * in `sleepers`, and unlock wakes one if it sees them. Without a fence
 * between its store and that load, unlock may miss a locker announcing
 * itself at that very moment; that locker's futex sleep is therefore a
 * nap (SPIN_LOCK_NAP_NS, sync.c) after which it looks again, so a missed
 * wake costs at most one nap, never a hang.
 *
 * Invariants:
 *   L1  held is 0 or 1 and only its holder stores 0.
 *   L2  sleepers counts lockers between their announcement and their
 *       exit from the slow path.
 */
struct weft_spinlock {
    _Atomic uint32_t held;
    _Atomic uint32_t sleepers;
};

void weft__spin_lock(struct weft_spinlock *l);
void weft__spin_unlock_contended(struct weft_spinlock *l);

static inline void weft__spin_unlock(struct weft_spinlock *l) {
    /* release: pairs with the acquire in weft__spin_lock. */
    atomic_store_explicit(&l->held, 0, memory_order_release);
    /* relaxed: a hint; a locker it misses naps and retries (see above). */
    if (atomic_load_explicit(&l->sleepers, memory_order_relaxed))
        weft__spin_unlock_contended(l);
}

/* ---- The mutex's state word (sync.c, "Mutex") --------------------------- */

#define WEFT_MUTEX_LOCKED 1u
#define WEFT_MUTEX_WOKEN 2u    /* a waiter is awake: unlock wakes no other */
#define WEFT_MUTEX_STARVING 4u /* hand-off mode */
#define WEFT_MUTEX_WAITER 8u   /* one queued waiter; the count is above */

/* The word's current value (relaxed), for white-box tests; 0 for a
 * handle that is no initialised mutex. */
uint32_t weft__mutex_state(weft_mutex *m);

/* ---- Wait queue --------------------------------------------------------- */

/* One blocked weft_chan_select (chan.c): the waiter its nodes share, and
 * the claim that lets exactly one of them complete. */
struct weft_select {
    /* Open, then the winning case + 1, or abandoned (timeout, cancel).
     * Written once, by a CAS (chan.c). */
    _Atomic uint32_t claim;
    struct weft_waiter waiter;
};

struct weft_wait_node {
    struct weft_waiter waiter;
    struct weft_wait_node *prev, *next; /* lock */
    bool queued;                        /* lock (Q1) */
    int result;                         /* Q2 */
    void *data;                         /* Q2: a channel's value */
    uint64_t since;                     /* first queued (mutex fairness) */
    /* chan.c: the weft_chan_select this node is one case of (it then
     * waits through the select's waiter, not its own), else NULL. */
    struct weft_select *select;
    size_t case_index;
};

struct weft_wait_queue {
    struct weft_wait_node *head, *tail; /* the owner's lock */
};

/* Prepare a node for the calling fiber `self` (weft__sched_current()) or
 * thread (NULL); cancellable: whether weft_cancel may end the wait. */
static inline void weft__node_init(struct weft_wait_node *n, struct weft_fiber *self,
                                   bool cancellable) {
    weft__waiter_init(&n->waiter, self, 1, cancellable);
    n->waiter.exclusive = true; /* only whoever dequeues n signals it (Q2) */
    n->prev = n->next = NULL;
    n->queued = false;
    n->result = 0;
    n->data = NULL;
    n->since = 0;
    n->select = NULL;
    n->case_index = 0;
}

/* Caller holds the lock. Inline: a channel hand-off pushes or pops on
 * every call. */
static inline void weft__queue_push(struct weft_wait_queue *q, struct weft_wait_node *n) {
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->queued = true;
}

static inline void weft__queue_push_front(struct weft_wait_queue *q, struct weft_wait_node *n) {
    n->prev = NULL;
    n->next = q->head;
    if (q->head)
        q->head->prev = n;
    else
        q->tail = n;
    q->head = n;
    n->queued = true;
}

static inline void weft__queue_remove(struct weft_wait_queue *q, struct weft_wait_node *n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->prev = n->next = NULL;
    n->queued = false;
}

static inline struct weft_wait_node *weft__queue_pop(struct weft_wait_queue *q) {
    struct weft_wait_node *n = q->head;
    if (n)
        weft__queue_remove(q, n);
    return n;
}
static inline bool weft__queue_empty(const struct weft_wait_queue *q) { return !q->head; }

/* Caller holds the lock. Take the whole queue off as a chain linked by
 * next (each node no longer queued). */
struct weft_wait_node *weft__queue_take_all(struct weft_wait_queue *q);

/* Caller holds lock and has pushed n on q. Releases lock and waits until
 * n is signalled (returns 0: n->result is set) or the deadline passes or
 * the fiber is cancelled (returns -ETIMEDOUT / -ECANCELED, n withdrawn).
 * The withdrawal, after a wait that ended without its signal, is
 * weft__node_withdraw's (rc: the wait's answer; returns the call's). */
int weft__node_withdraw(struct weft_spinlock *lock, struct weft_wait_queue *q,
                        struct weft_wait_node *n, int rc);
static inline int weft__node_wait(struct weft_spinlock *lock, struct weft_wait_queue *q,
                                  struct weft_wait_node *n, uint64_t deadline) {
    weft__spin_unlock(lock);
    int rc = weft__waiter_block(&n->waiter, deadline);
    return WEFT_LIKELY(rc == 0) ? 0 : weft__node_withdraw(lock, q, n, rc);
}

/* The two halves of a withdrawal, for a caller with a lock of its own
 * kind (chan.c): under the lock, take n off q if still queued (true if
 * it was); then, unlocked, the call's answer (rc: the wait's). */
static inline bool weft__node_unqueue(struct weft_wait_queue *q, struct weft_wait_node *n) {
    if (!n->queued)
        return false;
    weft__queue_remove(q, n);
    return true;
}
int weft__node_withdrawn(struct weft_wait_node *n, bool unqueued, int rc);

/* Signal a node taken off its queue, after unlocking (Q2): its own
 * waiter, or its select's. */
static inline void weft__node_wake(struct weft_wait_node *n, int result) {
    n->result = result;
    weft__waiter_signal(n->select ? &n->select->waiter : &n->waiter);
}

/* Wake every node of a chain from weft__queue_take_all, after unlocking
 * (a node may vanish once woken). */
void weft__node_wake_chain(struct weft_wait_node *n, int result);

/* A deadline timeout_ns from now, saturating. */
uint64_t weft__deadline_after(uint64_t timeout_ns);

/* Whether self, the calling fiber (weft__sched_current()), was asked to
 * cancel; false for a thread (NULL). */
static inline bool weft__self_cancelled(struct weft_fiber *self) {
    return self && weft__fiber_cancel_requested(self);
}

#endif /* WEFT_SYNC_H */
