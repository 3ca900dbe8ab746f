/*
 * tests/api/test_cancel.c - black-box: weft_cancel and weft_cancelled
 * (DESIGN 2.5, 3): never-started tasks never run, finished tasks give
 * -ESRCH, waits return -ECANCELED, cancellation is sticky, and a fiber
 * waiting in join/join_for/gather forwards it and still consumes handles.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_util.h"

#define WORKERS 2
#define LONG_SLEEP (10 * WEFT_SEC)
/* A cancelled long sleep must end well before it would have. */
#define PROMPT (5 * WEFT_SEC)

static int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(WORKERS);
    return *state ? 0 : -1;
}

static int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

#define RC(p) ((int)(intptr_t)(p))
#define RCPTR(rc) ((void *)(intptr_t)(rc))

static atomic_int ran;

static void *must_not_run(void *arg) {
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return NULL;
}

static void *return_arg(void *arg) {
    return arg;
}

/* ---- Never started ----------------------------------------------------- */

/* One worker, busy running this fiber: the child cannot start before the
 * parent waits. */
static void *cancel_before_start(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        weft_task *t = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, must_not_run, NULL, &t), 0);
        WT_CHECK_EQ(weft_cancel(t), 0);
        /* It finished at once, so a second cancel finds it finished. */
        WT_CHECK_EQ(weft_cancel(t), -ESRCH);
        void *res = RCPTR(1);
        WT_CHECK_EQ(weft_join(t, &res), -ECANCELED);
        WT_CHECK(res == NULL);
    }
    return NULL;
}

static void test_cancel_never_started_in_fiber(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&ran, 0);
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    assert_int_equal(weft_run(rt, cancel_before_start, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&ran), 0);
    WT_ASSERT_NO_FAILURES();
}

/* The only worker is held by a fiber that spins without yielding; a task
 * spawned and cancelled from the plain thread is joined with -ECANCELED
 * without waiting for that worker. The blocker gives up after a while, so
 * a join that does wait for the worker fails the test instead of hanging. */
static atomic_int blocker_started, blocker_release, blocker_gave_up;

static void *busy_blocker(void *arg) {
    (void)arg;
    atomic_store(&blocker_started, 1);
    uint64_t until = wt_clock_ns() + PROMPT;
    while (!atomic_load(&blocker_release)) {
        if (wt_clock_ns() > until) {
            atomic_store(&blocker_gave_up, 1);
            break;
        }
    }
    return NULL;
}

static void test_cancel_never_started_join_without_worker(void **state) {
    (void)state;
    atomic_store(&ran, 0);
    atomic_store(&blocker_started, 0);
    atomic_store(&blocker_release, 0);
    atomic_store(&blocker_gave_up, 0);
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    weft_task *b = NULL, *t = NULL;
    assert_int_equal(weft_spawn(rt, busy_blocker, NULL, &b), 0);
    assert_true(wt_wait_atomic_ge(&blocker_started, 1, 10 * WEFT_SEC));
    assert_int_equal(weft_spawn(rt, must_not_run, NULL, &t), 0);
    assert_int_equal(weft_cancel(t), 0);
    assert_int_equal(weft_join(t, NULL), -ECANCELED);
    int gave_up = atomic_load(&blocker_gave_up);
    atomic_store(&blocker_release, 1);
    assert_int_equal(weft_join(b, NULL), 0);
    assert_int_equal(gave_up, 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&ran), 0);
}

/* ---- Finished and bad handles ------------------------------------------ */

static atomic_int finished;

static void *finish_now(void *arg) {
    atomic_store(&finished, 1);
    return arg;
}

static void test_cancel_finished_esrch(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&finished, 0);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, finish_now, RCPTR(17), &t), 0);
    assert_true(wt_wait_atomic_ge(&finished, 1, 10 * WEFT_SEC));
    /* Finished = returned, which follows the store shortly. */
    void *res = NULL;
    size_t idx = 1;
    assert_int_equal(weft_wait_any(&t, 1, 10 * WEFT_SEC, &idx), 0);
    assert_int_equal(weft_cancel(t), -ESRCH);
    /* The result survives the failed cancel. */
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(RC(res), 17);

    assert_int_equal(weft_cancel(NULL), -EINVAL);
    assert_false(weft_cancelled());
}

