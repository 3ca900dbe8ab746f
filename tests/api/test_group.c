/*
 * tests/api/test_group.c - black-box: task groups (weft.h "Task groups").
 * Create, spawn, wait and results from plain threads and fibers; the
 * first failure cancels the rest and is what wait returns; explicit
 * cancel; a cancelled waiter cancels its group; nested groups; tasks that
 * spawn into their own group; the finished state (-EPIPE, results kept);
 * every error code of every call.
 *
 * Fibers record failures with WT_CHECK*; the main thread asserts after
 * joining (STYLE 3.7).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "test_api.h"

static atomic_int ran, finished_bodies;

static void reset_counts(void) {
    wt_reset();
    atomic_store(&ran, 0);
    atomic_store(&finished_bodies, 0);
}

/* result = 2 * arg */
static int twice(void *arg, void **result) {
    atomic_fetch_add(&ran, 1);
    *result = WT_PTR(2 * WT_INT(arg));
    return 0;
}

/* Sleeps (cancellable) for LONG_WAIT; returns the sleep's error. */
static int sleep_long(void *arg, void **result) {
    (void)arg;
    atomic_fetch_add(&ran, 1);
    int rc = weft_sleep(LONG_WAIT);
    atomic_fetch_add(&finished_bodies, 1);
    *result = WT_PTR(7);
    return rc;
}

/* Fails with -(arg) after a short sleep. */
static int fail_after_sleep(void *arg, void **result) {
    (void)result;
    atomic_fetch_add(&ran, 1);
    weft_sleep(10 * WEFT_MSEC);
    return -(int)WT_INT(arg);
}

static void check_results_twice(weft_group *g, size_t n) {
    size_t count = 0;
    assert_int_equal(weft_group_size(g, &count), 0);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        assert_int_equal(weft_group_result(g, i, &r), 0);
        assert_int_equal(WT_INT(r), 2 * (1000 + i));
    }
}

/* ---- Basics -------------------------------------------------------------- */

#define N_BASIC 200

static void test_group_from_plain_thread(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    assert_non_null(g);
    for (size_t i = 0; i < N_BASIC; i++) {
        size_t idx = 99999;
        assert_int_equal(weft_group_spawn(g, twice, WT_PTR(1000 + i), &idx), 0);
        assert_int_equal(idx, i);
    }
    assert_int_equal(weft_group_wait(g), 0);
    assert_int_equal(atomic_load(&ran), N_BASIC);
    check_results_twice(g, N_BASIC);
    /* Finished: same status again, no new tasks. */
    assert_int_equal(weft_group_wait(g), 0);
    assert_int_equal(weft_group_spawn(g, twice, NULL, NULL), -EPIPE);
    assert_int_equal(weft_group_cancel(g), 0);
    assert_int_equal(weft_group_wait(g), 0);
    assert_int_equal(weft_group_destroy(g), 0);
}

static void *group_in_fiber(void *arg) {
    (void)arg;
    weft_group *g = NULL;
    WT_CHECK_EQ(weft_group_create(&g, NULL), 0);
    for (size_t i = 0; i < N_BASIC; i++)
        WT_CHECK_EQ(weft_group_spawn(g, twice, WT_PTR(1000 + i), NULL), 0);
    WT_CHECK_EQ(weft_group_wait(g), 0);
    for (size_t i = 0; i < N_BASIC; i++) {
        void *r = NULL;
        WT_CHECK_EQ(weft_group_result(g, i, &r), 0);
        WT_CHECK_EQ(WT_INT(r), 2 * (1000 + i));
    }
    WT_CHECK_EQ(weft_group_destroy(g), 0);
    return NULL;
}

static void test_group_from_fiber(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    assert_int_equal(weft_run(rt, group_in_fiber, NULL, NULL), 0);
    assert_int_equal(atomic_load(&ran), N_BASIC);
    WT_ASSERT_NO_FAILURES();
}

static void test_group_empty(void **state) {
    weft_runtime *rt = *state;
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    assert_int_equal(weft_group_wait(g), 0);
    size_t n = 1;
    assert_int_equal(weft_group_size(g, &n), 0);
    assert_int_equal(n, 0);
    void *r = WT_PTR(1);
    assert_int_equal(weft_group_result(g, 0, &r), -EINVAL);
    assert_null(r);
    assert_int_equal(weft_group_destroy(g), 0);
}

