/*
 * tests/api/test_tasks.c - black-box: spawn, join, detach, weft_run,
 * argument checks, identity (weft_self, weft_worker_index), errno per
 * fiber, weft_strerror, yield fairness, deep spawn trees and concurrent
 * spawners (weft.h "Tasks").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define SENTINEL_TASK ((weft_task *)(uintptr_t)0x1)
#define WORKERS 2

static int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(WORKERS);
    return *state ? 0 : -1;
}

static int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

static void *return_arg(void *arg) {
    return arg;
}

static void *twice_plus_one(void *arg) {
    weft_yield();
    return WT_PTR(WT_INT(arg) * 2 + 1);
}

/* ---- Spawn and join ---------------------------------------------------- */

static void test_spawn_join_from_plain_thread(void **state) {
    weft_runtime *rt = *state;
    enum { N = 200 };
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        t[i] = NULL;
        assert_int_equal(weft_spawn(rt, twice_plus_one, WT_PTR(i), &t[i]), 0);
        assert_non_null(t[i]);
    }
    for (int i = N - 1; i >= 0; i--) {
        void *res = NULL;
        assert_int_equal(weft_join(t[i], &res), 0);
        assert_int_equal(WT_INT(res), 2 * i + 1);
    }
    /* result may be NULL. */
    weft_task *u = NULL;
    assert_int_equal(weft_spawn(rt, twice_plus_one, WT_PTR(3), &u), 0);
    assert_int_equal(weft_join(u, NULL), 0);
}

static void *spawn_join_in_fiber(void *arg) {
    int n = (int)WT_INT(arg);
    weft_task **t = calloc((size_t)n, sizeof *t);
    if (!t)
        return WT_PTR(0);
    long sum = 0;
    for (int i = 0; i < n; i++) {
        /* Explicit runtime and NULL (the current one) alternate. */
        weft_runtime *rt = i % 2 ? weft_runtime_current() : NULL;
        WT_CHECK_EQ(weft_spawn(rt, twice_plus_one, WT_PTR(i), &t[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        void *res = NULL;
        WT_CHECK_EQ(weft_join(t[i], &res), 0);
        WT_CHECK_EQ(WT_INT(res), 2 * i + 1);
        sum += (long)WT_INT(res);
    }
    free(t);
    return WT_PTR(sum);
}

static void test_spawn_join_from_fiber(void **state) {
    weft_runtime *rt = *state;
    void *res = NULL;
    assert_int_equal(weft_run(rt, spawn_join_in_fiber, WT_PTR(500), &res), 0);
    assert_int_equal(WT_INT(res), 500L * 500L); /* sum of 2i+1 = n^2 */
    WT_ASSERT_NO_FAILURES();
}

/* The result write happens-before join returns: a plain struct written by
 * the fiber is read by the joiner without atomics (TSan checks this). */
struct payload {
    long values[64];
    char text[32];
};

static void *fill_payload(void *arg) {
    struct payload *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < 64; i++)
        p->values[i] = (long)WT_INT(arg) + i;
    strcpy(p->text, "from a fiber");
    return p;
}

static void *join_payloads(void *arg) {
    (void)arg;
    for (int k = 0; k < 50; k++) {
        weft_task *t = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, fill_payload, WT_PTR(k), &t), 0);
        struct payload *p = NULL;
        WT_CHECK_EQ(weft_join(t, (void **)&p), 0);
        WT_CHECK(p != NULL);
        if (!p)
            continue;
        for (int i = 0; i < 64; i++)
            WT_CHECK_EQ(p->values[i], k + i);
        WT_CHECK(strcmp(p->text, "from a fiber") == 0);
        free(p);
    }
    return NULL;
}

