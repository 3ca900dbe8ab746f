/*
 * tests/stress/stress_spawn.c - many thousands of fibers across workers,
 * with random interleavings: random spawn trees (random depths, yields,
 * joined, detached and delegated children), long join chains and yield
 * storms. Every count and every result is checked exactly.
 *
 * Usage: stress_spawn WORKERS [ROOTS [DEPTH]]
 *   WORKERS  worker threads of the runtime under test
 *   ROOTS    random trees (and scale of the other tests); default 1000
 *   DEPTH    depth budget of each tree; default 8 (about 100 nodes a root)
 * $WEFT_TEST_SEED replays a run; the seed is printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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
    long roots;
    int depth;
    uint64_t seed;
} P;

static weft_runtime *new_runtime(void) {
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    return rt;
}

/* Yields a random number of times (0..max). */
static void random_yields(uint64_t *s, uint32_t max) {
    for (uint32_t n = wt_rand_below(s, max + 1); n > 0; n--)
        weft_yield();
}

/* ---- Random trees ------------------------------------------------------ */

/*
 * A node's shape is a pure function of (key, depth), so the main thread
 * can compute the expected totals sequentially; only the interleaving is
 * left to the scheduler. A node's value is 1 + the values of the children
 * it joins (directly or through a joiner fiber). Detached children's
 * values go to detached_sum instead.
 */
enum { MAX_CHILDREN = 4 };
enum kind { DETACHED, DELEGATED, JOINED };
#define YIELD_SALT 0x79656c64ull

static atomic_long nodes_ran, detached_sum, joiners_ran;

static enum kind child_kind(uint64_t *s) {
    uint32_t k = wt_rand_below(s, 10);
    return k < 2 ? DETACHED : k < 4 ? DELEGATED : JOINED;
}

static int child_depth(uint64_t *s, int depth) {
    int d = depth - 1 - (int)wt_rand_below(s, 2);
    return d < 0 ? 0 : d;
}

static int child_count(uint64_t *s, int depth) {
    return depth > 0 ? (int)wt_rand_below(s, MAX_CHILDREN + 1) : 0;
}

static uint64_t expect_node(uint64_t key, int depth, uint64_t *nodes,
                            uint64_t *detached) {
    uint64_t s = key, v = 1;
    ++*nodes;
    int n = child_count(&s, depth);
    for (int i = 0; i < n; i++) {
        enum kind k = child_kind(&s);
        int cd = child_depth(&s, depth);
        uint64_t sub = expect_node(wt_mix(key, (uint64_t)i), cd, nodes, detached);
        if (k == DETACHED)
            *detached += sub;
        else
            v += sub;
    }
    return v;
}

struct node_arg {
    uint64_t key;
    int depth;
};

struct joiner_arg {
    weft_task *t[MAX_CHILDREN];
    int n;
    uint64_t yields;
};

static void *node(void *p);

static void *detached_node(void *p) {
    void *v = node(p);
    atomic_fetch_add(&detached_sum, (long)WT_INT(v));
    return NULL;
}

/* Joins handles spawned by another fiber, in random order. */
static void *joiner(void *p) {
    struct joiner_arg *j = p;
    uint64_t sum = 0;
    atomic_fetch_add(&joiners_ran, 1);
    bool backwards = wt_rand_below(&j->yields, 2);
    for (int i = 0; i < j->n; i++) {
        int k = backwards ? j->n - 1 - i : i;
        random_yields(&j->yields, 2);
        void *r = NULL;
        WT_CHECK_EQ(weft_join(j->t[k], &r), 0);
        sum += WT_INT(r);
    }
    free(j);
    return WT_PTR(sum);
}

