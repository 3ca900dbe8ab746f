/* tests/unit/test_inject.c - lib/inject.[ch]: FIFO order, batches, len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fiber.h"
#include "inject.h"

static struct weft_fiber fibers[8];

static void test_fifo_and_batches(void **state) {
    (void)state;
    struct weft_inject q;
    weft__inject_init(&q);
    struct weft_fiber *out[8];
    assert_int_equal(weft__inject_pop_batch(&q, out, 8), 0);
    for (int i = 0; i < 5; i++)
        weft__inject_push(&q, &fibers[i]);
    assert_int_equal(weft__inject_len(&q), 5);
    assert_int_equal(weft__inject_pop_batch(&q, out, 2), 2);
    assert_ptr_equal(out[0], &fibers[0]);
    assert_ptr_equal(out[1], &fibers[1]);
    /* A chain goes in behind, in order. */
    fibers[5].qnext = &fibers[6];
    weft__inject_push_chain(&q, &fibers[5], &fibers[6], 2);
    assert_int_equal(weft__inject_len(&q), 5);
    assert_int_equal(weft__inject_pop_batch(&q, out, 8), 5);
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(out[i], &fibers[i + 2]);
    assert_int_equal(weft__inject_len(&q), 0);
    assert_int_equal(weft__inject_pop_batch(&q, out, 8), 0);
    weft__inject_fini(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_batches),
    };
    return cmocka_run_group_tests_name("inject", tests, NULL, NULL);
}
