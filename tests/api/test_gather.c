/*
 * tests/api/test_gather.c - black-box: weft_gather (results, errors,
 * argument checks that consume nothing) and weft_wait_any (lowest finished
 * index, timeouts, argument checks; consumes nothing).
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
#define SENTINEL_PTR ((void *)(uintptr_t)0x5a5a)

static int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(WORKERS);
    return *state ? 0 : -1;
}

static int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

static void *square(void *arg) {
    uintptr_t x = WT_INT(arg);
    for (uintptr_t i = 0; i < x % 5; i++)
        weft_yield();
    return WT_PTR(x * x);
}

/* Tasks gated by per-task flags, so a test decides who finishes when. */
enum { MAXGATES = 8 };
static atomic_int gate[MAXGATES];
static atomic_int done[MAXGATES];

static void *gated(void *arg) {
    int i = (int)WT_INT(arg);
    wt_yield_until(&gate[i], 2000000000L);
    atomic_store(&done[i], 1);
    return WT_PTR(100 + i);
}

static void reset_gates(void) {
    for (int i = 0; i < MAXGATES; i++) {
        atomic_store(&gate[i], 0);
        atomic_store(&done[i], 0);
    }
}

/* ---- gather ------------------------------------------------------------ */

static void *gather_in_fiber(void *arg) {
    int n = (int)WT_INT(arg);
    weft_task **t = calloc((size_t)n, sizeof *t);
    void **r = calloc((size_t)n, sizeof *r);
    if (!t || !r) {
        free(t);
        free(r);
        return WT_PTR(0);
    }
    for (int i = 0; i < n; i++)
        WT_CHECK_EQ(weft_spawn(NULL, square, WT_PTR(i), &t[i]), 0);
    WT_CHECK_EQ(weft_gather(t, (size_t)n, r), 0);
    int ok = 1;
    for (int i = 0; i < n; i++)
        if (WT_INT(r[i]) != (uintptr_t)i * (uintptr_t)i)
            ok = 0;
    free(t);
    free(r);
    return WT_PTR(ok);
}

static void test_gather_results_in_order(void **state) {
    weft_runtime *rt = *state;
    void *res = NULL;
    assert_int_equal(weft_run(rt, gather_in_fiber, WT_PTR(1), &res), 0);
    assert_int_equal(WT_INT(res), 1);
    assert_int_equal(weft_run(rt, gather_in_fiber, WT_PTR(1000), &res), 0);
    assert_int_equal(WT_INT(res), 1);

    /* From a plain thread. */
    enum { N = 300 };
    weft_task *t[N];
    void *r[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_spawn(rt, square, WT_PTR(i), &t[i]), 0);
    assert_int_equal(weft_gather(t, N, r), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(WT_INT(r[i]), i * i);
    WT_ASSERT_NO_FAILURES();
}

static void test_gather_null_results(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    weft_task *t[4];
    for (int i = 0; i < 4; i++) {
        atomic_store(&gate[i], 1);
        assert_int_equal(weft_spawn(rt, gated, WT_PTR(i), &t[i]), 0);
    }
    assert_int_equal(weft_gather(t, 4, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&done[i]), 1);
}

/* Tasks finish in the reverse of their order in the array. */
static void test_gather_out_of_order_completion(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    weft_task *t[MAXGATES];
    void *r[MAXGATES];
    for (int i = 0; i < MAXGATES; i++)
        assert_int_equal(weft_spawn(rt, gated, WT_PTR(i), &t[i]), 0);
    for (int i = MAXGATES - 1; i >= 0; i--) {
        atomic_store(&gate[i], 1);
        assert_true(wt_wait_atomic_ge(&done[i], 1, 10 * WEFT_SEC));
    }
    assert_int_equal(weft_gather(t, MAXGATES, r), 0);
    for (int i = 0; i < MAXGATES; i++)
        assert_int_equal(WT_INT(r[i]), 100 + i);
    WT_ASSERT_NO_FAILURES();
}

/* gather reports the lowest index's error and still consumes every
 * handle. On one worker, tasks spawned and cancelled before the spawner
 * yields never start. */
static atomic_int never_ran;

static void *must_not_run(void *arg) {
    (void)arg;
    atomic_fetch_add(&never_ran, 1);
    return SENTINEL_PTR;
}

static void *gather_with_cancelled(void *arg) {
    (void)arg;
    weft_task *t[5];
    void *r[5];
    for (int i = 0; i < 5; i++) {
        weft_fn fn = (i == 1 || i == 3) ? must_not_run : square;
        WT_CHECK_EQ(weft_spawn(NULL, fn, WT_PTR(i), &t[i]), 0);
    }
    WT_CHECK_EQ(weft_cancel(t[3]), 0);
    WT_CHECK_EQ(weft_cancel(t[1]), 0);
    /* Every handle is consumed even though it fails; the results of an
     * error return are unspecified. */
    return WT_PTR((intptr_t)weft_gather(t, 5, r));
}

static void test_gather_reports_first_error(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&never_ran, 0);
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    void *res = NULL;
    assert_int_equal(weft_run(rt, gather_with_cancelled, NULL, &res), 0);
    assert_int_equal((int)(intptr_t)res, -ECANCELED);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&never_ran), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A bad entry is found before waiting: nothing is consumed, so every good
 * handle can still be joined afterwards. */
