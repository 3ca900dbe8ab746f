/*
 * lib/group.c - task groups (weft_group_*): structured concurrency in the
 * manner of asyncio.TaskGroup, built on spawn, cancellation and waiters.
 *
 * Counting
 *   g->pending counts what keeps the group unfinished: one for every
 *   task admitted and not yet finished, one for every spawner between its
 *   admission and the end of its writes, and one "open" reference that
 *   the first weft_group_wait drops. Admission is a CAS that refuses to
 *   raise the count from zero: once it has reached zero the group is
 *   finished for good, and nothing can enter it. Whoever brings it to
 *   zero exchanges DONE into g->waiter and signals the waiter it finds
 *   there; that exchange is its last access to g (see G3).
 *
 *   The task's own count is released by a trampoline (task_main) that
 *   every group task runs, even one cancelled before it started: the
 *   group never uses weft_cancel, which would finish a task that has not
 *   started without running anything, but weft__task_request_cancel
 *   (join.c), which only sets the task's sticky flag, forwards and ends
 *   its wait. A task that starts cancelled returns -ECANCELED at once.
 *
 * Failure and cancellation
 *   g->status is CASed from 0 once: by the first task that returns
 *   nonzero, or by a cancel (-ECANCELED). Whoever sets it cancels every
 *   task (cancel_all). Spawns race with cancel_all by store-buffering: a
 *   spawner stores its task's handle, then reads g->cancelled; cancel_all
 *   stores g->cancelled, then reads the handles (all seq_cst), so either
 *   it cancels the new task or the spawner does.
 *
 * Nesting
 *   A fiber waits in weft_group_wait with a cancellable wait. Cancelling
 *   it (an outer group cancelling its task, a joiner forwarding a cancel)
 *   ends that wait: the fiber withdraws its waiter, cancels the group it
 *   waits for, and waits again, not cancellable this time. So cancellation
 *   flows down a tree of groups through the fibers that wait for them,
 *   with no list of child groups to keep and no lock.
 *
 * Records
 *   Task records live in segments of 64, 128, 256... records, allocated
 *   on demand and CASed into place, so an index never moves and a result
 *   stays at its address until weft_group_destroy. Spawns reserve their
 *   index with one fetch_add: no lock anywhere.
 *
 * Task handles stay with the group (weft_cancel on a finished task with a
 * live handle is safe) until weft_group_destroy detaches them.
 */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "recycle.h"
#include "runtime.h"
#include "wait.h"

#define GROUP_MAGIC 0x67726f7570ull /* "group" */
/* Records in segment 0; segment k holds SEG0 << k. */
#define SEG0_LOG 6
#define SEG0 ((size_t)1 << SEG0_LOG)
#define SEGMENTS (64 - SEG0_LOG)

/* g->waiter besides a struct weft_waiter pointer. */
#define NO_WAITER ((uintptr_t)0)
#define GROUP_DONE ((uintptr_t)1)

/*
 * One task of a group.
 *   R1  fn, arg, group are written before the task is spawned (the run
 *       queue publishes them to the worker that runs it).
 *   R2  result and status are written once, by the task's trampoline (or
 *       by a spawn that failed), before it releases its count; read only
 *       after the group finished (G2).
 */
struct group_rec {
    weft_group_fn fn;
    void *arg;
    struct weft_group *group;
    /* The task's handle; NULL until its spawner stores it (seq_cst: see
     * "Failure and cancellation"). */
    _Atomic(weft_task *) task;
    void *result;
    int status;
};

/*
 * Invariants:
 *   G1  pending == admitted unfinished tasks + spawners in flight
 *       + (open ? 1 : 0); once it is 0 it never changes again.
 *   G2  waiter == GROUP_DONE iff pending reached 0: every record is then
 *       final, and the exchange that set DONE released all of them.
 *   G3  after its exchange of DONE, a finisher touches only the waiter
 *       it took out (W1 in wait.h): the group may be freed by then.
 *   G4  status goes from 0 to nonzero once, and cancel_all runs after.
 */
struct weft_group {
    /* -- Immutable after create (magic cleared by destroy). -- */
    /* Atomic: a misuse check, as the runtime's magic. Aligned for the
     * handle's tag (common.h). */
    alignas(WEFT_CACHELINE) _Atomic uint64_t magic;
    /* Groups this memory has held (recycle.h): the handle's tag. Kept
     * across reuse; atomic for the same reason as magic. */
    _Atomic uint32_t incarnation;
    weft_runtime *rt;
    uint64_t rt_incarnation;         /* rt's, at create */

