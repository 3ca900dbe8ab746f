/*
 * bench/bench_scaling.c - parallel speed-up: one fiber spawns two equal
 * CPU-bound tasks (about 20 ms each) and joins both. With 1 worker they
 * run one after the other; with 2 they should run side by side, so the
 * ratio of the two cases' times is the speed-up the scheduler delivers
 * (2.0 at best). It shows whether the second task gets stolen promptly.
 */
#include "harness.h"

#define TASK_NS (20 * WEFT_MSEC)
#define SEED 0x9E3779B97F4A7C15ull

/* xorshift64: a serial dependency chain of integer work whose result is
 * returned and checked, so the compiler can neither drop nor shorten it. */
static uint64_t cpu_work(uint64_t rounds) {
    uint64_t x = SEED;
    for (uint64_t i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

/* Calibrated once, so that workers:1 and workers:2 do the same work. */
static uint64_t task_rounds;
static uint64_t task_result;

static int calibrate(struct wb_ctx *c) {
    (void)c;
    if (task_rounds != 0)
        return 0;
    uint64_t rounds = 1 << 20;
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = weft_now();
        task_result = cpu_work(rounds);
        uint64_t dt = weft_now() - t0;
        if (dt < best)
            best = dt;
    }
    if (best == 0)
        best = 1;
    task_rounds = (uint64_t)((double)rounds * (double)TASK_NS / (double)best);
    task_result = cpu_work(task_rounds);
    return 0;
}

static void *cpu_task(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)cpu_work(task_rounds);
}

static void *two_tasks(void *arg) {
    (void)arg;
    weft_task *t[2];
    void *r[2];
    WB_CHECK_OK(weft_spawn(NULL, cpu_task, NULL, &t[0]));
    WB_CHECK_OK(weft_spawn(NULL, cpu_task, NULL, &t[1]));
    WB_CHECK_OK(weft_join(t[0], &r[0]));
    WB_CHECK_OK(weft_join(t[1], &r[1]));
    WB_CHECK_EQ("scaling/two_cpu_tasks", (uintptr_t)r[0], task_result);
    WB_CHECK_EQ("scaling/two_cpu_tasks", (uintptr_t)r[1], task_result);
    return NULL;
}

/* Items are tasks, two per iteration. */
static uint64_t two_cpu_tasks(struct wb_ctx *c, uint64_t iterations) {
    for (uint64_t i = 0; i < iterations; i++)
        WB_CHECK_OK(weft_run(c->rt, two_tasks, NULL, NULL));
    return 2 * iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "scaling/two_cpu_tasks",
        .arg_name = "workers",
        .args = {1, 2},
        .nargs = 2,
        .workers = WB_WORKERS_FROM_ARG,
        .real_time = 1,
        .unit = WB_MS,
        .setup = calibrate,
        .run = two_cpu_tasks,
    },
};

WB_SUITE(scaling, cases);
