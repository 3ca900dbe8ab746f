/*
 * bench/peers/peer.h - the command line and output shared by the C and C++
 * peer programs (bench/peers/go does the same in Go).
 *
 *   <peer> --list            the workloads this peer implements, one a line
 *   <peer> <workload> [k]    one warm-up run, then k timed runs (default 5);
 *                            prints one line:
 *   workload=<name> runtime=<peer> ms=<median of k> result=<checked value> rss_kib=<peak>
 *
 * rss_kib is the process's peak resident set (getrusage's ru_maxrss, in
 * KiB) at the end, over the warm-up and every timed run.
 *
 * Every run's result is checked; a wrong one exits with status 1. Worker
 * threads: WEFT_BENCH_WORKERS, else 2 (the same knob as weft_bench).
 */
#ifndef WEFT_BENCH_PEER_H
#define WEFT_BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* The workloads every peer runs, by the names the output uses. */
#define PEER_FIB_N 30
#define PEER_FIB_WANT 832040ull
#define PEER_SKYNET_SIZE 1000000ull
#define PEER_SKYNET_DIV 10ull
#define PEER_SKYNET_WANT 499999500000ull
/* Sequential spawn+join pairs, from inside the runtime; every task
 * returns 1 and the results are summed. */
#define PEER_SPAWN_JOIN_N 100000ull
/* sleepers/N: N tasks started from inside the runtime each sleep
 * PEER_SLEEP_MS from their own start; the run ends when all have woken.
 * The result is the count of tasks that woke. */
#define PEER_SLEEP_MS 1000
#define PEER_SLEEPERS_10K 10000ull
#define PEER_SLEEPERS_100K 100000ull
#define PEER_SLEEPERS_1M 1000000ull
/* chan_pingpong: the main task sends i = 0, 1, ... on one rendezvous
 * (unbuffered) channel, a second task answers i + 1 on another. The
 * result is the sum of the answers. With 20,000 round trips, ms x 50 is
 * ns per round trip. (Not more: plain threads take tens of microseconds
 * per round trip, futex wake-ups, on a small virtual machine.) */
#define PEER_PINGPONG_N 20000ull
#define PEER_PINGPONG_WANT (PEER_PINGPONG_N * (PEER_PINGPONG_N + 1) / 2)
/* chan_buffered_4x4: one channel of capacity PEER_CHAN_CAP, 4 producer
 * and 4 consumer tasks. Producer p sends p + 1, p + 1 + 4, ...: together
 * the values 1..PEER_CHAN_ITEMS, each once; each consumer receives a
 * quarter of them. The result is the sum received. ms is ns per value. */
#define PEER_CHAN_CAP 64
#define PEER_CHAN_PRODUCERS 4
#define PEER_CHAN_CONSUMERS 4
#define PEER_CHAN_ITEMS 1000000ull
#define PEER_CHAN_WANT (PEER_CHAN_ITEMS * (PEER_CHAN_ITEMS + 1) / 2)
/* mutex_contended: PEER_MUTEX_TASKS tasks (threads for the pthread peer)
 * each lock a mutex, increment a shared counter and unlock,
 * PEER_MUTEX_OPS / PEER_MUTEX_TASKS times. The result is the counter. ms
 * is ns per lock/increment/unlock. */
#define PEER_MUTEX_TASKS 64
#define PEER_MUTEX_OPS 1000000ull
/* yield_pingpong: two tasks, started together from inside the runtime,
 * each call the runtime's yield PEER_YIELD_N times and return how many
 * times they did; the result is the total, 2 x PEER_YIELD_N. On one
 * worker, whatever WEFT_BENCH_WORKERS says (weft: a runtime of 1 worker;
 * Go: GOMAXPROCS(1) during the run; Boost.Fiber: the main thread's
 * round_robin), so that each yield switches to the other task: ms is
 * ns per round trip (one yield by each). The pthread peer runs two
 * threads calling sched_yield(), which the kernel may put on two CPUs;
 * oneTBB and OpenMP have no such yield and skip it. */
#define PEER_YIELD_N 1000000ull
#define PEER_YIELD_WANT (2 * PEER_YIELD_N)
#define PEER_YIELD_WORKLOAD "yield_pingpong"
/* spawn_all/10k: from inside the runtime, spawn PEER_SPAWN_ALL_N tasks
 * that each return 1, then join them all; PEER_SPAWN_ALL_ROUNDS such
 * rounds in a run. The result is the sum of the tasks' results. */
#define PEER_SPAWN_ALL_N 10000ull
#define PEER_SPAWN_ALL_ROUNDS 10ull
#define PEER_SPAWN_ALL_WANT (PEER_SPAWN_ALL_N * PEER_SPAWN_ALL_ROUNDS)

