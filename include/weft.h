/*
 * weft.h - a multithreaded, work-stealing M:N runtime for stackful
 * coroutines (fibers).
 *
 * M fibers run on N worker threads. Each worker owns a deque of runnable
 * fibers and steals from the others when idle; one timer thread owns every
 * deadline. The model is Python asyncio's (create_task, await, gather,
 * sleep), but parallel: fibers run on every core at once.
 *
 * Conventions
 *   - Every call returns 0 or a negative errno value (-EINVAL, -ENOMEM,
 *     -ETIMEDOUT, -ECANCELED, -EDEADLK, ...); weft_strerror() names them.
 *     On error a call has no side effects and out-parameters are NULL/0.
 *   - Time is uint64_t nanoseconds on CLOCK_MONOTONIC.
 *   - weft's own calls leave errno unchanged; each fiber keeps its own
 *     errno across switches and migrations between worker threads.
 *     One caveat, common to every M:N runtime on glibc: glibc declares
 *     __errno_location() `const`, so a compiler may keep errno's address
 *     in a register across a call that migrates the fiber, and then read
 *     the previous worker thread's errno. Read errno after such a call
 *     (join, sleep, yield, any wait) in a separate non-inlined function,
 *     or not across it.
 *   - "Fiber context" means code running inside a fiber spawned by weft;
 *     "plain thread" means any other thread.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

#if defined(__GNUC__)
#define WEFT_EXPORT __attribute__((visibility("default")))
#else
#define WEFT_EXPORT
#endif

/* ---- Time ---------------------------------------------------------------- */

#define WEFT_USEC ((uint64_t)1000)
#define WEFT_MSEC ((uint64_t)1000000)
#define WEFT_SEC ((uint64_t)1000000000)
#define WEFT_FOREVER UINT64_MAX

/* CLOCK_MONOTONIC in nanoseconds. Context: any thread. */
WEFT_EXPORT uint64_t weft_now(void);

/* ---- Handles ------------------------------------------------------------- */

/* Opaque; created and freed by the library. */
typedef struct weft_runtime weft_runtime;
typedef struct weft_task weft_task;

/* A fiber body. Its return value becomes the task's result. */
typedef void *(*weft_fn)(void *arg);

/* ---- Runtime ------------------------------------------------------------- */

/* Upper bound on weft_config.workers. */
#define WEFT_MAX_WORKERS 1024

/*
 * Runtime configuration. Zero in any field means "the default"; a NULL
 * config means all defaults. Unknown trailing fields must be zero.
 */
typedef struct weft_config {
    /* Worker threads. Default: the number of online CPUs. */
    unsigned workers;
    /* Stack reservation per fiber in bytes (virtual; pages are committed
     * when touched). Rounded up to a power of two. Default 256 KiB;
     * from 16 KiB to 1 GiB, -EINVAL outside. */
    size_t stack_size;
    /* Stacks each worker keeps warm for reuse before returning pages to
     * the OS. Default 64. */
    unsigned stack_cache;
    uint32_t _reserved[7];
} weft_config;

/*
 * weft_runtime_create - start a runtime: its worker threads and its timer.
 *
 * Context:   any thread, including a fiber of another runtime.
 * Ownership: *rt must be freed with weft_runtime_destroy().
 * Returns:   0, or
 *            -EINVAL  rt is NULL, or a config field is out of range;
 *            -ENOMEM  out of memory;
 *            -EAGAIN  a thread could not be created.
 *            On error nothing is left running and *rt is NULL.
 */
WEFT_EXPORT int weft_runtime_create(weft_runtime **rt, const weft_config *cfg);

/*
 * weft_runtime_destroy - wait until every task (joined or detached) has
 * finished, then stop all threads and free everything.
 *
 * Context:   a plain thread (blocks), or a fiber of another runtime (the
 *            fiber suspends, as in a join).
 * Returns:   0, or
 *            -EINVAL   rt is NULL or not a live runtime;
 *            -EDEADLK  called from one of rt's own fibers.
 * Handles of finished tasks that were never consumed are freed too.
 */
WEFT_EXPORT int weft_runtime_destroy(weft_runtime *rt);

/* Number of worker threads of rt, or -EINVAL. Context: any thread. */
WEFT_EXPORT int weft_runtime_workers(const weft_runtime *rt);

