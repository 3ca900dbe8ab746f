/*
 * tests/stress/stress_group.c - task groups and parallel loops under load.
 *
 *   stress_group WORKERS [LOOPS [MAX_RANGE]]
 *
 * - parallel_for visits every index exactly once, for LOOPS random
 *   (begin, end, grain) triples (empty and single-element ranges among
 *   them), from plain threads and fibers at once;
 * - parallel_reduce equals the sequential fold (a sum, and an
 *   order-sensitive fold);
 * - a group's first failure stops the remaining tasks early;
 * - trees of nested groups cancelled from the root;
 * - cancels racing with spawns into the same group.
 * Seeded by WEFT_TEST_SEED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_util.h"

static unsigned workers;
static long loops;
static size_t max_range;
static weft_runtime *rt;

/* ---- Loops ---------------------------------------------------------------- */

struct visits {
    size_t begin, end;
    atomic_uchar *seen;
};

static void visit(size_t lo, size_t hi, void *ctx) {
    struct visits *v = ctx;
    if (lo >= hi || lo < v->begin || hi > v->end) {
        WT_CHECK(!"sub-range outside the loop or empty");
        return;
    }
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add_explicit(&v->seen[i - v->begin], 1, memory_order_relaxed);
}

/* A random loop: lengths biased towards the edge cases. */
static void random_loop(uint64_t *rng, size_t *begin, size_t *end, size_t *grain) {
    size_t len;
    switch (wt_rand_below(rng, 6)) {
    case 0: len = 0; break;
    case 1: len = 1; break;
    case 2: len = 2 + wt_rand_below(rng, 30); break;
    default: len = wt_rand_below(rng, (uint32_t)max_range + 1); break;
    }
    *begin = wt_rand_below(rng, 1000);
    *end = *begin + len;
    switch (wt_rand_below(rng, 4)) {
    case 0: *grain = 0; break;
    case 1: *grain = 1; break;
    default: *grain = 1 + wt_rand_below(rng, 300); break;
    }
}

static uint64_t mix(uint64_t i) {
    return wt_mix(0x1234, i) & 0xffffff;
}

static void sum_mix(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    uint64_t *s = acc;
    for (size_t i = lo; i < hi; i++)
        *s += mix(i);
}

static void add_u64(void *l, const void *r, void *ctx) {
    (void)ctx;
    *(uint64_t *)l += *(const uint64_t *)r;
}

/* Order-sensitive fold: a polynomial hash h = h * P + x over the indices
 * in order, carried with P^len so that two pieces combine. */
struct poly {
    uint64_t h, p;
};
#define POLY_P 1000003ull

static void poly_body(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    struct poly *a = acc;
    for (size_t i = lo; i < hi; i++) {
        a->h = a->h * POLY_P + mix(i);
        a->p *= POLY_P;
    }
}

static void poly_combine(void *l, const void *r, void *ctx) {
    (void)ctx;
    struct poly *a = l;
    const struct poly *b = r;
    a->h = a->h * b->p + b->h;
    a->p *= b->p;
}

/* One loop of each kind; any thread or fiber (r: rt, or NULL in a fiber). */
static void one_round(weft_runtime *r, uint64_t *rng) {
    size_t begin, end, grain;
    random_loop(rng, &begin, &end, &grain);
    struct visits v = {begin, end, calloc(end - begin + 1, 1)};
    if (!v.seen) {
        WT_CHECK(!"out of memory");
        return;
    }
    WT_CHECK_EQ(weft_parallel_for(r, begin, end, grain, visit, &v), 0);
    for (size_t i = 0; i < end - begin; i++)
        if (atomic_load_explicit(&v.seen[i], memory_order_relaxed) != 1) {
            wt_fail(__FILE__, __LINE__, "index not visited exactly once", true,
                    (long long)(begin + i), atomic_load(&v.seen[i]));
            break;
        }
    free(v.seen);

    uint64_t zero = 0, sum = 0, want = 0;
    struct poly id = {0, 1}, got, seq = {0, 1};
    for (size_t i = begin; i < end; i++)
        want += mix(i);
    poly_body(begin, end, &seq, NULL);
    WT_CHECK_EQ(weft_parallel_reduce(r, begin, end, grain, &zero, sizeof zero, sum_mix,
                                     add_u64, NULL, &sum), 0);
    WT_CHECK_EQ(sum, want);
    WT_CHECK_EQ(weft_parallel_reduce(r, begin, end, grain, &id, sizeof id, poly_body,
                                     poly_combine, NULL, &got), 0);
    WT_CHECK_EQ(got.h, seq.h);
}

