/* tests/unit/test_deque.c - lib/deque.[ch], single-threaded behaviour. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "deque.h"
#include "fiber.h"

static struct weft_fiber fibers[WEFT_DEQUE_CAP + 1];

static int setup(void **state) {
    struct weft_deque *dq = aligned_alloc(WEFT_CACHELINE, sizeof *dq);
    assert_non_null(dq);
    weft__deque_init(dq);
    *state = dq;
    return 0;
}

static int teardown(void **state) {
    free(*state);
    return 0;
}

/* The owner pops newest-first (locality); thieves take oldest-first. */
static void test_pop_is_lifo_steal_is_fifo(void **state) {
    struct weft_deque *dq = *state;
    for (int i = 0; i < 3 && i < WEFT_DEQUE_CAP; i++)
        assert_int_equal(weft__deque_push(dq, &fibers[i]), 0);
    if (WEFT_DEQUE_CAP < 3)
        return;
    assert_ptr_equal(weft__deque_steal(dq), &fibers[0]);
    assert_ptr_equal(weft__deque_pop(dq), &fibers[2]);
    assert_ptr_equal(weft__deque_pop(dq), &fibers[1]);
    assert_null(weft__deque_pop(dq));
    assert_null(weft__deque_steal(dq));
}

/* A full deque refuses the push; sched.c then spills to the inject queue. */
static void test_push_on_full_returns_eagain(void **state) {
    struct weft_deque *dq = *state;
    for (int i = 0; i < WEFT_DEQUE_CAP; i++)
        assert_int_equal(weft__deque_push(dq, &fibers[i]), 0);
    assert_int_equal(weft__deque_size(dq), WEFT_DEQUE_CAP);
    assert_int_equal(weft__deque_push(dq, &fibers[WEFT_DEQUE_CAP]), -EAGAIN);
    /* Room again after one steal, and the order is kept. */
    assert_ptr_equal(weft__deque_steal(dq), &fibers[0]);
    assert_int_equal(weft__deque_push(dq, &fibers[WEFT_DEQUE_CAP]), 0);
    assert_ptr_equal(weft__deque_pop(dq), &fibers[WEFT_DEQUE_CAP]);
    assert_ptr_equal(weft__deque_steal(dq), &fibers[1]);
}

/* Indices run far past the capacity: ring wrap-around (I2). */
static void test_indices_wrap_around(void **state) {
    struct weft_deque *dq = *state;
    for (int round = 0; round < 10 * WEFT_DEQUE_CAP; round++) {
        assert_int_equal(weft__deque_push(dq, &fibers[0]), 0);
        assert_int_equal(weft__deque_push(dq, &fibers[1]), 0);
        assert_ptr_equal(weft__deque_steal(dq), &fibers[0]);
        assert_ptr_equal(weft__deque_pop(dq), &fibers[1]);
    }
    assert_int_equal(weft__deque_size(dq), 0);
}

/* The last element goes to exactly one of pop and steal. */
static void test_last_element_taken_once(void **state) {
    struct weft_deque *dq = *state;
    assert_int_equal(weft__deque_push(dq, &fibers[5]), 0);
    assert_ptr_equal(weft__deque_pop(dq), &fibers[5]);
    assert_null(weft__deque_steal(dq));
    assert_int_equal(weft__deque_push(dq, &fibers[6]), 0);
    assert_ptr_equal(weft__deque_steal(dq), &fibers[6]);
    assert_null(weft__deque_pop(dq));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pop_is_lifo_steal_is_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_on_full_returns_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indices_wrap_around, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_element_taken_once, setup, teardown),
    };
    return cmocka_run_group_tests_name("deque", tests, NULL, NULL);
}
