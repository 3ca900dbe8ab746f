/* tests/unit/test_deque.c - lib/deque.[ch], single-threaded behaviour. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
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

/* take() removes a fiber from anywhere among the newest max_depth, and
 * the rest keep their order for both ends; it refuses what is deeper,
 * absent, or gone. The deque is filled to capacity, around the index
 * wrap, so the gap is closed across it too. */
static void test_take_from_the_middle_keeps_order(void **state) {
    struct weft_deque *dq = *state;
    const int n = WEFT_DEQUE_CAP;
    /* Move the indices so that the slots used wrap around the array. */
    for (int i = 0; i < n / 2 + 1; i++) {
        assert_int_equal(weft__deque_push(dq, &fibers[0]), 0);
        assert_ptr_equal(weft__deque_steal(dq), &fibers[0]);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(weft__deque_push(dq, &fibers[i]), 0);
    int depth = n < 16 ? n : 16;
    /* Deeper than max_depth (if the deque holds more), or absent. */
    if (n > depth)
        assert_false(weft__deque_take(dq, &fibers[n - 1 - depth], depth));
    assert_false(weft__deque_take(dq, &fibers[WEFT_DEQUE_CAP], depth));
    /* The newest, one from the middle of the searched range, the oldest
     * searched. */
    bool gone[WEFT_DEQUE_CAP] = {false};
    int picks[3] = {n - 1, n - 1 - depth / 2, n - depth};
    for (int k = 0; k < 3; k++) {
        int p = picks[k];
        if (gone[p])
            continue;
        assert_true(weft__deque_take(dq, &fibers[p], depth));
        gone[p] = true;
        assert_false(weft__deque_take(dq, &fibers[p], depth)); /* once */
    }
    /* The oldest comes off the top, the rest off the bottom, in order. */
    int lo = 0, hi = n - 1;
    while (lo <= hi && gone[lo])
        lo++;
    if (lo <= hi) {
        assert_ptr_equal(weft__deque_steal(dq), &fibers[lo]);
        lo++;
    }
    for (int i = hi; i >= lo; i--)
        if (!gone[i])
            assert_ptr_equal(weft__deque_pop(dq), &fibers[i]);
    assert_null(weft__deque_pop(dq));
}

/* The oldest fiber, taken by the owner: the one case decided by CAS on
 * top, as the last element's pop. It is gone for thieves, and those
 * above it stay. */
static void test_take_the_oldest(void **state) {
    struct weft_deque *dq = *state;
    int n = WEFT_DEQUE_CAP < 3 ? WEFT_DEQUE_CAP : 3;
    for (int i = 0; i < n; i++)
        assert_int_equal(weft__deque_push(dq, &fibers[i]), 0);
    assert_true(weft__deque_take(dq, &fibers[0], n));
    for (int i = 1; i < n; i++)
        assert_ptr_equal(weft__deque_steal(dq), &fibers[i]);
    assert_null(weft__deque_steal(dq));
    /* A stolen fiber cannot be taken back. */
    assert_int_equal(weft__deque_push(dq, &fibers[0]), 0);
    assert_ptr_equal(weft__deque_steal(dq), &fibers[0]);
    assert_false(weft__deque_take(dq, &fibers[0], n));
    assert_int_equal(weft__deque_size(dq), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pop_is_lifo_steal_is_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_on_full_returns_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indices_wrap_around, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_element_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_from_the_middle_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_the_oldest, setup, teardown),
    };
    return cmocka_run_group_tests_name("deque", tests, NULL, NULL);
}
