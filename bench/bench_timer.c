/*
 * bench/bench_timer.c - the timer (lib/timer.c): sleeps that expire, and
 * deadlines that never fire because the wait ends first.
 *
 * A deadline costs a fiber one entry pushed on the timer thread's
 * submission stack, and a disarm (one CAS) when the wait ends before it.
 * The timer thread moves entries into its heap and readies the expired
 * fibers in batches. The cases below time each of these paths from the
 * fiber's side:
 *
 *   sleep_wake/N      N fibers sleep 10 ms at once: spawn, arm, heap,
 *                     batch wake-up, finish; the sleep itself taken out
 *   submit_cancel     a join_for whose 10 s timeout never fires
 *   submit_cancel_baseline  the same spawn and parked wait, with no timer
 *   sleep_zero        weft_sleep(0): a deadline already past, no timer
 *   cancel_sleeper    a sleeper of 10 s, cancelled and joined
 */
#include <errno.h>
#include <stdatomic.h>

#include "harness.h"

#define SLEEP_NS (10 * WEFT_MSEC)
#define LONG_NS (10 * WEFT_SEC)
/* Enough for a fiber that only sleeps; a million of them fit in memory. */
#define SMALL_STACK ((size_t)16 * 1024)
/* sleep_wake gathers its fibers this many at a time. */
#define GATHER_CHUNK 1024

static const weft_spawn_opts small_stack = {.stack_size = SMALL_STACK};

static void *one_fn(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)1;
}

/* ---- sleep_wake/N: N fibers sleep SLEEP_NS at once ----------------------- */

/* Sleeps SLEEP_NS from its own start; returns 1 if it woke as promised
 * (weft_sleep returned 0, not before the deadline). */
static void *sleeper_fn(void *arg) {
    (void)arg;
    uint64_t deadline = weft_now() + SLEEP_NS;
    int rc = weft_sleep(SLEEP_NS);
    return (void *)(uintptr_t)(rc == 0 && weft_now() >= deadline);
}

struct sleep_wake {
    weft_task **tasks;
    uint64_t n;
};

static int sleep_wake_setup(struct wb_ctx *c) {
    struct sleep_wake *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->n = (uint64_t)c->arg;
    s->tasks = calloc(s->n, sizeof(*s->tasks));
    if (s->tasks == NULL) {
        free(s);
        return -ENOMEM;
    }
    c->data = s;
    return 0;
}

static void sleep_wake_teardown(struct wb_ctx *c) {
    struct sleep_wake *s = c->data;
    free(s->tasks);
    free(s);
}

/* Spawns the N sleepers from this fiber, then gathers them in chunks;
 * returns how many woke as promised. */
static void *sleep_wake_fiber(void *arg) {
    struct sleep_wake *s = arg;
    for (uint64_t i = 0; i < s->n; i++)
        WB_CHECK_OK(weft_spawn_ex(NULL, sleeper_fn, NULL, &small_stack, &s->tasks[i]));
    uint64_t woke = 0;
    void *r[GATHER_CHUNK];
    for (uint64_t i = 0; i < s->n; i += GATHER_CHUNK) {
        size_t k = s->n - i < GATHER_CHUNK ? (size_t)(s->n - i) : GATHER_CHUNK;
        WB_CHECK_OK(weft_gather(&s->tasks[i], k, r));
        for (size_t j = 0; j < k; j++)
            woke += (uintptr_t)r[j];
    }
    return (void *)(uintptr_t)woke;
}

/* One iteration: the N sleepers from spawn to the last wake-up. Items are
 * fibers; the counter is the time beyond the sleep, per fiber, in ns. */
static uint64_t sleep_wake(struct wb_ctx *c, uint64_t iterations) {
    struct sleep_wake *s = c->data;
    for (uint64_t it = 0; it < iterations; it++) {
        void *woke;
        uint64_t t0 = weft_now();
        WB_CHECK_OK(weft_run(c->rt, sleep_wake_fiber, s, &woke));
        uint64_t dt = weft_now() - t0;
        WB_CHECK_EQ("timer/sleep_wake: fibers woken", (uintptr_t)woke, s->n);
        c->counter += ((double)dt - (double)SLEEP_NS) / (double)s->n;
    }
    return iterations * s->n;
}

/* ---- submit_cancel: a timeout that never fires --------------------------- */

/* join_for never runs the task inline (a body cannot be left on time), so
 * each call registers, arms a LONG_NS timer and parks; on one worker the
 * task can only run then. It finishes, wakes the joiner, which disarms. */