/* ---- Cancelling waits -------------------------------------------------- */

struct sleeper {
    atomic_int started;
    int cancelled_before;
    int sleep_rc;
    int cancelled_after;
    uint64_t took;
};

static void *long_sleep(void *arg) {
    struct sleeper *s = arg;
    s->cancelled_before = weft_cancelled();
    atomic_store(&s->started, 1);
    uint64_t t0 = wt_clock_ns();
    s->sleep_rc = weft_sleep(LONG_SLEEP);
    s->took = wt_clock_ns() - t0;
    s->cancelled_after = weft_cancelled();
    return RCPTR(s->sleep_rc);
}

/* Waits until the sleeper has started and (very likely) reached its
 * sleep. Either way the result is the same: the sleep returns -ECANCELED,
 * at once if the cancel came first. */
static void wait_started(struct sleeper *s) {
    assert_true(wt_wait_atomic_ge(&s->started, 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(20 * WEFT_MSEC);
}

static void test_cancel_sleeping_fiber(void **state) {
    weft_runtime *rt = *state;
    struct sleeper s = {0};
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, long_sleep, &s, &t), 0);
    wait_started(&s);
    assert_int_equal(weft_cancel(t), 0);
    /* A second cancel of a running task is accepted; once it has
     * finished it reports -ESRCH. */
    int again = weft_cancel(t);
    assert_true(again == 0 || again == -ESRCH);
    void *res = NULL;
    /* It ran, so its join succeeds with its own return value. */
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(RC(res), -ECANCELED);
    assert_int_equal(s.sleep_rc, -ECANCELED);
    assert_int_equal(s.cancelled_before, 0);
    assert_int_equal(s.cancelled_after, 1);
    assert_true(s.took < PROMPT);
}

/* Cancel from another fiber, which then joins. */
static void *cancel_and_join(void *arg) {
    struct sleeper *s = arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, long_sleep, s, &t), 0);
    if (!wt_yield_until(&s->started, 100000000L))
        return NULL;
    WT_CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
    WT_CHECK_EQ(weft_cancel(t), 0);
    void *res = NULL;
    WT_CHECK_EQ(weft_join(t, &res), 0);
    WT_CHECK_EQ(RC(res), -ECANCELED);
    /* Cancelling another task does not cancel the canceller. */
    WT_CHECK(!weft_cancelled());
    return NULL;
}

static void test_cancel_from_fiber(void **state) {
    weft_runtime *rt = *state;
    struct sleeper s = {0};
    assert_int_equal(weft_run(rt, cancel_and_join, &s, NULL), 0);
    assert_int_equal(s.sleep_rc, -ECANCELED);
    assert_true(s.took < PROMPT);
    WT_ASSERT_NO_FAILURES();
}

/* A task gated by a flag; yielding is not a cancellation point, so it
 * finishes only when released. */
static atomic_int gate;

static void *gated(void *arg) {
    wt_yield_until(&gate, 2000000000L);
    return arg;
}

/* Yields until this fiber is cancelled (bounded). */
static bool yield_until_cancelled(void) {
    for (long i = 0; i < 200000000L; i++) {
        if (weft_cancelled())
            return true;
        weft_yield();
    }
    return weft_cancelled();
}

/* Sticky: once cancelled, every later wait that would block returns
 * -ECANCELED at once; a wait that can complete without blocking does. */
struct sticky {
    atomic_int started;
    int before, after;
    int sleep1, sleep2, sleep_until, wait_pending, wait_done;
    int sleep_zero, sleep_until_past, wait_pending_zero;
    size_t done_index, zero_index;
    uint64_t took;
};