    /* -- Shared. -- */
    _Atomic int64_t pending;         /* G1: CAS up, fetch_sub down */
    _Atomic uint32_t open;           /* exchanged to 0 by the first wait */
    _Atomic size_t count;            /* records reserved: fetch_add */
    _Atomic int status;              /* G4 */
    _Atomic uint32_t cancelled;      /* set once, by cancel_all */
    _Atomic uintptr_t waiter;        /* NO_WAITER, a waiter, GROUP_DONE */
    /* CAS from NULL once each, freed by destroy. */
    _Atomic(struct group_rec *) segs[SEGMENTS];
    struct weft_group *next_free; /* while destroyed (recycle.h) */
};

static_assert(alignof(struct weft_group) >= WEFT_CACHELINE, "a tagged handle needs the bits");

/* Destroyed groups are kept for reuse (recycle.h). */
static struct weft_recycler group_pool = WEFT_RECYCLER_INIT(struct weft_group, next_free);

/* The group, if the handle names a live one; NULL if it is NULL,
 * destroyed, or names an earlier group of the same memory. */
static struct weft_group *group_ok(const weft_group *h) {
    struct weft_group *g = weft__handle_object(h);
    return g && WEFT_HANDLE_NAMES_LIVE(h, g, GROUP_MAGIC) ? g : NULL;
}

static bool finished(struct weft_group *g) {
    /* acquire: pairs with the exchange of DONE in release() (G2). */
    return atomic_load_explicit(&g->waiter, memory_order_acquire) == GROUP_DONE;
}

/* ---- Records ------------------------------------------------------------ */

/* The record of index idx; allocates its segment when `alloc` (NULL when
 * out of memory), else NULL if the segment does not exist (yet). */
