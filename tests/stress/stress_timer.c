/*
 * tests/stress/stress_timer.c - the timer thread under load: many
 * concurrent sleeps, cancels racing with wake-ups, wait_any with many
 * tasks finishing together, destroy waiting for sleepers.
 * Usage: stress_timer WORKERS [SLEEPERS]
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "test_util.h"

static struct {
    unsigned workers;
    long sleepers;
} P;

static weft_runtime *new_runtime(void) {
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    return rt;
}

static const weft_spawn_opts small_stack = {.stack_size = 16 * 1024};

/* ---- Many sleepers: each wakes once, never early ---------------------- */

static atomic_long woke;

static void *sleep_for_arg(void *p) {
    uint64_t ns = (uint64_t)WT_INT(p);
    uint64_t start = weft_now();
    WT_CHECK_EQ(weft_sleep(ns), 0);
    WT_CHECK(weft_now() - start >= ns);
    atomic_fetch_add(&woke, 1);
    return NULL;
}

static void *spawn_sleepers(void *p) {
    long n = (long)WT_INT(p);
    uint64_t seed = 12345;
    for (long i = 0; i < n; i++) {
        /* 50..250 ms, spread so the timer fires many batches. */
        uint64_t ns = (50 + wt_rand_below(&seed, 200)) * WEFT_MSEC;
        WT_CHECK_EQ(weft_spawn_ex(NULL, sleep_for_arg, WT_PTR(ns), &small_stack, NULL), 0);
    }
    return NULL;
}

/* Destroy waits for every pending sleeper (all detached). */
static void test_many_sleepers_then_destroy(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&woke, 0);
    weft_runtime *rt = new_runtime();
    assert_int_equal(weft_run(rt, spawn_sleepers, WT_PTR(P.sleepers), NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&woke), P.sleepers);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Cancels racing with wake-ups -------------------------------------- */

static atomic_long slept_through, cancelled, started_long;

static void *sleep_some(void *p) {
    int rc = weft_sleep((uint64_t)WT_INT(p));
    if (rc == 0)
        atomic_fetch_add(&slept_through, 1);
    else if (rc == -ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    else
        WT_CHECK_EQ(rc, 0);
    return WT_PTR(rc);
}

/* Tasks sleep 1..10 ms and are all cancelled at about 5 ms, so many
 * cancels land right on a wake-up: each sleep ends exactly once, with 0
 * or -ECANCELED, and cancel says -ESRCH only when the task had finished. */
static void *cancel_around_deadline(void *p) {
    long n = (long)WT_INT(p);
    uint64_t seed = 777;
    weft_task **t = calloc((size_t)n, sizeof *t);
    WT_CHECK(t != NULL);
    if (!t)
        return NULL;
    for (long i = 0; i < n; i++) {
        uint64_t ns = WEFT_MSEC + wt_rand_below(&seed, 9 * 1000) * WEFT_USEC;
        WT_CHECK_EQ(weft_spawn_ex(NULL, sleep_some, WT_PTR(ns), &small_stack, &t[i]), 0);
    }
    weft_sleep(5 * WEFT_MSEC);
    for (long i = 0; i < n; i++) {
        int rc = weft_cancel(t[i]);
        WT_CHECK(rc == 0 || rc == -ESRCH);
        if (wt_rand_below(&seed, 64) == 0)
            weft_yield();
    }
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        int rc = weft_join(t[i], &r);
        /* Cancelled before it ran: -ECANCELED from join, never ran. */
        WT_CHECK(rc == 0 || rc == -ECANCELED);
    }
    free(t);
    return NULL;
}