static void *sticky_body(void *arg) {
    struct sticky *s = arg;
    weft_task *done = NULL, *pending = NULL;
    size_t idx = 0;
    WT_CHECK_EQ(weft_spawn(NULL, return_arg, RCPTR(5), &done), 0);
    WT_CHECK_EQ(weft_spawn(NULL, gated, RCPTR(6), &pending), 0);
    WT_CHECK_EQ(weft_wait_any(&done, 1, WEFT_FOREVER, &idx), 0);

    s->before = weft_cancelled();
    atomic_store(&s->started, 1);
    s->after = yield_until_cancelled();

    uint64_t t0 = wt_clock_ns();
    s->sleep1 = weft_sleep(LONG_SLEEP);
    s->sleep2 = weft_sleep(LONG_SLEEP);
    s->sleep_until = weft_sleep_until(weft_now() + LONG_SLEEP);
    s->wait_pending = weft_wait_any(&pending, 1, LONG_SLEEP, &idx);
    s->took = wt_clock_ns() - t0;
    /* A sleep whose deadline has passed need not block: it completes. */
    s->sleep_zero = weft_sleep(0);
    s->sleep_until_past = weft_sleep_until(weft_now() - WEFT_MSEC);
    /* A timeout of 0 polls: it times out, as any timed wait that need
     * not block, and leaves the index alone. */
    s->zero_index = 99;
    s->wait_pending_zero = weft_wait_any(&pending, 1, 0, &s->zero_index);
    s->done_index = 99;
    s->wait_done = weft_wait_any(&done, 1, LONG_SLEEP, &s->done_index);

    /* Joins still work (and consume) in a cancelled fiber. */
    atomic_store(&gate, 1);
    void *res = NULL;
    WT_CHECK_EQ(weft_join(pending, &res), 0);
    WT_CHECK_EQ(RC(res), 6);
    WT_CHECK_EQ(weft_join(done, &res), 0);
    WT_CHECK_EQ(RC(res), 5);
    WT_CHECK(weft_cancelled());
    return NULL;
}

static void test_cancel_is_sticky(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&gate, 0);
    struct sticky s = {0};
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, sticky_body, &s, &t), 0);
    assert_true(wt_wait_atomic_ge(&s.started, 1, 10 * WEFT_SEC));
    assert_int_equal(weft_cancel(t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(s.before, 0);
    assert_int_equal(s.after, 1);
    assert_int_equal(s.sleep1, -ECANCELED);
    assert_int_equal(s.sleep2, -ECANCELED);
    assert_int_equal(s.sleep_until, -ECANCELED);
    assert_int_equal(s.wait_pending, -ECANCELED);
    assert_true(s.took < PROMPT);
    assert_int_equal(s.sleep_zero, 0);
    assert_int_equal(s.sleep_until_past, 0);
    assert_int_equal(s.wait_pending_zero, -ETIMEDOUT);
    assert_int_equal(s.zero_index, 99);
    assert_int_equal(s.wait_done, 0);
    assert_int_equal(s.done_index, 0);
    WT_ASSERT_NO_FAILURES();
}

/* A fiber blocked in wait_any is woken by a cancel. */
struct any_waiter {
    atomic_int started;
    int rc;
    uint64_t took;
};

static void *block_in_wait_any(void *arg) {
    struct any_waiter *w = arg;
    weft_task *pending = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, gated, NULL, &pending), 0);
    atomic_store(&w->started, 1);
    size_t idx = 0;
    uint64_t t0 = wt_clock_ns();
    w->rc = weft_wait_any(&pending, 1, WEFT_FOREVER, &idx);
    w->took = wt_clock_ns() - t0;
    atomic_store(&gate, 1);
    WT_CHECK_EQ(weft_join(pending, NULL), 0);
    return NULL;
}