static void test_result_published_to_joiner(void **state) {
    weft_runtime *rt = *state;
    for (int k = 0; k < 50; k++) {
        weft_task *t = NULL;
        assert_int_equal(weft_spawn(rt, fill_payload, WT_PTR(k), &t), 0);
        struct payload *p = NULL;
        assert_int_equal(weft_join(t, (void **)&p), 0);
        assert_non_null(p);
        assert_int_equal(p->values[63], k + 63);
        assert_string_equal(p->text, "from a fiber");
        free(p);
    }
    assert_int_equal(weft_run(rt, join_payloads, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

/* Joining a task that has already finished returns its result at once. */
static atomic_int finished_flag;

static void *set_flag_and_return(void *arg) {
    atomic_store(&finished_flag, 1);
    return arg;
}

static void test_join_already_finished(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&finished_flag, 0);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, set_flag_and_return, WT_PTR(77), &t), 0);
    assert_true(wt_wait_atomic_ge(&finished_flag, 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(10 * WEFT_MSEC); /* let it return, not just set */
    void *res = NULL;
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(WT_INT(res), 77);
}

/* A handle spawned by one fiber is joined by another fiber, and a handle
 * spawned by a fiber is joined by the plain thread. */
struct handoff {
    weft_task *task;
    atomic_int published;
};

static void *join_handoff(void *arg) {
    struct handoff *h = arg;
    if (!wt_yield_until(&h->published, 100000000L))
        return NULL;
    void *res = NULL;
    WT_CHECK_EQ(weft_join(h->task, &res), 0);
    return res;
}

static void *spawn_for_other(void *arg) {
    struct handoff *h = arg;
    weft_task *joiner = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, join_handoff, h, &joiner), 0);
    WT_CHECK_EQ(weft_spawn(NULL, twice_plus_one, WT_PTR(20), &h->task), 0);
    atomic_store(&h->published, 1);
    void *res = NULL;
    WT_CHECK_EQ(weft_join(joiner, &res), 0);
    return res;
}

static void *spawn_and_return_handle(void *arg) {
    (void)arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, twice_plus_one, WT_PTR(30), &t), 0);
    return t;
}

static void test_join_handle_from_another_fiber_or_thread(void **state) {
    weft_runtime *rt = *state;
    for (int i = 0; i < 100; i++) {
        struct handoff h = {0};
        void *res = NULL;
        assert_int_equal(weft_run(rt, spawn_for_other, &h, &res), 0);
        assert_int_equal(WT_INT(res), 41);

        weft_task *t = NULL;
        assert_int_equal(weft_run(rt, spawn_and_return_handle, NULL,
                                  (void **)&t),
                         0);
        assert_non_null(t);
        res = NULL;
        assert_int_equal(weft_join(t, &res), 0);
        assert_int_equal(WT_INT(res), 61);
    }
    WT_ASSERT_NO_FAILURES();
}

static void test_run_returns_result(void **state) {
    weft_runtime *rt = *state;
    void *res = NULL;
    assert_int_equal(weft_run(rt, return_arg, WT_PTR(12345), &res), 0);
    assert_int_equal(WT_INT(res), 12345);
    assert_int_equal(weft_run(rt, return_arg, WT_PTR(1), NULL), 0);
}

/* ---- Argument checks --------------------------------------------------- */

static void test_spawn_bad_args_einval(void **state) {
    weft_runtime *rt = *state;
    weft_task *t = SENTINEL_TASK;
    assert_int_equal(weft_spawn(NULL, return_arg, NULL, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(weft_spawn(NULL, return_arg, NULL, NULL), -EINVAL);

    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn(rt, NULL, NULL, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(weft_spawn(rt, NULL, NULL, NULL), -EINVAL);

    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn_ex(NULL, return_arg, NULL, NULL, &t), -EINVAL);
    assert_null(t);
    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn_ex(rt, NULL, NULL, NULL, &t), -EINVAL);
    assert_null(t);

    weft_spawn_opts small = {.stack_size = 4096};
    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn_ex(rt, return_arg, NULL, &small, &t), -EINVAL);
    assert_null(t);
    weft_spawn_opts huge = {.stack_size = (size_t)2 << 30};
    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn_ex(rt, return_arg, NULL, &huge, &t), -EINVAL);
    assert_null(t);
    weft_spawn_opts reserved = {._reserved = {[0] = 1}};
    t = SENTINEL_TASK;
    assert_int_equal(weft_spawn_ex(rt, return_arg, NULL, &reserved, &t),
                     -EINVAL);
    assert_null(t);

    assert_int_equal(weft_join(NULL, NULL), -EINVAL);
    void *res = WT_PTR(5);
    assert_int_equal(weft_join(NULL, &res), -EINVAL);
    assert_int_equal(weft_detach(NULL), -EINVAL);
}

