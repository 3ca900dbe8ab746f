/*
 * bench/bench_yield.c - the cost of weft_yield() between two fibers that
 * share one worker: each yield switches to the other fiber through the
 * scheduler, so one round trip is one yield by each fiber.
 */
#include "harness.h"

static void *yield_loop(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < n; i++)
        weft_yield();
    return NULL;
}

/* Runs on the worker: start both fibers, then wait for both. The parent
 * is suspended in join, so the worker alternates between the two. */
static void *yield_pair(void *arg) {
    weft_task *t[2];
    WB_CHECK_OK(weft_spawn(NULL, yield_loop, arg, &t[0]));
    WB_CHECK_OK(weft_spawn(NULL, yield_loop, arg, &t[1]));
    WB_CHECK_OK(weft_join(t[0], NULL));
    WB_CHECK_OK(weft_join(t[1], NULL));
    return NULL;
}

static uint64_t roundtrip_two_fibers(struct wb_ctx *c, uint64_t iterations) {
    WB_CHECK_OK(weft_run(c->rt, yield_pair, (void *)(uintptr_t)iterations, NULL));
    return iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "yield/roundtrip_two_fibers",
        .workers = 1,
        .real_time = 1,
        .run = roundtrip_two_fibers,
    },
};

WB_SUITE(yield, cases);
