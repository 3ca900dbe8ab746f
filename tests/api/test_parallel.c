/*
 * tests/api/test_parallel.c - black-box: weft_parallel_for and
 * weft_parallel_reduce (weft.h "Parallel loops"). Every index visited
 * exactly once, from plain threads and fibers, for empty, single and odd
 * ranges and several grains; reduce equals the sequential fold, with a
 * combine that is associative but not commutative, and with a large
 * accumulator; nested loops; cancellation stops the loop; every error
 * code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#include "test_api.h"

/* ---- Visiting every index once ------------------------------------------ */

struct visits {
    size_t begin, end;
    atomic_uchar *seen; /* indexed from 0 = begin */
    atomic_int bad;     /* calls outside [begin, end) or empty */
    atomic_int calls;
};

static void visit(size_t lo, size_t hi, void *ctx) {
    struct visits *v = ctx;
    atomic_fetch_add(&v->calls, 1);
    if (lo >= hi || lo < v->begin || hi > v->end) {
        atomic_fetch_add(&v->bad, 1);
        return;
    }
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&v->seen[i - v->begin], 1);
}

/* Runs one loop and checks it; returns the number of problems. Any
 * thread (no cmocka asserts). */
static int check_loop(weft_runtime *rt, size_t begin, size_t end, size_t grain) {
    struct visits v = {.begin = begin, .end = end};
    v.seen = calloc(end - begin + 1, 1);
    if (!v.seen)
        return 1;
    int problems = 0;
    int rc = weft_parallel_for(rt, begin, end, grain, visit, &v);
    if (rc != 0) {
        wt_fail(__FILE__, __LINE__, "parallel_for returned", true, rc, 0);
        problems++;
    }
    for (size_t i = 0; i < end - begin; i++)
        if (atomic_load(&v.seen[i]) != 1)
            problems++;
    problems += atomic_load(&v.bad);
    if (begin == end && atomic_load(&v.calls) != 0)
        problems++;
    free(v.seen);
    if (problems)
        wt_fail(__FILE__, __LINE__, "loop not exactly once", true, (long long)begin,
                (long long)end);
    return problems;
}

static const size_t ranges[][2] = {
    {0, 0}, {5, 5}, {0, 1}, {7, 8}, {0, 2}, {0, 3}, {3, 100}, {0, 1000}, {1, 4097},
    {1000, 25000},
};
static const size_t grains[] = {0, 1, 2, 7, 64, 5000};

static void all_loops(weft_runtime *rt) {
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
            check_loop(rt, ranges[r][0], ranges[r][1], grains[g]);
}

static void test_for_from_plain_thread(void **state) {
    wt_reset();
    all_loops(*state);
    WT_ASSERT_NO_FAILURES();
}

static void *loops_in_fiber(void *arg) {
    (void)arg;
    all_loops(NULL); /* rt NULL: the current runtime */
    return NULL;
}

