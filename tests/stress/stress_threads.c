/*
 * tests/stress/stress_threads.c - plain threads and fibers hammer one
 * runtime at once: a spawn/join storm from 4 plain threads, and handles
 * spawned by one thread joined by another thread or by a fiber.
 *
 * Usage: stress_threads WORKERS [ITERATIONS]
 *   WORKERS     worker threads of the runtime under test
 *   ITERATIONS  rounds per plain thread; default 2000
 * $WEFT_TEST_SEED replays a run; the seed is printed.
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

enum { THREADS = 4, MAX_BATCH = 16 };

static struct {
    unsigned workers;
    long iterations;
    uint64_t seed;
} P;

static weft_runtime *new_runtime(void) {
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    return rt;
}

static pthread_t start_thread(void *(*fn)(void *), void *arg) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    return th;
}

/* Returns 3x+1 after a few yields; sometimes via a child fiber. */
static void *compute(void *p) {
    uintptr_t x = WT_INT(p);
    for (uintptr_t i = 0; i < x % 3; i++)
        weft_yield();
    if (x % 8 == 0) {
        weft_task *t = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, compute, WT_PTR(x + 1), &t), 0);
        void *r = NULL;
        WT_CHECK_EQ(weft_join(t, &r), 0);
        WT_CHECK_EQ(WT_INT(r), 3 * (x + 1) + 1);
    }
    return WT_PTR(3 * x + 1);
}

static atomic_long detached_done;

static void *detached_compute(void *p) {
    compute(p);
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

/* ---- Storm: every thread spawns and joins its own batches -------------- */

struct stormer {
    weft_runtime *rt;
    int id;
    long detached;
};

static void *storm_thread(void *p) {
    struct stormer *s = p;
    uint64_t rng = wt_mix(P.seed, (uint64_t)s->id);
    for (long it = 0; it < P.iterations; it++) {
        weft_task *t[MAX_BATCH];
        uintptr_t arg[MAX_BATCH];
        int n = 1 + (int)wt_rand_below(&rng, MAX_BATCH);
        for (int i = 0; i < n; i++) {
            arg[i] = (uintptr_t)wt_rand_below(&rng, 1000000);
            if (wt_rand_below(&rng, 8) == 0) {
                WT_CHECK_EQ(weft_spawn(s->rt, detached_compute, WT_PTR(arg[i]),
                                       NULL),
                            0);
                s->detached++;
                t[i] = NULL;
            } else {
                WT_CHECK_EQ(weft_spawn(s->rt, compute, WT_PTR(arg[i]), &t[i]),
                            0);
            }
        }
        int start = (int)wt_rand_below(&rng, (uint32_t)n);
        for (int k = 0; k < n; k++) {
            int i = (start + k) % n;
            if (!t[i])
                continue;
            void *r = NULL;
            WT_CHECK_EQ(weft_join(t[i], &r), 0);
            WT_CHECK_EQ(WT_INT(r), 3 * arg[i] + 1);
        }
    }
    return NULL;
}

static void test_four_thread_storm(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&detached_done, 0);
    weft_runtime *rt = new_runtime();
    struct stormer s[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct stormer){.rt = rt, .id = i};
        th[i] = start_thread(storm_thread, &s[i]);
    }
    long detached = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        detached += s[i].detached;
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&detached_done), detached);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Cross joins: spawned here, joined there --------------------------- */

/*
 * Producers (plain threads) spawn tasks and publish each handle in its own
 * slot. Consumers (the same threads once they are done producing, plus
 * fibers) take handles with an atomic exchange, so each handle is joined
 * exactly once, by whoever got it.
 */
struct cross {
    weft_runtime *rt;
    long n;                      /* tasks in all */
    _Atomic(weft_task *) *slot;  /* n slots; NULL: empty or taken */
    atomic_long consumed;
    atomic_long sum;             /* of task results */
    atomic_long by_fibers;       /* joins done by consumer fibers */
};

struct producer {
    struct cross *c;
    int id;
};