static void *submit_cancel_fiber(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        weft_task *t;
        void *r;
        WB_CHECK_OK(weft_spawn(NULL, one_fn, NULL, &t));
        WB_CHECK_OK(weft_join_for(t, LONG_NS, &r));
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

/* The same spawn and the same parked wait for it, without a deadline:
 * weft_wait_any does not run the task inline either, and with
 * WEFT_FOREVER it arms nothing. The join then finds the task done. */
static void *submit_cancel_baseline_fiber(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        weft_task *t;
        void *r;
        size_t idx;
        WB_CHECK_OK(weft_spawn(NULL, one_fn, NULL, &t));
        WB_CHECK_OK(weft_wait_any(&t, 1, WEFT_FOREVER, &idx));
        WB_CHECK_OK(weft_join(t, &r));
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

static uint64_t submit_cancel(struct wb_ctx *c, uint64_t iterations) {
    void *sum;
    WB_CHECK_OK(weft_run(c->rt, submit_cancel_fiber, (void *)(uintptr_t)iterations, &sum));
    WB_CHECK_EQ("timer/submit_cancel", (uintptr_t)sum, iterations);
    return iterations;
}

static uint64_t submit_cancel_baseline(struct wb_ctx *c, uint64_t iterations) {
    void *sum;
    WB_CHECK_OK(weft_run(c->rt, submit_cancel_baseline_fiber, (void *)(uintptr_t)iterations,
                         &sum));
    WB_CHECK_EQ("timer/submit_cancel_baseline", (uintptr_t)sum, iterations);
    return iterations;
}

/* ---- sleep_zero: weft_sleep(0) ------------------------------------------- */

static void *sleep_zero_fiber(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint64_t ok = 0;
    for (uint64_t i = 0; i < n; i++)
        ok += weft_sleep(0) == 0;
    return (void *)(uintptr_t)ok;
}

static uint64_t sleep_zero(struct wb_ctx *c, uint64_t iterations) {
    void *ok;
    WB_CHECK_OK(weft_run(c->rt, sleep_zero_fiber, (void *)(uintptr_t)iterations, &ok));
    WB_CHECK_EQ("timer/sleep_zero", (uintptr_t)ok, iterations);
    return iterations;
}

/* ---- cancel_sleeper: arm, cancel, wake, disarm, join ---------------------- */

/* Says it has started, then sleeps LONG_NS; returns 1 if the sleep was
 * cancelled (it never lasts LONG_NS in this case). */
static void *long_sleeper_fn(void *arg) {
    atomic_int *started = arg;
    atomic_store_explicit(started, 1, memory_order_release);
    return (void *)(uintptr_t)(weft_sleep(LONG_NS) == -ECANCELED);
}

/* On one worker the sleeper, once it has said it started, runs on until
 * it parks in its sleep (timer armed) before this fiber runs again; so
 * the cancel always ends a sleep that is armed, and never a task that has
 * not started (that one would just be dropped). */
static void *cancel_sleeper_fiber(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    uint64_t cancelled = 0;
    for (uint64_t i = 0; i < n; i++) {
        atomic_int started = 0;
        weft_task *t;
        void *r;
        WB_CHECK_OK(weft_spawn_ex(NULL, long_sleeper_fn, &started, &small_stack, &t));
        while (!atomic_load_explicit(&started, memory_order_acquire))
            weft_yield();
        WB_CHECK_OK(weft_cancel(t));
        WB_CHECK_OK(weft_join(t, &r));
        cancelled += (uintptr_t)r;
    }
    return (void *)(uintptr_t)cancelled;
}

static uint64_t cancel_sleeper(struct wb_ctx *c, uint64_t iterations) {
    void *cancelled;
    WB_CHECK_OK(weft_run(c->rt, cancel_sleeper_fiber, (void *)(uintptr_t)iterations,
                         &cancelled));
    WB_CHECK_EQ("timer/cancel_sleeper: sleeps cancelled", (uintptr_t)cancelled, iterations);
    return iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "timer/sleep_wake",
        .args = {1000, 100000, 1000000},
        .nargs = 3,
        .real_time = 1,
        .unit = WB_MS,
        .setup = sleep_wake_setup,
        .run = sleep_wake,
        .teardown = sleep_wake_teardown,
        .counter = "ns_per_fiber",
    },
    {
        .name = "timer/submit_cancel",
        .workers = 1,
        .real_time = 1,
        .run = submit_cancel,
    },
    {
        .name = "timer/submit_cancel_baseline",
        .workers = 1,
        .real_time = 1,
        .run = submit_cancel_baseline,
    },
    {
        .name = "timer/sleep_zero",
        .real_time = 1,
        .run = sleep_zero,
    },
    {
        .name = "timer/cancel_sleeper",
        .workers = 1,
        .real_time = 1,
        .run = cancel_sleeper,
    },
};

WB_SUITE(timer, cases);
