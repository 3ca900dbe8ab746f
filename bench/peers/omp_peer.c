/*
 * bench/peers/omp_peer.c - OpenMP tasks running the peer workloads: every
 * node is an explicit task (no cutoff), joined with taskwait, inside one
 * parallel region of WEFT_BENCH_WORKERS (default 2) threads.
 *
 * The parallel loops (pfor_*) are `parallel for reduction(+:sum)` with
 * schedule(dynamic) (default chunk 1) in this program, runtime "openmp".
 * Built with -DPEER_OMP_STATIC the same file is omp_static_peer, runtime
 * "openmp-static": schedule(static), and only the pfor_* workloads. Two
 * runtimes rather than two workload names, so that run_peers.sh sets
 * both against weft's one pfor_* line.
 */
#define _POSIX_C_SOURCE 200809L

#include <omp.h>

#include "peer.h"

static int threads;

/* Tasks: in "openmp" only. */
#ifndef PEER_OMP_STATIC
static uint64_t fib(uint64_t n) {
    if (n < 2)
        return n;
    uint64_t x = 0;
#pragma omp task shared(x) firstprivate(n)
    x = fib(n - 1);
    uint64_t y = fib(n - 2);
#pragma omp taskwait
    return x + y;
}

static uint64_t run_fib(void) {
    uint64_t r = 0;
#pragma omp parallel num_threads(threads) shared(r)
#pragma omp single
    r = fib(PEER_FIB_N);
    return r;
}

static uint64_t skynet(uint64_t num, uint64_t size) {
    if (size == 1)
        return num;
    uint64_t part[PEER_SKYNET_DIV];
    uint64_t child = size / PEER_SKYNET_DIV;
    for (uint64_t i = 0; i < PEER_SKYNET_DIV; i++) {
#pragma omp task shared(part) firstprivate(i)
        part[i] = skynet(num + i * child, child);
    }
#pragma omp taskwait
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_SKYNET_DIV; i++)
        sum += part[i];
    return sum;
}

static uint64_t run_skynet(void) {
    uint64_t r = 0;
#pragma omp parallel num_threads(threads) shared(r)
#pragma omp single
    r = skynet(0, PEER_SKYNET_SIZE);
    return r;
}

static uint64_t run_spawn_join(void) {
    uint64_t sum = 0;
#pragma omp parallel num_threads(threads) shared(sum)
#pragma omp single
    for (uint64_t i = 0; i < PEER_SPAWN_JOIN_N; i++) {
        uint64_t x = 0;
#pragma omp task shared(x)
        x = 1;
#pragma omp taskwait
        sum += x;
    }
    return sum;
}

/* PEER_SPAWN_ALL_N tasks, each storing 1 in its slot, then one taskwait;
 * PEER_SPAWN_ALL_ROUNDS rounds. */
static uint64_t run_spawn_all(void) {
    uint64_t *res = calloc(PEER_SPAWN_ALL_N, sizeof(*res));
    if (res == NULL) {
        fprintf(stderr, "openmp: out of memory\n");
        exit(1);
    }
    uint64_t sum = 0;
#pragma omp parallel num_threads(threads) shared(res, sum)
#pragma omp single
    for (uint64_t r = 0; r < PEER_SPAWN_ALL_ROUNDS; r++) {
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++) {
#pragma omp task shared(res) firstprivate(i)
            res[i] = 1;
        }
#pragma omp taskwait
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++) {
            sum += res[i];
            res[i] = 0;
        }
    }
    free(res);
    return sum;
}

#endif /* !PEER_OMP_STATIC */

#ifdef PEER_OMP_STATIC
#define PFOR_SCHEDULE schedule(static)
#else
#define PFOR_SCHEDULE schedule(dynamic)
#endif

static uint64_t run_pfor_balanced(void) {
    uint64_t sum = 0;
#pragma omp parallel for num_threads(threads) PFOR_SCHEDULE reduction(+ : sum)
    for (uint64_t i = 0; i < PEER_PFOR_N; i++)
        sum += peer_pfor_balanced_range(i, i + 1);
    return sum;
}

static uint64_t run_pfor_imbalanced(void) {
    uint64_t sum = 0;
#pragma omp parallel for num_threads(threads) PFOR_SCHEDULE reduction(+ : sum)
    for (uint64_t i = 0; i < PEER_PFOR_N; i++)
        sum += peer_pfor_imbalanced_range(i, i + 1);
    return sum;
}

int main(int argc, char **argv) {
    static const struct peer_workload ws[] = {
#ifndef PEER_OMP_STATIC
        {"fib/30", run_fib, PEER_FIB_WANT},
        {"skynet/1M", run_skynet, PEER_SKYNET_WANT},
        {"spawn_join/100k", run_spawn_join, PEER_SPAWN_JOIN_N},
#endif
        {"pfor_balanced", run_pfor_balanced, PEER_PFOR_BAL_WANT},
        {"pfor_imbalanced", run_pfor_imbalanced, PEER_PFOR_IMB_WANT},
#ifndef PEER_OMP_STATIC
        {"spawn_all/10k", run_spawn_all, PEER_SPAWN_ALL_WANT},
#endif
    };
    threads = (int)peer_threads();
#ifdef PEER_OMP_STATIC
    const char *name = "openmp-static";
#else
    const char *name = "openmp";
#endif
    return peer_main(argc, argv, name, ws, sizeof(ws) / sizeof(ws[0]));
}
