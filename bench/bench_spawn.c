/*
 * bench/bench_spawn.c - the life cycle of a task: spawn, first run (which
 * takes a stack), finish, join. The task body is empty, so what is timed
 * is the runtime's own work.
 */
#include <errno.h>

#include "harness.h"

static void *empty_fn(void *arg) {
    return arg;
}

/* One spawn then one join, `n` times; every task returns 1 and the sum is
 * checked, so no join can be skipped. */
static uint64_t spawn_join_loop(weft_runtime *rt, uint64_t n) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        weft_task *t;
        void *r;
        WB_CHECK_OK(weft_spawn(rt, empty_fn, (void *)(uintptr_t)1, &t));
        WB_CHECK_OK(weft_join(t, &r));
        sum += (uintptr_t)r;
    }
    return sum;
}

static void *spawn_join_fiber(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    return (void *)(uintptr_t)spawn_join_loop(NULL, n);
}

static uint64_t from_fiber(struct wb_ctx *c, uint64_t iterations) {
    void *sum;
    WB_CHECK_OK(weft_run(c->rt, spawn_join_fiber, (void *)(uintptr_t)iterations, &sum));
    WB_CHECK_EQ("spawn_join/from_fiber", (uintptr_t)sum, iterations);
    return iterations;
}

/* The benchmark thread is a plain thread: spawns go through the runtime's
 * injection queue and each join blocks the thread. */
static uint64_t from_thread(struct wb_ctx *c, uint64_t iterations) {
    uint64_t sum = spawn_join_loop(c->rt, iterations);
    WB_CHECK_EQ("spawn_join/from_thread", sum, iterations);
    return iterations;
}

/* ---- spawn_n_join_all/N: spawn N tasks, then join them all ------------- */

struct n_join_all {
    weft_task **tasks;
    uint64_t n;
    uint64_t rounds;
};

static int n_setup(struct wb_ctx *c) {
    struct n_join_all *s = calloc(1, sizeof(*s));
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

static void n_teardown(struct wb_ctx *c) {
    struct n_join_all *s = c->data;
    free(s->tasks);
    free(s);
}

static void *n_join_all_fiber(void *arg) {
    struct n_join_all *s = arg;
    uint64_t sum = 0;
    for (uint64_t r = 0; r < s->rounds; r++) {
        for (uint64_t i = 0; i < s->n; i++)
            WB_CHECK_OK(weft_spawn(NULL, empty_fn, (void *)(uintptr_t)1, &s->tasks[i]));
        for (uint64_t i = 0; i < s->n; i++) {
            void *res;
            WB_CHECK_OK(weft_join(s->tasks[i], &res));
            sum += (uintptr_t)res;
        }
    }
    return (void *)(uintptr_t)sum;
}

/* One iteration is one round of N spawns and N joins; items are tasks. */
static uint64_t n_join_all(struct wb_ctx *c, uint64_t iterations) {
    struct n_join_all *s = c->data;
    void *sum;
    s->rounds = iterations;
    WB_CHECK_OK(weft_run(c->rt, n_join_all_fiber, s, &sum));
    WB_CHECK_EQ("spawn_n_join_all", (uintptr_t)sum, iterations * s->n);
    return iterations * s->n;
}

static const struct wb_case cases[] = {
    {
        .name = "spawn_join/from_fiber",
        .real_time = 1,
        .run = from_fiber,
    },
    {
        .name = "spawn_join/from_thread",
        .real_time = 1,
        .run = from_thread,
    },
    {
        .name = "spawn_n_join_all",
        .args = {1000, 10000, 100000},
        .nargs = 3,
        .real_time = 1,
        .unit = WB_US,
        .setup = n_setup,
        .run = n_join_all,
        .teardown = n_teardown,
    },
};

WB_SUITE(spawn, cases);
