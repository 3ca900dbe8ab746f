/*
 * bench/bench_parallel.c - parallel loops and task groups.
 *
 *   pfor_balanced, pfor_imbalanced  the peer workloads of the same names
 *       (bench/peers/peer.h): weft_parallel_reduce over 1M indices from
 *       the benchmark thread, as run_peers.sh runs them;
 *   pfor_overhead/N   a loop over N indices with an empty body, from a
 *       fiber: what splitting and joining cost when there is no work;
 *   group_spawn_wait/N  N empty tasks spawned into a group and waited
 *       for, from a fiber: the cost of a group task.
 */
/* peer.h times with clock_gettime. */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"
#include "peers/peer.h"

/* ---- The peer loops ------------------------------------------------------ */

static uint64_t run_loop(struct wb_ctx *c, uint64_t iterations, weft_reduce_fn body,
                         uint64_t want, const char *what) {
    for (uint64_t it = 0; it < iterations; it++) {
        uint64_t zero = 0, sum = 0;
        WB_CHECK_OK(weft_parallel_reduce(c->rt, 0, PEER_PFOR_N, 0, &zero, sizeof zero,
                                         body, peer_add_u64, NULL, &sum));
        WB_CHECK_EQ(what, sum, want);
    }
    return iterations * PEER_PFOR_N;
}

static uint64_t balanced_run(struct wb_ctx *c, uint64_t iterations) {
    return run_loop(c, iterations, peer_pfor_balanced_body, PEER_PFOR_BAL_WANT, "pfor_balanced");
}

static uint64_t imbalanced_run(struct wb_ctx *c, uint64_t iterations) {
    return run_loop(c, iterations, peer_pfor_imbalanced_body, PEER_PFOR_IMB_WANT, "pfor_imbalanced");
}

/* ---- pfor_overhead/N ----------------------------------------------------- */

static void count_body(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    *(uint64_t *)acc += hi - lo;
}

struct overhead {
    uint64_t n, iterations;
};

static void *overhead_fiber(void *arg) {
    struct overhead *o = arg;
    for (uint64_t it = 0; it < o->iterations; it++) {
        uint64_t zero = 0, count = 0;
        WB_CHECK_OK(weft_parallel_reduce(NULL, 0, o->n, 0, &zero, sizeof zero, count_body,
                                         peer_add_u64, NULL, &count));
        WB_CHECK_EQ("pfor_overhead", count, o->n);
    }
    return NULL;
}

static uint64_t overhead_run(struct wb_ctx *c, uint64_t iterations) {
    struct overhead o = {(uint64_t)c->arg, iterations};
    WB_CHECK_OK(weft_run(c->rt, overhead_fiber, &o, NULL));
    return iterations * o.n;
}

/* ---- group_spawn_wait/N -------------------------------------------------- */

static int one(void *arg, void **result) {
    *result = arg;
    return 0;
}

static void *group_fiber(void *arg) {
    struct overhead *o = arg;
    for (uint64_t it = 0; it < o->iterations; it++) {
        weft_group *g;
        WB_CHECK_OK(weft_group_create(&g, NULL));
        for (uint64_t i = 0; i < o->n; i++)
            WB_CHECK_OK(weft_group_spawn(g, one, (void *)(uintptr_t)1, NULL));
        WB_CHECK_OK(weft_group_wait(g));
        void *r;
        WB_CHECK_OK(weft_group_result(g, o->n - 1, &r));
        WB_CHECK_EQ("group_spawn_wait", (uintptr_t)r, 1);
        WB_CHECK_OK(weft_group_destroy(g));
    }
    return NULL;
}

static uint64_t group_run(struct wb_ctx *c, uint64_t iterations) {
    struct overhead o = {(uint64_t)c->arg, iterations};
    WB_CHECK_OK(weft_run(c->rt, group_fiber, &o, NULL));
    return iterations * o.n;
}

static const struct wb_case cases[] = {
    {.name = "pfor_balanced", .real_time = 1, .unit = WB_MS, .run = balanced_run},
    {.name = "pfor_imbalanced", .real_time = 1, .unit = WB_MS, .run = imbalanced_run},
    {
        .name = "pfor_overhead",
        .args = {1000, 1000000},
        .nargs = 2,
        .real_time = 1,
        .unit = WB_US,
        .run = overhead_run,
    },
    {
        .name = "group_spawn_wait",
        .args = {1000},
        .nargs = 1,
        .real_time = 1,
        .unit = WB_US,
        .run = group_run,
    },
};

WB_SUITE(parallel, cases);