/* The runtime of the calling fiber; NULL outside a fiber. */
WEFT_EXPORT weft_runtime *weft_runtime_current(void);

/*
 * weft_run - spawn fn(arg) in rt and wait for it from a plain thread, as
 * asyncio.run does.
 *
 * Context:   a plain thread, or a fiber of another runtime.
 * Returns:   0 (with *result set when result is not NULL), or
 *            -EINVAL   rt or fn is NULL;
 *            -EDEADLK  called from one of rt's own fibers;
 *            -ENOMEM   out of memory.
 */
WEFT_EXPORT int weft_run(weft_runtime *rt, weft_fn fn, void *arg, void **result);

/* ---- Tasks --------------------------------------------------------------- */

/*
 * weft_spawn - run fn(arg) on a new fiber.
 *
 * Context:   any thread. Inside a fiber, rt may be NULL (the current
 *            runtime).
 * Ownership: with task != NULL, *task is a handle that must be consumed
 *            exactly once: weft_join(), weft_gather() or weft_detach().
 *            With task == NULL the fiber is detached. A handle used after
 *            it was consumed is -EINVAL, even when its memory already
 *            serves a newer task (handles carry a generation; 1 in 64
 *            such reuses goes undetected).
 * Returns:   0, or
 *            -EINVAL  fn is NULL, or rt is NULL outside a fiber, or rt is
 *                     being destroyed and the caller is not one of its
 *                     fibers (its own fibers may spawn until the end);
 *            -ENOMEM  out of memory.
 *            On error nothing was spawned and *task is NULL.
 * The fiber gets its stack when it first runs, so a queued task costs only
 * its small control block. No start order is promised.
 */
WEFT_EXPORT int weft_spawn(weft_runtime *rt, weft_fn fn, void *arg,
                           weft_task **task);

/* Per-spawn options for weft_spawn_ex(). Zeroed fields: runtime defaults. */
typedef struct weft_spawn_opts {
    /* Stack reservation for this fiber in bytes; 0: the runtime's. Same
     * range and rounding as weft_config.stack_size. */
    size_t stack_size;
    /* A name for diagnostics (the stack-overflow report names the fiber
     * by it, and by its entry function). Not copied: it must outlive the
     * task. NULL: none. */
    const char *name;
    uint32_t _reserved[6];
} weft_spawn_opts;

/* weft_spawn with options (opts may be NULL). Same contract.
 *
 * Stack overflow is never silent: a guard page below each stack (while
 * the process's mapping budget lasts) and a canary checked at every
 * switch make the process abort with a message on stderr that says
 * "stack overflow" and names the fiber (its name, its entry function). */
WEFT_EXPORT int weft_spawn_ex(weft_runtime *rt, weft_fn fn, void *arg,
                              const weft_spawn_opts *opts, weft_task **task);

/*
 * weft_join - wait for a task to finish and take its result.
 *
 * Context:   any thread. A fiber suspends and frees its worker; a plain
 *            thread blocks.
 * Ownership: consumes the handle when it returns 0 or -ECANCELED.
 * Returns:   0, with *result = the fiber's return value (result may be
 *            NULL), or
 *            -EINVAL     t is NULL or not a live handle (nothing consumed);
 *            -EBUSY      another fiber or thread is already waiting for t
 *                        in join, gather or wait_any: a task has one
 *                        awaiter at a time (nothing consumed);
 *            -EDEADLK    t is the calling fiber (nothing consumed);
 *            -ECANCELED  t was cancelled before it ran (consumed);
 *            -ENOMEM     no stack could be found for t, which never ran
 *                        (consumed).
 * A task that no worker has started yet may be run by the joining fiber
 * itself, on its own stack (as Cilk and oneTBB do): it still runs as its
 * own task (weft_self(), cancellation), and starts at once.
 * The result write happens-before weft_join's return.
 * A cancelled fiber that waits in weft_join forwards the cancellation to t
 * and goes on waiting, so the handle is always consumed.
 */
WEFT_EXPORT int weft_join(weft_task *t, void **result);

/*
 * weft_join_for - weft_join with a relative timeout.
 * Returns: as weft_join, or -ETIMEDOUT, which leaves the handle valid.
 */
