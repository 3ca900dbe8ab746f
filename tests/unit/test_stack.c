/* tests/unit/test_stack.c - lib/stack.[ch]: classes, slabs, canaries,
 * caches and trimming. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "stack.h"
#include "weft.h"

static void test_classes_round_up_to_powers_of_two(void **state) {
    (void)state;
    assert_int_equal(weft__stack_class(1), 0);
    assert_int_equal(weft__stack_class(WEFT_STACK_MIN), 0);
    assert_int_equal(weft__stack_class(WEFT_STACK_MIN + 1), 1);
    assert_int_equal(weft__stack_class_size(weft__stack_class(WEFT_STACK_DEFAULT)),
                     WEFT_STACK_DEFAULT);
    assert_int_equal(weft__stack_class_size(weft__stack_class(100 * 1024)), 128 * 1024);
    assert_int_equal(weft__stack_class(WEFT_STACK_MAX), WEFT_STACK_CLASSES - 1);
    assert_int_equal(weft__stack_class(WEFT_STACK_MAX + 1), -1);
    assert_int_equal(weft__stack_class(0), -1);
}

/* Stacks are distinct, usable end to end, and carry a valid canary just
 * below their usable region (S2). */
static void test_stacks_are_distinct_usable_and_armed(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    int k = weft__stack_class(64 * 1024);
    weft__stack_pool_init(&pool, k);
    enum { N = 40 };
    struct weft_stack *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = weft__stack_get(&pool, &cache, 8);
        assert_non_null(s[i]);
        assert_true(s[i]->size >= 64 * 1024 - 4096 - WEFT_STACK_TOP_RESERVE);
        assert_true((uintptr_t)s[i]->canary < (uintptr_t)s[i]->lo);
        assert_true(weft__stack_canary_ok(s[i]));
        memset(s[i]->lo, 0xab, s[i]->size); /* the whole region is ours */
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(s[i], s[j]);
    }
    /* Writing every stack did not touch any other stack's canary. */
    for (int i = 0; i < N; i++)
        assert_true(weft__stack_canary_ok(s[i]));
    /* An overflow by one word is seen. */
    uint64_t saved = *s[3]->canary;
    *s[3]->canary = 0;
    assert_false(weft__stack_canary_ok(s[3]));
    *s[3]->canary = saved;
    for (int i = 0; i < N; i++)
        weft__stack_put(&pool, &cache, 8, s[i]);
    /* Beyond the high-water mark, stacks went back to the pool. */
    assert_true(cache.count <= 8);
    assert_true(pool.nfree > 0);
    weft__stack_cache_drain(&pool, &cache);
    assert_int_equal(cache.count, 0);
    /* Every stack is back: whole slabs are queued, not trimmed on the
     * way back; a trim returns one slab's pages at once; a stack handed
     * out again is armed again. */
    assert_int_equal(weft__stack_pool_trimmed(&pool), 0);
    size_t trims = 0;
    uint64_t due = WEFT_FOREVER;
    while (weft__stack_pool_trim_one(&pool, weft_now(), &due))
        trims++;
    assert_true(due == WEFT_FOREVER); /* none left waiting */
    assert_true(trims >= 1);
    assert_int_equal(weft__stack_pool_trimmed(&pool), trims);
    struct weft_stack *again = weft__stack_get(&pool, &cache, 8);
    assert_true(weft__stack_canary_ok(again));
    weft__stack_put(&pool, &cache, 8, again);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
}

/* A queued slab that a refill draws from again is not trimmed: its
 * stacks may be in use by then (S3). */
enum { SLAB_N = 256 }; /* one slab of 16 KiB stacks */

/* Take every stack of a first slab from a new 16 KiB pool, writing the
 * top of each, and give them all back: the slab is all free (queued). */