static void *node(void *p) {
    struct node_arg a = *(struct node_arg *)p;
    free(p);
    atomic_fetch_add(&nodes_ran, 1);

    uint64_t s = a.key, ys = a.key ^ YIELD_SALT;
    random_yields(&ys, 2);
    weft_task *direct[MAX_CHILDREN];
    int nd = 0;
    struct joiner_arg *deleg = calloc(1, sizeof *deleg);
    if (!deleg) {
        WT_CHECK(deleg != NULL);
        return WT_PTR(0);
    }
    deleg->yields = ys ^ 1;

    int n = child_count(&s, a.depth);
    for (int i = 0; i < n; i++) {
        enum kind k = child_kind(&s);
        struct node_arg *c = malloc(sizeof *c);
        WT_CHECK(c != NULL);
        if (!c)
            continue;
        c->depth = child_depth(&s, a.depth);
        c->key = wt_mix(a.key, (uint64_t)i);
        if (k == DETACHED) {
            WT_CHECK_EQ(weft_spawn(NULL, detached_node, c, NULL), 0);
        } else {
            weft_task **slot =
                k == JOINED ? &direct[nd++] : &deleg->t[deleg->n++];
            WT_CHECK_EQ(weft_spawn(NULL, node, c, slot), 0);
        }
        random_yields(&ys, 1);
    }

    uint64_t v = 1;
    if (deleg->n > 0) {
        weft_task *jt = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, joiner, deleg, &jt), 0);
        random_yields(&ys, 2);
        void *r = NULL;
        WT_CHECK_EQ(weft_join(jt, &r), 0);
        v += WT_INT(r);
    } else {
        free(deleg);
    }
    bool backwards = wt_rand_below(&ys, 2);
    for (int i = 0; i < nd; i++) {
        void *r = NULL;
        WT_CHECK_EQ(weft_join(direct[backwards ? nd - 1 - i : i], &r), 0);
        v += WT_INT(r);
    }
    return WT_PTR(v);
}

static void test_random_trees(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&nodes_ran, 0);
    atomic_store(&detached_sum, 0);
    atomic_store(&joiners_ran, 0);

    long roots = P.roots;
    uint64_t exp_nodes = 0, exp_detached = 0, exp_joined = 0;
    uint64_t *keys = calloc((size_t)roots, sizeof *keys);
    weft_task **t = calloc((size_t)roots, sizeof *t);
    assert_non_null(keys);
    assert_non_null(t);
    for (long r = 0; r < roots; r++) {
        keys[r] = wt_mix(P.seed, (uint64_t)r);
        exp_joined += expect_node(keys[r], P.depth, &exp_nodes, &exp_detached);
    }

    weft_runtime *rt = new_runtime();
    for (long r = 0; r < roots; r++) {
        struct node_arg *a = malloc(sizeof *a);
        assert_non_null(a);
        *a = (struct node_arg){.key = keys[r], .depth = P.depth};
        assert_int_equal(weft_spawn(rt, node, a, &t[r]), 0);
    }
    uint64_t joined = 0;
    for (long r = roots - 1; r >= 0; r--) {
        void *v = NULL;
        assert_int_equal(weft_join(t[r], &v), 0);
        joined += WT_INT(v);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);

    fprintf(stderr, "random trees: %" PRIu64 " nodes, %ld joiner fibers\n",
            exp_nodes, atomic_load(&joiners_ran));
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(joined, exp_joined);
    assert_int_equal(atomic_load(&nodes_ran), exp_nodes);
    assert_int_equal(atomic_load(&detached_sum), exp_detached);
    free(keys);
    free(t);
}

/* ---- Join chains ------------------------------------------------------- */

/* Link i joins link i-1 (spawned before it, maybe running on another
 * worker) and returns its result + i: the whole chain sums 0..n-1. */
struct link {
    weft_task *prev;
    long i;
};

static void *chain_link(void *p) {
    struct link l = *(struct link *)p;
    free(p);
    uint64_t ys = wt_mix(P.seed, (uint64_t)l.i);
    random_yields(&ys, 3);
    long v = 0;
    if (l.prev) {
        void *r = NULL;
        WT_CHECK_EQ(weft_join(l.prev, &r), 0);
        v = (long)WT_INT(r);
    }
    random_yields(&ys, 1);
    return WT_PTR(v + l.i);
}