WEFT_EXPORT int weft_join_for(weft_task *t, uint64_t timeout_ns, void **result);

/*
 * weft_detach - give up the handle; the task runs on and frees itself when
 * it finishes. Context: any thread.
 * Returns:   0, or
 *            -EINVAL  t is NULL or not a live handle;
 *            -EBUSY   a weft_join, weft_gather or weft_wait_any is waiting
 *                     for the task (it will consume the handle); the
 *                     handle stays valid.
 */
WEFT_EXPORT int weft_detach(weft_task *t);

/*
 * weft_gather - wait for all of ts[0..n) and consume every handle.
 *
 * Context:   any thread.
 * Returns:   0, with results[i] = ts[i]'s result (results may be NULL), or
 *            the lowest index's error (-ECANCELED). Before waiting every
 *            entry is checked, and then nothing is consumed: ts NULL or
 *            n == 0 (-EINVAL), a NULL or dead entry (-EINVAL), the caller
 *            itself (-EDEADLK), an entry another caller is waiting for
 *            (-EBUSY). Once it waits, it consumes all. The gatherer is
 *            woken once, not once per task.
 */
WEFT_EXPORT int weft_gather(weft_task *const *ts, size_t n, void **results);

/*
 * weft_wait_any - wait until one of ts[0..n) has finished (asyncio's
 * FIRST_COMPLETED). Consumes none.
 *
 * Returns:   0 with *index = the lowest index among the finished tasks, or
 *            -EINVAL     ts or index NULL, n == 0, an entry NULL or dead;
 *            -EDEADLK    an entry is the caller;
 *            -EBUSY      another caller is waiting for an entry;
 *            -ETIMEDOUT  none finished within timeout_ns (WEFT_FOREVER:
 *                        no timeout; 0 polls, cancelled or not);
 *            -ECANCELED  the calling fiber was cancelled.
 *            On every error *index is left as it was.
 */
WEFT_EXPORT int weft_wait_any(weft_task *const *ts, size_t n,
                              uint64_t timeout_ns, size_t *index);

/*
 * weft_cancel - ask a task to stop (cooperative, as asyncio's cancel()).
 *
 * A task that never started never runs: it finishes at once and its join
 * returns -ECANCELED. A running fiber's current or next cancellable wait
 * (sleep, wait_any, condition, semaphore, wait group, channel) returns
 * -ECANCELED; a fiber waiting in join or gather forwards the cancel.
 * Returns: 0, or -EINVAL (t NULL or dead), -ESRCH (t already finished).
 * Context: any thread.
 */
WEFT_EXPORT int weft_cancel(weft_task *t);

/* Whether the calling fiber was asked to cancel; false outside a fiber. */
WEFT_EXPORT bool weft_cancelled(void);

/*
 * weft_yield - let other ready fibers run; the caller is runnable again at
 * once. Every ready fiber runs within a bounded number of scheduling
 * rounds, so a yielding loop cannot starve others. Outside a fiber: a
 * sched_yield().
 */
WEFT_EXPORT void weft_yield(void);

/*
 * weft_sleep / weft_sleep_until - suspend the calling fiber for ns, or
 * until the CLOCK_MONOTONIC deadline; a plain thread just sleeps. Never
 * returns early.
 * Returns: 0 once the deadline has passed, or -ECANCELED: the fiber was
 * cancelled before then (at once if the cancel came before the call). A
 * sleep whose deadline has passed by the time it sees the cancel (a
 * deadline already past, a sleep of a few nanoseconds) completes, with 0,
 * as every wait that need not block does.
 */
WEFT_EXPORT int weft_sleep(uint64_t ns);
WEFT_EXPORT int weft_sleep_until(uint64_t deadline);

/* The calling fiber's task, or NULL outside a fiber. The pointer is for
 * identity only: it is not a handle the caller owns. */
WEFT_EXPORT weft_task *weft_self(void);

/* Index of the worker running the calling fiber, in [0, workers); -1
 * outside a fiber. A fiber may migrate between workers at any wait. */
WEFT_EXPORT int weft_worker_index(void);

/* A static description of err (negative errno or 0); never NULL. */
WEFT_EXPORT const char *weft_strerror(int err);