static void cycle_one_slab(struct weft_stack_pool *pool, struct weft_stack_cache *cache,
                           struct weft_stack **s) {
    weft__stack_pool_init(pool, 0);
    for (int i = 0; i < SLAB_N; i++) {
        s[i] = weft__stack_get(pool, cache, SLAB_N);
        memset((char *)s[i]->lo + s[i]->size - 64, 0xcd, 64);
    }
    for (int i = 0; i < SLAB_N; i++)
        weft__stack_put(pool, cache, SLAB_N, s[i]);
    weft__stack_cache_drain(pool, cache);
}

static void test_reused_slab_is_not_trimmed(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    static struct weft_stack *s[SLAB_N];
    cycle_one_slab(&pool, &cache, s);
    struct weft_stack *again = weft__stack_get(&pool, &cache, 2);
    memset((char *)again->lo + again->size - 64, 0xab, 64);
    uint64_t due = WEFT_FOREVER;
    assert_false(weft__stack_pool_trim_one(&pool, weft_now(), &due));
    assert_int_equal(weft__stack_pool_trimmed(&pool), 0);
    /* Its page is still there, written, and its canary holds. */
    assert_int_equal(((unsigned char *)again->lo)[again->size - 1], 0xab);
    assert_true(weft__stack_canary_ok(again));
    weft__stack_put(&pool, &cache, 2, again);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
}

/* With a retention time, an all-free slab keeps its pages until it has
 * been free that long; the trim says when that will be. */
static void test_free_slab_is_retained_for_a_while(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    static struct weft_stack *s[SLAB_N];
    uint64_t freed_after = weft_now();
    cycle_one_slab(&pool, &cache, s);
    uint64_t freed_before = weft_now();
    pool.retain_ns = 3600 * WEFT_SEC; /* set before the first trim looks */
    uint64_t due = WEFT_FOREVER;
    assert_false(weft__stack_pool_trim_one(&pool, weft_now(), &due));
    assert_true(due >= freed_after + pool.retain_ns);
    assert_true(due <= freed_before + pool.retain_ns);
    assert_int_equal(weft__stack_pool_trimmed(&pool), 0);
    /* Still resident: what was written is still there. */
    assert_int_equal(((unsigned char *)s[7]->lo)[s[7]->size - 1], 0xcd);
    /* Once due, it goes. */
    uint64_t later = WEFT_FOREVER;
    assert_true(weft__stack_pool_trim_one(&pool, due, &later));
    assert_true(later == WEFT_FOREVER);
    assert_int_equal(weft__stack_pool_trimmed(&pool), 1);
    weft__stack_pool_fini(&pool);
}

/* A warm stack comes back first (LIFO cache): reuse before fresh pages. */
static void test_cache_reuses_the_warmest_stack(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    weft__stack_pool_init(&pool, 0);
    struct weft_stack *a = weft__stack_get(&pool, &cache, 16);
    struct weft_stack *b = weft__stack_get(&pool, &cache, 16);
    weft__stack_put(&pool, &cache, 16, a);
    weft__stack_put(&pool, &cache, 16, b);
    assert_ptr_equal(weft__stack_get(&pool, &cache, 16), b);
    assert_ptr_equal(weft__stack_get(&pool, &cache, 16), a);
    weft__stack_put(&pool, &cache, 16, a);
    weft__stack_put(&pool, &cache, 16, b);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
}

/* The fault classifier used by the SIGSEGV handler. */
static void test_fault_classification(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    weft__stack_pool_init(&pool, 0);
    struct weft_stack *s = weft__stack_get(&pool, &cache, 4);
    uintptr_t lo = (uintptr_t)s->lo;
    assert_true(weft__stack_fault_is_overflow(s, lo - 8, lo + 100));
    assert_true(weft__stack_fault_is_overflow(s, 0x1000, lo - 16));
    assert_false(weft__stack_fault_is_overflow(s, 0x1000, lo + 512));
    assert_false(weft__stack_fault_is_overflow(s, lo + s->size + (1u << 20), lo + 512));
    weft__stack_put(&pool, &cache, 4, s);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
}