static void test_group_bad_args(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = (weft_group *)WT_PTR(1);
    assert_int_equal(weft_group_create(NULL, rt), -EINVAL);
    /* rt NULL outside a fiber. */
    assert_int_equal(weft_group_create(&g, NULL), -EINVAL);
    assert_null(g);
    assert_int_equal(weft_group_spawn(NULL, twice, NULL, NULL), -EINVAL);
    assert_int_equal(weft_group_wait(NULL), -EINVAL);
    assert_int_equal(weft_group_cancel(NULL), -EINVAL);
    void *r = WT_PTR(1);
    assert_int_equal(weft_group_result(NULL, 0, &r), -EINVAL);
    assert_null(r);
    size_t n = 77;
    assert_int_equal(weft_group_size(NULL, &n), -EINVAL);
    assert_int_equal(n, 0); /* out-parameters are 0 on error */
    assert_int_equal(weft_group_destroy(NULL), -EINVAL);

    assert_int_equal(weft_group_create(&g, rt), 0);
    assert_int_equal(weft_group_size(g, NULL), -EINVAL);
    size_t idx = 5;
    assert_int_equal(weft_group_spawn(g, NULL, NULL, &idx), -EINVAL);
    assert_int_equal(idx, 0);
    assert_int_equal(weft_group_spawn(g, sleep_long, NULL, NULL), 0);
    /* Not finished: no results, no destroy. */
    r = WT_PTR(1);
    assert_int_equal(weft_group_result(g, 0, &r), -EBUSY);
    assert_null(r);
    assert_int_equal(weft_group_destroy(g), -EBUSY);
    assert_int_equal(weft_group_cancel(g), 0);
    assert_int_equal(weft_group_wait(g), -ECANCELED);
    assert_int_equal(weft_group_result(g, 1, NULL), -EINVAL);
    assert_int_equal(weft_group_destroy(g), 0);
    /* A destroyed group is not a group, and saying so reads no freed
     * memory (ASan would report it). Nothing is created in between. */
    assert_int_equal(weft_group_spawn(g, sleep_long, NULL, NULL), -EINVAL);
    assert_int_equal(weft_group_cancel(g), -EINVAL);
    assert_int_equal(weft_group_wait(g), -EINVAL);
    assert_int_equal(weft_group_size(g, &n), -EINVAL);
    assert_int_equal(weft_group_destroy(g), -EINVAL);
}

/* ---- Failure and cancellation --------------------------------------------- */

#define N_SLEEPERS 8

static void test_first_failure_cancels_the_rest(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    for (int i = 0; i < N_SLEEPERS; i++)
        assert_int_equal(weft_group_spawn(g, sleep_long, NULL, NULL), 0);
    assert_int_equal(weft_group_spawn(g, fail_after_sleep, WT_PTR(EIO), NULL), 0);
    uint64_t t0 = wt_clock_ns();
    assert_int_equal(weft_group_wait(g), -EIO);
    assert_true(wt_clock_ns() - t0 < PROMPT);
    for (int i = 0; i < N_SLEEPERS; i++) {
        void *r = NULL;
        /* A sleeper either woke cancelled, or never ran. */
        assert_int_equal(weft_group_result(g, (size_t)i, &r), -ECANCELED);
    }
    assert_int_equal(weft_group_result(g, N_SLEEPERS, NULL), -EIO);
    assert_int_equal(weft_group_destroy(g), 0);
    assert_int_equal(atomic_load(&finished_bodies), atomic_load(&ran) - 1);
}

/* One worker, held by this fiber until it waits: a failure in the first
 * task to run cancels the others before they start, so their bodies
 * never run. */
static int fail_now(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add(&ran, 1);
    return -EIO;
}

/* Only the first failure counts: the later one comes after the cancel. */
static void test_status_is_the_first_failure(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    assert_int_equal(weft_group_spawn(g, fail_after_sleep, WT_PTR(EPROTO), NULL), 0);
    assert_int_equal(weft_group_spawn(g, fail_now, NULL, NULL), 0);
    assert_int_equal(weft_group_wait(g), -EIO);
    /* The slow one failed later, or was cancelled before it started. */
    int slow = weft_group_result(g, 0, NULL);
    assert_true(slow == -EPROTO || slow == -ECANCELED);
    assert_int_equal(weft_group_result(g, 1, NULL), -EIO);
    assert_int_equal(weft_group_destroy(g), 0);
}

static int count_and_succeed(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add(&ran, 1);
    return 0;
}

#define N_LATER 100