static void *gather_self(void *arg) {
    weft_task **t = arg;
    weft_task *ts[2] = {t[0], weft_self()};
    return WT_PTR((intptr_t)weft_gather(ts, 2, NULL));
}

static void test_gather_bad_args_consume_nothing(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        atomic_store(&gate[i], 1);
        assert_int_equal(weft_spawn(rt, gated, WT_PTR(i), &t[i]), 0);
    }
    void *r[3] = {SENTINEL_PTR, SENTINEL_PTR, SENTINEL_PTR};

    weft_task *with_null[3] = {t[0], NULL, t[2]};
    assert_int_equal(weft_gather(with_null, 3, r), -EINVAL);
    weft_task *null_last[3] = {t[0], t[1], NULL};
    assert_int_equal(weft_gather(null_last, 3, r), -EINVAL);
    assert_int_equal(weft_gather(NULL, 0, r), -EINVAL);
    assert_int_equal(weft_gather(NULL, 3, r), -EINVAL);

    /* The caller itself as an entry: -EDEADLK, t[0] not consumed. */
    weft_task *self_args[1] = {t[0]};
    void *res = NULL;
    assert_int_equal(weft_run(rt, gather_self, self_args, &res), 0);
    assert_int_equal((int)(intptr_t)res, -EDEADLK);

    for (int i = 0; i < 3; i++) {
        res = NULL;
        assert_int_equal(weft_join(t[i], &res), 0);
        assert_int_equal(WT_INT(res), 100 + i);
    }
}

/* n == 0 is -EINVAL even with a real array (weft.h). */
static void test_gather_empty_einval(void **state) {
    (void)state;
    weft_task *none[1] = {NULL};
    void *r[1] = {NULL};
    assert_int_equal(weft_gather(none, 0, NULL), -EINVAL);
    assert_int_equal(weft_gather(none, 0, r), -EINVAL);
}

/* ---- wait_any ---------------------------------------------------------- */

