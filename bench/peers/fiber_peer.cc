// bench/peers/fiber_peer.cc - Boost.Fiber with the work_stealing scheduler
// running skynet, spawn+join and sleepers. The main thread and
// WEFT_BENCH_WORKERS - 1 (default 1) helper threads join the scheduler; the
// helpers run fibers while they wait for the end. Stacks are
// fixedsize_stack (malloc'ed, no guard page) of 16 KiB, in the spirit of
// Boost's own skynet benchmarks (performance/fiber/skynet_stealing_*.cpp),
// and children are launched with launch::dispatch as there. Sleepers use
// the same 16 KiB stacks, as weft_peer's do. A million of them would fit
// with the default stack too (fixedsize_stack of 128 KiB with Boost 1.74,
// from malloc, which commits only the pages a fiber touches); the peak RSS
// is about the same.

#include <boost/fiber/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "peer.h"

namespace {

using allocator_type = boost::fibers::fixedsize_stack;
constexpr std::size_t kStackSize = 16 * 1024;

allocator_type &salloc() {
    static allocator_type a{kStackSize};
    return a;
}

void skynet(uint64_t &out, uint64_t num, uint64_t size) {
    if (size == 1) {
        out = num;
        return;
    }
    uint64_t part[PEER_SKYNET_DIV];
    uint64_t child = size / PEER_SKYNET_DIV;
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(PEER_SKYNET_DIV);
    for (uint64_t i = 0; i < PEER_SKYNET_DIV; i++)
        fibers.emplace_back(boost::fibers::launch::dispatch, std::allocator_arg, salloc(),
                            skynet, std::ref(part[i]), num + i * child, child);
    for (auto &f : fibers)
        f.join();
    uint64_t sum = 0;
    for (uint64_t p : part)
        sum += p;
    out = sum;
}

uint64_t run_skynet() {
    uint64_t r = 0;
    skynet(r, 0, PEER_SKYNET_SIZE);
    return r;
}

uint64_t run_spawn_join() {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_SPAWN_JOIN_N; i++) {
        uint64_t x = 0;
        boost::fibers::fiber f(boost::fibers::launch::dispatch, std::allocator_arg, salloc(),
                               [&x] { x = 1; });
        f.join();
        sum += x;
    }
    return sum;
}

// n fibers each sleep PEER_SLEEP_MS from their own start; main joins them
// all and returns how many woke.
uint64_t run_sleepers(uint64_t n) {
    std::atomic<uint64_t> woke{0};
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(n);
    for (uint64_t i = 0; i < n; i++)
        fibers.emplace_back(boost::fibers::launch::dispatch, std::allocator_arg, salloc(),
                            [&woke] {
                                boost::this_fiber::sleep_for(
                                    std::chrono::milliseconds(PEER_SLEEP_MS));
                                woke.fetch_add(1, std::memory_order_relaxed);
                            });
    for (auto &f : fibers)
        f.join();
    return woke.load();
}

uint64_t run_sleepers_10k() { return run_sleepers(PEER_SLEEPERS_10K); }
uint64_t run_sleepers_100k() { return run_sleepers(PEER_SLEEPERS_100K); }
uint64_t run_sleepers_1m() { return run_sleepers(PEER_SLEEPERS_1M); }

// Helper threads stay in the scheduler until main is done.
std::mutex done_mtx;
boost::fibers::condition_variable_any done_cv;
bool done = false;

void helper(unsigned threads) {
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
    std::unique_lock<std::mutex> lk(done_mtx);
    done_cv.wait(lk, [] { return done; });
}

} // namespace

int main(int argc, char **argv) {
    static const peer_workload ws[] = {
        {"skynet/1M", run_skynet, PEER_SKYNET_WANT},
        {"spawn_join/100k", run_spawn_join, PEER_SPAWN_JOIN_N},
        {"sleepers/10k", run_sleepers_10k, PEER_SLEEPERS_10K},
        {"sleepers/100k", run_sleepers_100k, PEER_SLEEPERS_100K},
        {"sleepers/1M", run_sleepers_1m, PEER_SLEEPERS_1M},
    };
    // --list must not start threads: it answers at once.
    if (argc == 2 && std::string(argv[1]) == "--list")
        return peer_main(argc, argv, "boost.fiber", ws, sizeof(ws) / sizeof(ws[0]));

    unsigned threads = peer_threads();
    std::vector<std::thread> helpers;
    for (unsigned i = 1; i < threads; i++)
        helpers.emplace_back(helper, threads);
    // Registers main; returns once every thread has registered.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
    int status = peer_main(argc, argv, "boost.fiber", ws, sizeof(ws) / sizeof(ws[0]));
    {
        std::lock_guard<std::mutex> lk(done_mtx);
        done = true;
    }
    done_cv.notify_all();
    for (auto &t : helpers)
        t.join();
    return status;
}