/* ---- Task groups ----------------------------------------------------------
 *
 * Structured concurrency, as asyncio.TaskGroup: tasks spawned into a group
 * are waited for together, the first failure cancels the others, and
 * cancelling the group (or the fiber waiting for it) cancels them all.
 *
 * A group task reports failure by its return value:
 *
 *     int task(void *arg, void **result);
 *
 * returns 0 (success) or a negative errno (failure); *result (NULL on
 * entry) is the task's result either way. The first nonzero return is the
 * group's status: the group is cancelled (every other task's cancellable
 * waits return -ECANCELED, weft_cancelled() is true in it, and a task that
 * had not started yet returns -ECANCELED without its body running), and
 * weft_group_wait returns that status.
 *
 * Nesting: a fiber that is cancelled while it waits in weft_group_wait
 * (for example because it is a task of an outer group that was cancelled)
 * cancels the group it waits for and goes on waiting for its tasks, so a
 * group created inside a task of an outer group is cancelled with it, and
 * its wait still consumes every task.
 *
 * Lifecycle: create -> spawn* -> wait -> (result*) -> destroy. Tasks may
 * spawn more tasks into their own group while it is waited for. Once
 * weft_group_wait has returned, the group is finished: spawn returns
 * -EPIPE, wait returns the same status again at once, and every task's
 * result stays readable (weft_group_result) until weft_group_destroy.
 * A group must be waited for before it is destroyed (-EBUSY otherwise):
 * destroy never blocks and never leaves a task running. A waited-for
 * group may outlive its runtime: its results stay readable and it is
 * destroyed as usual.
 */
typedef struct weft_group weft_group;

/* A group task's body: 0 or a negative errno; *result is its result. */
typedef int (*weft_group_fn)(void *arg, void **result);

/*
 * weft_group_create - a new, empty group whose tasks run in rt.
 *
 * Context:   any thread. Inside a fiber, rt may be NULL (the current
 *            runtime).
 * Ownership: *g must be waited for, then freed with weft_group_destroy().
 * Returns:   0, or -EINVAL (g NULL, or rt NULL outside a fiber, or rt not
 *            a live runtime), -ENOMEM. On error *g is NULL.
 */
WEFT_EXPORT int weft_group_create(weft_group **g, weft_runtime *rt);

/*
 * weft_group_spawn - run fn(arg, &result) as a task of g.
 *
 * Context:   any thread, including the group's own tasks.
 * Returns:   0, with *index (index may be NULL) = the task's index in g:
 *            0, 1, 2... in the order the spawns were admitted; or
 *            -EINVAL  g or fn is NULL, or g is not a live group;
 *            -EPIPE   g has finished (its wait returned);
 *            -ENOMEM  out of memory.
 *            On error nothing was spawned.
 * A task spawned into a group that is already cancelled never runs its
 * body: its status is -ECANCELED.
 */
WEFT_EXPORT int weft_group_spawn(weft_group *g, weft_group_fn fn, void *arg,
                                 size_t *index);

/*
 * weft_group_wait - wait until every task of g has finished.
 *
 * Context:   any thread. A fiber suspends and frees its worker; a plain
 *            thread blocks.
 * Returns:   0 if every task returned 0, else the group's status: the
 *            first failure of a task, or -ECANCELED if the group (or the
 *            waiting fiber) was cancelled first; or
 *            -EINVAL  g is not a live group;
 *            -EDEADLK the caller is one of g's own tasks;
 *            -EBUSY   another fiber or thread is waiting for g.
 * A cancelled fiber that waits here cancels g and goes on waiting: g is
 * always finished when wait returns anything but -EINVAL, -EDEADLK or
 * -EBUSY. Every task's result and status write happens-before wait's
 * return.
 */
WEFT_EXPORT int weft_group_wait(weft_group *g);

/*
 * weft_group_cancel - cancel every task of g, running or not yet started,
 * and those spawned into it later. The group's status becomes -ECANCELED
 * unless a task failed first. Cooperative, as weft_cancel.
 * Context: any thread. Returns 0, or -EINVAL (g not a live group).
 * Cancelling a finished group changes nothing.
 */
WEFT_EXPORT int weft_group_cancel(weft_group *g);