static void test_for_from_fiber(void **state) {
    wt_reset();
    assert_int_equal(weft_run(*state, loops_in_fiber, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A fiber of another runtime runs a loop in rt: it waits as in a join. */
static void *loop_in_other(void *arg) {
    check_loop(arg, 0, 3000, 0);
    return NULL;
}

static void test_for_from_other_runtime(void **state) {
    wt_reset();
    weft_runtime *other = wt_runtime_new(1);
    assert_non_null(other);
    assert_int_equal(weft_run(other, loop_in_other, *state, NULL), 0);
    assert_int_equal(weft_runtime_destroy(other), 0);
    WT_ASSERT_NO_FAILURES();
}

static void *loops_in_thread(void *arg) {
    for (int i = 0; i < 3; i++)
        check_loop(arg, 0, 20000, (size_t)i * 3);
    return NULL;
}

static void test_for_concurrent_threads(void **state) {
    wt_reset();
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        th[i] = start_thread(loops_in_thread, *state);
    for (int i = 0; i < 3; i++)
        join_thread(th[i]);
    WT_ASSERT_NO_FAILURES();
}

/* A loop whose body runs loops. */
static void nested_body(size_t lo, size_t hi, void *ctx) {
    (void)ctx;
    for (size_t i = lo; i < hi; i++)
        check_loop(NULL, 0, 50 + i, 0);
}

static void test_for_nested(void **state) {
    wt_reset();
    assert_int_equal(weft_parallel_for(*state, 0, 40, 1, nested_body, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

/* Both workers take part in a loop of slow indices. */
static atomic_int seen_worker[WORKERS];

static void spin_body(size_t lo, size_t hi, void *ctx) {
    (void)ctx;
    int w = weft_worker_index();
    if (w >= 0 && w < WORKERS)
        atomic_store(&seen_worker[w], 1);
    uint64_t until = wt_clock_ns() + (hi - lo) * 200 * WEFT_USEC;
    while (wt_clock_ns() < until)
        ;
}

static void test_for_uses_every_worker(void **state) {
    bool both = false;
    for (int attempt = 0; attempt < 5 && !both; attempt++) {
        for (int i = 0; i < WORKERS; i++)
            atomic_store(&seen_worker[i], 0);
        assert_int_equal(weft_parallel_for(*state, 0, 200, 1, spin_body, NULL), 0);
        both = atomic_load(&seen_worker[0]) && atomic_load(&seen_worker[1]);
    }
    assert_true(both);
}

static void never(size_t lo, size_t hi, void *ctx) {
    (void)lo;
    (void)hi;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

static void test_for_bad_args(void **state) {
    weft_runtime *rt = *state;
    atomic_int calls = 0;
    assert_int_equal(weft_parallel_for(rt, 0, 10, 0, NULL, NULL), -EINVAL);
    assert_int_equal(weft_parallel_for(rt, 11, 10, 0, never, &calls), -EINVAL);
    /* rt NULL outside a fiber. */
    assert_int_equal(weft_parallel_for(NULL, 0, 10, 0, never, &calls), -EINVAL);
    assert_int_equal(weft_parallel_for(rt, 10, 10, 0, never, &calls), 0);
    assert_int_equal(weft_parallel_for(rt, SIZE_MAX, SIZE_MAX, 1, never, &calls), 0);
    assert_int_equal(atomic_load(&calls), 0);
}

/* ---- Cancellation --------------------------------------------------------- */

static atomic_int visited;
static atomic_int loop_status;

static void slow_visit(size_t lo, size_t hi, void *ctx) {
    (void)ctx;
    atomic_fetch_add(&visited, (int)(hi - lo));
    wt_thread_sleep_ns(WEFT_MSEC);
}

static void *long_loop(void *arg) {
    (void)arg;
    atomic_store(&loop_status, weft_parallel_for(NULL, 0, 100000, 1, slow_visit, NULL));
    return NULL;
}

static void test_for_cancelled(void **state) {
    atomic_store(&visited, 0);
    atomic_store(&loop_status, 1);
    weft_task *t = spawn(*state, long_loop, NULL);
    assert_true(poll_ge(&visited, 10));
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    assert_int_equal(atomic_load(&loop_status), -ECANCELED);
    assert_true(atomic_load(&visited) < 100000);
}

/* ---- Reduce ----------------------------------------------------------------- */

static void sum_squares(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    uint64_t *s = acc;
    for (size_t i = lo; i < hi; i++)
        *s += (uint64_t)i * i;
}

static void add_u64(void *left, const void *right, void *ctx) {
    (void)ctx;
    *(uint64_t *)left += *(const uint64_t *)right;
}

static uint64_t squares_upto(size_t begin, size_t end) {
    uint64_t s = 0;
    for (size_t i = begin; i < end; i++)
        s += (uint64_t)i * i;
    return s;
}

/* An associative, non-commutative fold: the contiguous run [lo, hi).
 * Combining runs that do not touch, or in the wrong order, marks it bad. */
struct run {
    size_t lo, hi;
    int empty, bad;
};

static void extend_run(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    struct run *r = acc;
    if (r->empty) {
        r->lo = lo;
        r->empty = 0;
    } else if (r->hi != lo) {
        r->bad = 1;
    }
    r->hi = hi;
}

static void join_runs(void *left, const void *right, void *ctx) {
    (void)ctx;
    struct run *l = left;
    const struct run *r = right;
    if (r->empty)
        return;
    if (l->empty) {
        *l = *r;
        return;
    }
    if (l->hi != r->lo || r->bad)
        l->bad = 1;
    l->hi = r->hi;
}

/* A 1 KiB accumulator (heap path): a histogram of i % 256. */
struct histo {
    uint32_t n[256];
};

static void histo_body(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    struct histo *h = acc;
    for (size_t i = lo; i < hi; i++)
        h->n[i % 256]++;
}

static void histo_add(void *left, const void *right, void *ctx) {
    (void)ctx;
    struct histo *l = left;
    const struct histo *r = right;
    for (int i = 0; i < 256; i++)
        l->n[i] += r->n[i];
}

static void reduce_checks(weft_runtime *rt) {
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        size_t b = ranges[r][0], e = ranges[r][1];
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            uint64_t zero = 0, sum = 1;
            WT_CHECK_EQ(weft_parallel_reduce(rt, b, e, grains[g], &zero, sizeof zero,
                                             sum_squares, add_u64, NULL, &sum),
                        0);
            WT_CHECK_EQ(sum, squares_upto(b, e));
            struct run id = {0, 0, 1, 0}, run;
            WT_CHECK_EQ(weft_parallel_reduce(rt, b, e, grains[g], &id, sizeof id,
                                             extend_run, join_runs, NULL, &run),
                        0);
            WT_CHECK_EQ(run.bad, 0);
            WT_CHECK_EQ(run.empty, b == e);
            if (b != e) {
                WT_CHECK_EQ(run.lo, b);
                WT_CHECK_EQ(run.hi, e);
            }
        }
    }
    struct histo *h = calloc(1, sizeof *h);
    if (!h) {
        WT_CHECK(!"out of memory");
        return;
    }
    /* identity and result alias. */
    WT_CHECK_EQ(weft_parallel_reduce(rt, 0, 256 * 1000 + 17, 0, h, sizeof *h, histo_body,
                                     histo_add, NULL, h),
                0);
    for (int i = 0; i < 256; i++)
        WT_CHECK_EQ(h->n[i], 1000 + (i < 17));
    free(h);
}

static void test_reduce_from_plain_thread(void **state) {
    wt_reset();
    reduce_checks(*state);
    WT_ASSERT_NO_FAILURES();
}

static void *reduce_in_fiber(void *arg) {
    (void)arg;
    reduce_checks(NULL);
    return NULL;
}

static void test_reduce_from_fiber(void **state) {
    wt_reset();
    assert_int_equal(weft_run(*state, reduce_in_fiber, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_reduce_bad_args(void **state) {
    weft_runtime *rt = *state;
    uint64_t zero = 0, out = 42;
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, NULL, 8, sum_squares, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, &zero, 8, NULL, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, &zero, 8, sum_squares, NULL, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, &zero, 8, sum_squares, add_u64, NULL, NULL), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, &zero, 0, sum_squares, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 0, 9, 0, &zero, 64 * 1024 + 1, sum_squares, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(rt, 9, 0, 0, &zero, 8, sum_squares, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(weft_parallel_reduce(NULL, 0, 9, 0, &zero, 8, sum_squares, add_u64, NULL, &out), -EINVAL);
    assert_int_equal(out, 42); /* untouched on error */
    /* Empty: the identity. */
    zero = 5;
    assert_int_equal(weft_parallel_reduce(rt, 3, 3, 0, &zero, 8, sum_squares, add_u64, NULL, &out), 0);
    assert_int_equal(out, 5);
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_for_from_plain_thread),
        RT_TEST(test_for_from_fiber),
        RT_TEST(test_for_from_other_runtime),
        RT_TEST(test_for_concurrent_threads),
        RT_TEST(test_for_nested),
        RT_TEST(test_for_uses_every_worker),
        RT_TEST(test_for_bad_args),
        RT_TEST(test_for_cancelled),
        RT_TEST(test_reduce_from_plain_thread),
        RT_TEST(test_reduce_from_fiber),
        RT_TEST(test_reduce_bad_args),
    };
    return cmocka_run_group_tests_name("api.parallel", tests, NULL, NULL);
}
