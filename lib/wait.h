/*
 * lib/wait.h - how a fiber or a plain thread waits for an event and how
 * another thread ends the wait. Protocol: "Wait protocol" in wait.c.
 */
#ifndef WEFT_WAIT_H
#define WEFT_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fiber.h"

struct weft_worker;

/* Wait states, in the low bits of f->wait; the generation is bits 32..63. */
enum weft_wait_state {
    WEFT_WAIT_RUNNING = 0,  /* not waiting */
    WEFT_WAIT_WAITING = 1,  /* registered, still on its stack */
    WEFT_WAIT_PARKED = 2,   /* switched out; a waker may claim it */
    WEFT_WAIT_NOTIFIED = 3, /* woken while WAITING; the switch-out queues it */
    WEFT_WAIT_RUNNABLE = 4, /* claimed by a waker and queued */
};
#define WEFT_WAIT_STATE_MASK 0x7u
#define WEFT_WAIT_CANCELLABLE 0x8u /* weft_cancel may end this wait */
/* Set by the timer thread's claim: the wait's timer entry is the timer's
 * to free, and the fiber does not touch it again (timer.c). */
#define WEFT_WAIT_BY_TIMER 0x10u

/* What weft__wait_claim() tells a waker. */
enum weft_wake_result {
    WEFT_WAKE_STALE = 0,    /* not this wait (already ended, or newer) */
    WEFT_WAKE_NOTIFIED = 1, /* ended; the fiber queues itself */
    WEFT_WAKE_CLAIMED = 2,  /* ended; the caller must queue it */
};

/* The wait word of generation gen in state/flag bits. */
static inline uint64_t weft__wait_word(uint32_t gen, uint32_t bits) {
    return (uint64_t)gen << 32 | bits;
}

/* Fiber context, the fiber itself. Start a wait: returns its generation,
 * which wakers must name. Inline: every blocking call starts here. */
static inline uint32_t weft__wait_prepare(struct weft_fiber *f, bool cancellable) {
    uint32_t gen = ++f->wait_gen;
    /* relaxed: a waker learns of the wait from its registration, which
     * the waiter publishes (releases) after this store, so the waker's
     * CAS sees it. A canceller needs more (store-buffering with its store
     * of f->cancel): that is the publish CAS's job ("Cancel check" in
     * weft__wait_publish), once per wait that parks, instead of a full
     * barrier here on every wait (a locked exchange that waited for every
     * store before it: 14% of a 100k-sleeper start phase). */
    atomic_store_explicit(&f->wait,
                          weft__wait_word(gen, WEFT_WAIT_WAITING |
                                                   (cancellable ? WEFT_WAIT_CANCELLABLE : 0)),
                          memory_order_relaxed);
    return gen;
}

/* Fiber context. Switch out until the wait is ended. Returns the worker
 * the fiber runs on afterwards. by_timer (may be NULL): whether the
 * timer thread's claim ended the wait (WEFT_WAIT_BY_TIMER). */
struct weft_worker *weft__wait_park(struct weft_worker *w, bool *by_timer);

/* Fiber context. End one's own wait without parking (the event came
 * first). Harmless if a waker also ended it. */
void weft__wait_abort(struct weft_fiber *f);

/* Any thread. Try to end wait `gen` of f. */
enum weft_wake_result weft__wait_claim(struct weft_fiber *f, uint32_t gen);
/* The timer thread's claim: as weft__wait_claim, and a winning claim
 * leaves WEFT_WAIT_BY_TIMER in the word for the fiber to see. */
enum weft_wake_result weft__wait_claim_by_timer(struct weft_fiber *f, uint32_t gen);
/* Any thread. Claim, and queue f if the claim says so. True if this call
 * ended the wait. */
bool weft__wait_wake(struct weft_fiber *f, uint32_t gen);

/* After-switch half of weft__wait_park, run by the resumed context
 * ("Publish after switch" in sched.c). */
void weft__wait_publish(struct weft_fiber *f);

/* Any thread. End f's current wait if it is cancellable. */
void weft__wait_cancel(struct weft_fiber *f);

/*
 * A waiter: one fiber or plain thread waiting for `pending` events (a join
 * waits for 1, a gather for n). Each event calls weft__waiter_signal; the
 * one that brings pending to zero ends the wait.
 *
 * Invariants:
 *   W1  signal reads fiber/gen/parker before its decrement, and touches
 *       nothing of the waiter after it: it wakes the fiber through its
 *       wait word (the fiber outlives the wait) or the thread through its
 *       parker (never freed), so the waiter may vanish once pending is at
 *       its final value.
 *   W2  a parker's seq only grows; a thread sleeps on it only after
 *       reading it and seeing its own pending count still above zero.
 */