static void *use_big_stack(void *arg) {
    size_t n = (size_t)WT_INT(arg);
    volatile char buf[1 << 20];
    for (size_t i = 0; i < n; i += 1024)
        buf[i] = 1;
    return WT_PTR(buf[0] + buf[n - 1024]);
}

static void test_spawn_ex_stack_size(void **state) {
    weft_runtime *rt = *state;
    weft_spawn_opts opts = {.stack_size = (size_t)4 << 20};
    weft_task *t = NULL;
    assert_int_equal(weft_spawn_ex(rt, use_big_stack, WT_PTR(1 << 20), &opts,
                                   &t),
                     0);
    void *res = NULL;
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(WT_INT(res), 2);

    /* opts NULL and a zeroed opts: the runtime's defaults. */
    assert_int_equal(weft_spawn_ex(rt, return_arg, WT_PTR(3), NULL, &t), 0);
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(WT_INT(res), 3);
    weft_spawn_opts zero = {0};
    assert_int_equal(weft_spawn_ex(rt, return_arg, WT_PTR(4), &zero, &t), 0);
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(WT_INT(res), 4);
    /* Detached via spawn_ex. */
    assert_int_equal(weft_spawn_ex(rt, return_arg, NULL, &zero, NULL), 0);
}

/* ---- Self-join ---------------------------------------------------------- */

struct selfjoin {
    weft_task *mine;          /* the handle the parent got */
    atomic_int published;
    int rc_handle, rc_self;
};

static void *join_myself(void *arg) {
    struct selfjoin *s = arg;
    if (!wt_yield_until(&s->published, 100000000L))
        return NULL;
    WT_CHECK(weft_self() == s->mine);
    s->rc_handle = weft_join(s->mine, NULL);
    s->rc_self = weft_join(weft_self(), NULL);
    return WT_PTR(99);
}

