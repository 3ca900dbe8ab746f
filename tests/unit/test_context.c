/* tests/unit/test_context.c - lib/context.[ch]: switching, passing data,
 * and the benchmark floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "context.h"

#define WEFT_TEST_NOINLINE __attribute__((noinline))

static struct weft_context main_ctx, co_ctx;
static int steps;

static void co_entry(struct weft_transfer t) {
    weft__context_save(&main_ctx, t.fctx);
    weft__context_started(&co_ctx);
    intptr_t v = (intptr_t)t.data;
    for (;;) {
        steps++;
        struct weft_transfer back = weft__context_switch(&co_ctx, &main_ctx, (void *)(v * 2));
        weft__context_save(&main_ctx, back.fctx);
        v = (intptr_t)back.data;
    }
}

/* Data crosses in both directions, and each side resumes where it left. */
static void test_switch_passes_data_both_ways(void **state) {
    (void)state;
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(stack != MAP_FAILED);
    weft__context_init_thread(&main_ctx);
    weft__context_make(&co_ctx, stack, size, co_entry);
    for (intptr_t i = 1; i <= 100; i++) {
        struct weft_transfer t = weft__context_switch(&main_ctx, &co_ctx, (void *)i);
        weft__context_save(&co_ctx, t.fctx);
        assert_int_equal((intptr_t)t.data, 2 * i);
    }
    assert_int_equal(steps, 100);
    weft__context_release(&co_ctx);
    munmap(stack, size);
}

/* ---- Switching from any depth and call site ----------------------------
 * Each side switches from several call sites and from the bottom of
 * recursions of varying depth, and must come back to exactly the frame it
 * left, its locals and callee-saved registers whole (the switch's return
 * path, context.c, returns twice on the resumed side). */

static struct weft_context deep_main, deep_co;

/* Recurse `depth` frames, switch to `to` at the bottom, and check on the
 * way back up that every frame's local survived. Returns what came back
 * across the switch plus the sum of the frames' locals. */
static WEFT_TEST_NOINLINE intptr_t switch_at_depth(struct weft_context *self,
                                                   struct weft_context *to, int depth,
                                                   intptr_t out, struct weft_context *save_to) {
    volatile intptr_t mine = depth * 7 + 1;
    if (depth == 0) {
        struct weft_transfer t = weft__context_switch(self, to, (void *)out);
        weft__context_save(save_to, t.fctx);
        return (intptr_t)t.data;
    }
    intptr_t r = switch_at_depth(self, to, depth - 1, out, save_to);
    assert_int_equal(mine, depth * 7 + 1);
    return r + mine;
}

/* The sum switch_at_depth adds for `depth` frames. */
static intptr_t frames_sum(int depth) {
    intptr_t s = 0;
    for (int d = 1; d <= depth; d++)
        s += d * 7 + 1;
    return s;
}

/* A second call site for the same switch. */
static WEFT_TEST_NOINLINE intptr_t switch_via_other_site(struct weft_context *self,
                                                         struct weft_context *to,
                                                         intptr_t out, struct weft_context *save_to) {
    struct weft_transfer t = weft__context_switch(self, to, (void *)out);
    weft__context_save(save_to, t.fctx);
    return (intptr_t)t.data;
}

static void deep_co_entry(struct weft_transfer t) {
    weft__context_save(&deep_main, t.fctx);
    weft__context_started(&deep_co);
    intptr_t v = (intptr_t)t.data;
    for (int i = 0;; i++) {
        int depth = (i * 5) % 17;
        intptr_t back = (i % 3 == 0)
                            ? switch_via_other_site(&deep_co, &deep_main, v + 1, &deep_main)
                            : switch_at_depth(&deep_co, &deep_main, depth, v + 1,
                                              &deep_main) -
                                  frames_sum(depth);
        v = back;
    }
}

static void test_switch_from_any_depth_and_site(void **state) {
    (void)state;
    const size_t size = 256 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(stack != MAP_FAILED);
    weft__context_init_thread(&deep_main);
    weft__context_make(&deep_co, stack, size, deep_co_entry);
    /* The first switch starts the context; it answers v + 1. */
    assert_int_equal(switch_via_other_site(&deep_main, &deep_co, 0, &deep_co), 1);
    intptr_t v = 1;
    for (int i = 0; i < 1000; i++) {
        int depth = (i * 3) % 13;
        intptr_t got = (i % 4 == 0)
                           ? switch_via_other_site(&deep_main, &deep_co, v * 10, &deep_co)
                           : switch_at_depth(&deep_main, &deep_co, depth, v * 10,
                                             &deep_co) -
                                 frames_sum(depth);
        assert_int_equal(got, v * 10 + 1);
        v = i + 2;
    }
    weft__context_release(&deep_co);
    munmap(stack, size);
}

static void test_pingpong_floor_runs(void **state) {
    (void)state;
    weft__context_pingpong(1000);
    weft__context_pingpong(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_passes_data_both_ways),
        cmocka_unit_test(test_switch_from_any_depth_and_site),
        cmocka_unit_test(test_pingpong_floor_runs),
    };
    return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
