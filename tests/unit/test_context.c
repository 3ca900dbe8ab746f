/* tests/unit/test_context.c - lib/context.[ch]: switching, passing data,
 * and the benchmark floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "context.h"

static struct weft_context main_ctx, co_ctx;
static int steps;

static void co_entry(struct weft_transfer t) {
    main_ctx.fctx = t.fctx;
    weft__context_started(&co_ctx);
    intptr_t v = (intptr_t)t.data;
    for (;;) {
        steps++;
        struct weft_transfer back = weft__context_switch(&co_ctx, &main_ctx, (void *)(v * 2));
        main_ctx.fctx = back.fctx;
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
        co_ctx.fctx = t.fctx;
        assert_int_equal((intptr_t)t.data, 2 * i);
    }
    assert_int_equal(steps, 100);
    weft__context_release(&co_ctx);
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
        cmocka_unit_test(test_pingpong_floor_runs),
    };
    return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