static void test_self_join_edeadlk_keeps_handle(void **state) {
    weft_runtime *rt = *state;
    struct selfjoin s = {0};
    assert_int_equal(weft_spawn(rt, join_myself, &s, &s.mine), 0);
    atomic_store(&s.published, 1);
    void *res = NULL;
    /* The handle survived the failed self-joins. */
    assert_int_equal(weft_join(s.mine, &res), 0);
    assert_int_equal(WT_INT(res), 99);
    assert_int_equal(s.rc_handle, -EDEADLK);
    assert_int_equal(s.rc_self, -EDEADLK);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Detach ------------------------------------------------------------ */

static atomic_int detached_ran;

static void *count_detached(void *arg) {
    (void)arg;
    weft_yield();
    atomic_fetch_add(&detached_ran, 1);
    return NULL;
}

static void *spawn_detached_from_fiber(void *arg) {
    int n = (int)WT_INT(arg);
    for (int i = 0; i < n; i++) {
        if (i % 2) {
            WT_CHECK_EQ(weft_spawn(NULL, count_detached, NULL, NULL), 0);
        } else {
            weft_task *t = NULL;
            WT_CHECK_EQ(weft_spawn(NULL, count_detached, NULL, &t), 0);
            WT_CHECK_EQ(weft_detach(t), 0);
        }
    }
    return NULL;
}

static void test_detach_runs_to_completion(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&detached_ran, 0);
    for (int i = 0; i < 100; i++) {
        weft_task *t = NULL;
        assert_int_equal(weft_spawn(rt, count_detached, NULL, &t), 0);
        assert_int_equal(weft_detach(t), 0);
        assert_int_equal(weft_spawn(rt, count_detached, NULL, NULL), 0);
    }
    assert_int_equal(weft_run(rt, spawn_detached_from_fiber, WT_PTR(200),
                              NULL),
                     0);
    assert_true(wt_wait_atomic_ge(&detached_ran, 400, 30 * WEFT_SEC));
    assert_int_equal(atomic_load(&detached_ran), 400);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Identity ---------------------------------------------------------- */

struct ident {
    weft_runtime *rt;
    weft_task *self;
    int index;
    int workers;
};

static void *record_identity(void *arg) {
    struct ident *id = arg;
    id->self = weft_self();
    id->index = weft_worker_index();
    WT_CHECK(weft_runtime_current() == id->rt);
    for (int i = 0; i < 100; i++) {
        weft_yield();
        int w = weft_worker_index();
        WT_CHECK(w >= 0 && w < id->workers);
        WT_CHECK(weft_self() == id->self);
    }
    return NULL;
}

static void test_self_and_worker_index(void **state) {
    weft_runtime *rt = *state;
    assert_null(weft_self());
    assert_int_equal(weft_worker_index(), -1);
    assert_null(weft_runtime_current());

    enum { N = 64 };
    struct ident ids[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (struct ident){.rt = rt, .index = -2, .workers = WORKERS};
        assert_int_equal(weft_spawn(rt, record_identity, &ids[i], &t[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_join(t[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        /* weft_self() names the task: the same pointer as its handle. */
        assert_ptr_equal(ids[i].self, t[i]);
        assert_in_range(ids[i].index, 0, WORKERS - 1);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(ids[i].self, ids[j].self);
    }
    assert_null(weft_self());
    assert_int_equal(weft_worker_index(), -1);
    WT_ASSERT_NO_FAILURES();
}

/* ---- errno ------------------------------------------------------------- */

/*
 * Each fiber sets its own errno, then yields and parks in joins many
 * times, possibly moving between workers, and checks its errno after each
 * switch. errno goes through wt_errno()/wt_set_errno(): see test_util.h
 * for why code that may migrate must not let the compiler reuse &errno.
 */
/* A task that starts with errno 0 (its own) and leaves it set: when its
 * joiner runs it inline, the joiner's errno must survive it. */
static void *errno_clobberer(void *arg) {
    WT_CHECK_EQ(wt_errno(), 0);
    wt_set_errno(4242);
    return arg;
}

/* Join one clobberer and gather two, all spawned just before, so most
 * run inline on the caller's stack. */
static void join_clobberers(void) {
    weft_task *t[3];
    for (int k = 0; k < 3; k++)
        WT_CHECK_EQ(weft_spawn(NULL, errno_clobberer, NULL, &t[k]), 0);
    WT_CHECK_EQ(weft_join(t[0], NULL), 0);
    void *r[2];
    WT_CHECK_EQ(weft_gather(&t[1], 2, r), 0);
}

static void *errno_keeper(void *arg) {
    int base = (int)WT_INT(arg);
    wt_set_errno(base);
    for (int i = 0; i < 2000; i++) {
        if (i % 7 == 0) {
            weft_task *t = NULL;
            WT_CHECK_EQ(weft_spawn(NULL, twice_plus_one, WT_PTR(i), &t), 0);
            WT_CHECK_EQ(wt_errno(), base + i);
            WT_CHECK_EQ(weft_join(t, NULL), 0);
            WT_CHECK_EQ(wt_errno(), base + i);
            join_clobberers();
        } else {
            weft_yield();
        }
        WT_CHECK_EQ(wt_errno(), base + i);
        wt_set_errno(base + i + 1);
    }
    return NULL;
}

/* The same with plain errno, on one worker: fibers switch but never
 * migrate, so the thread's errno must be saved and restored per fiber. */
static void *errno_keeper_plain(void *arg) {
    int base = (int)WT_INT(arg);
    errno = base;
    for (int i = 0; i < 2000; i++) {
        if (i % 7 == 0) {
            weft_task *t = NULL;
            WT_CHECK_EQ(weft_spawn(NULL, twice_plus_one, WT_PTR(i), &t), 0);
            WT_CHECK_EQ(errno, base + i);
            WT_CHECK_EQ(weft_join(t, NULL), 0);
        } else {
            weft_yield();
        }
        WT_CHECK_EQ(errno, base + i);
        errno = base + i + 1;
    }
    return NULL;
}

static void run_errno_keepers(weft_runtime *rt, weft_fn keeper) {
    enum { N = 16 };
    weft_task *t[N];
    errno = 31337;
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_spawn(rt, keeper, WT_PTR(100000 * (i + 1)),
                                    &t[i]),
                         0);
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_join(t[i], NULL), 0);
    assert_int_equal(errno, 31337);
    WT_ASSERT_NO_FAILURES();
}

static void test_errno_is_per_fiber(void **state) {
    run_errno_keepers(*state, errno_keeper);
}

static void test_errno_is_per_fiber_one_worker(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    run_errno_keepers(rt, errno_keeper_plain);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

static void *errno_untouched_in_fiber(void *arg) {
    (void)arg;
    wt_set_errno(777);
    weft_task *t = SENTINEL_TASK;
    WT_CHECK_EQ(weft_spawn(NULL, NULL, NULL, &t), -EINVAL);
    WT_CHECK_EQ(wt_errno(), 777);
    WT_CHECK_EQ(weft_spawn(NULL, twice_plus_one, WT_PTR(1), &t), 0);
    WT_CHECK_EQ(wt_errno(), 777);
    WT_CHECK_EQ(weft_join(weft_self(), NULL), -EDEADLK);
    WT_CHECK_EQ(wt_errno(), 777);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    WT_CHECK_EQ(wt_errno(), 777);
    weft_yield();
    WT_CHECK_EQ(wt_errno(), 777);
    WT_CHECK(weft_self() != NULL);
    WT_CHECK(weft_worker_index() >= 0);
    WT_CHECK(weft_runtime_current() != NULL);
    WT_CHECK(weft_strerror(-EINVAL) != NULL);
    WT_CHECK_EQ(wt_errno(), 777);
    return NULL;
}

/* Every weft call, succeeding or failing, leaves errno as it was. */
static void test_weft_calls_leave_errno(void **state) {
    weft_runtime *rt = *state;
    errno = 4242;
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(NULL, return_arg, NULL, &t), -EINVAL);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_spawn(rt, return_arg, NULL, &t), 0);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_join(NULL, NULL), -EINVAL);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_detach(NULL), -EINVAL);
    assert_int_equal(errno, 4242);
    (void)weft_now();
    weft_yield();
    (void)weft_self();
    (void)weft_worker_index();
    (void)weft_runtime_current();
    (void)weft_strerror(-ENOMEM);
    (void)weft_strerror(12345);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_runtime_workers(rt), WORKERS);
    assert_int_equal(weft_runtime_workers(NULL), -EINVAL);
    assert_int_equal(errno, 4242);
    weft_runtime *bad = NULL;
    weft_config cfg = {.workers = WEFT_MAX_WORKERS + 1};
    assert_int_equal(weft_runtime_create(&bad, &cfg), -EINVAL);
    assert_int_equal(errno, 4242);
    weft_runtime *other = NULL;
    assert_int_equal(weft_runtime_create(&other, &(weft_config){.workers = 1}),
                     0);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_runtime_destroy(other), 0);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_runtime_destroy(NULL), -EINVAL);
    assert_int_equal(errno, 4242);
    assert_int_equal(weft_run(rt, errno_untouched_in_fiber, NULL, NULL), 0);
    assert_int_equal(errno, 4242);
    WT_ASSERT_NO_FAILURES();
}