static void test_cancel_races_wake(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&slept_through, 0);
    atomic_store(&cancelled, 0);
    weft_runtime *rt = new_runtime();
    long n = P.sleepers / 10 + 1;
    if (n > 1000)
        n = 1000; /* few enough to all start before the cancels */
    for (int round = 0; round < 20; round++)
        assert_int_equal(weft_run(rt, cancel_around_deadline, WT_PTR(n), NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    /* Every task that ran ended its sleep exactly once. */
    assert_true(atomic_load(&slept_through) + atomic_load(&cancelled) <= 20 * n);
    print_message("cancel race: %ld slept through, %ld cancelled of %ld\n",
                  atomic_load(&slept_through), atomic_load(&cancelled), 20 * n);
    WT_ASSERT_NO_FAILURES();
}

/* ---- wait_any with many finishing together ----------------------------- */

static void *sleep_until_arg(void *p) {
    weft_sleep_until((uint64_t)WT_INT(p));
    return p;
}

static void *wait_any_burst(void *p) {
    (void)p;
    enum { N = 64 };
    for (int round = 0; round < 20; round++) {
        weft_task *t[N];
        uint64_t deadline = weft_now() + 3 * WEFT_MSEC;
        for (int i = 0; i < N; i++)
            WT_CHECK_EQ(weft_spawn_ex(NULL, sleep_until_arg, WT_PTR(deadline), &small_stack, &t[i]), 0);
        size_t idx = N;
        WT_CHECK_EQ(weft_wait_any(t, N, 5 * WEFT_SEC, &idx), 0);
        WT_CHECK(idx < N);
        WT_CHECK(weft_now() >= deadline);
        /* All tasks are still ours: wait_any consumed none. */
        void *r[N];
        WT_CHECK_EQ(weft_gather(t, N, r), 0);
        for (int i = 0; i < N; i++)
            WT_CHECK((uint64_t)WT_INT(r[i]) == deadline);
    }
    return NULL;
}

static void test_wait_any_burst(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    assert_int_equal(weft_run(rt, wait_any_burst, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Cancels racing with the start of a wait --------------------------- */

/* Sleeps far longer than the test may take: only a cancel ends it. */
static void *sleep_long(void *p) {
    (void)p;
    atomic_fetch_add(&started_long, 1);
    return WT_PTR(weft_sleep(60 * WEFT_SEC));
}

/* Each task is cancelled as it starts its sleep, from another worker: the
 * cancel lands before the wait, while it is being prepared, or while it
 * parks. None may be lost (the sleep would last a minute): either the
 * canceller sees the wait, or the wait sees the flag when it parks. */
static void *cancel_as_waits_start(void *p) {
    long n = (long)WT_INT(p);
    uint64_t seed = 4242;
    for (long i = 0; i < n; i++) {
        weft_task *t;
        long before = atomic_load(&started_long);
        WT_CHECK_EQ(weft_spawn_ex(NULL, sleep_long, NULL, &small_stack, &t), 0);
        /* Let another worker steal it and start it, sometimes. */
        uint64_t spins = wt_rand_below(&seed, 4) == 0 ? 0 : wt_rand_below(&seed, 3000);
        for (uint64_t k = 0; k < spins && atomic_load(&started_long) == before; k++)
            ;
        int rc = weft_cancel(t);
        WT_CHECK_EQ(rc, 0);
        void *r = NULL;
        rc = weft_join(t, &r);
        WT_CHECK(rc == -ECANCELED || (rc == 0 && (int)(intptr_t)r == -ECANCELED));
    }
    return NULL;
}

static void test_cancel_races_wait_start(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    long n = P.sleepers / 10 + 1;
    if (n > 20000)
        n = 20000;
    uint64_t t0 = weft_now();
    assert_int_equal(weft_run(rt, cancel_as_waits_start, WT_PTR(n), NULL), 0);
    /* A lost cancel would have held the run for a minute. */
    assert_true(weft_now() - t0 < 30 * WEFT_SEC);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.sleepers = wt_arg(argc, argv, 2, 100000);
    fprintf(stderr, "stress_timer: workers=%u sleepers=%ld\n", P.workers, P.sleepers);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_sleepers_then_destroy),
        cmocka_unit_test(test_cancel_races_wake),
        cmocka_unit_test(test_cancel_races_wait_start),
        cmocka_unit_test(test_wait_any_burst),
    };
    return cmocka_run_group_tests_name("stress.timer", tests, NULL, NULL);
}