static void *failure_stops_unstarted(void *arg) {
    (void)arg;
    weft_group *g = NULL;
    WT_CHECK_EQ(weft_group_create(&g, NULL), 0);
    WT_CHECK_EQ(weft_group_spawn(g, fail_now, NULL, NULL), 0);
    for (int i = 0; i < N_LATER; i++)
        WT_CHECK_EQ(weft_group_spawn(g, count_and_succeed, NULL, NULL), 0);
    WT_CHECK_EQ(weft_group_wait(g), -EIO);
    int cancelled = 0;
    for (size_t i = 1; i <= N_LATER; i++)
        cancelled += weft_group_result(g, i, NULL) == -ECANCELED;
    WT_CHECK(cancelled > 0);
    WT_CHECK_EQ(cancelled + atomic_load(&ran), N_LATER + 1);
    WT_CHECK_EQ(weft_group_destroy(g), 0);
    return NULL;
}

static void test_failure_stops_unstarted_tasks(void **state) {
    (void)state;
    reset_counts();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    assert_int_equal(weft_run(rt, failure_stops_unstarted, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_true(atomic_load(&ran) < N_LATER + 1);
    WT_ASSERT_NO_FAILURES();
}

static void test_explicit_cancel(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    for (int i = 0; i < N_SLEEPERS; i++)
        assert_int_equal(weft_group_spawn(g, sleep_long, NULL, NULL), 0);
    assert_true(poll_ge(&ran, 1));
    uint64_t t0 = wt_clock_ns();
    assert_int_equal(weft_group_cancel(g), 0);
    assert_int_equal(weft_group_cancel(g), 0); /* idempotent */
    /* Spawned after the cancel: never runs its body. */
    size_t late = 0;
    assert_int_equal(weft_group_spawn(g, twice, WT_PTR(1), &late), 0);
    assert_int_equal(weft_group_wait(g), -ECANCELED);
    assert_true(wt_clock_ns() - t0 < PROMPT);
    void *r = WT_PTR(1);
    assert_int_equal(weft_group_result(g, late, &r), -ECANCELED);
    assert_null(r);
    assert_int_equal(weft_group_destroy(g), 0);
}

/* A fiber waiting for a group is cancelled: it cancels the group and
 * still waits for every task. */
static atomic_int waiter_status;

static void *wait_for_sleepers(void *arg) {
    (void)arg;
    weft_group *g = NULL;
    WT_CHECK_EQ(weft_group_create(&g, NULL), 0);
    for (int i = 0; i < N_SLEEPERS; i++)
        WT_CHECK_EQ(weft_group_spawn(g, sleep_long, NULL, NULL), 0);
    atomic_store(&waiter_status, weft_group_wait(g));
    /* Every task has finished when wait returns. */
    WT_CHECK_EQ(atomic_load(&finished_bodies), atomic_load(&ran));
    WT_CHECK_EQ(weft_group_destroy(g), 0);
    return NULL;
}

static void test_cancelled_waiter_cancels_group(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    atomic_store(&waiter_status, 1);
    weft_task *t = spawn(rt, wait_for_sleepers, NULL);
    assert_true(poll_ge(&ran, N_SLEEPERS));
    settle();
    uint64_t t0 = wt_clock_ns();
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    assert_true(wt_clock_ns() - t0 < PROMPT);
    assert_int_equal(atomic_load(&waiter_status), -ECANCELED);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Nesting -------------------------------------------------------------- */

/* An outer task: an inner group of sleepers, waited for. */
static atomic_int inner_status;

static int inner_group_task(void *arg, void **result) {
    (void)result;
    weft_group *inner = NULL;
    WT_CHECK_EQ(weft_group_create(&inner, NULL), 0);
    for (int i = 0; i < N_SLEEPERS; i++)
        WT_CHECK_EQ(weft_group_spawn(inner, sleep_long, NULL, NULL), 0);
    if (arg)
        WT_CHECK_EQ(weft_group_spawn(inner, fail_after_sleep, arg, NULL), 0);
    int rc = weft_group_wait(inner);
    atomic_store(&inner_status, rc);
    WT_CHECK_EQ(weft_group_destroy(inner), 0);
    return rc;
}

static void test_nested_cancel_outer(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    atomic_store(&inner_status, 1);
    weft_group *outer = NULL;
    assert_int_equal(weft_group_create(&outer, rt), 0);
    assert_int_equal(weft_group_spawn(outer, inner_group_task, NULL, NULL), 0);
    assert_int_equal(weft_group_spawn(outer, inner_group_task, NULL, NULL), 0);
    assert_true(poll_ge(&ran, 2 * N_SLEEPERS));
    uint64_t t0 = wt_clock_ns();
    assert_int_equal(weft_group_cancel(outer), 0);
    assert_int_equal(weft_group_wait(outer), -ECANCELED);
    assert_true(wt_clock_ns() - t0 < PROMPT);
    assert_int_equal(atomic_load(&inner_status), -ECANCELED);
    assert_int_equal(atomic_load(&finished_bodies), 2 * N_SLEEPERS);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(weft_group_result(outer, i, NULL), -ECANCELED);
    assert_int_equal(weft_group_destroy(outer), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A failure deep inside propagates up through the task that returns it,
 * and cancels the outer group's other tasks. */
static void test_nested_failure_propagates(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *outer = NULL;
    assert_int_equal(weft_group_create(&outer, rt), 0);
    assert_int_equal(weft_group_spawn(outer, sleep_long, NULL, NULL), 0);
    assert_int_equal(weft_group_spawn(outer, inner_group_task, WT_PTR(EPROTO), NULL), 0);
    uint64_t t0 = wt_clock_ns();
    assert_int_equal(weft_group_wait(outer), -EPROTO);
    assert_true(wt_clock_ns() - t0 < PROMPT);
    assert_int_equal(weft_group_result(outer, 0, NULL), -ECANCELED);
    assert_int_equal(weft_group_result(outer, 1, NULL), -EPROTO);
    assert_int_equal(weft_group_destroy(outer), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Tasks spawning into their own group ---------------------------------- */

static weft_group *tree_group;

/* A binary tree of tasks: each spawns two children into the same group,
 * while the root waits for the group. */
static int tree_task(void *arg, void **result) {
    (void)result;
    int node = (int)WT_INT(arg);
    atomic_fetch_add(&ran, 1);
    if (2 * node + 1 < 63) {
        WT_CHECK_EQ(weft_group_spawn(tree_group, tree_task, WT_PTR(2 * node + 1), NULL), 0);
        WT_CHECK_EQ(weft_group_spawn(tree_group, tree_task, WT_PTR(2 * node + 2), NULL), 0);
    }
    return 0;
}

static void test_tasks_spawn_into_own_group(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    assert_int_equal(weft_group_create(&tree_group, rt), 0);
    assert_int_equal(weft_group_spawn(tree_group, tree_task, WT_PTR(0), NULL), 0);
    assert_int_equal(weft_group_wait(tree_group), 0);
    assert_int_equal(atomic_load(&ran), 63);
    size_t n = 0;
    assert_int_equal(weft_group_size(tree_group, &n), 0);
    assert_int_equal(n, 63);
    assert_int_equal(weft_group_destroy(tree_group), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- One waiter at a time ------------------------------------------------- */

static void *wait_in_thread(void *arg) {
    atomic_store(&waiter_status, weft_group_wait(arg));
    return NULL;
}

static void test_second_waiter_busy(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    weft_group *g = NULL;
    assert_int_equal(weft_group_create(&g, rt), 0);
    assert_int_equal(weft_group_spawn(g, sleep_long, NULL, NULL), 0);
    atomic_store(&waiter_status, 1);
    pthread_t th = start_thread(wait_in_thread, g);
    settle();
    assert_int_equal(weft_group_wait(g), -EBUSY);
    assert_int_equal(weft_group_destroy(g), -EBUSY);
    assert_int_equal(weft_group_cancel(g), 0);
    join_thread(th);
    assert_int_equal(atomic_load(&waiter_status), -ECANCELED);
    assert_int_equal(weft_group_wait(g), -ECANCELED);
    assert_int_equal(weft_group_destroy(g), 0);
}

/* A task waiting for its own group would wait for itself. */
static weft_group *self_group;

static int wait_own_group(void *arg, void **result) {
    (void)arg;
    (void)result;
    return weft_group_wait(self_group);
}

static void test_task_waits_own_group_edeadlk(void **state) {
    weft_runtime *rt = *state;
    assert_int_equal(weft_group_create(&self_group, rt), 0);
    assert_int_equal(weft_group_spawn(self_group, wait_own_group, NULL, NULL), 0);
    assert_int_equal(weft_group_wait(self_group), -EDEADLK);
    assert_int_equal(weft_group_result(self_group, 0, NULL), -EDEADLK);
    assert_int_equal(weft_group_destroy(self_group), 0);
}

/* Many groups cancelled half-way and destroyed: ASan's leak check and the
 * runtime's destroy (every task finished) are the test. */
static void test_cancel_half_way_leaks_nothing(void **state) {
    weft_runtime *rt = *state;
    reset_counts();
    for (int round = 0; round < 20; round++) {
        weft_group *g = NULL;
        assert_int_equal(weft_group_create(&g, rt), 0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(weft_group_spawn(g, i % 2 ? sleep_long : twice,
                                              WT_PTR(i), NULL), 0);
        assert_int_equal(weft_group_cancel(g), 0);
        assert_int_equal(weft_group_wait(g), -ECANCELED);
        assert_int_equal(weft_group_destroy(g), 0);
    }
}

/* A waited-for group outlives its runtime: results readable, destroy
 * touches nothing of the runtime's (ASan would see it). */
static void test_group_outlives_its_runtime(void **state) {
    (void)state;
    reset_counts();
    for (int round = 0; round < 3; round++) {
        weft_runtime *rt = wt_runtime_new(2);
        assert_non_null(rt);
        weft_group *g = NULL;
        assert_int_equal(weft_group_create(&g, rt), 0);
        for (int i = 0; i < 50; i++)
            assert_int_equal(weft_group_spawn(g, twice, WT_PTR(1000 + i), NULL), 0);
        assert_int_equal(weft_group_wait(g), 0);
        assert_int_equal(weft_runtime_destroy(rt), 0);
        /* A new runtime may reuse the old one's memory: still not ours. */
        weft_runtime *next = wt_runtime_new(1);
        assert_non_null(next);
        check_results_twice(g, 50);
        assert_int_equal(weft_group_destroy(g), 0);
        assert_int_equal(weft_runtime_destroy(next), 0);
    }
}

/* ---- A task that never gets a stack ------------------------------------ */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WT_SANITIZED 1
#endif
#endif

#ifndef WT_SANITIZED
/* Child process: with its address space capped, 1 GiB stacks cannot be
 * mapped, so the group's tasks end without running. The group must still
 * finish, with -ENOMEM, not wait for ever (the alarm ends a hang). */
static void stackless_group_child(void) {
    alarm(30);
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1)
        _exit(3);
    fclose(f);
    rlim_t cap = (rlim_t)pages * 4096 + ((rlim_t)256 << 20);
    struct rlimit rl = {cap, cap};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(3);
    weft_runtime *rt = NULL;
    weft_config cfg = {.workers = 2, .stack_size = (size_t)1 << 30};
    if (weft_runtime_create(&rt, &cfg) != 0)
        _exit(3);
    weft_group *g = NULL;
    if (weft_group_create(&g, rt) != 0)
        _exit(3);
    for (int i = 0; i < 3; i++)
        if (weft_group_spawn(g, twice, WT_PTR(i), NULL) != 0)
            _exit(3);
    int rc = weft_group_wait(g);
    void *r = WT_PTR(1);
    int task_rc = weft_group_result(g, 0, &r);
    fprintf(stderr, "wait %d result %d ran %d\n", rc, task_rc, atomic_load(&ran));
    bool ok = rc == -ENOMEM && task_rc == -ENOMEM && r == NULL && atomic_load(&ran) == 0;
    if (weft_group_destroy(g) != 0 || weft_runtime_destroy(rt) != 0)
        ok = false;
    _exit(ok ? 0 : 1);
}
#endif

static void test_task_without_stack_fails_the_group(void **state) {
    (void)state;
#ifdef WT_SANITIZED
    skip(); /* sanitizers reserve terabytes: no address-space cap */
#else
    reset_counts();
    char out[256];
    int status = wt_run_child(stackless_group_child, out, sizeof out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "child: status %#x, said: %s\n", status, out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_group_from_plain_thread),
        RT_TEST(test_group_from_fiber),
        RT_TEST(test_group_empty),
        RT_TEST(test_group_bad_args),
        RT_TEST(test_first_failure_cancels_the_rest),
        RT_TEST(test_status_is_the_first_failure),
        cmocka_unit_test(test_failure_stops_unstarted_tasks),
        RT_TEST(test_explicit_cancel),
        RT_TEST(test_cancelled_waiter_cancels_group),
        RT_TEST(test_nested_cancel_outer),
        RT_TEST(test_nested_failure_propagates),
        RT_TEST(test_tasks_spawn_into_own_group),
        RT_TEST(test_second_waiter_busy),
        RT_TEST(test_task_waits_own_group_edeadlk),
        RT_TEST(test_cancel_half_way_leaks_nothing),
        cmocka_unit_test(test_group_outlives_its_runtime),
        cmocka_unit_test(test_task_without_stack_fails_the_group),
    };
    return cmocka_run_group_tests_name("api.group", tests, NULL, NULL);
}