/* ---- weft_strerror ----------------------------------------------------- */

static void test_strerror_never_null(void **state) {
    (void)state;
    for (int e = -5000; e <= 5000; e++) {
        const char *s = weft_strerror(e);
        assert_non_null(s);
    }
    int odd[] = {INT_MIN, INT_MIN + 1, INT_MAX, -INT_MAX, 1 << 20, -(1 << 20)};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        assert_non_null(weft_strerror(odd[i]));

    /* The errors weft returns have distinct, non-empty names. */
    int known[] = {0,        -EINVAL,    -ENOMEM, -EAGAIN, -ETIMEDOUT,
                   -ECANCELED, -EDEADLK, -ESRCH,  -EPIPE,  -EBUSY,
                   -EPERM};
    size_t n = sizeof known / sizeof known[0];
    for (size_t i = 0; i < n; i++) {
        const char *a = weft_strerror(known[i]);
        assert_true(strlen(a) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(a, weft_strerror(known[j]));
    }
}

/* ---- Yield ------------------------------------------------------------- */

static void test_yield_outside_fiber(void **state) {
    (void)state;
    for (int i = 0; i < 1000; i++)
        weft_yield();
    assert_null(weft_self());
}

static atomic_int fair_flag, fair_started;

static void *spin_on_flag(void *arg) {
    (void)arg;
    atomic_fetch_add(&fair_started, 1);
    return WT_PTR(wt_yield_until(&fair_flag, 20000000L));
}

static void *set_fair_flag(void *arg) {
    (void)arg;
    atomic_store(&fair_flag, 1);
    return NULL;
}

/* The spinner spawns the setter, then yields: on one worker the setter
 * only runs if yield lets it. */
static void *spawn_setter_then_spin(void *arg) {
    (void)arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, set_fair_flag, NULL, &t), 0);
    bool seen = wt_yield_until(&fair_flag, 20000000L);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    return WT_PTR(seen);
}

