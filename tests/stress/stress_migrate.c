/*
 * tests/stress/stress_migrate.c - fibers move between workers: they yield,
 * park in joins and sleep thousands of times, record every worker index
 * they run on and check that their errno, weft_self() and runtime survive
 * each move. Sleepers are woken by the timer thread through the shared
 * injection queue, so they resume on whichever worker takes them.
 *
 * Usage: stress_migrate WORKERS [FIBERS [YIELDS]]
 *   WORKERS  worker threads of the runtime under test
 *   FIBERS   fibers per test; default 64
 *   YIELDS   yields (or joins) per fiber; default 5000; a tenth as many
 *            sleeps
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_util.h"

static struct {
    unsigned workers;
    long fibers;
    long yields;
} P;

/* Worker indices seen by any fiber (index < WEFT_MAX_WORKERS). */
static atomic_int seen[WEFT_MAX_WORKERS];
static atomic_long moves;

enum how { YIELD, JOIN, SLEEP };
static const char *const how_name[] = {"yield", "join", "sleep"};

struct traveller {
    weft_runtime *rt;
    long id;
    enum how how;
    long steps;
    long moves;
    int distinct;
};

static void *child(void *p) {
    return WT_PTR(WT_INT(p) ^ 0x55);
}

/* Checks where it runs now; returns the worker index (or -1). */
static int check_here(struct traveller *t, weft_task *self, int want_errno) {
    WT_CHECK_EQ(wt_errno(), want_errno); /* see test_util.h */
    WT_CHECK(weft_self() == self);
    WT_CHECK(weft_runtime_current() == t->rt);
    int w = weft_worker_index();
    if (w < 0 || w >= (int)P.workers) {
        WT_CHECK_EQ(w, -1000); /* always fails: prints w */
        return -1;
    }
    return w;
}

static void *traveller(void *p) {
    struct traveller *t = p;
    weft_task *self = weft_self();
    bool *mine = calloc(P.workers, sizeof *mine);
    if (!mine) {
        WT_CHECK(mine != NULL);
        return NULL;
    }
    int base = (int)(t->id + 1) * 100000;
    wt_set_errno(base);
    int prev = check_here(t, self, base);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)t->id);
    for (long i = 0; i < t->steps; i++) {
        if (t->how == JOIN) {
            weft_task *c = NULL;
            WT_CHECK_EQ(weft_spawn(NULL, child, WT_PTR(i), &c), 0);
            void *r = NULL;
            WT_CHECK_EQ(weft_join(c, &r), 0);
            WT_CHECK_EQ(WT_INT(r), (uintptr_t)i ^ 0x55);
        } else if (t->how == SLEEP) {
            WT_CHECK_EQ(weft_sleep(wt_rand_below(&rng, 50) * WEFT_USEC), 0);
        } else {
            weft_yield();
        }
        int w = check_here(t, self, base + (int)i);
        if (w >= 0) {
            if (!mine[w])
                t->distinct++;
            mine[w] = true;
            atomic_store_explicit(&seen[w], 1, memory_order_relaxed);
            if (w != prev)
                t->moves++;
            prev = w;
        }
        wt_set_errno(base + (int)i + 1);
    }
    free(mine);
    atomic_fetch_add(&moves, t->moves);
    return NULL;
}

static void run_travellers(enum how how) {
    wt_reset();
    atomic_store(&moves, 0);
    for (int i = 0; i < WEFT_MAX_WORKERS; i++)
        atomic_store(&seen[i], 0);

    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    struct traveller *t = calloc((size_t)P.fibers, sizeof *t);
    weft_task **h = calloc((size_t)P.fibers, sizeof *h);
    assert_non_null(t);
    assert_non_null(h);
    errno = 4321;
    for (long i = 0; i < P.fibers; i++) {
        t[i] = (struct traveller){
            .rt = rt,
            .id = i,
            .how = how,
            .steps = how == SLEEP ? P.yields / 10 + 1 : P.yields,
        };
        assert_int_equal(weft_spawn(rt, traveller, &t[i], &h[i]), 0);
    }
    for (long i = 0; i < P.fibers; i++)
        assert_int_equal(weft_join(h[i], NULL), 0);
    assert_int_equal(errno, 4321);
    assert_int_equal(weft_runtime_destroy(rt), 0);

    int workers_used = 0, max_distinct = 0;
    for (unsigned w = 0; w < P.workers; w++)
        workers_used += atomic_load(&seen[w]);
    for (long i = 0; i < P.fibers; i++)
        if (t[i].distinct > max_distinct)
            max_distinct = t[i].distinct;
    fprintf(stderr,
            "%s: %ld fibers x %ld, %ld worker changes, %d/%u workers used, "
            "at most %d workers per fiber\n",
            how_name[how], P.fibers, t[0].steps, atomic_load(&moves),
            workers_used, P.workers, max_distinct);
    WT_ASSERT_NO_FAILURES();
    /* With more fibers than workers and all of them runnable, idle
     * workers steal: a multi-worker runtime uses more than one worker. */
    if (P.workers > 1 && P.fibers > 1)
        assert_true(workers_used >= 2);
    free(t);
    free(h);
}

static void test_migrate_across_yields(void **state) {
    (void)state;
    run_travellers(YIELD);
}

static void test_migrate_across_joins(void **state) {
    (void)state;
    run_travellers(JOIN);
}

static void test_migrate_across_sleeps(void **state) {
    (void)state;
    run_travellers(SLEEP);
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.fibers = wt_arg(argc, argv, 2, 64);
    P.yields = wt_arg(argc, argv, 3, 5000);
    if (P.workers > WEFT_MAX_WORKERS) {
        fprintf(stderr, "WORKERS must be at most %d\n", WEFT_MAX_WORKERS);
        return 2;
    }
    (void)wt_seed();
    fprintf(stderr, "stress_migrate: workers=%u fibers=%ld yields=%ld\n",
            P.workers, P.fibers, P.yields);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_across_yields),
        cmocka_unit_test(test_migrate_across_joins),
        cmocka_unit_test(test_migrate_across_sleeps),
    };
    return cmocka_run_group_tests_name("stress.migrate", tests, NULL, NULL);
}
