// bench/peers/tbb_peer.cc - oneTBB task_group running the peer workloads,
// on an arena limited to WEFT_BENCH_WORKERS (default 2) threads by
// global_control; the main thread is one of them.

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/combinable.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_group.h>

#include <cstdint>
#include <vector>

#include "peer.h"

namespace {

uint64_t fib(uint64_t n) {
    if (n < 2)
        return n;
    uint64_t x = 0;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    uint64_t y = fib(n - 2);
    g.wait();
    return x + y;
}

uint64_t run_fib() {
    return fib(PEER_FIB_N);
}

uint64_t skynet(uint64_t num, uint64_t size) {
    if (size == 1)
        return num;
    uint64_t part[PEER_SKYNET_DIV];
    uint64_t child = size / PEER_SKYNET_DIV;
    tbb::task_group g;
    for (uint64_t i = 0; i < PEER_SKYNET_DIV; i++)
        g.run([&part, i, num, child] { part[i] = skynet(num + i * child, child); });
    g.wait();
    uint64_t sum = 0;
    for (uint64_t p : part)
        sum += p;
    return sum;
}

uint64_t run_skynet() {
    return skynet(0, PEER_SKYNET_SIZE);
}

// One task_group, reused: run() then wait() is one spawn and one join.
uint64_t run_spawn_join() {
    uint64_t sum = 0;
    tbb::task_group g;
    for (uint64_t i = 0; i < PEER_SPAWN_JOIN_N; i++) {
        uint64_t x = 0;
        g.run([&x] { x = 1; });
        g.wait();
        sum += x;
    }
    return sum;
}

// One task_group: run() PEER_SPAWN_ALL_N times, each task storing 1 in
// its slot, then one wait(); PEER_SPAWN_ALL_ROUNDS rounds.
uint64_t run_spawn_all() {
    std::vector<uint64_t> res(PEER_SPAWN_ALL_N);
    uint64_t sum = 0;
    tbb::task_group g;
    for (uint64_t r = 0; r < PEER_SPAWN_ALL_ROUNDS; r++) {
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++)
            g.run([&res, i] { res[i] = 1; });
        g.wait();
        for (uint64_t &x : res) {
            sum += x;
            x = 0;
        }
    }
    return sum;
}

// parallel_for with the default auto_partitioner; per-thread sums in a
// combinable, added up at the end.
uint64_t run_pfor(uint64_t (*range_sum)(uint64_t lo, uint64_t hi)) {
    tbb::combinable<uint64_t> sums([] { return uint64_t{0}; });
    tbb::parallel_for(tbb::blocked_range<uint64_t>(0, PEER_PFOR_N),
                      [&](const tbb::blocked_range<uint64_t> &r) {
                          sums.local() += range_sum(r.begin(), r.end());
                      });
    return sums.combine([](uint64_t a, uint64_t b) { return a + b; });
}

uint64_t run_pfor_balanced() { return run_pfor(peer_pfor_balanced_range); }

uint64_t run_pfor_imbalanced() { return run_pfor(peer_pfor_imbalanced_range); }

} // namespace

int main(int argc, char **argv) {
    static const peer_workload ws[] = {
        {"fib/30", run_fib, PEER_FIB_WANT},
        {"skynet/1M", run_skynet, PEER_SKYNET_WANT},
        {"spawn_join/100k", run_spawn_join, PEER_SPAWN_JOIN_N},
        {"pfor_balanced", run_pfor_balanced, PEER_PFOR_BAL_WANT},
        {"pfor_imbalanced", run_pfor_imbalanced, PEER_PFOR_IMB_WANT},
        {"spawn_all/10k", run_spawn_all, PEER_SPAWN_ALL_WANT},
    };
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, peer_threads());
    return peer_main(argc, argv, "tbb", ws, sizeof(ws) / sizeof(ws[0]));
}