static struct group_rec *rec_at(struct weft_group *g, size_t idx, bool alloc) {
    size_t v = idx + SEG0;
    int k = (63 - __builtin_clzll((unsigned long long)v)) - SEG0_LOG;
    size_t off = v - (SEG0 << k);
    /* acquire: pairs with the CAS below (the zeroed records). */
    struct group_rec *seg = atomic_load_explicit(&g->segs[k], memory_order_acquire);
    if (!seg && alloc) {
        /* calloc: an all-zero _Atomic pointer is NULL on every target. */
        struct group_rec *fresh = calloc(SEG0 << k, sizeof *fresh);
        if (!fresh)
            return NULL;
        /* acq_rel: release our zeroed segment; acquire a rival's. */
        if (atomic_compare_exchange_strong_explicit(&g->segs[k], &seg, fresh,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            seg = fresh;
        } else {
            free(fresh);
        }
    }
    return seg ? &seg[off] : NULL;
}

/* ---- Counting ----------------------------------------------------------- */

/* Raise pending by n unless the group has finished (G1). */
static bool admit(struct weft_group *g, int64_t n) {
    /* relaxed: only the count; what the admitted party writes is
     * released by its own release() (a read-modify-write chain). */
    int64_t cur = atomic_load_explicit(&g->pending, memory_order_relaxed);
    do {
        if (cur == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&g->pending, &cur, cur + n,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

/* Drop n counts; the one that reaches zero finishes the group (G2, G3). */
static void release(struct weft_group *g, int64_t n) {
    /* acq_rel: release this party's writes (a result, a record); the
     * last one acquires everybody's before publishing DONE. */
    if (atomic_fetch_sub_explicit(&g->pending, n, memory_order_acq_rel) != n)
        return;
    /* acq_rel: release every record to the waiter; acquire its waiter. */
    uintptr_t w = atomic_exchange_explicit(&g->waiter, GROUP_DONE, memory_order_acq_rel);
    if (w != NO_WAITER)
        weft__waiter_signal((struct weft_waiter *)w);
}

/* ---- Cancellation ------------------------------------------------------- */

static void cancel_all(struct weft_group *g) {
    /* seq_cst, the store and the loads: store-buffering with spawn_task's
     * store of the handle and load of the flag. */
    atomic_store_explicit(&g->cancelled, 1, memory_order_seq_cst);
    size_t n = atomic_load_explicit(&g->count, memory_order_seq_cst);
    for (size_t i = 0; i < n; i++) {
        struct group_rec *r = rec_at(g, i, false);
        weft_task *t = r ? atomic_load_explicit(&r->task, memory_order_seq_cst) : NULL;
        if (t)
            weft__task_request_cancel(weft__task_fiber(t));
    }
}

/* Set the group's status if it is the first word on it, and cancel the
 * rest (G4). */
static void group_fail(struct weft_group *g, int err) {
    int zero = 0;
    /* relaxed: status is read after the group finished (G2 orders it) or
     * for a decision only; cancel_all orders its own accesses. */
    if (atomic_compare_exchange_strong_explicit(&g->status, &zero, err,
                                                memory_order_relaxed,
                                                memory_order_relaxed))
        cancel_all(g);
}

/* ---- Tasks -------------------------------------------------------------- */

/* A task's end, run or not: its record (R2), the group's status, and its
 * count. */
static void task_finish(struct group_rec *r, void *result, int status) {
    struct weft_group *g = r->group;
    r->result = result;
    r->status = status;
    if (status)
        group_fail(g, status);
    release(g, 1);
}

static void *task_main(void *arg) {
    struct group_rec *r = arg;
    void *result = NULL;
    /* relaxed: a shortcut only; a cancel after this load reaches the task
     * through its own flag (weft__task_request_cancel). */
    bool skip = atomic_load_explicit(&r->group->cancelled, memory_order_relaxed) ||
                weft_cancelled();
    int status = skip ? -ECANCELED : r->fn(r->arg, &result);
    task_finish(r, result, status);
    return NULL;
}

int weft_group_create(weft_group **out, weft_runtime *rt) {
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!rt)
        rt = weft_runtime_current();
    if (!weft__runtime_sched(rt))
        return -EINVAL;
    struct weft_group *g = weft__recycler_take(&group_pool, sizeof *g, alignof(struct weft_group),
                                               offsetof(struct weft_group, rt));
    if (!g)
        return -ENOMEM;
    uint32_t inc = atomic_fetch_add_explicit(&g->incarnation, 1, memory_order_relaxed) + 1;
    g->rt = rt;
    g->rt_incarnation = rt->incarnation;
    atomic_init(&g->pending, 1); /* the open reference */
    atomic_init(&g->open, 1);
    atomic_init(&g->count, 0);
    atomic_init(&g->status, 0);
    atomic_init(&g->cancelled, 0);
    atomic_init(&g->waiter, NO_WAITER);
    for (int k = 0; k < SEGMENTS; k++)
        atomic_init(&g->segs[k], NULL);
    /* release: pairs with WEFT_HANDLE_NAMES_LIVE (common.h). */
    atomic_store_explicit(&g->magic, GROUP_MAGIC, memory_order_release);
    *out = weft__handle_tag(g, inc);
    return 0;
}

/* A task whose body never ran (no stack for it): it fails with err. */
static void task_unrun(void *arg, int err) {
    task_finish(arg, NULL, err);
}

/* Spawn the task of record r. The caller holds two counts: the task's
 * and its own. Returns 0 or the spawn's error (the task's count is then
 * dropped here). */
static int spawn_task(struct weft_group *g, struct group_rec *r) {
    weft_task *t = NULL;
    int rc = weft__spawn(g->rt, task_main, r, NULL, task_unrun, &t);
    if (rc) {
        r->status = rc;
        release(g, 1);
        return rc;
    }
    atomic_store_explicit(&r->task, t, memory_order_seq_cst);
    /* seq_cst: see cancel_all. */
    if (atomic_load_explicit(&g->cancelled, memory_order_seq_cst))
        weft__task_request_cancel(weft__task_fiber(t));
    return 0;
}

int weft_group_spawn(weft_group *group, weft_group_fn fn, void *arg, size_t *index) {
    if (index)
        *index = 0;
    struct weft_group *g = group_ok(group);
    if (!g || !fn)
        return -EINVAL;
    /* Two counts: the task's, and ours until our last write to g. */
    if (!admit(g, 2))
        return -EPIPE;
    /* relaxed: an index allocator; the record is published by the spawn
     * (R1) and by release() (R2). */
    size_t idx = atomic_fetch_add_explicit(&g->count, 1, memory_order_relaxed);
    struct group_rec *r = rec_at(g, idx, true);
    int rc;
    if (!r) {
        rc = -ENOMEM; /* the index stays, without a record: see result */
        release(g, 1);
    } else {
        r->fn = fn;
        r->arg = arg;
        r->group = g;
        rc = spawn_task(g, r);
    }
    release(g, 1); /* ours: g may be finished from here on */
    if (rc == 0 && index)
        *index = idx;
    return rc;
}

/* ---- Waiting ------------------------------------------------------------ */

/* Block until the group finishes: 0, or -EBUSY if another waiter came
 * first. A fiber's first wait is cancellable: a cancel cancels the group,
 * and the fiber waits again ("Nesting"). */
static int wait_finished(struct weft_group *g, struct weft_fiber *self) {
    bool cancellable = self != NULL;
    for (;;) {
        struct weft_waiter wt;
        weft__waiter_init(&wt, self, 1, cancellable);
        uintptr_t expect = NO_WAITER;
        /* release: publishes wt to the finisher; acquire on failure: G2. */
        if (!atomic_compare_exchange_strong_explicit(&g->waiter, &expect, (uintptr_t)&wt,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire)) {
            if (self)
                weft__wait_abort(self);
            return expect == GROUP_DONE ? 0 : -EBUSY;
        }
        if (weft__waiter_block(&wt, WEFT_FOREVER) == 0)
            return 0;
        /* Cancelled: withdraw, unless the finisher already took wt. */
        expect = (uintptr_t)&wt;
        if (!atomic_compare_exchange_strong_explicit(&g->waiter, &expect, NO_WAITER,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire)) {
            weft__waiter_drain(&wt, 0);
            return 0;
        }
        group_fail(g, -ECANCELED);
        cancellable = false;
    }
}

/* Whether the calling fiber is one of g's own tasks (waiting for g
 * would wait for itself). A task's fiber runs task_main with its record
 * as argument (immutable after spawn). */
static bool is_member(struct weft_fiber *self, struct weft_group *g) {
    return self && self->fn == task_main && ((struct group_rec *)self->arg)->group == g;
}

int weft_group_wait(weft_group *group) {
    struct weft_group *g = group_ok(group);
    if (!g)
        return -EINVAL;
    struct weft_fiber *self = weft__sched_current();
    if (!finished(g)) {
        if (is_member(self, g))
            return -EDEADLK;
        /* relaxed: only a misuse check; the CAS in wait_finished decides. */
        if (atomic_load_explicit(&g->waiter, memory_order_relaxed) != NO_WAITER)
            return -EBUSY;
        /* relaxed: one wait drops it; release() orders the rest. */
        if (atomic_exchange_explicit(&g->open, 0, memory_order_relaxed))
            release(g, 1);
        int rc = wait_finished(g, self);
        if (rc)
            return rc;
    }
    /* relaxed: after G2's acquire (finished() or the waiter's signal). */
    return atomic_load_explicit(&g->status, memory_order_relaxed);
}

int weft_group_cancel(weft_group *group) {
    struct weft_group *g = group_ok(group);
    if (!g)
        return -EINVAL;
    if (!finished(g))
        group_fail(g, -ECANCELED);
    return 0;
}

/* ---- After the wait ----------------------------------------------------- */

int weft_group_result(const weft_group *group, size_t index, void **result) {
    if (result)
        *result = NULL;
    struct weft_group *g = group_ok(group);
    if (!g)
        return -EINVAL;
    if (!finished(g))
        return -EBUSY;
    if (index >= atomic_load_explicit(&g->count, memory_order_relaxed))
        return -EINVAL;
    struct group_rec *r = rec_at(g, index, false);
    if (!r)
        return -ENOMEM; /* its spawn found no memory for the record */
    if (result)
        *result = r->result;
    return r->status;
}

int weft_group_size(const weft_group *group, size_t *count) {
    struct weft_group *g = group_ok(group);
    if (count)
        *count = 0;
    if (!g || !count)
        return -EINVAL;
    /* relaxed: a snapshot of an index allocator. */
    *count = atomic_load_explicit(&g->count, memory_order_relaxed);
    return 0;
}

int weft_group_destroy(weft_group *group) {
    struct weft_group *g = group_ok(group);
    if (!g)
        return -EINVAL;
    if (!finished(g))
        return -EBUSY;
    atomic_store_explicit(&g->magic, 0, memory_order_relaxed);
    /* Once its runtime is destroyed, the tasks' records went with it: the
     * handles are dead, nothing to detach. */
    size_t n = weft__runtime_is(g->rt, g->rt_incarnation)
                   ? atomic_load_explicit(&g->count, memory_order_relaxed)
                   : 0;
    for (size_t i = 0; i < n; i++) {
        struct group_rec *r = rec_at(g, i, false);
        weft_task *t = r ? atomic_load_explicit(&r->task, memory_order_relaxed) : NULL;
        if (t) {
            int rc = weft_detach(t);
            WEFT_ASSERT(rc == 0); /* the group held the only handle */
        }
    }
    for (int k = 0; k < SEGMENTS; k++)
        free(atomic_load_explicit(&g->segs[k], memory_order_relaxed));
    weft__recycler_put(&group_pool, g);
    return 0;
}
