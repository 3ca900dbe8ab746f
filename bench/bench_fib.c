/*
 * bench/bench_fib.c - fork-join recursion with almost no work per task:
 * fib(n) spawns fib(n-1) as a task, computes fib(n-2) itself, then joins.
 * It measures spawn, steal and join under load on every worker, the way
 * Cilk's and TBB's fib examples do.
 */
#include "harness.h"

static uint64_t fib(uint64_t n);

static void *fib_task(void *arg) {
    return (void *)(uintptr_t)fib((uint64_t)(uintptr_t)arg);
}

static uint64_t fib(uint64_t n) {
    if (n < 2)
        return n;
    weft_task *t;
    void *x;
    WB_CHECK_OK(weft_spawn(NULL, fib_task, (void *)(uintptr_t)(n - 1), &t));
    uint64_t y = fib(n - 2);
    WB_CHECK_OK(weft_join(t, &x));
    return (uintptr_t)x + y;
}

/* fib(n) by iteration, to check the result and count the tasks. */
static uint64_t fib_iter(uint64_t n) {
    uint64_t a = 0, b = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

/* Items are tasks: every call with n >= 2 spawns one, fib(n+1) - 1 in all
 * (plus the root that weft_run spawns). */
static uint64_t fib_run(struct wb_ctx *c, uint64_t iterations) {
    uint64_t n = (uint64_t)c->arg;
    uint64_t want = fib_iter(n);
    for (uint64_t i = 0; i < iterations; i++) {
        void *r;
        WB_CHECK_OK(weft_run(c->rt, fib_task, (void *)(uintptr_t)n, &r));
        WB_CHECK_EQ("fib", (uintptr_t)r, want);
    }
    return iterations * fib_iter(n + 1);
}

static const struct wb_case cases[] = {
    {
        .name = "fib",
        .args = {30},
        .nargs = 1,
        .real_time = 1,
        .unit = WB_MS,
        .run = fib_run,
    },
};

WB_SUITE(fib, cases);
