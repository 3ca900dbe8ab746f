// bench/peers/fiber_peer.cc - Boost.Fiber with the work_stealing scheduler
// running skynet, spawn+join, spawn-all, sleepers, and the channel and
// mutex workloads (unbuffered_channel, buffered_channel, fibers::mutex);
// yield_pingpong alone runs on the main thread's round_robin. The
// main thread and WEFT_BENCH_WORKERS - 1 (default 1) helper threads join
// the scheduler; the helpers run fibers while they wait for the end. Stacks are
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
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
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

// Channel and mutex calls that cannot fail in a correct run.
void ok(boost::fibers::channel_op_status st, const char *what) {
    if (st != boost::fibers::channel_op_status::success) {
        std::fprintf(stderr, "boost.fiber: %s failed\n", what);
        std::exit(1);
    }
}

template <typename Fn> boost::fibers::fiber launch(Fn &&fn) {
    return boost::fibers::fiber(boost::fibers::launch::dispatch, std::allocator_arg, salloc(),
                                std::forward<Fn>(fn));
}

// main pings on one unbuffered_channel, a fiber answers i + 1 on another.
uint64_t run_pingpong() {
    boost::fibers::unbuffered_channel<uint64_t> ping, pong;
    boost::fibers::fiber f = launch([&ping, &pong] {
        for (uint64_t i = 0; i < PEER_PINGPONG_N; i++) {
            uint64_t v = 0;
            ok(ping.pop(v), "pop");
            ok(pong.push(v + 1), "push");
        }
    });
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_PINGPONG_N; i++) {
        uint64_t v = 0;
        ok(ping.push(i), "push");
        ok(pong.pop(v), "pop");
        sum += v;
    }
    f.join();
    return sum;
}

// 4 producer and 4 consumer fibers on one buffered_channel. Its capacity
// must be a power of two, and it holds one value less: PEER_CHAN_CAP - 1.
uint64_t run_buffered() {
    boost::fibers::buffered_channel<uint64_t> ch(PEER_CHAN_CAP);
    uint64_t part[PEER_CHAN_CONSUMERS] = {};
    std::vector<boost::fibers::fiber> fibers;
    for (uint64_t c = 0; c < PEER_CHAN_CONSUMERS; c++)
        fibers.push_back(launch([&ch, &part, c] {
            uint64_t sum = 0;
            for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_CONSUMERS; i++) {
                uint64_t v = 0;
                ok(ch.pop(v), "pop");
                sum += v;
            }
            part[c] = sum;
        }));
    for (uint64_t p = 0; p < PEER_CHAN_PRODUCERS; p++)
        fibers.push_back(launch([&ch, p] {
            for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_PRODUCERS; i++)
                ok(ch.push(i * PEER_CHAN_PRODUCERS + p + 1), "push");
        }));
    for (auto &f : fibers)
        f.join();
    uint64_t sum = 0;
    for (uint64_t x : part)
        sum += x;
    return sum;
}

// PEER_MUTEX_TASKS fibers lock a boost::fibers::mutex, increment, unlock.
uint64_t run_mutex() {
    boost::fibers::mutex m;
    uint64_t n = 0;
    std::vector<boost::fibers::fiber> fibers;
    for (unsigned t = 0; t < PEER_MUTEX_TASKS; t++)
        fibers.push_back(launch([&m, &n] {
            for (uint64_t i = 0; i < PEER_MUTEX_OPS / PEER_MUTEX_TASKS; i++) {
                std::lock_guard<boost::fibers::mutex> lk(m);
                n++;
            }
        }));
    for (auto &f : fibers)
        f.join();
    return n;
}

// PEER_SPAWN_ALL_N fibers, each storing 1 in its slot, then a join of
// each in turn; PEER_SPAWN_ALL_ROUNDS rounds. launch::dispatch, as
// everywhere here: a new fiber runs at once, until it ends or waits.
uint64_t run_spawn_all() {
    std::vector<uint64_t> res(PEER_SPAWN_ALL_N);
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(PEER_SPAWN_ALL_N);
    uint64_t sum = 0;
    for (uint64_t r = 0; r < PEER_SPAWN_ALL_ROUNDS; r++) {
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++)
            fibers.push_back(launch([&res, i] { res[i] = 1; }));
        for (auto &f : fibers)
            f.join();
        fibers.clear();
        for (uint64_t &x : res) {
            sum += x;
            x = 0;
        }
    }
    return sum;
}

// Two fibers each call this_fiber::yield() PEER_YIELD_N times while main
// waits in join. Only with one thread (main), on the default round_robin
// scheduler: see main().
uint64_t run_yield() {
    uint64_t counts[2] = {};
    boost::fibers::fiber a = launch([&counts] {
        uint64_t n = 0;
        for (; n < PEER_YIELD_N; n++)
            boost::this_fiber::yield();
        counts[0] = n;
    });
    boost::fibers::fiber b = launch([&counts] {
        uint64_t n = 0;
        for (; n < PEER_YIELD_N; n++)
            boost::this_fiber::yield();
        counts[1] = n;
    });
    a.join();
    b.join();
    return counts[0] + counts[1];
}

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
        {"chan_pingpong", run_pingpong, PEER_PINGPONG_WANT},
        {"chan_buffered_4x4", run_buffered, PEER_CHAN_WANT},
        {"mutex_contended", run_mutex, PEER_MUTEX_OPS},
        {PEER_YIELD_WORKLOAD, run_yield, PEER_YIELD_WANT},
        {"spawn_all/10k", run_spawn_all, PEER_SPAWN_ALL_WANT},
    };
    // --list must not start threads: it answers at once. yield_pingpong
    // runs on one thread: main alone, with Boost.Fiber's default
    // round_robin scheduler, as a single-threaded program would.
    if ((argc == 2 && std::string(argv[1]) == "--list") || peer_one_worker(argc, argv))
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