/* Several spinners, then the setter, all on one worker. */
static void *many_spinners(void *arg) {
    (void)arg;
    enum { N = 8 };
    weft_task *t[N + 1];
    for (int i = 0; i < N; i++)
        WT_CHECK_EQ(weft_spawn(NULL, spin_on_flag, NULL, &t[i]), 0);
    WT_CHECK_EQ(weft_spawn(NULL, set_fair_flag, NULL, &t[N]), 0);
    long ok = 0;
    for (int i = 0; i <= N; i++) {
        void *res = NULL;
        WT_CHECK_EQ(weft_join(t[i], &res), 0);
        ok += i < N ? (long)WT_INT(res) : 0;
    }
    return WT_PTR(ok == N);
}

static void test_yield_fairness_one_worker(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    void *res = NULL;

    atomic_store(&fair_flag, 0);
    assert_int_equal(weft_run(rt, spawn_setter_then_spin, NULL, &res), 0);
    assert_int_equal(WT_INT(res), 1);

    atomic_store(&fair_flag, 0);
    assert_int_equal(weft_run(rt, many_spinners, NULL, &res), 0);
    assert_int_equal(WT_INT(res), 1);

    /* The setter arrives from a plain thread, through the injection path,
     * while the only worker runs a yielding spinner. */
    atomic_store(&fair_flag, 0);
    atomic_store(&fair_started, 0);
    weft_task *spinner = NULL, *setter = NULL;
    assert_int_equal(weft_spawn(rt, spin_on_flag, NULL, &spinner), 0);
    assert_true(wt_wait_atomic_ge(&fair_started, 1, 10 * WEFT_SEC));
    assert_int_equal(weft_spawn(rt, set_fair_flag, NULL, &setter), 0);
    assert_int_equal(weft_join(spinner, &res), 0);
    assert_int_equal(WT_INT(res), 1);
    assert_int_equal(weft_join(setter, NULL), 0);

    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Deep spawn trees -------------------------------------------------- */

/* Returns the number of nodes in the subtree: 2^(depth+1) - 1. */
static void *tree_node(void *arg) {
    uintptr_t depth = WT_INT(arg);
    if (depth == 0)
        return WT_PTR(1);
    weft_task *l = NULL, *r = NULL;
    if (weft_spawn(NULL, tree_node, WT_PTR(depth - 1), &l) != 0)
        return WT_PTR(0);
    if (weft_spawn(NULL, tree_node, WT_PTR(depth - 1), &r) != 0) {
        weft_join(l, NULL);
        return WT_PTR(0);
    }
    void *a = NULL, *b = NULL;
    WT_CHECK_EQ(weft_join(r, &b), 0);
    WT_CHECK_EQ(weft_join(l, &a), 0);
    return WT_PTR(WT_INT(a) + WT_INT(b) + 1);
}

/* Depth 14 (32767 fibers); 12 under TSan, which allows only 8128 live
 * fibers (test_util.h) and every waiting parent is one. */
#define TREE_DEPTH (WT_TSAN ? 12 : 14)

static void test_binary_tree_depth_14(void **state) {
    weft_runtime *rt = *state;
    void *res = NULL;
    assert_int_equal(weft_run(rt, tree_node, WT_PTR(TREE_DEPTH), &res), 0);
    assert_int_equal(WT_INT(res), (1u << (TREE_DEPTH + 1)) - 1);
    /* Again, joined from a plain thread. */
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, tree_node, WT_PTR(10), &t), 0);
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(WT_INT(res), (1u << 11) - 1);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Four plain threads at once ---------------------------------------- */

