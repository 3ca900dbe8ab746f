/*
 * tests/api/test_sleep.c - black-box: weft_sleep, weft_sleep_until and
 * weft_join_for, which need the timer thread. Sleeps never return early;
 * a join that times out leaves the handle valid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_util.h"

#define WORKERS 2

static int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(WORKERS);
    return *state ? 0 : -1;
}

static int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

static const uint64_t durations[] = {
    0,
    1,
    WEFT_USEC,
    10 * WEFT_USEC,
    100 * WEFT_USEC,
    WEFT_MSEC,
    2 * WEFT_MSEC + 345 * WEFT_USEC,
    5 * WEFT_MSEC,
    10 * WEFT_MSEC,
    25 * WEFT_MSEC,
};
#define NDURATIONS (sizeof durations / sizeof durations[0])

/* Sleeps each duration in turn and checks none returned early; also
 * checks errno survives each sleep (the fiber may resume elsewhere). */
static void *sleep_each(void *arg) {
    (void)arg;
    for (size_t i = 0; i < NDURATIONS; i++) {
        wt_set_errno(5000 + (int)i);
        uint64_t t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_sleep(durations[i]), 0);
        uint64_t took = wt_clock_ns() - t0;
        WT_CHECK_EQ(wt_errno(), 5000 + (int)i);
        if (took < durations[i])
            WT_CHECK_EQ(took, durations[i]);
    }
    return NULL;
}

