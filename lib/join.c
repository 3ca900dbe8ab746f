/*
 * lib/join.c - the task API: spawn, join, gather, wait_any, cancel,
 * detach, and the calls that ask about the current fiber.
 *
 * Joining
 *   A task's joiner word is NONE, a waiter, or DONE. The joiner CASes its
 *   waiter in (NONE -> waiter); the finishing task exchanges DONE in and
 *   signals whatever waiter it found (weft__task_publish, wait.c). A
 *   joiner that gives up (timeout, wait_any) CASes its waiter back out;
 *   if that fails, the finisher already holds it, and the joiner waits
 *   for its signal before its waiter may go (W1 in wait.h).
 *
 *   gather registers one waiter on every task with pending = n + 1; the
 *   extra count is the gatherer's own, dropped after registration, so the
 *   waiter cannot fire while it is still being registered, and the last
 *   finisher alone wakes the gatherer: one wake-up per gather.
 *
 * Inline join
 *   A fiber that joins a task which no worker has taken yet (it is still
 *   in this worker's LIFO slot or among the newest 16 of its deque, from
 *   where weft__deque_take lifts it with one fence however deep it lies)
 *   runs its body right there, on its own stack, as a plain call: no
 *   stack to find, no switch, no wake-up; and the awaited task starts
 *   first, as in asyncio, whatever the LIFO order would have picked.
 *   While it runs, the task is the current fiber (weft_self,
 *   cancellation and waits are the task's), and it may block and migrate
 *   like any fiber, its context borrowing the joiner's stack (fiber.h
 *   F3). Only done when the joiner has used at most an eighth of the
 *   stack the task would have had, so the task keeps at least 7/8 of its
 *   stack. This is the work-first order of Cilk and of oneTBB's
 *   task_group::wait. Meanwhile the task's joiner word says INLINE, so
 *   anyone else who awaits or detaches it gets -EBUSY, as with any other
 *   awaiter. A joiner already asked to cancel does not run it: it
 *   forwards the cancel, and the task, not started, never runs.
 *
 * Cancellation (DESIGN 2.5)
 *   weft_cancel on a NEW task finishes it at once (status CAS NEW ->
 *   CANCELLED, racing the worker that would start it). On a started task
 *   it sets the sticky flag, forwards to the tasks the fiber joins and to
 *   the task it runs inline (under its fwd_lock, so they are alive: the
 *   joiner consumes them only after clearing forward_to / inline_child
 *   and seeing the lock free, with a full barrier between the two), and
 *   ends its current wait if that is cancellable (wait.c). The sticky
 *   flag also stops forwarding cycles.
 *
 *   A task run inline also inherits its host's flag: cancellation checks
 *   walk inline_host (weft__fiber_cancel_requested). That covers a cancel
 *   that reads inline_child before its store is visible: each of the
 *   task's own cancellable waits checks the flags after a seq_cst CAS
 *   (weft__wait_publish's cancel check; a full barrier, as is the
 *   canceller's exchange), so it sees the host's flag if the canceller
 *   missed the task.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "runtime.h"
#include "wait.h"

static inline struct weft_fiber *fiber_of(weft_task *t) { return weft__task_fiber(t); }

/* A handle the caller may still use: its task's (H1), not yet consumed. */
static bool handle_ok(weft_task *t) {
    return weft__handle_current(t) &&
           atomic_load_explicit(&fiber_of(t)->handle_live, memory_order_relaxed) == 1;
}

/* The caller's control-block cache if it is a worker of s, else NULL. */
static struct weft_fiber_cache *cache_of(struct weft_worker *w, struct weft_sched *s) {
    return w && w->sched == s ? &w->fibers : NULL;
}

static struct weft_fiber_cache *local_cache(struct weft_sched *s) {
    return cache_of(weft__sched_worker(), s);
}

/* ---- Spawn -------------------------------------------------------------- */