static void test_cancel_wakes_wait_any(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&gate, 0);
    struct any_waiter w = {0};
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, block_in_wait_any, &w, &t), 0);
    assert_true(wt_wait_atomic_ge(&w.started, 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(20 * WEFT_MSEC);
    assert_int_equal(weft_cancel(t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(w.rc, -ECANCELED);
    WT_ASSERT_NO_FAILURES();
}

/* weft_cancelled() lets a CPU loop that never waits notice a cancel. */
static atomic_int cpu_started;

static void *cpu_loop(void *arg) {
    (void)arg;
    atomic_store(&cpu_started, 1);
    uint64_t until = wt_clock_ns() + 2 * PROMPT;
    unsigned long spins = 0;
    while (!weft_cancelled()) {
        if (++spins % 1024 == 0 && wt_clock_ns() > until)
            return RCPTR(-1);
    }
    return RCPTR(1);
}

static void test_cancelled_flag_in_cpu_loop(void **state) {
    weft_runtime *rt = *state;
    assert_false(weft_cancelled());
    atomic_store(&cpu_started, 0);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, cpu_loop, NULL, &t), 0);
    assert_true(wt_wait_atomic_ge(&cpu_started, 1, 10 * WEFT_SEC));
    assert_int_equal(weft_cancel(t), 0);
    void *res = NULL;
    assert_int_equal(weft_join(t, &res), 0);
    assert_int_equal(RC(res), 1);
    assert_false(weft_cancelled());
}

/* ---- Forwarding through join, join_for and gather ---------------------- */

enum fwd_how { FWD_JOIN, FWD_JOIN_FOR, FWD_GATHER };

struct fwd {
    enum fwd_how how;
    struct sleeper child[2];
    void *child_res[2];
    int wait_rc;
    int cancelled;
};

static void *wait_on_sleepers(void *arg) {
    struct fwd *f = arg;
    weft_task *t[2] = {NULL, NULL};
    int n = f->how == FWD_GATHER ? 2 : 1;
    for (int i = 0; i < n; i++)
        WT_CHECK_EQ(weft_spawn(NULL, long_sleep, &f->child[i], &t[i]), 0);
    switch (f->how) {
    case FWD_JOIN:
        f->wait_rc = weft_join(t[0], &f->child_res[0]);
        break;
    case FWD_JOIN_FOR:
        f->wait_rc = weft_join_for(t[0], 3 * LONG_SLEEP, &f->child_res[0]);
        break;
    case FWD_GATHER:
        f->wait_rc = weft_gather(t, 2, f->child_res);
        break;
    }
    f->cancelled = weft_cancelled();
    return NULL;
}

/* The waiter is cancelled while its children sleep: the cancel reaches
 * the children, whose sleeps return -ECANCELED; the waiter goes on waiting
 * for them and gets their results (they ran, so the wait succeeds). */
static void check_forwarding(weft_runtime *rt, enum fwd_how how) {
    struct fwd f = {.how = how};
    int n = how == FWD_GATHER ? 2 : 1;
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, wait_on_sleepers, &f, &t), 0);
    for (int i = 0; i < n; i++)
        wait_started(&f.child[i]);
    assert_int_equal(weft_cancel(t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(f.wait_rc, 0);
    assert_int_equal(f.cancelled, 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(f.child[i].sleep_rc, -ECANCELED);
        assert_int_equal(RC(f.child_res[i]), -ECANCELED);
        assert_true(f.child[i].took < PROMPT);
    }
}

static void test_cancel_forwarded_through_join(void **state) {
    check_forwarding(*state, FWD_JOIN);
    WT_ASSERT_NO_FAILURES();
}

static void test_cancel_forwarded_through_join_for(void **state) {
    check_forwarding(*state, FWD_JOIN_FOR);
    WT_ASSERT_NO_FAILURES();
}

static void test_cancel_forwarded_through_gather(void **state) {
    check_forwarding(*state, FWD_GATHER);
    WT_ASSERT_NO_FAILURES();
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_never_started_in_fiber),
        cmocka_unit_test(test_cancel_never_started_join_without_worker),
        RT_TEST(test_cancel_finished_esrch),
        RT_TEST(test_cancel_sleeping_fiber),
        RT_TEST(test_cancel_from_fiber),
        RT_TEST(test_cancel_is_sticky),
        RT_TEST(test_cancel_wakes_wait_any),
        RT_TEST(test_cancelled_flag_in_cpu_loop),
        RT_TEST(test_cancel_forwarded_through_join),
        RT_TEST(test_cancel_forwarded_through_join_for),
        RT_TEST(test_cancel_forwarded_through_gather),
    };
    return cmocka_run_group_tests_name("api.cancel", tests, NULL, NULL);
}
