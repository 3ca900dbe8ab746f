/*
 * tests/common/test_api.h - helpers the black-box API tests share: a
 * runtime per test group, threads and tasks started with checks, and the
 * time constants they wait with. Main thread only (cmocka asserts).
 * Include after <cmocka.h> and "test_util.h".
 */
#ifndef WEFT_TEST_API_H
#define WEFT_TEST_API_H

#include <pthread.h>

#define WORKERS 2
/* Time for a fiber or thread that has announced itself to reach its wait. */
#define SETTLE (30 * WEFT_MSEC)
/* A wait that a wake-up (or a cancel, or a close) must end ends well
 * before this. */
#define PROMPT (5 * WEFT_SEC)
/* A timeout that must not fire within a test. */
#define LONG_WAIT (10 * WEFT_SEC)
/* How long the main thread polls for progress before it gives up. */
#define POLL (10 * WEFT_SEC)

static inline int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(WORKERS);
    return *state ? 0 : -1;
}

static inline int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

/* ---- Helpers ----------------------------------------------------------- */

static inline pthread_t start_thread(void *(*fn)(void *), void *arg) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    return th;
}

static inline void join_thread(pthread_t th) {
    assert_int_equal(pthread_join(th, NULL), 0);
}

static inline weft_task *spawn(weft_runtime *rt, weft_fn fn, void *arg) {
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, fn, arg, &t), 0);
    return t;
}

static inline void join_task(weft_task *t) {
    assert_int_equal(weft_join(t, NULL), 0);
}

static inline void settle(void) {
    wt_thread_sleep_ns(SETTLE);
}

/* Main thread: polls until the atomic reaches target (false: gave up). */
static inline bool poll_ge(atomic_int *v, int target) {
    return wt_wait_atomic_ge(v, target, POLL);
}

/* Fibers that have entered yield_until_cancelled() (spawn_running). */
static atomic_int yielders_started;

/* Fiber: yields until this fiber has been cancelled (bounded). */
static inline bool yield_until_cancelled(void) {
    atomic_fetch_add(&yielders_started, 1);
    uint64_t deadline = wt_clock_ns() + POLL;
    while (!weft_cancelled()) {
        if (wt_clock_ns() > deadline) {
            WT_CHECK(!"fiber was not cancelled in time");
            return false;
        }
        weft_yield();
    }
    return true;
}

/* Main thread: spawn fn, which starts with yield_until_cancelled(), and
 * return once it runs: a cancel then finds it started. (A fixed pause
 * instead was not always enough on a loaded machine, and a task
 * cancelled before it starts never runs: its join is -ECANCELED.) */
static inline weft_task *spawn_running(weft_runtime *rt, weft_fn fn, void *arg) {
    int before = atomic_load(&yielders_started);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, fn, arg, &t), 0);
    assert_true(poll_ge(&yielders_started, before + 1));
    return t;
}

/* Records elapsed < lower bound as a failure showing both values. */
#define CHECK_NOT_EARLY(took, min)                                           \
    do {                                                                     \
        if ((took) < (min))                                                  \
            WT_CHECK_EQ(took, min);                                          \
    } while (0)

#endif /* WEFT_TEST_API_H */