static void test_sleep_never_early_fiber(void **state) {
    weft_runtime *rt = *state;
    assert_int_equal(weft_run(rt, sleep_each, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_sleep_never_early_plain_thread(void **state) {
    (void)state;
    wt_reset();
    sleep_each(NULL);
    WT_ASSERT_NO_FAILURES();
}

static void *sleep_100ms(void *arg) {
    (void)arg;
    uint64_t t0 = wt_clock_ns();
    int rc = weft_sleep(100 * WEFT_MSEC);
    uint64_t took = wt_clock_ns() - t0;
    WT_CHECK_EQ(rc, 0);
    return WT_PTR(took);
}

static void test_sleep_100ms(void **state) {
    weft_runtime *rt = *state;
    void *res = NULL;
    assert_int_equal(weft_run(rt, sleep_100ms, NULL, &res), 0);
    assert_true(WT_INT(res) >= 100 * WEFT_MSEC);
    /* Not wildly late either (generous: sanitizers, loaded CI). */
    assert_true(WT_INT(res) < 100 * WEFT_MSEC + 2 * WEFT_SEC);
    WT_ASSERT_NO_FAILURES();
}

/* Many fibers sleep at once, each a different random duration; each must
 * wake no earlier than its deadline, and the sleeps overlap (the total is
 * far below the sum). */
struct sleeper {
    uint64_t ns;
    uint64_t took;
};

static void *sleep_for(void *arg) {
    struct sleeper *s = arg;
    uint64_t t0 = weft_now();
    WT_CHECK_EQ(weft_sleep(s->ns), 0);
    s->took = weft_now() - t0;
    return NULL;
}

static void test_many_concurrent_sleeps(void **state) {
    weft_runtime *rt = *state;
    enum { N = 2000 };
    uint64_t seed = wt_seed();
    struct sleeper *s = calloc(N, sizeof *s);
    weft_task **t = calloc(N, sizeof *t);
    assert_non_null(s);
    assert_non_null(t);
    uint64_t t0 = wt_clock_ns();
    for (int i = 0; i < N; i++) {
        s[i].ns = wt_rand_below(&seed, 50) * WEFT_MSEC + wt_rand_below(&seed, 1000);
        assert_int_equal(weft_spawn(rt, sleep_for, &s[i], &t[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_join(t[i], NULL), 0);
    uint64_t total = wt_clock_ns() - t0;
    for (int i = 0; i < N; i++)
        if (s[i].took < s[i].ns)
            assert_int_equal(s[i].took, s[i].ns);
    assert_true(total < 20 * WEFT_SEC);
    free(s);
    free(t);
    WT_ASSERT_NO_FAILURES();
}

/* A sleeping fiber frees its worker: on one worker, another fiber runs to
 * completion while the first sleeps. */
static atomic_int other_done;

static void *count_yields(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++)
        weft_yield();
    atomic_store(&other_done, 1);
    return NULL;
}

static void *sleep_while_other_runs(void *arg) {
    (void)arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, count_yields, NULL, &t), 0);
    WT_CHECK_EQ(weft_sleep(500 * WEFT_MSEC), 0);
    int done = atomic_load(&other_done);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    return WT_PTR(done);
}

static void test_sleep_frees_worker(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&other_done, 0);
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    void *res = NULL;
    assert_int_equal(weft_run(rt, sleep_while_other_runs, NULL, &res), 0);
    assert_int_equal(WT_INT(res), 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

static void *sleep_until_each(void *arg) {
    (void)arg;
    /* A deadline in the past returns at once. */
    WT_CHECK_EQ(weft_sleep_until(0), 0);
    WT_CHECK_EQ(weft_sleep_until(weft_now() - WEFT_MSEC), 0);
    for (size_t i = 0; i < NDURATIONS; i++) {
        uint64_t deadline = weft_now() + durations[i];
        WT_CHECK_EQ(weft_sleep_until(deadline), 0);
        uint64_t now = wt_clock_ns();
        if (now < deadline)
            WT_CHECK_EQ(now, deadline);
    }
    return NULL;
}

static void test_sleep_until(void **state) {
    weft_runtime *rt = *state;
    assert_int_equal(weft_run(rt, sleep_until_each, NULL, NULL), 0);
    sleep_until_each(NULL); /* and from the plain thread */
    WT_ASSERT_NO_FAILURES();
}

/* ---- join_for ---------------------------------------------------------- */

static atomic_int release_flag;

static void *wait_release(void *arg) {
    wt_yield_until(&release_flag, 2000000000L);
    return arg;
}

static void *sleeper_returning(void *arg) {
    weft_sleep(20 * WEFT_MSEC);
    return arg;
}

static void *join_for_in_fiber(void *arg) {
    (void)arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, wait_release, WT_PTR(8), &t), 0);
    uint64_t t0 = wt_clock_ns();
    void *res = WT_PTR(123);
    WT_CHECK_EQ(weft_join_for(t, 30 * WEFT_MSEC, &res), -ETIMEDOUT);
    WT_CHECK(wt_clock_ns() - t0 >= 30 * WEFT_MSEC);
    WT_CHECK(res == NULL);
    WT_CHECK_EQ(weft_join_for(t, 0, &res), -ETIMEDOUT);
    WT_CHECK_EQ(weft_join_for(weft_self(), WEFT_MSEC, NULL), -EDEADLK);
    atomic_store(&release_flag, 1);
    WT_CHECK_EQ(weft_join(t, &res), 0); /* the handle is still valid */
    WT_CHECK_EQ(WT_INT(res), 8);

    /* A task that finishes within the timeout. */
    WT_CHECK_EQ(weft_spawn(NULL, sleeper_returning, WT_PTR(9), &t), 0);
    res = NULL;
    WT_CHECK_EQ(weft_join_for(t, 10 * WEFT_SEC, &res), 0);
    WT_CHECK_EQ(WT_INT(res), 9);
    return NULL;
}

static void test_join_for_timeout_then_join(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&release_flag, 0);
    assert_int_equal(weft_run(rt, join_for_in_fiber, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_join_for_plain_thread(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&release_flag, 0);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, wait_release, WT_PTR(4), &t), 0);
    uint64_t t0 = wt_clock_ns();
    void *res = WT_PTR(1);
    assert_int_equal(weft_join_for(t, 50 * WEFT_MSEC, &res), -ETIMEDOUT);
    assert_true(wt_clock_ns() - t0 >= 50 * WEFT_MSEC);
    assert_null(res);
    errno = 99;
    assert_int_equal(weft_join_for(t, 0, NULL), -ETIMEDOUT);
    assert_int_equal(errno, 99);
    atomic_store(&release_flag, 1);
    assert_int_equal(weft_join_for(t, WEFT_FOREVER, &res), 0);
    assert_int_equal(WT_INT(res), 4);

    assert_int_equal(weft_join_for(NULL, WEFT_SEC, &res), -EINVAL);
    assert_int_equal(weft_spawn(rt, sleeper_returning, WT_PTR(6), &t), 0);
    assert_int_equal(weft_join_for(t, 10 * WEFT_SEC, NULL), 0);
}

/* Many fibers time out on joins at once, then all join for real. */
static void *join_for_many(void *arg) {
    weft_task *t = arg;
    WT_CHECK_EQ(weft_join_for(t, 5 * WEFT_MSEC, NULL), -ETIMEDOUT);
    return NULL;
}

static void test_join_for_many_timeouts(void **state) {
    weft_runtime *rt = *state;
    enum { N = 200 };
    atomic_store(&release_flag, 0);
    weft_task *target[N], *joiner[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(weft_spawn(rt, wait_release, WT_PTR(i), &target[i]), 0);
        assert_int_equal(weft_spawn(rt, join_for_many, target[i], &joiner[i]),
                         0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_join(joiner[i], NULL), 0);
    atomic_store(&release_flag, 1);
    for (int i = 0; i < N; i++) {
        void *res = NULL;
        assert_int_equal(weft_join(target[i], &res), 0);
        assert_int_equal(WT_INT(res), i);
    }
    WT_ASSERT_NO_FAILURES();
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_sleep_never_early_fiber),
        cmocka_unit_test(test_sleep_never_early_plain_thread),
        RT_TEST(test_sleep_100ms),
        RT_TEST(test_many_concurrent_sleeps),
        cmocka_unit_test(test_sleep_frees_worker),
        RT_TEST(test_sleep_until),
        RT_TEST(test_join_for_timeout_then_join),
        RT_TEST(test_join_for_plain_thread),
        RT_TEST(test_join_for_many_timeouts),
    };
    return cmocka_run_group_tests_name("api.sleep", tests, NULL, NULL);
}
