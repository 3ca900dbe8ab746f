/* tests/unit/test_inject.c - lib/inject.[ch]: FIFO order, batches, len,
 * chains taken whole or split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fiber.h"
#include "inject.h"

static struct weft_fiber fibers[8];
static struct weft_fiber many[200];

/* Push many[from .. from+n) as one chain. */
static void push_chain(struct weft_inject *q, int from, int n) {
    for (int i = from; i < from + n - 1; i++)
        many[i].qnext = &many[i + 1];
    weft__inject_push_chain(q, &many[from], &many[from + n - 1], (size_t)n);
}

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

/* Chains of several lengths, popped in batches that take some whole,
 * split others, and cross from one chain into the next: every fiber comes
 * out once, in order, unlinked, and len follows. */
static void test_chains_whole_split_and_across(void **state) {
    (void)state;
    struct weft_inject q;
    weft__inject_init(&q);
    static const int lengths[] = {16, 1, 1, 40, 3, 64, 16, 59};
    int pushed = 0;
    for (size_t c = 0; c < sizeof lengths / sizeof *lengths; c++) {
        push_chain(&q, pushed, lengths[c]);
        pushed += lengths[c];
    }
    assert_int_equal(pushed, 200);
    assert_int_equal(weft__inject_len(&q), 200);
    static const size_t asks[] = {1, 16, 5, 64, 7, 1, 100, 64, 64};
    struct weft_fiber *out[WEFT_INJECT_POP_MAX];
    int popped = 0;
    for (size_t a = 0; a < sizeof asks / sizeof *asks && popped < pushed; a++) {
        size_t want = asks[a] < WEFT_INJECT_POP_MAX ? asks[a] : WEFT_INJECT_POP_MAX;
        size_t left = (size_t)(pushed - popped);
        size_t n = weft__inject_pop_batch(&q, out, asks[a]);
        assert_int_equal(n, want < left ? want : left);
        for (size_t i = 0; i < n; i++) {
            assert_ptr_equal(out[i], &many[popped + (int)i]);
            assert_null(out[i]->qnext);
        }
        popped += (int)n;
        assert_int_equal(weft__inject_len(&q), (size_t)(pushed - popped));
    }
    assert_int_equal(popped, pushed);
    assert_int_equal(weft__inject_pop_batch(&q, out, 8), 0);
    /* Empty again: a new chain starts a new list. */
    push_chain(&q, 0, 3);
    assert_int_equal(weft__inject_pop_batch(&q, out, 2), 2);
    push_chain(&q, 3, 2);
    assert_int_equal(weft__inject_pop_batch(&q, out, 8), 3);
    assert_ptr_equal(out[0], &many[2]);
    assert_ptr_equal(out[1], &many[3]);
    assert_ptr_equal(out[2], &many[4]);
    weft__inject_fini(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_batches),
        cmocka_unit_test(test_chains_whole_split_and_across),
    };
    return cmocka_run_group_tests_name("inject", tests, NULL, NULL);
}