/*
 * weft_group_result - the outcome of g's task number index, once g has
 * finished.
 *
 * Returns:   the task's status (0, its own error, or -ECANCELED when it
 *            never ran), with *result = its result (result may be NULL);
 *            or -EINVAL  g is not a live group, or index >= the number of
 *                        tasks spawned;
 *               -EBUSY   g has not finished (wait has not returned).
 * On -EINVAL and -EBUSY *result is NULL. Context: any thread.
 */
WEFT_EXPORT int weft_group_result(const weft_group *g, size_t index, void **result);

/* The number of tasks spawned into g so far, in *count. 0 or -EINVAL. */
WEFT_EXPORT int weft_group_size(const weft_group *g, size_t *count);

/*
 * weft_group_destroy - free a finished group and the results it keeps.
 * Returns 0, or -EINVAL (not a live group), -EBUSY (not finished: call
 * weft_group_wait first; nothing is freed). Context: any thread.
 */
WEFT_EXPORT int weft_group_destroy(weft_group *g);

/* ---- Parallel loops -------------------------------------------------------
 *
 * Fork-join over an index range [begin, end), split lazily by work
 * stealing: a worker runs its range `grain` indices at a time and splits
 * off the upper half of what is left only when its own run queue is empty
 * and another worker is idle or searching for work (lazy binary
 * splitting, Tzannes et al., PPoPP 2010). A loop on busy workers costs
 * about one check per grain; an idle worker gets half of the biggest
 * piece it can steal, and so does the next, down to `grain`.
 *
 * grain 0 means automatic: (end - begin) / (256 x workers), at least 1 and
 * at most 256. Give a grain when one index is very cheap (a bigger one)
 * or very costly (1).
 *
 * Context: a fiber (the caller's worker joins in; rt may be NULL, meaning
 * the current runtime; rt may also be another runtime, waited for as in
 * a join), or a plain thread (it blocks until the loop is done).
 * Returns: 0; -EINVAL (body NULL, begin > end, rt NULL outside a fiber
 * or not a live runtime); -ENOMEM (a plain thread's loop could not be
 * started; inside the loop, a split that cannot be spawned is simply not
 * made); -ECANCELED when the calling fiber was cancelled: every piece
 * stops at its next grain boundary, and some indices were not visited.
 * begin == end returns 0 at once without calling anything (after the
 * checks of body, begin and end). body calls for disjoint sub-ranges run
 * in parallel; together they cover [begin, end) exactly once (unless
 * cancelled). Every body call happens-before the loop's return.
 */

/* Visits [lo, hi), a non-empty sub-range of the loop's. */
typedef void (*weft_range_fn)(size_t lo, size_t hi, void *ctx);

WEFT_EXPORT int weft_parallel_for(weft_runtime *rt, size_t begin, size_t end,
                                  size_t grain, weft_range_fn body, void *ctx);

/*
 * weft_parallel_reduce - fold [begin, end) into *result with an
 * associative combine, in parallel.
 *
 * Accumulators are acc_size bytes (1 to 64 KiB), copied by value and
 * aligned for any type (max_align_t); each piece of the range starts from
 * a copy of *identity. body folds [lo, hi) into acc (acc = acc op lo op
 * ... op hi-1); combine folds `right` into `left` (left = left op right),
 * where right always covers the indices just above left's. So the result
 * equals the sequential fold for any associative op, commutative or not
 * (floating-point sums differ only by rounding, which depends on where
 * the range was split). identity and result may alias.
 *
 *     static void add(size_t lo, size_t hi, void *acc, void *ctx) {
 *         const double *x = ctx; double *s = acc;
 *         for (size_t i = lo; i < hi; i++) *s += x[i];
 *     }
 *     static void plus(void *l, const void *r, void *ctx) {
 *         *(double *)l += *(const double *)r;
 *     }
 *     double zero = 0, sum;
 *     weft_parallel_reduce(NULL, 0, n, 0, &zero, sizeof zero, add, plus, x, &sum);
 *
 * Returns: as weft_parallel_for, and -EINVAL for identity, combine or
 * result NULL, or acc_size 0 or above 64 KiB. On error *result is left
 * unchanged; begin == end stores a copy of *identity.
 */
