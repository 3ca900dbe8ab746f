/* tests/unit/test_fiber.c - lib/fiber.[ch]: initial state, references,
 * the control-block cache, chunk growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fiber.h"

static void *body(void *arg) { return arg; }

static struct weft_fiber_pool pool;

static unsigned cached(const struct weft_fiber_cache *c) {
    return c->loaded.count + c->spare.count;
}

static int setup(void **state) {
    (void)state;
    weft__fiber_pool_init(&pool);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    weft__fiber_pool_fini(&pool); /* frees every block, whatever its state */
    return 0;
}

static void test_new_fiber_state(void **state) {
    (void)state;
    struct weft_fiber *f = weft__fiber_new(&pool, NULL, NULL, body, (void *)5, 3, true);
    assert_non_null(f);
    assert_true(weft__fiber_valid(f));
    assert_int_equal(weft__fiber_status(f), WEFT_FIBER_NEW);
    assert_int_equal(atomic_load(&f->refs), 2);
    assert_int_equal(atomic_load(&f->handle_live), 1);
    assert_int_equal(atomic_load(&f->joiner), WEFT_JOINER_NONE);
    assert_null(f->stack);
    assert_int_equal(f->stack_class, 3);
    assert_ptr_equal(f->arg, (void *)5);
    weft__fiber_unref_n(f, 2, NULL);
    assert_false(weft__fiber_valid(f));
}

/* The last reference recycles into the cache, and the cache hands the
 * block out again; a recycled block reads as dead until then. */
static void test_last_unref_recycles(void **state) {
    (void)state;
    struct weft_fiber_cache cache = {0};
    struct weft_fiber *f = weft__fiber_new(&pool, &cache, NULL, body, NULL, 0, true);
    weft__fiber_unref(f, &cache);
    assert_true(weft__fiber_valid(f)); /* one reference left */
    unsigned before = cached(&cache);   /* a batch came from the pool */
    weft__fiber_unref(f, &cache);
    assert_false(weft__fiber_valid(f)); /* still readable memory (P2) */
    assert_int_equal(cached(&cache), before + 1);
    struct weft_fiber *g = weft__fiber_new(&pool, &cache, NULL, body, NULL, 0, false);
    assert_ptr_equal(g, f);
    assert_int_equal(cached(&cache), before);
    assert_int_equal(atomic_load(&g->refs), 1);
    assert_int_equal(atomic_load(&g->handle_live), 0);
    weft__fiber_unref(g, &cache);
    weft__fiber_cache_drain(&cache, &pool);
    assert_int_equal(cached(&cache), 0);
    assert_null(cache.loaded.head);
    assert_null(cache.spare.head);
}

/* A worker that only frees does not hoard: its cache stays bounded, the
 * surplus goes back to the pool for the others. */
static void test_cache_is_bounded(void **state) {
    (void)state;
    struct weft_fiber_cache producer = {0}, consumer = {0};
    enum { N = 5000 };
    static struct weft_fiber *f[N];
    for (int i = 0; i < N; i++)
        f[i] = weft__fiber_new(&pool, &producer, NULL, body, NULL, 0, false);
    for (int i = 0; i < N; i++)
        weft__fiber_unref(f[i], &consumer);
    assert_true(cached(&consumer) <= 2 * WEFT_FIBER_BATCH);
    assert_true(pool.nfree >= N - 2 * WEFT_FIBER_BATCH);
    weft__fiber_cache_drain(&producer, &pool);
    weft__fiber_cache_drain(&consumer, &pool);
}

/* Batches and single blocks mix in the pool (P3): plain threads give
 * blocks back one at a time and take one at a time, workers give and
 * take batches. Every block comes out exactly once, and the free count
 * stays exact. */
static int by_address(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

static void test_pool_mixes_batches_and_singles(void **state) {
    (void)state;
    struct weft_fiber_cache maker = {0}, giver = {0}, taker = {0};
    enum { N = 3000 };
    static struct weft_fiber *f[N];
    for (int i = 0; i < N; i++)
        f[i] = weft__fiber_new(&pool, &maker, NULL, body, NULL, 0, false);
    weft__fiber_cache_drain(&maker, &pool);
    size_t spare = pool.nfree; /* carved with the last batch, never used */
    for (int i = 0; i < N; i++) /* singles, batches, singles, ... */
        weft__fiber_unref(f[i], (i / 700) % 2 ? &giver : NULL);
    weft__fiber_cache_drain(&giver, &pool);
    assert_int_equal(pool.nfree, spare + N);
    size_t total = spare + N;
    static struct weft_fiber *g[N + 2 * WEFT_FIBER_BATCH];
    assert_true(total <= N + 2 * WEFT_FIBER_BATCH);
    for (size_t i = 0; i < total; i++) {
        /* A third one at a time (they split batches), then by batches. */
        g[i] = weft__fiber_new(&pool, i < total / 3 ? NULL : &taker, NULL, body, NULL, 0, false);
        assert_non_null(g[i]);
    }
    assert_int_equal(pool.nfree + cached(&taker), 0);
    qsort(g, total, sizeof *g, by_address);
    for (size_t i = 1; i < total; i++)
        assert_ptr_not_equal(g[i], g[i - 1]);
    for (size_t i = 0; i < total; i++)
        weft__fiber_unref(g[i], &taker);
    weft__fiber_cache_drain(&taker, &pool);
    assert_int_equal(pool.nfree, total);
}

/* Chunks double in size: a hundred thousand blocks take a handful of
 * mmaps, not one allocation per 256 blocks; blocks are distinct and
 * stay aligned. */
static void test_chunks_grow_geometrically(void **state) {
    (void)state;
    struct weft_fiber_cache cache = {0};
    enum { N = 100000 };
    static struct weft_fiber *f[N];
    for (int i = 0; i < N; i++) {
        f[i] = weft__fiber_new(&pool, &cache, NULL, body, NULL, 0, false);
        assert_non_null(f[i]);
        assert_int_equal((uintptr_t)f[i] % WEFT_CACHELINE, 0);
    }
    assert_true(pool.nchunks <= 10);
    for (int i = 1; i < N; i++)
        assert_ptr_not_equal(f[i], f[i - 1]);
    for (int i = 0; i < N; i++)
        weft__fiber_unref(f[i], &cache);
    weft__fiber_cache_drain(&cache, &pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_fiber_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_unref_recycles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_mixes_batches_and_singles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_grow_geometrically, setup, teardown),
    };
    return cmocka_run_group_tests_name("fiber", tests, NULL, NULL);
}