int weft__spawn(weft_runtime *rt, weft_fn fn, void *arg, const weft_spawn_opts *opts,
                void (*unrun)(void *arg, int err), weft_task **task) {
    if (task)
        *task = NULL;
    if (!fn)
        return -EINVAL;
    struct weft_worker *w = weft__sched_worker();
    struct weft_sched *s;
    if (rt)
        s = weft__runtime_sched(rt);
    else
        s = w && w->current ? w->sched : NULL;
    if (!s)
        return -EINVAL;
    int klass = s->default_class;
    if (opts) {
        for (size_t i = 0; i < sizeof opts->_reserved / sizeof opts->_reserved[0]; i++)
            if (opts->_reserved[i])
                return -EINVAL;
        if (opts->stack_size) {
            if (opts->stack_size < WEFT_STACK_MIN)
                return -EINVAL;
            klass = weft__stack_class(opts->stack_size);
            if (klass < 0)
                return -EINVAL;
        }
    }
    int rc = weft__sched_admit(s, w);
    if (rc)
        return rc;
    struct weft_fiber *f =
        weft__fiber_new(&s->fibers, cache_of(w, s), s, fn, arg, klass, task != NULL);
    if (!f) {
        weft__sched_unadmit(s, w);
        return -ENOMEM;
    }
    if (opts)
        f->name = opts->name;
    f->unrun = unrun;
    if (task)
        *task = weft__fiber_handle(f);
    weft__sched_submit(s, w, f);
    return 0;
}

int weft_spawn_ex(weft_runtime *rt, weft_fn fn, void *arg, const weft_spawn_opts *opts,
                  weft_task **task) {
    return weft__spawn(rt, fn, arg, opts, NULL, task);
}

int weft_spawn(weft_runtime *rt, weft_fn fn, void *arg, weft_task **task) {
    return weft_spawn_ex(rt, fn, arg, NULL, task);
}

/* ---- Consuming handles -------------------------------------------------- */

/* Take the result of a finished task; drop the handle's reference. */
static int take_result(struct weft_fiber *f, void **result) {
    /* acquire: F1, pairs with the release in weft__task_publish. */
    (void)weft__fiber_status(f);
    int err = f->exit_err;
    if (result)
        *result = err ? NULL : f->result;
    atomic_store_explicit(&f->handle_live, 0, memory_order_relaxed);
    return err;
}

/* Consume a finished task's handle, unless another caller did first: two
 * callers consuming one handle at once (misuse: both saw it finished) get
 * one result and one -EINVAL, not a reference dropped twice. relaxed: an
 * exclusion; F1 orders the result. */
static int consume(struct weft_fiber *f, void **result) {
    if (atomic_exchange_explicit(&f->handle_live, 0, memory_order_relaxed) != 1) {
        if (result)
            *result = NULL;
        return -EINVAL;
    }
    int err = take_result(f, result);
    weft__fiber_unref(f, local_cache(f->sched));
    return err;
}

int weft_detach(weft_task *t) {
    struct weft_fiber *f = fiber_of(t);
    if (!weft__handle_current(t))
        return -EINVAL;
    /* A join, gather or wait_any waiting for it (or running it inline)
     * holds the handle and will consume it: detaching under it would
     * consume it twice. So take the awaiter's place (INLINE: others get
     * -EBUSY, and a finish signals nobody) while the handle is claimed;
     * a finished task has no awaiter to exclude. relaxed: exclusion. */
    uintptr_t joiner = WEFT_JOINER_NONE;
    /* acquire: on failure, DONE from publish's release, so an inline
     * joiner's claim of the handle (try_inline) is seen below. */
    bool held = atomic_compare_exchange_strong_explicit(&f->joiner, &joiner, WEFT_JOINER_INLINE,
                                                        memory_order_acquire,
                                                        memory_order_acquire);
    if (!held && joiner != WEFT_JOINER_DONE)
        return -EBUSY;
    uint32_t live = 1;
    bool claimed = atomic_compare_exchange_strong_explicit(&f->handle_live, &live, 0,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed);
    if (held) {
        uintptr_t inl = WEFT_JOINER_INLINE;
        /* release: an inline joiner whose claim (acquire) follows sees
         * the handle dead (try_inline). Fails if the task finished
         * meanwhile (DONE stays). */
        atomic_compare_exchange_strong_explicit(&f->joiner, &inl, WEFT_JOINER_NONE,
                                                memory_order_release, memory_order_relaxed);
    }
    if (!claimed)
        return -EINVAL;
    weft__fiber_unref(f, local_cache(f->sched));
    return 0;
}

