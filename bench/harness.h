/*
 * bench/harness.h - the C side of the benchmark suite (DESIGN 4).
 *
 * Cases are written in C against weft.h. Each bench_<workload>.c defines a
 * table of struct wb_case and names it with WB_SUITE(); the one C++ file,
 * gbench_adapter.cc, registers every case of every suite in WB_SUITES with
 * Google Benchmark. A case runs on a runtime the adapter creates once per
 * case (not per iteration) and destroys when the next case starts.
 *
 * Adding a workload: write bench_<w>.c ending in WB_SUITE(<w>, cases), add
 * X(<w>) to WB_SUITES below and the file to bench/CMakeLists.txt.
 */
#ifndef WEFT_BENCH_HARNESS_H
#define WEFT_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Up to this many values of a case's argument (Google Benchmark's Arg). */
#define WB_MAX_ARGS 4

/* Time unit of a case's report. */
enum wb_unit { WB_NS = 0, WB_US, WB_MS };

/* What a case's callbacks see. Owned by the adapter; one per live case. */
struct wb_ctx {
    /* The case's runtime; NULL when the case asked for none. */
    weft_runtime *rt;
    /* The case's argument (0 for a case without arguments). */
    int64_t arg;
    /* Worker count the runtime was created with (0 without a runtime). */
    unsigned workers;
    /* Whatever setup wants to keep for run and teardown. */
    void *data;
    /* For a case with a counter (struct wb_case.counter): run adds one
     * value per iteration; the adapter zeroes it before each measurement
     * and reports the sum divided by the iterations. */
    double counter;
};

struct wb_case {
    /* Base name. With args, Google Benchmark appends "/<arg>", or
     * "/<arg_name>:<arg>" when arg_name is set; multithreaded cases get
     * "/real_time" as well. */
    const char *name;
    const char *arg_name;
    int64_t args[WB_MAX_ARGS];
    size_t nargs;
    /* Worker threads: 0 for the suite default (WEFT_BENCH_WORKERS, else 2),
     * WB_WORKERS_FROM_ARG to use the argument, WB_NO_RUNTIME for a case
     * that does not use a runtime at all. Otherwise the exact count. */
    unsigned workers;
    /* Report real (wall-clock) time: the work happens on worker threads
     * while the benchmark thread waits, so its CPU time means nothing. */
    int real_time;
    enum wb_unit unit;
    /* Optional. Returns 0, or a negative errno value to skip the case. */
    int (*setup)(struct wb_ctx *c);
    /* Performs `iterations` iterations of the workload, back to back, and
     * returns the items processed (0 when "items" means nothing more than
     * iterations). The adapter times the whole call. */
    uint64_t (*run)(struct wb_ctx *c, uint64_t iterations);
    /* Optional. Frees what setup made; the runtime is still alive. */
    void (*teardown)(struct wb_ctx *c);
    /* Optional. The name of an extra column: the mean per iteration of
     * what run adds to ctx->counter (a figure the case computes itself,
     * for example a time with a fixed sleep taken out). */
    const char *counter;
};

#define WB_WORKERS_FROM_ARG (~0u)
#define WB_NO_RUNTIME (~0u - 1)

/* A table of cases, one per bench_<workload>.c. */
struct wb_suite {
    const char *name;
    const struct wb_case *cases;
    size_t ncases;
};

#define WB_SUITE(w, table)                                                     \
    const struct wb_suite wb_suite_##w = {#w, (table),                         \
                                          sizeof(table) / sizeof((table)[0])}

/* Every suite, in report order. */
#define WB_SUITES(X)                                                           \
    X(context)                                                                 \
    X(yield)                                                                   \
    X(spawn)                                                                   \
    X(fib)                                                                     \
    X(skynet)                                                                  \
    X(scaling)                                                                 \
    X(timer)                                                                   \
    X(chan)                                                                    \
    X(mutex)                                                                   \
    X(parallel)

#define WB_DECLARE_SUITE(w) extern const struct wb_suite wb_suite_##w;
WB_SUITES(WB_DECLARE_SUITE)
#undef WB_DECLARE_SUITE

/* Benchmarks are not tests: the only checks are these sanity checks of a
 * workload's result (STYLE 3.7). A wrong result makes every figure
 * meaningless, so stop the whole run. */
#define WB_CHECK_EQ(what, got, want)                                           \
    do {                                                                       \
        unsigned long long wb_got_ = (unsigned long long)(got);                \
        unsigned long long wb_want_ = (unsigned long long)(want);              \
        if (wb_got_ != wb_want_) {                                             \
            fprintf(stderr, "weft_bench: %s: got %llu, want %llu\n", (what),   \
                    wb_got_, wb_want_);                                        \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* For weft calls that cannot fail in a correct run. */
#define WB_CHECK_OK(call)                                                      \
    do {                                                                       \
        int wb_rc_ = (call);                                                   \
        if (wb_rc_ != 0) {                                                     \
            fprintf(stderr, "weft_bench: %s: %s\n", #call,                     \
                    weft_strerror(wb_rc_));                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_HARNESS_H */
