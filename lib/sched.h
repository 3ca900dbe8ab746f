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
#include "slot.h"
#include "stack.h"
#include "woken.h"

/* What the context that switched away asks the resumed side to finish for
 * it, once it is off its stack ("Publish after switch" in sched.c). */
enum weft_after {
    WEFT_AFTER_NONE,   /* came from the scheduler loop */
    WEFT_AFTER_YIELD,  /* append prev to the yield list */
    WEFT_AFTER_PARK,   /* publish prev as parked (wait.c) */
    WEFT_AFTER_EXIT,   /* prev finished: free its stack, drop its run ref */
};

struct weft_timer_entry;

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
    /* LIFO slot: the fiber just spawned or woken (slot.h). A thief may
     * take it only after seeing the same fiber there a pause apart
     * ("Spinning" in sched.c). */
    alignas(WEFT_CACHELINE) struct weft_slot next;
    /* A batch taken from the wake queue, run oldest first; owner push
     * and pop, any thread steals (woken.h; "Where a worker looks for
     * work", step 2). */
    struct weft_woken woken;
    /* Owner: RUNNING <-> IDLE; wakers: IDLE -> NOTIFIED ("Parking"). */
    alignas(WEFT_CACHELINE) _Atomic uint32_t park_word;
    /* Tasks spawned into / finished by this worker: owner writes (relaxed
     * store / release store), destroy reads ("Shutdown"). */
    _Atomic uint64_t spawned;
    _Atomic uint64_t finished;

    /* -- Owner-only: read and written by this worker's thread alone. -- */
    alignas(WEFT_CACHELINE) struct weft_fiber *current; /* NULL in the loop */
    struct weft_fiber_list yielded;
    /* At least the woken ring's length: pushes add, our pops take one,
     * thieves' steals go unseen until a pop finds the ring empty. */
    size_t woken_bound;
    uint32_t fair_countdown;       /* picks until the next fairness pick */
    uint64_t rng;                  /* victim choice */
    struct weft_fiber *seen_next;  /* a victim's LIFO slot, last round */
    uint64_t seen_next_fills;      /* and its fill count then */
    /* Per victim index: 1 + the head of its woken ring when last seen
     * non-empty, or 0 (steal_woken in sched.c). */
    uint64_t *woken_seen;
    bool spinning;                 /* counted in sched->nspinning */
    /* Handed from the context that switches away to the one resumed. */
    struct weft_fiber *prev;
    enum weft_after after;
    struct weft_context loop_ctx;  /* the thread's own (scheduler) context */
    struct weft_stack_cache stacks[WEFT_STACK_CLASSES];
    struct weft_fiber_cache fibers;
    /* Free timer entries (timer.c owns their layout). */
    struct weft_timer_entry *timer_entries;
    unsigned ntimer_entries;
    void *altstack;                /* SIGSEGV alternate stack */
    /* This thread's errno: its address never changes for the thread, so
     * fibers' errno is saved and restored through it without a call. */
    int *errno_addr;

    /* -- Immutable after weft__sched_start(). -- */
    struct weft_sched *sched;
    uint32_t index;
    pthread_t thread;
};

struct weft_timer;

/* Values of weft_sched.watcher. */
#define WEFT_ROLE_FREE 0u
#define WEFT_ROLE_ASLEEP 1u
#define WEFT_ROLE_OF(index) (((uint32_t)(index) + 1) << 1)

struct weft_sched {
    /* -- Immutable after init. -- */
    unsigned nworkers;
    struct weft_worker *workers;   /* nworkers, cache-line aligned */
    int default_class;             /* stack class for weft_spawn */
    struct weft_timer *timer;      /* set once by runtime.c before start */
    unsigned stack_high_water;

