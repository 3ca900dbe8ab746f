/*
 * tests/common/test_util.h - helpers shared by the api and stress tests:
 * failure recording off the main thread, argv knobs, a seeded PRNG, time.
 *
 * cmocka's assert_* longjmp into the test's frame, so only the test's main
 * thread may call them (STYLE 3.7). Fibers, workers and helper threads use
 * WT_CHECK*, which count failures in wt_failures and print where they
 * happened; the main thread asserts WT_ASSERT_NO_FAILURES() after joining.
 */
#ifndef WEFT_TEST_UTIL_H
#define WEFT_TEST_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft.h>

/* Failures recorded off the main thread since the last wt_reset(). */
extern atomic_int wt_failures;

/* Records one failure and prints it (with a and b when has_values). */
void wt_fail(const char *file, int line, const char *what, bool has_values,
             long long a, long long b);

/* Clears wt_failures. Main thread, at the start of a test. */
void wt_reset(void);

#define WT_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond))                                                         \
            wt_fail(__FILE__, __LINE__, #cond, false, 0, 0);                 \
    } while (0)

#define WT_CHECK_EQ(a, b)                                                    \
    do {                                                                     \
        long long wt_a_ = (long long)(a), wt_b_ = (long long)(b);            \
        if (wt_a_ != wt_b_)                                                  \
            wt_fail(__FILE__, __LINE__, #a " == " #b, true, wt_a_, wt_b_);   \
    } while (0)

/* Main thread only: no fiber or thread recorded a failure. */
#define WT_ASSERT_NO_FAILURES()                                              \
    assert_int_equal(atomic_load(&wt_failures), 0)

/*
 * errno of the calling fiber, read and written through calls the compiler
 * cannot see into. glibc declares __errno_location() const, so within one
 * function gcc and clang compute &errno once and reuse it across calls
 * such as weft_yield() or weft_join(); after the fiber migrates, that
 * address is the previous worker thread's errno. Code that may migrate
 * between two errno accesses in the same function uses these.
 */
int wt_errno(void);
void wt_set_errno(int value);

/* Call first in main(): $WEFT_TEST_FILTER (a cmocka pattern, e.g.
 * "test_join*") selects the tests to run. */
void wt_init(void);

/* argv[i] as a positive number, or dflt when absent. Exits on garbage. */
long wt_arg(int argc, char **argv, int i, long dflt);

/* The run's seed: $WEFT_TEST_SEED, else derived from the clock. Printed
 * once, so a failing run can be replayed. */
uint64_t wt_seed(void);

/* CLOCK_MONOTONIC in ns, read directly (not through weft_now). */
uint64_t wt_clock_ns(void);

/* Sleeps the calling OS thread (not a fiber wait). */
void wt_thread_sleep_ns(uint64_t ns);

/*
 * Polls *v from a plain thread until it is >= target or timeout_ns has
 * passed. Returns whether it got there.
 */
bool wt_wait_atomic_ge(atomic_int *v, int target, uint64_t timeout_ns);

/* splitmix64: a small PRNG whose whole state is one word, so each fiber
 * can carry its own stream. */
static inline uint64_t wt_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform-ish in [0, n); n > 0. */
static inline uint32_t wt_rand_below(uint64_t *state, uint32_t n) {
    return (uint32_t)(wt_rand(state) % n);
}

/* Mixes a seed and a child number into a new, independent stream key. */
static inline uint64_t wt_mix(uint64_t key, uint64_t i) {
    uint64_t s = key ^ (i * 0xd1b54a32d192ed03ull);
    return wt_rand(&s);
}

/*
 * ThreadSanitizer keeps a thread state for every started fiber and dies
 * once more than 8128 threads and fibers are alive at once ("Thread limit
 * exceeded"). Tests that keep more started fibers alive than that scale
 * down when WT_TSAN is 1.
 */
#ifdef WEFT_TEST_TSAN
#define WT_TSAN 1
#else
#define WT_TSAN 0
#endif

/* Integers through void * results. */
#define WT_PTR(x) ((void *)(uintptr_t)(x))
#define WT_INT(p) ((uintptr_t)(p))

/* A runtime with `workers` workers (0: default), or NULL on failure. */
static inline weft_runtime *wt_runtime_new(unsigned workers) {
    weft_runtime *rt = NULL;
    weft_config cfg = {.workers = workers};
    return weft_runtime_create(&rt, &cfg) == 0 ? rt : NULL;
}

/* The longest a fiber waits for a test's flag before it gives up. */
#define WT_YIELD_WAIT_NS ((uint64_t)20 * 1000000000u)

/*
 * Fiber context: yields until *flag is non-zero, at most max_yields times
 * and at most WT_YIELD_WAIT_NS. Returns whether the flag was seen; a false
 * return is recorded as a failure, so a lost wake-up or a starved fiber
 * ends the test instead of hanging it.
 */
static inline bool wt_yield_until(atomic_int *flag, long max_yields) {
    uint64_t deadline = wt_clock_ns() + WT_YIELD_WAIT_NS;
    for (long i = 0; i < max_yields; i++) {
        if (atomic_load(flag))
            return true;
        if (i % 4096 == 4095 && wt_clock_ns() > deadline)
            break;
        weft_yield();
    }
    if (atomic_load(flag))
        return true;
    wt_fail(__FILE__, __LINE__, "flag not set in time (yield loop)", false, 0,
            0);
    return false;
}

/*
 * Death tests: runs child() in a forked process with its stderr captured
 * into out (NUL-terminated, truncated to len - 1). Returns the child's
 * wait status, or -1 if it could not be started.
 */
int wt_run_child(void (*child)(void), char *out, size_t len);

#endif /* WEFT_TEST_UTIL_H */