/* Builds the chain from a fiber (spawns and joins all inside weft) or
 * from the plain thread. */
static void *build_chain(void *p) {
    long n = (long)WT_INT(p);
    weft_task *prev = NULL;
    for (long i = 0; i < n; i++) {
        struct link *l = malloc(sizeof *l);
        WT_CHECK(l != NULL);
        if (!l)
            break;
        *l = (struct link){.prev = prev, .i = i};
        weft_task *t = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, chain_link, l, &t), 0);
        prev = t;
    }
    void *r = NULL;
    WT_CHECK_EQ(weft_join(prev, &r), 0);
    return r;
}

static void test_join_chain(void **state) {
    (void)state;
    wt_reset();
    long n = P.roots * 5; /* all n links are alive at once */
    weft_runtime *rt = new_runtime();

    void *r = NULL;
    assert_int_equal(weft_run(rt, build_chain, WT_PTR(n), &r), 0);
    assert_int_equal((long)WT_INT(r), n * (n - 1) / 2);

    weft_task *prev = NULL;
    for (long i = 0; i < n; i++) {
        struct link *l = malloc(sizeof *l);
        assert_non_null(l);
        *l = (struct link){.prev = prev, .i = i};
        assert_int_equal(weft_spawn(rt, chain_link, l, &prev), 0);
    }
    assert_int_equal(weft_join(prev, &r), 0);
    assert_int_equal((long)WT_INT(r), n * (n - 1) / 2);

    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Yield storm ------------------------------------------------------- */

static atomic_long storm_steps;

static void *tiny(void *p) {
    return WT_PTR(WT_INT(p) + 1);
}

static void *storm_fiber(void *p) {
    uint64_t s = wt_mix(P.seed ^ 0x73746f72ull, WT_INT(p));
    long steps = 50 + (long)wt_rand_below(&s, 200);
    for (long i = 0; i < steps; i++) {
        uint32_t what = wt_rand_below(&s, 16);
        if (what == 0) {
            weft_task *t = NULL;
            WT_CHECK_EQ(weft_spawn(NULL, tiny, WT_PTR(i), &t), 0);
            void *r = NULL;
            WT_CHECK_EQ(weft_join(t, &r), 0);
            WT_CHECK_EQ(WT_INT(r), i + 1);
        } else if (what == 1) {
            WT_CHECK_EQ(weft_spawn(NULL, tiny, NULL, NULL), 0);
        } else {
            weft_yield();
        }
        atomic_fetch_add_explicit(&storm_steps, 1, memory_order_relaxed);
    }
    return WT_PTR(steps);
}

static void test_yield_storm(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&storm_steps, 0);
    long n = P.roots * 4;
    weft_task **t = calloc((size_t)n, sizeof *t);
    assert_non_null(t);
    weft_runtime *rt = new_runtime();
    for (long i = 0; i < n; i++)
        assert_int_equal(weft_spawn(rt, storm_fiber, WT_PTR(i), &t[i]), 0);
    uint64_t order = P.seed;
    long expect = 0;
    /* Join in a random order: a random permutation (Fisher-Yates). */
    for (long i = n - 1; i > 0; i--) {
        long j = (long)wt_rand_below(&order, (uint32_t)(i + 1));
        weft_task *x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        assert_int_equal(weft_join(t[i], &r), 0);
        expect += (long)WT_INT(r);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&storm_steps), expect);
    free(t);
    WT_ASSERT_NO_FAILURES();
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.roots = wt_arg(argc, argv, 2, 1000);
    P.depth = (int)wt_arg(argc, argv, 3, 8);
    P.seed = wt_seed();
    fprintf(stderr, "stress_spawn: workers=%u roots=%ld depth=%d\n", P.workers,
            P.roots, P.depth);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_trees),
        cmocka_unit_test(test_join_chain),
        cmocka_unit_test(test_yield_storm),
    };
    return cmocka_run_group_tests_name("stress.spawn", tests, NULL, NULL);
}