/* pfor_balanced, pfor_imbalanced: a parallel loop over PEER_PFOR_N
 * indices; index i computes a chain of `rounds` rounds (peer_body.c) and the loop
 * returns the sum of the values (mod 2^64), as a reduction.
 *   balanced:   PEER_PFOR_BAL_ROUNDS rounds for every index (~110 ns);
 *   imbalanced: 1 + i * PEER_PFOR_IMB_ROUNDS / PEER_PFOR_N rounds: the
 *               cost grows linearly with the index, about the same total.
 * Each runtime splits the range its own way (weft: grain 0, automatic;
 * OpenMP: schedule(dynamic) or schedule(static), default chunks; oneTBB:
 * parallel_for with its default auto_partitioner). */
#define PEER_PFOR_N 1000000ull
#define PEER_PFOR_BAL_ROUNDS 50ull
#define PEER_PFOR_IMB_ROUNDS 100ull
#define PEER_PFOR_BAL_WANT 3275893670594232755ull
#define PEER_PFOR_IMB_WANT 16802390142437328318ull

/* The sum over [lo, hi) of each index's work (peer_body.c): a dependent
 * chain of multiply-xorshift rounds per index, PEER_PFOR_BAL_ROUNDS of
 * them (balanced) or 1 + i * PEER_PFOR_IMB_ROUNDS / PEER_PFOR_N
 * (imbalanced). Out of line, in one object linked into every peer, so
 * that every runtime runs the same machine code (peer_body.c says why). */
#ifdef __cplusplus
extern "C" {
#endif
uint64_t peer_pfor_balanced_range(uint64_t lo, uint64_t hi);
uint64_t peer_pfor_imbalanced_range(uint64_t lo, uint64_t hi);
#ifdef __cplusplus
}
#endif

/* weft's reduce bodies for the two loops (weft_reduce_fn, weft_combine_fn),
 * shared by weft_peer and weft_bench: a uint64_t accumulator. */
static inline void peer_pfor_balanced_body(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    *(uint64_t *)acc += peer_pfor_balanced_range(lo, hi);
}

static inline void peer_pfor_imbalanced_body(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    *(uint64_t *)acc += peer_pfor_imbalanced_range(lo, hi);
}

static inline void peer_add_u64(void *left, const void *right, void *ctx) {
    (void)ctx;
    *(uint64_t *)left += *(const uint64_t *)right;
}

struct peer_workload {
    const char *name;
    uint64_t (*run)(void);
    uint64_t want;
};

static inline unsigned peer_threads(void) {
    const char *env = getenv("WEFT_BENCH_WORKERS");
    if (env != NULL && *env != '\0') {
        char *end = NULL;
        unsigned long v = strtoul(env, &end, 10);
        if (*end == '\0' && v > 0 && v <= 1024)
            return (unsigned)v;
    }
    return 2;
}

/* Whether the command line asks for a workload that runs on one worker
 * thread (PEER_YIELD_WORKLOAD): a peer whose thread count is fixed for
 * the process reads it before it starts its threads. */
static inline int peer_one_worker(int argc, char **argv) {
    return argc >= 2 && strcmp(argv[1], PEER_YIELD_WORKLOAD) == 0;
}

static inline double peer_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Peak resident set of the process so far, in KiB. */
static inline long peer_peak_rss_kib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ru.ru_maxrss;
}

static inline int peer_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline int peer_check(const struct peer_workload *w, const char *runtime, uint64_t got) {
    if (got == w->want)
        return 0;
    fprintf(stderr, "%s: %s: got %llu, want %llu\n", runtime, w->name,
            (unsigned long long)got, (unsigned long long)w->want);
    return 1;
}

/* Parses the command line, runs the chosen workload, prints its line.
 * Returns the process exit status. */
static inline int peer_main(int argc, char **argv, const char *runtime,
                            const struct peer_workload *ws, size_t nws) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < nws; i++)
            printf("%s\n", ws[i].name);
        return 0;
    }
    const struct peer_workload *w = NULL;
    for (size_t i = 0; argc >= 2 && i < nws; i++)
        if (strcmp(argv[1], ws[i].name) == 0)
            w = &ws[i];
    long k = argc >= 3 ? strtol(argv[2], NULL, 10) : 5;
    if (w == NULL || argc > 3 || k < 1 || k > 1000) {
        fprintf(stderr, "usage: %s --list | <workload> [k]\n", argv[0]);
        return 2;
    }

    uint64_t result = w->run(); /* warm-up: thread pools, stacks, pages */
    if (peer_check(w, runtime, result) != 0)
        return 1;
    double *ms = (double *)calloc((size_t)k, sizeof(*ms));
    if (ms == NULL)
        return 1;
    for (long i = 0; i < k; i++) {
        double t0 = peer_now_ms();
        result = w->run();
        ms[i] = peer_now_ms() - t0;
        if (peer_check(w, runtime, result) != 0) {
            free(ms);
            return 1;
        }
    }
    qsort(ms, (size_t)k, sizeof(*ms), peer_cmp_double);
    double median = k % 2 ? ms[k / 2] : (ms[k / 2 - 1] + ms[k / 2]) / 2;
    printf("workload=%s runtime=%s ms=%.3f result=%llu rss_kib=%ld\n", w->name, runtime,
           median, (unsigned long long)result, peer_peak_rss_kib());
    free(ms);
    return 0;
}

#endif /* WEFT_BENCH_PEER_H */