typedef void (*weft_reduce_fn)(size_t lo, size_t hi, void *acc, void *ctx);
typedef void (*weft_combine_fn)(void *left, const void *right, void *ctx);

WEFT_EXPORT int weft_parallel_reduce(weft_runtime *rt, size_t begin, size_t end,
                                     size_t grain, const void *identity,
                                     size_t acc_size, weft_reduce_fn body,
                                     weft_combine_fn combine, void *ctx,
                                     void *result);

/* ---- Synchronisation ------------------------------------------------------
 *
 * Usable from fibers and plain threads at once: a fiber that waits frees
 * its worker, a thread that waits blocks. Mutex, condition, semaphore and
 * wait group are value types (embed them; never copy an initialised one);
 * their size is part of the ABI. Every call returns 0 or a negative errno:
 * -EINVAL for NULL or an object never initialised (or already destroyed),
 * -EBUSY from _destroy while someone waits (or the mutex is held).
 * Waiting calls with a `_for` suffix take a relative timeout and return
 * -ETIMEDOUT. Cancellable waits (all but mutex lock) return -ECANCELED in
 * a fiber asked to cancel (weft_cancel), at once if the request came
 * first and the wait would block. A timeout of 0 never blocks: it
 * completes what it can and otherwise returns -ETIMEDOUT, cancelled or
 * not (weft_cond_wait_for(c, m, 0) returns -ETIMEDOUT with m still held).
 * Waiters are served first come, first served. No spurious wake-ups.
 */

typedef struct weft_mutex {
    uint64_t _private[6];
} weft_mutex;

typedef struct weft_cond {
    uint64_t _private[6];
} weft_cond;

typedef struct weft_sem {
    uint64_t _private[6];
} weft_sem;

typedef struct weft_wg {
    uint64_t _private[6];
} weft_wg;

/* Mutex: not recursive; not a cancellation point. A short spin, then the
 * waiter sleeps; a waiter that has waited more than about a millisecond
 * is handed the lock directly (no barging past it), so nobody starves.
 * unlock by anyone but the holder: -EPERM. */
WEFT_EXPORT int weft_mutex_init(weft_mutex *m);
WEFT_EXPORT int weft_mutex_lock(weft_mutex *m);     /* -EDEADLK if held by the caller */
WEFT_EXPORT int weft_mutex_trylock(weft_mutex *m);  /* -EBUSY if held */
WEFT_EXPORT int weft_mutex_unlock(weft_mutex *m);   /* -EPERM if not the holder */
WEFT_EXPORT int weft_mutex_destroy(weft_mutex *m);  /* -EBUSY if held or waited on */

/* Condition: wait atomically releases m (which the caller must hold,
 * else -EPERM) and returns with m held again, whatever it returns. */
WEFT_EXPORT int weft_cond_init(weft_cond *c);
WEFT_EXPORT int weft_cond_wait(weft_cond *c, weft_mutex *m);
WEFT_EXPORT int weft_cond_wait_for(weft_cond *c, weft_mutex *m, uint64_t timeout_ns);
WEFT_EXPORT int weft_cond_signal(weft_cond *c);     /* wakes the oldest waiter */
WEFT_EXPORT int weft_cond_broadcast(weft_cond *c);
WEFT_EXPORT int weft_cond_destroy(weft_cond *c);

/* Counting semaphore. release hands the unit straight to the oldest
 * waiter if there is one. */
WEFT_EXPORT int weft_sem_init(weft_sem *s, unsigned count);
WEFT_EXPORT int weft_sem_acquire(weft_sem *s);
WEFT_EXPORT int weft_sem_acquire_for(weft_sem *s, uint64_t timeout_ns);
WEFT_EXPORT int weft_sem_try_acquire(weft_sem *s); /* -EAGAIN if none */
WEFT_EXPORT int weft_sem_release(weft_sem *s);     /* -EOVERFLOW past UINT32_MAX */
WEFT_EXPORT int weft_sem_destroy(weft_sem *s);

/* Wait group (Go's sync.WaitGroup): add(n) with n < 0 subtracts; a count
 * that would go below zero is refused with -EINVAL and left unchanged.
 * wait returns when the count is zero. */