/* Whether the kernel refuses to read the page at addr (a guard). */
static bool is_guard(const void *addr) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    bool refused = write(fds[1], addr, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return refused;
}

/* Across several slabs (guards installed one by one in the first, in one
 * batched call in the later ones), the page below every guarded stack is
 * a guard and the stack itself is not. */
static void test_every_guarded_stack_has_its_guard(void **state) {
    (void)state;
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    weft__stack_pool_init(&pool, 0);
    enum { N = 700 }; /* three slabs of the smallest class */
    static struct weft_stack *s[N];
    int guarded = 0;
    for (int i = 0; i < N; i++) {
        s[i] = weft__stack_get(&pool, &cache, 8);
        assert_non_null(s[i]);
        assert_false(is_guard((char *)s[i]->lo + s[i]->size - 1));
        if (s[i]->guarded) {
            guarded++;
            assert_true(is_guard((char *)s[i]->lo - 1));
        }
    }
    assert_true(guarded > 0);
    for (int i = 0; i < N; i++)
        weft__stack_put(&pool, &cache, 8, s[i]);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
}

/* Slabs are carved from regions that double: sixteen slabs, four
 * mappings (2 + 4 + 8 + 16 slabs), not sixteen. */
static void test_slabs_share_growing_mappings(void **state) {
    (void)state;
    enum { N = 16 * 256 }; /* sixteen slabs of 16 KiB stacks */
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    struct weft_stack **s = calloc(N, sizeof *s);
    assert_non_null(s);
    weft__stack_pool_init(&pool, 0);
    for (int i = 0; i < N; i++) {
        s[i] = weft__stack_get(&pool, &cache, N);
        assert_non_null(s[i]);
        /* Slabs side by side in one region stay apart: each stack is
         * usable end to end and the canary below it holds. */
        memset((char *)s[i]->lo + s[i]->size - 64, 0xab, 64);
    }
    for (int i = 0; i < N; i++)
        assert_true(weft__stack_canary_ok(s[i]));
    assert_true(weft__stack_pool_mappings(&pool) <= 4);
    for (int i = 0; i < N; i++)
        weft__stack_put(&pool, &cache, N, s[i]);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
    free(s);
}

/* Making slabs does not grow the malloc heap: their headers live in
 * their own mappings (a malloc arena's growth is an mprotect that stalls
 * every other thread's page faults). */
static void test_slabs_take_nothing_from_malloc(void **state) {
    (void)state;
    enum { N = 1024 }; /* four slabs of 16 KiB stacks */
    struct weft_stack_pool pool;
    struct weft_stack_cache cache = {0};
    struct weft_stack **s = calloc(N, sizeof *s);
    assert_non_null(s);
    weft__stack_pool_init(&pool, 0);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        s[i] = weft__stack_get(&pool, &cache, N);
        assert_non_null(s[i]);
    }
    struct mallinfo2 after = mallinfo2();
    size_t grown = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
    /* Malloc'ed headers were 12 KiB a slab. */
    if (grown >= 4096)
        fail_msg("%zu bytes malloc'ed for %d stacks", grown, N);
    for (int i = 0; i < N; i++)
        weft__stack_put(&pool, &cache, N, s[i]);
    weft__stack_cache_drain(&pool, &cache);
    weft__stack_pool_fini(&pool);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_round_up_to_powers_of_two),
        cmocka_unit_test(test_stacks_are_distinct_usable_and_armed),
        cmocka_unit_test(test_cache_reuses_the_warmest_stack),
        cmocka_unit_test(test_reused_slab_is_not_trimmed),
        cmocka_unit_test(test_free_slab_is_retained_for_a_while),
        cmocka_unit_test(test_slabs_take_nothing_from_malloc),
        cmocka_unit_test(test_slabs_share_growing_mappings),
        cmocka_unit_test(test_fault_classification),
        cmocka_unit_test(test_every_guarded_stack_has_its_guard),
    };
    return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