/* Takes and joins handles until every task has been consumed. */
static void consume(struct cross *c, uint64_t *rng, bool in_fiber) {
    while (atomic_load(&c->consumed) < c->n) {
        long i0 = (long)wt_rand_below(rng, (uint32_t)c->n);
        bool found = false;
        for (long k = 0; k < c->n && !found; k++) {
            long i = (i0 + k) % c->n;
            if (!atomic_load_explicit(&c->slot[i], memory_order_relaxed))
                continue;
            weft_task *t = atomic_exchange(&c->slot[i], NULL);
            if (!t)
                continue;
            void *r = NULL;
            WT_CHECK_EQ(weft_join(t, &r), 0);
            atomic_fetch_add(&c->sum, (long)WT_INT(r));
            atomic_fetch_add(&c->consumed, 1);
            if (in_fiber)
                atomic_fetch_add(&c->by_fibers, 1);
            found = true;
        }
        if (!found) {
            if (in_fiber)
                weft_yield();
            else
                wt_thread_sleep_ns(10000);
        }
    }
}

static void *producer_thread(void *p) {
    struct producer *pr = p;
    struct cross *c = pr->c;
    uint64_t rng = wt_mix(P.seed ^ 0x63726f73ull, (uint64_t)pr->id);
    for (long i = pr->id; i < c->n; i += THREADS) {
        weft_task *t = NULL;
        WT_CHECK_EQ(weft_spawn(c->rt, compute, WT_PTR(i), &t), 0);
        atomic_store(&c->slot[i], t);
        if (wt_rand_below(&rng, 64) == 0)
            wt_thread_sleep_ns(1000);
    }
    consume(c, &rng, false);
    return NULL;
}

static void *consumer_fiber(void *p) {
    struct cross *c = p;
    uint64_t rng = wt_mix(P.seed ^ 0x66696272ull, WT_INT(weft_self()));
    consume(c, &rng, true);
    return NULL;
}

static void test_cross_thread_and_fiber_joins(void **state) {
    (void)state;
    wt_reset();
    struct cross c = {.rt = new_runtime(), .n = P.iterations * 4};
    c.slot = calloc((size_t)c.n, sizeof *c.slot);
    assert_non_null(c.slot);

    weft_task *fibers[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(weft_spawn(c.rt, consumer_fiber, &c, &fibers[i]), 0);
    struct producer pr[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pr[i] = (struct producer){.c = &c, .id = i};
        th[i] = start_thread(producer_thread, &pr[i]);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(weft_join(fibers[i], NULL), 0);
    assert_int_equal(weft_runtime_destroy(c.rt), 0);

    long expect = 0;
    for (long i = 0; i < c.n; i++)
        expect += 3 * i + 1;
    fprintf(stderr, "cross joins: %ld tasks, %ld joined by fibers\n", c.n,
            atomic_load(&c.by_fibers));
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(atomic_load(&c.consumed), c.n);
    assert_int_equal(atomic_load(&c.sum), expect);
    for (long i = 0; i < c.n; i++)
        assert_null(atomic_load(&c.slot[i]));
    free(c.slot);
}

/* ---- Runs from many threads -------------------------------------------- */

struct runner {
    weft_runtime *rt;
    int id;
};

static void *run_thread(void *p) {
    struct runner *r = p;
    for (long it = 0; it < P.iterations / 4 + 1; it++) {
        uintptr_t x = (uintptr_t)(r->id * 1000003L + it);
        void *res = NULL;
        WT_CHECK_EQ(weft_run(r->rt, compute, WT_PTR(x), &res), 0);
        WT_CHECK_EQ(WT_INT(res), 3 * x + 1);
    }
    return NULL;
}

static void test_weft_run_from_threads(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    struct runner r[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct runner){.rt = rt, .id = i};
        th[i] = start_thread(run_thread, &r[i]);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.iterations = wt_arg(argc, argv, 2, 2000);
    P.seed = wt_seed();
    fprintf(stderr, "stress_threads: workers=%u iterations=%ld\n", P.workers,
            P.iterations);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_thread_storm),
        cmocka_unit_test(test_cross_thread_and_fiber_joins),
        cmocka_unit_test(test_weft_run_from_threads),
    };
    return cmocka_run_group_tests_name("stress.threads", tests, NULL, NULL);
}