    /* -- Shared. -- */
    struct weft_inject inject;     /* new fibers from outside; spills */
    struct weft_inject woken;      /* fibers woken from outside (step 2) */
    /* Workers searching for work ("Spinning"); RMW by any worker. */
    alignas(WEFT_CACHELINE) _Atomic uint32_t nspinning;
    /* Workers that announced they are out of work ("Parking"). */
    _Atomic uint32_t nidle;
    /* The watcher role ("Held work" in sched.c): WEFT_ROLE_FREE, or
     * WEFT_ROLE_OF(its holder's index), with WEFT_ROLE_ASLEEP set while
     * the holder sleeps until notified. CAS by parking workers. */
    _Atomic uint32_t watcher;
    /* Set once by stop(); workers exit when they see it and find no work. */
    _Atomic uint32_t stopping;
    /* Tasks spawned from outside the workers, and those admitted but then
     * refused (closing, no memory): RMW by those threads ("Shutdown"). */
    _Atomic uint64_t spawned_outside;
    _Atomic uint64_t finished_outside;
    /* Set once by destroy: spawns from outside are refused from then on. */
    _Atomic uint32_t closing;
    /* A waiter woken when no task is left ("Shutdown"). */
    _Atomic(struct weft_waiter *) quiesce_waiter;
    struct weft_stack_pool pools[WEFT_STACK_CLASSES];
    struct weft_fiber_pool fibers; /* every control block (fiber.h) */
    /* The workers' woken_seen rows, a cache line apart or more. */
    uint64_t *woken_seen_rows;
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

/* Before a spawn into s: count it, or refuse it (-EINVAL) once s is
 * closing and the caller is not one of s's workers. Any thread. */
int weft__sched_admit(struct weft_sched *s, struct weft_worker *self);
/* An admitted spawn that did not happen (out of memory). */
void weft__sched_unadmit(struct weft_sched *s, struct weft_worker *self);

/* Queue an admitted NEW fiber of s. Any thread: a worker of s pushes it
 * on its own deque, anyone else on the inject queue. `self` is the
 * caller's weft__sched_worker(), passed to save the call. */
void weft__sched_submit(struct weft_sched *s, struct weft_worker *self,
                        struct weft_fiber *f);

/* Refuse spawns from outside from now on (weft_runtime_destroy). */
void weft__sched_close(struct weft_sched *s);

/* Make f (which a waker has just claimed, wait.c) runnable. Any thread. */
void weft__sched_ready(struct weft_fiber *f);
/* Make the chain first..last (n claimed fibers of s, linked by qnext)
 * runnable, from a thread that is no worker of s (the timer thread): one
 * lock and one notify for the lot. */
void weft__sched_ready_chain(struct weft_sched *s, struct weft_fiber *first,
                             struct weft_fiber *last, size_t n);

/* Fiber context only. Switch out as `after` asks and run something else;
 * returns when the fiber runs again, on the worker it returns. */
struct weft_worker *weft__sched_switch_out(struct weft_worker *w, enum weft_after after);

/* Fiber context only; w is weft__sched_worker(). Let other ready fibers
 * run. */
void weft__sched_yield(struct weft_worker *w);

/* The fiber's finish: publish the result and wake the joiner (wait.c),
 * then switch away for good. Fiber context only. */
_Noreturn void weft__sched_exit(struct weft_worker *w, void *result);

/* Whether every task spawned into s has finished ("Shutdown"). */
bool weft__sched_quiescent(struct weft_sched *s);

/* Owner only. Take f back if it is in this worker's LIFO slot or among
 * the few fibers at the bottom of its deque; false otherwise ("Inline
 * join" in join.c). The others keep their places. */
bool weft__sched_take_back(struct weft_worker *w, struct weft_fiber *f);

/* Stack use of the running fiber, in bytes (for the inline decision). */
size_t weft__sched_stack_left(struct weft_worker *w);

/* Owner only. A fiber taken back from the queue (weft__sched_take_back)
 * has finished, inline or cancelled before it ran: count it. Its run
 * reference passes to the caller. */
void weft__sched_count_finished(struct weft_worker *w);

/* Notify idle workers that work was queued where they can take it. */
void weft__sched_notify(struct weft_sched *s);

#endif /* WEFT_SCHED_H */