/* How a plain thread sleeps: one per thread that ever waited, allocated
 * on first use and recycled (never freed) when the thread exits, so a
 * late signal may bump a parker that moved on (its owner re-checks its
 * own condition: harmless), but never touches freed memory. */
struct weft_parker {
    _Atomic uint32_t seq;
    struct weft_parker *next_free;
};

struct weft_waiter {
    struct weft_fiber *fiber;    /* NULL for a plain thread */
    uint32_t gen;
    struct weft_parker *parker;  /* plain thread: W2 */
    _Atomic int64_t pending;
    /* Exactly one signal can come (set after init by a caller whose
     * event has one sender, e.g. whoever dequeues a wait node): the
     * signal is then a store, not a decrement. */
    bool exclusive;
};

/* The calling plain thread's parker, allocated on its first wait. */
struct weft_parker *weft__self_parker(void);

/* Prepare a waiter for the calling fiber or thread (f: the calling fiber
 * or NULL). For a fiber this starts the wait (weft__wait_prepare). */
static inline void weft__waiter_init(struct weft_waiter *wt, struct weft_fiber *f,
                                     int64_t pending, bool cancellable) {
    wt->fiber = f;
    wt->gen = f ? weft__wait_prepare(f, cancellable) : 0;
    wt->parker = f ? NULL : weft__self_parker();
    wt->exclusive = false;
    atomic_init(&wt->pending, pending);
}

/* weft__waiter_block of a fiber's waiter and of a thread's. */
int weft__fiber_block(struct weft_waiter *wt, uint64_t deadline);
int weft__thread_block(struct weft_waiter *wt, uint64_t deadline);

/* Block until the waiter is signalled or the absolute deadline passes
 * (WEFT_FOREVER: no deadline). Returns 0 or -ETIMEDOUT; for a fiber,
 * -ECANCELED when its cancellable wait was cancelled. On -ETIMEDOUT or
 * -ECANCELED the waiter may still be signalled later: the caller must
 * withdraw it from whatever holds it first. */
static inline int weft__waiter_block(struct weft_waiter *wt, uint64_t deadline) {
    return wt->fiber ? weft__fiber_block(wt, deadline) : weft__thread_block(wt, deadline);
}

/* Wake a thread sleeping on pk (W2). */
void weft__parker_wake(struct weft_parker *pk);

/* Any thread. One event for the waiter (W1). Inline: a channel hand-off
 * or an unlock signals once per call. */
static inline void weft__waiter_signal(struct weft_waiter *wt) {
    /* W1: read all we need before the decrement. */
    struct weft_fiber *f = wt->fiber;
    uint32_t gen = wt->gen;
    struct weft_parker *pk = wt->parker;
    if (wt->exclusive) {
        /* release: the event's data to the waiter. The only signaller, so
         * a store does what the decrement would, without a locked op. */
        atomic_store_explicit(&wt->pending, 0, memory_order_release);
    } else if (atomic_fetch_sub_explicit(&wt->pending, 1, memory_order_acq_rel) != 1) {
        /* acq_rel: release the event's data to the waiter; acquire so
         * that the last signaller sees every other signaller's data. */
        return;
    }
    if (f)
        weft__wait_wake(f, gen);
    else
        weft__parker_wake(pk);
}

/* After a wait that ended without its event (timeout, cancel) and whose
 * withdrawal failed: the event's sender holds wt and will signal it. Wait
 * until pending is at most target, so wt may then go out of scope (W1).
 * A short window: yields (fiber) or sched_yield (thread) meanwhile. */
void weft__waiter_drain(struct weft_waiter *wt, int64_t target);

/* The task's finish, by whoever ends it: publish result and err (F1),
 * then signal the joiner, if any. Any thread. */
void weft__task_publish(struct weft_fiber *f, void *result, int err,
                        uint32_t status);

/* Ask f to cancel without finishing it if it has not started: set its
 * sticky flag, forward to the tasks it waits for, end its cancellable
 * wait. A task that starts later sees the flag (weft_cancelled()) and its
 * first cancellable wait returns -ECANCELED; unlike weft_cancel, its body
 * still runs, so code that must run at the start of every task (the group
 * trampoline, group.c) does. No-op on a finished task. Any thread; the
 * caller keeps f alive (holds its handle). Defined in join.c. */
void weft__task_request_cancel(struct weft_fiber *f);

/* weft_spawn_ex, plus unrun: called with arg, by a worker, if the task
 * finishes without its body ever running (no stack could be had). */
int weft__spawn(weft_runtime *rt, weft_fn fn, void *arg, const weft_spawn_opts *opts,
                void (*unrun)(void *arg, int err), weft_task **task);

#endif /* WEFT_WAIT_H */