static bool finished(struct weft_fiber *f) {
    /* acquire: pairs with the exchange in weft__task_publish (F1). */
    return atomic_load_explicit(&f->joiner, memory_order_acquire) == WEFT_JOINER_DONE;
}

/* ---- Forwarding cancellation -------------------------------------------- */

static int cancel_fiber(struct weft_fiber *f);

static void fwd_lock(struct weft_fiber *f) {
    uint32_t unlocked = 0;
    /* seq_cst: see forward_end(); also acquires the previous holder's
     * release in fwd_unlock. */
    while (!atomic_compare_exchange_weak_explicit(&f->fwd_lock, &unlocked, 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
        unlocked = 0;
        weft__cpu_relax();
    }
}

static void fwd_unlock(struct weft_fiber *f) {
    atomic_store_explicit(&f->fwd_lock, 0, memory_order_release);
}

static bool cancel_requested(struct weft_fiber *f) {
    return f && weft__fiber_cancel_requested(f);
}

/* While self waits for fw's tasks, a cancel of self reaches them. */
static void forward_begin(struct weft_fiber *self, const struct weft_forward *fw) {
    if (!self)
        return;
    /* seq_cst: pairs with the canceller's seq_cst exchange of f->cancel
     * before it reads forward_to: either it sees fw, or we see its flag
     * below (store-buffering). */
    atomic_store_explicit(&self->forward_to, fw, memory_order_seq_cst);
    /* A cancel that came before forward_to was set did not forward. */
    if (cancel_requested(self))
        for (size_t i = 0; i < fw->n; i++)
            if (fw->tasks[i])
                cancel_fiber(fiber_of(fw->tasks[i]));
}

/* Stop forwarding; on return no canceller still reads fw's tasks. */
static void forward_end(struct weft_fiber *self) {
    if (!self)
        return;
    /* seq_cst: pairs with the canceller's seq_cst lock then load: if we
     * read the lock free, its later load of forward_to sees NULL. */
    atomic_store_explicit(&self->forward_to, NULL, memory_order_seq_cst);
    while (atomic_load_explicit(&self->fwd_lock, memory_order_seq_cst))
        weft__cpu_relax();
}

static int cancel_fiber(struct weft_fiber *f) {
    uint32_t status = WEFT_FIBER_NEW;
    if (atomic_compare_exchange_strong_explicit(&f->status, &status, WEFT_FIBER_CANCELLED,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        atomic_store_explicit(&f->cancel, 1, memory_order_seq_cst);
        weft__task_publish(f, NULL, -ECANCELED, WEFT_FIBER_CANCELLED);
        return 0;
    }
    if (status != WEFT_FIBER_STARTED)
        return -ESRCH;
    weft__task_request_cancel(f);
    return 0;
}

void weft__task_request_cancel(struct weft_fiber *f) {
    /* seq_cst: store-buffering with the waiter's own check of the flag
     * (the cancel check in weft__wait_publish). */
    if (atomic_exchange_explicit(&f->cancel, 1, memory_order_seq_cst))
        return; /* sticky: already requested and forwarded */
    fwd_lock(f);
    const struct weft_forward *fw = atomic_load_explicit(&f->forward_to, memory_order_seq_cst);
    if (fw)
        for (size_t i = 0; i < fw->n; i++)
            if (fw->tasks[i])
                cancel_fiber(fiber_of(fw->tasks[i]));
    struct weft_fiber *child = atomic_load_explicit(&f->inline_child, memory_order_seq_cst);
    if (child)
        cancel_fiber(child);
    fwd_unlock(f);
    weft__wait_cancel(f);
}

int weft_cancel(weft_task *t) {
    struct weft_fiber *f = fiber_of(t);
    if (!handle_ok(t))
        return -EINVAL;
    return cancel_fiber(f);
}

bool weft_cancelled(void) {
    return cancel_requested(weft__sched_current());
}

/* ---- Join --------------------------------------------------------------- */

/* "Inline join": run f's body here if it is ours and untouched. Returns
 * true when f has finished here: its run reference is then the caller's,
 * and with claim_handle (a join) its handle too, dead before the finish
 * shows (a gather consumes its handles afterwards, by consume()). False
 * otherwise, also when f turned out cancelled before it ran (finished,
 * its run reference dropped: the regular path consumes the handle). */
static bool try_inline(struct weft_worker *w, struct weft_fiber *self, struct weft_fiber *f,
                       bool claim_handle) {
    /* A cancelled joiner forwards its cancel instead (the task then never
     * runs): the caller's regular path does that. */
    if (f->sched != w->sched || cancel_requested(self) ||
        atomic_load_explicit(&f->status, memory_order_relaxed) != WEFT_FIBER_NEW)
        return false;
    size_t want = weft__stack_class_size(f->stack_class);
    if (weft__sched_stack_left(w) < want - want / 8)
        return false;
    /* Take the awaiter's place first, so that anyone else who joins,
     * gathers, waits for or detaches it meanwhile gets -EBUSY, as with a
     * registered awaiter. acquire: pairs with weft_detach's release of
     * the place, so a detach that ended before is seen below; nothing
     * else is published (weft__task_publish treats INLINE as no one to
     * signal). */
    uintptr_t none = WEFT_JOINER_NONE;
    if (!atomic_compare_exchange_strong_explicit(&f->joiner, &none, WEFT_JOINER_INLINE,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return false; /* awaited by another, or finished: the regular path says */
    /* Detached since the caller's handle check: not ours to run (the
     * regular path then refuses the dead handle). */
    if (atomic_load_explicit(&f->handle_live, memory_order_relaxed) != 1 ||
        !weft__sched_take_back(w, f)) {
        /* Not ours to run after all. It may have finished meanwhile (its
         * publish then found INLINE and set DONE): leave DONE alone. */
        uintptr_t inl = WEFT_JOINER_INLINE;
        atomic_compare_exchange_strong_explicit(&f->joiner, &inl, WEFT_JOINER_NONE,
                                                memory_order_relaxed, memory_order_relaxed);
        return false;
    }
    uint32_t status = WEFT_FIBER_NEW;
    /* acquire: pairs with weft_cancel's CAS (it may have won). */
    if (!atomic_compare_exchange_strong_explicit(&f->status, &status, WEFT_FIBER_STARTED,
                                                 memory_order_acquire,
                                                 memory_order_acquire)) {
        /* Cancelled first: finished, once the canceller has published
         * (F1); it is in the middle of it. Drop the run reference, and
         * let the regular path consume the handle: once DONE shows, a
         * detach may race for it, and consume() settles that. */
        while (!finished(f))
            weft__cpu_relax();
        weft__sched_count_finished(w);
        weft__fiber_unref(f, &w->fibers);
        return false;
    }
    f->stack = self->stack;
    f->canary = self->canary;
    f->inlined = true;
    atomic_store_explicit(&f->inline_host, self, memory_order_relaxed);
    weft__context_borrow(&f->ctx, &self->ctx);
    /* release: a canceller that reads it (under our fwd_lock) sees f set
     * up. No fence needed here: see "Cancellation" (each of the task's
     * own cancellable waits checks our flag after a full barrier, when
     * it parks). */
    atomic_store_explicit(&self->inline_child, f, memory_order_release);
    w->current = f;
    /* The task starts with its own errno, 0, as on a stack of its own,
     * and the joiner's survives it. Through errno_addr, not errno: the
     * body may migrate us, and errno's address may be computed once. */
    int joiner_errno = *w->errno_addr;
    *w->errno_addr = 0;
    void *result = f->fn(f->arg);
    w = weft__sched_worker(); /* the body may have migrated us */
    *w->errno_addr = joiner_errno;
    atomic_store_explicit(&self->inline_child, NULL, memory_order_release);
    /* A join's handle is ours (we hold INLINE): dead before DONE shows,
     * so a detach that sees DONE (acquire) sees it dead too and refuses.
     * relaxed: ordered by publish's release exchange. */
    if (claim_handle)
        atomic_store_explicit(&f->handle_live, 0, memory_order_relaxed);
    /* The exchange in publish is a full barrier between the store above
     * and the load of fwd_lock below: a canceller that still holds the
     * lock may be cancelling f, which must outlive it. */
    weft__task_publish(f, result, 0, WEFT_FIBER_DONE);
    while (atomic_load_explicit(&self->fwd_lock, memory_order_seq_cst))
        weft__cpu_relax();
    f->stack = NULL;
    weft__sched_count_finished(w);
    w->current = self;
    return true;
}

/* Withdraw wt from f's joiner word; false if the finisher already has it
 * (it will signal wt, or has). */
static bool withdraw(struct weft_fiber *f, struct weft_waiter *wt) {
    uintptr_t expect = (uintptr_t)wt;
    return atomic_compare_exchange_strong_explicit(&f->joiner, &expect, WEFT_JOINER_NONE,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire);
}

static int join_until(weft_task *t, uint64_t deadline, void **result) {
    struct weft_fiber *f = fiber_of(t);
    if (result)
        *result = NULL;
    if (!handle_ok(t))
        return -EINVAL;
    struct weft_worker *w = weft__sched_worker();
    struct weft_fiber *self = w ? w->current : NULL;
    if (self == f)
        return -EDEADLK;
    /* Not with a deadline: an inline body cannot be left on time. */
    if (self && deadline == WEFT_FOREVER && try_inline(w, self, f, true)) {
        int err = take_result(f, result);
        /* The body may have moved us to another worker: ask again. */
        w = weft__sched_worker();
        weft__fiber_release_owned(f, &w->fibers); /* run + handle: ours */
        return err;
    }
    if (finished(f))
        return consume(f, result);

    struct weft_waiter wt;
    weft__waiter_init(&wt, self, 1, false);
    uintptr_t expect = WEFT_JOINER_NONE;
    /* release: publishes wt (and the wait word prepared above) to the
     * finisher; acquire on failure: sees DONE's result (F1). */
    if (!atomic_compare_exchange_strong_explicit(&f->joiner, &expect, (uintptr_t)&wt,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        if (self)
            weft__wait_abort(self);
        if (expect == WEFT_JOINER_DONE)
            return consume(f, result);
        return -EBUSY; /* someone else is waiting for this task */
    }
    weft_task *const tasks[1] = {t};
    const struct weft_forward fw = {tasks, 1};
    forward_begin(self, &fw);
    int rc = weft__waiter_block(&wt, deadline);
    if (rc == -ETIMEDOUT && withdraw(f, &wt)) {
        forward_end(self);
        return -ETIMEDOUT;
    }
    weft__waiter_drain(&wt, 0);
    forward_end(self);
    return consume(f, result);
}

static uint64_t deadline_after(uint64_t timeout_ns) {
    if (timeout_ns == WEFT_FOREVER)
        return WEFT_FOREVER;
    uint64_t now = weft_now();
    return timeout_ns > WEFT_FOREVER - 1 - now ? WEFT_FOREVER - 1 : now + timeout_ns;
}

int weft_join(weft_task *t, void **result) {
    return join_until(t, WEFT_FOREVER, result);
}

int weft_join_for(weft_task *t, uint64_t timeout_ns, void **result) {
    return join_until(t, deadline_after(timeout_ns), result);
}

/* ---- Gather and wait_any ------------------------------------------------ */

/* Every entry a live handle that is not the caller. */
static int check_tasks(weft_task *const *ts, size_t n, struct weft_fiber *self) {
    if (!ts || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct weft_fiber *f = fiber_of(ts[i]);
        if (!handle_ok(ts[i]))
            return -EINVAL;
        if (f == self)
            return -EDEADLK;
        /* One awaiter at a time: another join, gather or wait_any. */
        if (atomic_load_explicit(&f->joiner, memory_order_relaxed) > WEFT_JOINER_DONE)
            return -EBUSY;
    }
    return 0;
}

/* Register wt on every unfinished task; returns how many registrations
 * it made. A task listed twice is registered once. With
 * `mine`, bit i says whether entry i was registered. */
static int64_t register_all(weft_task *const *ts, size_t n, struct weft_waiter *wt,
                            bool *saw_done, bool *busy, uint64_t *mine) {
    int64_t registered = 0;
    for (size_t i = 0; i < n; i++) {
        struct weft_fiber *f = fiber_of(ts[i]);
        uintptr_t expect = WEFT_JOINER_NONE;
        /* release: publishes wt; acquire on failure: F1. */
        if (atomic_compare_exchange_strong_explicit(&f->joiner, &expect, (uintptr_t)wt,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            registered++;
            if (mine)
                mine[i / 64] |= (uint64_t)1 << (i % 64);
        } else if (expect == (uintptr_t)wt) {
            /* listed twice: registered at its first entry */
        } else if (expect == WEFT_JOINER_DONE) {
            *saw_done = true;
        } else {
            *busy = true; /* another awaiter came first */
        }
    }
    return registered;
}

/* If ts[i] is listed at an earlier entry too, its result is there: copy
 * it, and say so. */
static bool copy_earlier_result(weft_task *const *ts, size_t i, void **results) {
    for (size_t j = 0; j < i; j++) {
        if (ts[j] == ts[i]) {
            if (results)
                results[i] = results[j];
            return true;
        }
    }
    return false;
}

/* Inline-join ts[from], ts[from + step], ... up to (not including) ts[to],
 * skipping finished ones, until one cannot be; returns its index. */
static size_t inline_run(struct weft_fiber *self, weft_task *const *ts, size_t from,
                         size_t to, int step) {
    size_t i = from;
    for (; i != to; i += (size_t)step) {
        struct weft_fiber *f = fiber_of(ts[i]);
        if (finished(f))
            continue;
        if (!try_inline(weft__sched_worker(), self, f, false))
            break;
        weft__fiber_unref(f, local_cache(self->sched)); /* its run reference */
    }
    return i;
}

/* Another awaiter took one of the tasks between check_tasks and
 * register_all (misuse, and a race): the handle is that awaiter's to
 * consume. Take our registrations back, wait for the signals already on
 * their way (finishers that took wt before we could), and consume
 * nothing: -EBUSY, as check_tasks would have said a moment earlier. */
static int gather_withdraw(weft_task *const *ts, size_t n, struct weft_waiter *wt,
                           int64_t unregistered) {
    int64_t withdrawn = 0;
    for (size_t i = 0; i < n; i++)
        withdrawn += withdraw(fiber_of(ts[i]), wt); /* a second entry fails: NONE */
    int64_t drop = unregistered + withdrawn + 1; /* + 1: ours, as in weft_gather */
    /* acq_rel: as in weft_gather. */
    if (atomic_fetch_sub_explicit(&wt->pending, drop, memory_order_acq_rel) == drop) {
        if (wt->fiber)
            weft__wait_abort(wt->fiber);
    } else {
        weft__waiter_block(wt, WEFT_FOREVER);
    }
    return -EBUSY;
}

int weft_gather(weft_task *const *ts, size_t n, void **results) {
    struct weft_fiber *self = weft__sched_current();
    int rc = check_tasks(ts, n, self);
    if (rc)
        return rc;
    if (self) {
        /* Run inline, in index order (asyncio starts gathered tasks in
         * order), the tasks still near the bottom of our deque; the first
         * that blocks lets the worker start the next. Then the rest,
         * newest first, while they sit at the bottom: each one inlined is
         * one stack and one wake-up saved. */
        size_t i = inline_run(self, ts, 0, n, 1);
        inline_run(self, ts, n - 1, i - 1, -1);
    }
    struct weft_waiter wt;
    weft__waiter_init(&wt, self, 1, false);
    bool saw_done = false, busy = false;
    /* The extra 1 is ours: nobody can end the wait while we register. */
    atomic_store_explicit(&wt.pending, (int64_t)n + 1, memory_order_relaxed);
    int64_t unregistered =
        (int64_t)n - register_all(ts, n, &wt, &saw_done, &busy, NULL);
    if (busy)
        return gather_withdraw(ts, n, &wt, unregistered);
    const struct weft_forward fw = {ts, n};
    forward_begin(self, &fw);
    /* acq_rel: drop our count and the registrations that did not happen;
     * the finishers' decrements are the rest. */
    if (atomic_fetch_sub_explicit(&wt.pending, unregistered + 1, memory_order_acq_rel) ==
        unregistered + 1) {
        if (self)
            weft__wait_abort(self);
    } else {
        weft__waiter_block(&wt, WEFT_FOREVER);
    }
    forward_end(self);
    int first_err = 0;
    for (size_t i = 0; i < n; i++) {
        void **result = results ? &results[i] : NULL;
        int err = consume(fiber_of(ts[i]), result);
        /* Consumed already: listed twice, at an earlier entry (asking
         * register_all instead missed a task that finished before it);
         * or, misuse, by another caller that saw it finished too. */
        if (err == -EINVAL && !copy_earlier_result(ts, i, results))
            err = -EBUSY;
        else if (err == -EINVAL)
            err = 0;
        if (err && !first_err)
            first_err = err;
    }
    return first_err;
}

static bool first_finished(weft_task *const *ts, size_t n, size_t *index) {
    for (size_t i = 0; i < n; i++) {
        if (finished(fiber_of(ts[i]))) {
            *index = i;
            return true;
        }
    }
    return false;
}

int weft_wait_any(weft_task *const *ts, size_t n, uint64_t timeout_ns, size_t *index) {
    /* *index is written only with a finished task's index: an error
     * leaves it as it was, as gather leaves its results. */
    if (!index)
        return -EINVAL;
    struct weft_fiber *self = weft__sched_current();
    int rc = check_tasks(ts, n, self);
    if (rc)
        return rc;
    if (first_finished(ts, n, index))
        return 0;
    /* A timeout of 0 polls: it does not wait, so it is no cancellation
     * point either (as every timed wait). */
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    if (cancel_requested(self))
        return -ECANCELED;
    uint64_t small[4] = {0};
    uint64_t *mine = n <= 256 ? small : calloc((n + 63) / 64, sizeof *mine);
    if (!mine)
        return -ENOMEM;
    uint64_t deadline = deadline_after(timeout_ns);
    struct weft_waiter wt;
    weft__waiter_init(&wt, self, 1, true);
    bool saw_done = false, busy = false;
    /* 2: the first finisher's count, plus ours while we register. */
    atomic_store_explicit(&wt.pending, 2, memory_order_relaxed);
    register_all(ts, n, &wt, &saw_done, &busy, mine);
    if (atomic_fetch_sub_explicit(&wt.pending, 1, memory_order_acq_rel) == 1 || saw_done ||
        busy) {
        if (self)
            weft__wait_abort(self);
        rc = busy ? -EBUSY : 0;
    } else {
        rc = weft__waiter_block(&wt, deadline);
    }
    /* Withdraw from every task we registered on; each failed withdrawal
     * is a finisher that holds wt and decrements pending once. */
    int64_t taken = 0;
    for (size_t i = 0; i < n; i++)
        if ((mine[i / 64] >> (i % 64) & 1) && !withdraw(fiber_of(ts[i]), &wt))
            taken++;
    weft__waiter_drain(&wt, 1 - taken);
    if (mine != small)
        free(mine);
    if (first_finished(ts, n, index))
        return 0;
    return rc ? rc : -ETIMEDOUT;
}

/* ---- The current fiber -------------------------------------------------- */

weft_task *weft_self(void) {
    struct weft_fiber *f = weft__sched_current();
    return f ? weft__fiber_handle(f) : NULL;
}

int weft_worker_index(void) {
    struct weft_worker *w = weft__sched_worker();
    return w && w->current ? (int)w->index : -1;
}

int weft_run(weft_runtime *rt, weft_fn fn, void *arg, void **result) {
    if (result)
        *result = NULL;
    struct weft_sched *s = weft__runtime_sched(rt);
    if (!s || !fn)
        return -EINVAL;
    struct weft_worker *w = weft__sched_worker();
    if (w && w->sched == s)
        return -EDEADLK;
    weft_task *t;
    int rc = weft_spawn(rt, fn, arg, &t);
    if (rc)
        return rc;
    return weft_join(t, result);
}
