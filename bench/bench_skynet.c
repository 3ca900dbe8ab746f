/*
 * bench/bench_skynet.c - the skynet benchmark (github.com/atemerev/skynet):
 * a 10-ary tree of tasks, 6 levels deep, 1,000,000 leaves; each node
 * spawns its 10 children and joins them, each leaf returns its number.
 * 1,111,111 fibers per run; it measures spawn and join at scale with many
 * fibers alive at once.
 */
#include "harness.h"

#define SKYNET_FANOUT 10
#define SKYNET_LEVELS 6 /* 10^6 leaves */

/* A node is (first leaf number, level), packed into the fiber argument so
 * that nothing is allocated per node: number * 8 + level. */
static void *pack(uint64_t num, unsigned level) {
    return (void *)(uintptr_t)(num * 8 + level);
}

static void *skynet_node(void *arg) {
    uint64_t num = (uintptr_t)arg / 8;
    unsigned level = (unsigned)((uintptr_t)arg % 8);
    if (level == 0)
        return (void *)(uintptr_t)num;

    uint64_t child_size = 1;
    for (unsigned i = 1; i < level; i++)
        child_size *= SKYNET_FANOUT;

    weft_task *t[SKYNET_FANOUT];
    for (unsigned i = 0; i < SKYNET_FANOUT; i++)
        WB_CHECK_OK(weft_spawn(NULL, skynet_node, pack(num + i * child_size, level - 1), &t[i]));
    uint64_t sum = 0;
    for (unsigned i = 0; i < SKYNET_FANOUT; i++) {
        void *r;
        WB_CHECK_OK(weft_join(t[i], &r));
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

/* Items are fibers: 1 + 10 + ... + 10^6. */
static uint64_t skynet_run(struct wb_ctx *c, uint64_t iterations) {
    for (uint64_t i = 0; i < iterations; i++) {
        void *r;
        WB_CHECK_OK(weft_run(c->rt, skynet_node, pack(0, SKYNET_LEVELS), &r));
        WB_CHECK_EQ("skynet/1M", (uintptr_t)r, 499999500000ull);
    }
    return iterations * 1111111;
}

static const struct wb_case cases[] = {
    {
        .name = "skynet/1M",
        .real_time = 1,
        .unit = WB_MS,
        .run = skynet_run,
    },
};

WB_SUITE(skynet, cases);
