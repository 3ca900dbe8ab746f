/*
 * lib/sched.h - workers, run queues, stealing, parking. The design comment
 * is at the top of sched.c.
 */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "context.h"
#include "deque.h"
#include "fiber.h"
#include "inject.h"
#include "stack.h"

/* What the context that switched away asks the resumed side to finish for
 * it, once it is off its stack ("Publish after switch" in sched.c). */
enum weft_after {
    WEFT_AFTER_NONE,   /* came from the scheduler loop */
    WEFT_AFTER_YIELD,  /* append prev to the yield list */
    WEFT_AFTER_PARK,   /* publish prev as parked (wait.c) */
    WEFT_AFTER_EXIT,   /* prev finished: free its stack, drop its run ref */
};

/* Owner-only FIFO of fibers that yielded. */
struct weft_fiber_list {
    struct weft_fiber *head;
    struct weft_fiber *tail;
};

/*
 * A worker: one OS thread running fibers. Fields are grouped by who may
 * touch them; a field's group is its protection.
 */
struct weft_worker {
    /* -- Shared, lock-free: each field says who writes it. -- */
    struct weft_deque deque;       /* owner push/pop; any thread steals */
    /* Owner: RUNNING <-> IDLE; wakers: IDLE -> NOTIFIED ("Parking"). */
    alignas(WEFT_CACHELINE) _Atomic uint32_t park_word;
    /* Tasks spawned into / finished by this worker: owner writes (relaxed
     * store / release store), destroy reads ("Shutdown"). */
    _Atomic uint64_t spawned;
    _Atomic uint64_t finished;

    /* -- Owner-only: read and written by this worker's thread alone. -- */
    alignas(WEFT_CACHELINE) struct weft_fiber *current; /* NULL in the loop */
    struct weft_fiber *next;       /* LIFO slot; never stolen */
    struct weft_fiber_list yielded;
    uint32_t fair_countdown;       /* picks until the next fairness pick */
    uint64_t rng;                  /* victim choice */
    bool spinning;                 /* counted in sched->nspinning */
    /* Handed from the context that switches away to the one resumed. */
    struct weft_fiber *prev;
    enum weft_after after;
    struct weft_context loop_ctx;  /* the thread's own (scheduler) context */
    struct weft_stack_cache stacks[WEFT_STACK_CLASSES];
    struct weft_fiber_cache fibers;
    void *altstack;                /* SIGSEGV alternate stack */

    /* -- Immutable after weft__sched_start(). -- */
    struct weft_sched *sched;
    uint32_t index;
    pthread_t thread;
};

struct weft_timer;

struct weft_sched {
    /* -- Immutable after init. -- */
    unsigned nworkers;
    struct weft_worker *workers;   /* nworkers, cache-line aligned */
    int default_class;             /* stack class for weft_spawn */
    struct weft_timer *timer;      /* set once by runtime.c before start */
    unsigned stack_high_water;

    /* -- Shared. -- */
    struct weft_inject inject;
    /* Workers searching for work ("Spinning"); RMW by any worker. */
    alignas(WEFT_CACHELINE) _Atomic uint32_t nspinning;
    /* Workers that announced they are out of work ("Parking"). */
    _Atomic uint32_t nidle;
    /* Set once by stop(); workers exit when they see it and find no work. */
    _Atomic uint32_t stopping;
    /* Tasks spawned from plain threads; RMW (relaxed) by those threads. */
    _Atomic uint64_t spawned_outside;
    /* A waiter woken when no task is left ("Shutdown"). */
    _Atomic(struct weft_waiter *) quiesce_waiter;
    struct weft_stack_pool pools[WEFT_STACK_CLASSES];
    /* Control blocks freed by plain threads; lock. */
    pthread_mutex_t orphan_lock;
    struct weft_fiber_cache orphans;
};

int weft__sched_init(struct weft_sched *s, unsigned nworkers, int default_class,
                     unsigned stack_high_water);
/* Start the worker threads. -EAGAIN if one could not be created (those
 * started are stopped again). */
int weft__sched_start(struct weft_sched *s);
/* Stop and join the workers. Only once no task is left. */
void weft__sched_stop(struct weft_sched *s);
void weft__sched_fini(struct weft_sched *s);

/* The calling thread's worker, or NULL on a plain thread. A function call,
 * not an inline TLS read: a fiber may resume on another thread, and a
 * compiler may cache a TLS address across a switch. */
struct weft_worker *weft__sched_worker(void);
/* The calling fiber, or NULL. */
struct weft_fiber *weft__sched_current(void);

/* Queue a NEW fiber of s. Any thread: a worker of s puts it in its LIFO
 * slot, anyone else in the inject queue. Counts it as spawned. */
void weft__sched_submit(struct weft_sched *s, struct weft_fiber *f);

/* Make f (which a waker has just claimed, wait.c) runnable. Any thread. */
void weft__sched_ready(struct weft_fiber *f);

/* Fiber context only. Switch out as `after` asks and run something else;
 * returns when the fiber runs again, on the worker it returns. */
struct weft_worker *weft__sched_switch_out(struct weft_worker *w, enum weft_after after);

/* Fiber context only. Let other ready fibers run. */
void weft__sched_yield(void);

/* The fiber's finish: publish the result and wake the joiner (wait.c),
 * then switch away for good. Fiber context only. */
_Noreturn void weft__sched_exit(struct weft_worker *w, void *result);

/* Whether every task spawned into s has finished ("Shutdown"). */
bool weft__sched_quiescent(struct weft_sched *s);

/* Owner only. Take f back if it is in this worker's LIFO slot or at the
 * bottom of its deque and has not started; false otherwise ("Inline
 * join" in join.c). */
bool weft__sched_take_back(struct weft_worker *w, struct weft_fiber *f);

/* Stack use of the running fiber, in bytes (for the inline decision). */
size_t weft__sched_stack_left(struct weft_worker *w);

/* Owner only. A fiber taken back from a queue but not run (cancelled
 * first): count it finished and drop the queue's reference. */
void weft__sched_drop(struct weft_worker *w, struct weft_fiber *f);

/* Owner only. An inlined fiber's body returned on worker w: count it
 * finished, make `parent` current again, drop the run reference. */
void weft__sched_inline_done(struct weft_worker *w, struct weft_fiber *f,
                             struct weft_fiber *parent);

/* Notify idle workers that work was queued where they can take it. */
void weft__sched_notify(struct weft_sched *s);

#endif /* WEFT_SCHED_H */