WEFT_EXPORT int weft_wg_init(weft_wg *wg);
WEFT_EXPORT int weft_wg_add(weft_wg *wg, int n);
WEFT_EXPORT int weft_wg_done(weft_wg *wg);         /* weft_wg_add(wg, -1) */
WEFT_EXPORT int weft_wg_wait(weft_wg *wg);
WEFT_EXPORT int weft_wg_destroy(weft_wg *wg);

/* ---- Channels -------------------------------------------------------------
 *
 * A typed-by-size FIFO between fibers and threads (Go's channels). Values
 * are copied in and out (elem_size bytes). capacity 0 is a rendezvous:
 * send returns once a receiver has taken the value; try_send succeeds only
 * if a receiver is waiting. A send that times out or is cancelled
 * withdraws its value: it is never delivered. close wakes every blocked
 * sender (-EPIPE) and receiver (-EPIPE once drained); send on a closed
 * channel, recv on a closed and drained one, and close of a closed one
 * return -EPIPE. send, recv, their _for variants and select are
 * cancellable.
 */
typedef struct weft_chan weft_chan;

/* -EINVAL: ch NULL, elem_size 0 or above 64 KiB, capacity above 2^24. */
WEFT_EXPORT int weft_chan_create(weft_chan **ch, size_t elem_size, size_t capacity);
WEFT_EXPORT int weft_chan_send(weft_chan *ch, const void *elem);
WEFT_EXPORT int weft_chan_recv(weft_chan *ch, void *elem);
WEFT_EXPORT int weft_chan_send_for(weft_chan *ch, const void *elem, uint64_t timeout_ns);
WEFT_EXPORT int weft_chan_recv_for(weft_chan *ch, void *elem, uint64_t timeout_ns);
WEFT_EXPORT int weft_chan_try_send(weft_chan *ch, const void *elem); /* -EAGAIN */
WEFT_EXPORT int weft_chan_try_recv(weft_chan *ch, void *elem);       /* -EAGAIN */
WEFT_EXPORT int weft_chan_close(weft_chan *ch);
/* Frees the channel (its memory is kept for later channels, so a call
 * on the destroyed handle returns -EINVAL); -EBUSY while someone is
 * blocked on it. */
WEFT_EXPORT int weft_chan_destroy(weft_chan *ch);

/* Select (Go's select): wait on several sends and receives at once and
 * complete exactly one of them.
 *
 *   weft_chan_case cases[] = {
 *       { .chan = jobs, .op = WEFT_CHAN_RECV, .elem = &job },
 *       { .chan = out,  .op = WEFT_CHAN_SEND, .elem = &result },
 *   };
 *   size_t which;
 *   int rc = weft_chan_select(cases, 2, WEFT_FOREVER, &which);
 *
 * A case is ready when its operation could complete at once: a send to a
 * channel with a waiting receiver or buffer room, a receive from one with
 * a value or a waiting sender, either on a closed channel. Among the ready
 * cases one is chosen at random (no case starves); if none is ready the
 * caller waits until one is, the timeout passes or it is cancelled, and
 * the case that completes is the only one that took effect: no other value
 * was sent or received. Returns 0 with *index the completed case; -EPIPE
 * with *index a case whose channel is closed (a send; or a receive on a
 * closed and drained channel); -ETIMEDOUT once timeout_ns has passed (0
 * polls: -ETIMEDOUT when nothing is ready); -ECANCELED (a cancellation
 * point); -ENOMEM. *index is written only with 0 and -EPIPE.
 * -EINVAL: cases or index NULL, n 0 or above WEFT_CHAN_SELECT_MAX, a case
 * with a NULL or destroyed chan, a NULL elem or an unknown op. A channel
 * may appear in several cases. */
typedef enum weft_chan_op {
    WEFT_CHAN_SEND = 1, /* elem points to the value to send */
    WEFT_CHAN_RECV = 2, /* elem points to where the value goes */
} weft_chan_op;

typedef struct weft_chan_case {
    weft_chan *chan;
    weft_chan_op op;
    void *elem;
} weft_chan_case;

#define WEFT_CHAN_SELECT_MAX 4096

WEFT_EXPORT int weft_chan_select(const weft_chan_case *cases, size_t n,
                                 uint64_t timeout_ns, size_t *index);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
