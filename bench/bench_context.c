/*
 * bench/bench_context.c - the floor: raw fcontext switches with no
 * scheduler, no fiber control block and no runtime. Every other case pays
 * at least this per switch.
 */
#include "harness.h"

#include "context.h"

/* One iteration is one round trip: caller -> partner -> caller. */
static uint64_t raw_switch_roundtrip(struct wb_ctx *c, uint64_t iterations) {
    (void)c;
    weft__context_pingpong(iterations);
    return iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "context/raw_switch_roundtrip",
        .workers = WB_NO_RUNTIME,
        .run = raw_switch_roundtrip,
    },
};

WB_SUITE(context, cases);