struct spawner {
    weft_runtime *rt;
    int id;
    long sum;
};

static void *plain_spawner(void *arg) {
    struct spawner *s = arg;
    enum { ROUNDS = 100, BATCH = 20 };
    for (int r = 0; r < ROUNDS; r++) {
        weft_task *t[BATCH];
        int v0 = s->id * 1000000 + r * BATCH;
        for (int i = 0; i < BATCH; i++)
            WT_CHECK_EQ(weft_spawn(s->rt, twice_plus_one, WT_PTR(v0 + i),
                                   &t[i]),
                        0);
        for (int i = 0; i < BATCH; i++) {
            void *res = NULL;
            WT_CHECK_EQ(weft_join(t[i], &res), 0);
            WT_CHECK_EQ(WT_INT(res), 2 * (v0 + i) + 1);
            s->sum += (long)WT_INT(res);
        }
    }
    return NULL;
}

static void test_four_threads_spawn_and_join(void **state) {
    weft_runtime *rt = *state;
    enum { T = 4 };
    pthread_t th[T];
    struct spawner s[T];
    for (int i = 0; i < T; i++) {
        s[i] = (struct spawner){.rt = rt, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, plain_spawner, &s[i]),
                         0);
    }
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < T; i++) {
        long expect = 0;
        for (int v = 0; v < 2000; v++)
            expect += 2L * (i * 1000000 + v) + 1;
        assert_int_equal(s[i].sum, expect);
    }
    WT_ASSERT_NO_FAILURES();
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_spawn_join_from_plain_thread),
        RT_TEST(test_spawn_join_from_fiber),
        RT_TEST(test_result_published_to_joiner),
        RT_TEST(test_join_already_finished),
        RT_TEST(test_join_handle_from_another_fiber_or_thread),
        RT_TEST(test_run_returns_result),
        RT_TEST(test_spawn_bad_args_einval),
        RT_TEST(test_spawn_ex_stack_size),
        RT_TEST(test_self_join_edeadlk_keeps_handle),
        RT_TEST(test_detach_runs_to_completion),
        RT_TEST(test_self_and_worker_index),
        RT_TEST(test_errno_is_per_fiber),
        cmocka_unit_test(test_errno_is_per_fiber_one_worker),
        RT_TEST(test_weft_calls_leave_errno),
        cmocka_unit_test(test_strerror_never_null),
        cmocka_unit_test(test_yield_outside_fiber),
        cmocka_unit_test(test_yield_fairness_one_worker),
        RT_TEST(test_binary_tree_depth_14),
        RT_TEST(test_four_threads_spawn_and_join),
    };
    return cmocka_run_group_tests_name("api.tasks", tests, NULL, NULL);
}