static void test_wait_any_lowest_finished_index(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(weft_spawn(rt, gated, WT_PTR(i), &t[i]), 0);

    /* Finish 3 then 1; the lowest finished index is 1. */
    atomic_store(&gate[3], 1);
    assert_true(wt_wait_atomic_ge(&done[3], 1, 10 * WEFT_SEC));
    atomic_store(&gate[1], 1);
    assert_true(wt_wait_atomic_ge(&done[1], 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(10 * WEFT_MSEC); /* let both return */

    size_t idx = 99;
    assert_int_equal(weft_wait_any(t, 4, WEFT_FOREVER, &idx), 0);
    assert_int_equal(idx, 1);
    /* Nothing consumed: asking again gives the same answer. */
    idx = 99;
    assert_int_equal(weft_wait_any(t, 4, 0, &idx), 0);
    assert_int_equal(idx, 1);
    /* Only the unfinished ones: times out. */
    weft_task *pending[2] = {t[0], t[2]};
    uint64_t t0 = wt_clock_ns();
    idx = 99;
    assert_int_equal(weft_wait_any(pending, 2, 20 * WEFT_MSEC, &idx),
                     -ETIMEDOUT);
    assert_true(wt_clock_ns() - t0 >= 20 * WEFT_MSEC);
    assert_int_equal(idx, 99); /* an error leaves *index as it was */
    assert_int_equal(weft_wait_any(pending, 2, 0, &idx), -ETIMEDOUT);
    assert_int_equal(idx, 99);

    atomic_store(&gate[2], 1);
    idx = 99;
    assert_int_equal(weft_wait_any(pending, 2, 10 * WEFT_SEC, &idx), 0);
    assert_int_equal(idx, 1); /* t[2] is pending[1] */
    atomic_store(&gate[0], 1);
    assert_true(wt_wait_atomic_ge(&done[0], 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(10 * WEFT_MSEC);
    assert_int_equal(weft_wait_any(t, 4, WEFT_FOREVER, &idx), 0);
    assert_int_equal(idx, 0);

    for (int i = 0; i < 4; i++) {
        void *res = NULL;
        assert_int_equal(weft_join(t[i], &res), 0);
        assert_int_equal(WT_INT(res), 100 + i);
    }
}

/* wait_any from a fiber: parks until one finishes. */
static void *wait_any_in_fiber(void *arg) {
    (void)arg;
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        WT_CHECK_EQ(weft_spawn(NULL, gated, WT_PTR(i), &t[i]), 0);
    size_t idx = 99;
    WT_CHECK_EQ(weft_wait_any(t, 3, 10 * WEFT_MSEC, &idx), -ETIMEDOUT);
    atomic_store(&gate[2], 1);
    WT_CHECK_EQ(weft_wait_any(t, 3, WEFT_FOREVER, &idx), 0);
    WT_CHECK_EQ(idx, 2);
    WT_CHECK_EQ(weft_wait_any(&t[2], 1, 0, &idx), 0);
    WT_CHECK_EQ(idx, 0);
    WT_CHECK_EQ(weft_wait_any(t, 3, 0, &idx), 0);
    WT_CHECK_EQ(idx, 2);
    weft_task *with_self[2] = {t[0], weft_self()};
    WT_CHECK_EQ(weft_wait_any(with_self, 2, 0, &idx), -EDEADLK);
    atomic_store(&gate[0], 1);
    atomic_store(&gate[1], 1);
    void *r[3];
    WT_CHECK_EQ(weft_gather(t, 3, r), 0);
    for (int i = 0; i < 3; i++)
        WT_CHECK_EQ(WT_INT(r[i]), 100 + i);
    return NULL;
}

static void test_wait_any_from_fiber(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    assert_int_equal(weft_run(rt, wait_any_in_fiber, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_wait_any_bad_args(void **state) {
    weft_runtime *rt = *state;
    reset_gates();
    weft_task *t[2];
    for (int i = 0; i < 2; i++) {
        atomic_store(&gate[i], 1);
        assert_int_equal(weft_spawn(rt, gated, WT_PTR(i), &t[i]), 0);
    }
    size_t idx = 7;
    assert_int_equal(weft_wait_any(NULL, 2, 0, &idx), -EINVAL);
    assert_int_equal(weft_wait_any(t, 2, 0, NULL), -EINVAL);
    assert_int_equal(weft_wait_any(t, 0, 0, &idx), -EINVAL);
    weft_task *with_null[2] = {t[0], NULL};
    assert_int_equal(weft_wait_any(with_null, 2, WEFT_FOREVER, &idx), -EINVAL);
    assert_int_equal(idx, 7); /* untouched by every refusal */
    /* None consumed. */
    assert_int_equal(weft_gather(t, 2, NULL), 0);
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_gather_results_in_order),
        RT_TEST(test_gather_null_results),
        RT_TEST(test_gather_out_of_order_completion),
        cmocka_unit_test(test_gather_reports_first_error),
        RT_TEST(test_gather_bad_args_consume_nothing),
        cmocka_unit_test(test_gather_empty_einval),
        RT_TEST(test_wait_any_lowest_finished_index),
        RT_TEST(test_wait_any_from_fiber),
        RT_TEST(test_wait_any_bad_args),
    };
    return cmocka_run_group_tests_name("api.gather", tests, NULL, NULL);
}