static void *loops_thread(void *arg) {
    uint64_t rng = wt_mix(wt_seed(), WT_INT(arg));
    for (long i = 0; i < loops; i++)
        one_round(rt, &rng);
    return NULL;
}

static void *loops_fiber(void *arg) {
    uint64_t rng = wt_mix(wt_seed(), WT_INT(arg));
    for (long i = 0; i < loops; i++)
        one_round(NULL, &rng);
    return NULL;
}

static void test_loops_threads_and_fibers(void **state) {
    (void)state;
    wt_reset();
    pthread_t th[2];
    weft_task *f[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, loops_thread, WT_PTR(i)), 0);
        assert_int_equal(weft_spawn(rt, loops_fiber, WT_PTR(100 + i), &f[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(weft_join(f[i], NULL), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/* ---- First failure -------------------------------------------------------- */

#define FAIL_TASKS 400
#define FAIL_AT 0
static atomic_int bodies_run;

/* A little CPU work that checks for cancellation; task FAIL_AT fails. */
static int work_or_fail(void *arg, void **result) {
    (void)result;
    atomic_fetch_add(&bodies_run, 1);
    if (WT_INT(arg) == FAIL_AT)
        return -EIO;
    uint64_t until = wt_clock_ns() + 50 * WEFT_USEC;
    while (wt_clock_ns() < until)
        if (weft_cancelled())
            return -ECANCELED;
    return 0;
}

static void *fail_round(void *arg) {
    (void)arg;
    weft_group *g = NULL;
    WT_CHECK_EQ(weft_group_create(&g, NULL), 0);
    for (int i = 0; i < FAIL_TASKS; i++)
        WT_CHECK_EQ(weft_group_spawn(g, work_or_fail, WT_PTR(i), NULL), 0);
    WT_CHECK_EQ(weft_group_wait(g), -EIO);
    int ok = 0, cancelled = 0;
    for (size_t i = 0; i < FAIL_TASKS; i++) {
        int rc = weft_group_result(g, i, NULL);
        ok += rc == 0;
        cancelled += rc == -ECANCELED;
    }
    WT_CHECK_EQ(ok + cancelled, FAIL_TASKS - 1);
    WT_CHECK_EQ(weft_group_destroy(g), 0);
    return NULL;
}

static void test_first_failure_stops_early(void **state) {
    (void)state;
    wt_reset();
    long rounds = loops / 20 + 1;
    long total_run = 0;
    for (long r = 0; r < rounds; r++) {
        atomic_store(&bodies_run, 0);
        assert_int_equal(weft_run(rt, fail_round, NULL, NULL), 0);
        total_run += atomic_load(&bodies_run);
    }
    fprintf(stderr, "first failure: %ld of %ld bodies ran\n", total_run,
            rounds * FAIL_TASKS);
    /* Task FAIL_AT, the oldest, runs within a fairness round or a steal;
     * most of the rest never start. */
    assert_true(total_run < rounds * FAIL_TASKS / 2);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Nested groups cancelled from the root -------------------------------- */

#define FANOUT 3
static int tree_depth;
static atomic_int leaves_started, leaves_done;

static int tree_node(void *arg, void **result) {
    (void)result;
    int depth = (int)WT_INT(arg);
    if (depth == 0) {
        atomic_fetch_add(&leaves_started, 1);
        int rc = weft_sleep(60 * WEFT_SEC);
        atomic_fetch_add(&leaves_done, 1);
        return rc;
    }
    weft_group *g = NULL;
    int rc = weft_group_create(&g, NULL);
    if (rc)
        return rc;
    for (int i = 0; i < FANOUT; i++)
        WT_CHECK_EQ(weft_group_spawn(g, tree_node, WT_PTR(depth - 1), NULL), 0);
    rc = weft_group_wait(g);
    WT_CHECK_EQ(weft_group_destroy(g), 0);
    return rc;
}

static void test_nested_trees_cancelled(void **state) {
    (void)state;
    wt_reset();
    int leaves = 1;
    for (int i = 0; i < tree_depth; i++)
        leaves *= FANOUT;
    for (int round = 0; round < 3; round++) {
        atomic_store(&leaves_started, 0);
        atomic_store(&leaves_done, 0);
        weft_group *root = NULL;
        assert_int_equal(weft_group_create(&root, rt), 0);
        assert_int_equal(weft_group_spawn(root, tree_node, WT_PTR(tree_depth), NULL), 0);
        /* Cancel at various stages: all started, or while still growing. */
        if (round == 0)
            assert_true(wt_wait_atomic_ge(&leaves_started, leaves, 60 * WEFT_SEC));
        else
            wt_thread_sleep_ns((uint64_t)round * WEFT_MSEC);
        uint64_t t0 = wt_clock_ns();
        assert_int_equal(weft_group_cancel(root), 0);
        assert_int_equal(weft_group_wait(root), -ECANCELED);
        assert_true(wt_clock_ns() - t0 < 30 * WEFT_SEC);
        assert_int_equal(atomic_load(&leaves_done), atomic_load(&leaves_started));
        assert_int_equal(weft_group_destroy(root), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/* ---- Cancels racing spawns ------------------------------------------------ */

static int quick(void *arg, void **result) {
    *result = arg;
    return weft_cancelled() ? -ECANCELED : 0;
}

struct race {
    weft_group *g;
    atomic_int go;
};

static void *cancel_soon(void *arg) {
    struct race *r = arg;
    while (!atomic_load(&r->go))
        ;
    WT_CHECK_EQ(weft_group_cancel(r->g), 0);
    return NULL;
}

static void test_cancel_races_spawn(void **state) {
    (void)state;
    wt_reset();
    long rounds = loops / 4 + 1;
    for (long round = 0; round < rounds; round++) {
        struct race r = {.go = 0};
        assert_int_equal(weft_group_create(&r.g, rt), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, cancel_soon, &r), 0);
        int spawned = 0;
        for (int i = 0; i < 200; i++) {
            if (i == (int)(round % 50))
                atomic_store(&r.go, 1);
            if (weft_group_spawn(r.g, quick, WT_PTR(i + 1), NULL) == 0)
                spawned++;
        }
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(weft_group_wait(r.g), -ECANCELED);
        for (int i = 0; i < spawned; i++) {
            void *res = NULL;
            int rc = weft_group_result(r.g, (size_t)i, &res);
            assert_true(rc == 0 || rc == -ECANCELED);
            if (rc == 0)
                assert_int_equal(WT_INT(res), i + 1);
        }
        assert_int_equal(weft_group_destroy(r.g), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

static int setup(void **state) {
    (void)state;
    rt = wt_runtime_new(workers);
    return rt ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return weft_runtime_destroy(rt) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    wt_init();
    workers = (unsigned)wt_arg(argc, argv, 1, 2);
    loops = wt_arg(argc, argv, 2, 200);
    max_range = (size_t)wt_arg(argc, argv, 3, 100000);
    /* Live fibers: FANOUT^depth sleeping leaves (TSan: < 8128 fibers). */
    tree_depth = WT_TSAN ? 4 : 6;
    wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_threads_and_fibers),
        cmocka_unit_test(test_first_failure_stops_early),
        cmocka_unit_test(test_nested_trees_cancelled),
        cmocka_unit_test(test_cancel_races_spawn),
    };
    return cmocka_run_group_tests_name("stress.group", tests, setup, teardown);
}
