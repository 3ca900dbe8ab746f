/* tests/unit/test_chan.c - lib/chan.c from one thread: ring order and
 * wrap-around, try_ calls, close and drain, argument checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft.h"

static void test_ring_wraps_in_order(void **state) {
    (void)state;
    weft_chan *ch;
    assert_int_equal(weft_chan_create(&ch, sizeof(int), 3), 0);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        while (weft_chan_try_send(ch, &next_in) == 0)
            next_in++;
        assert_int_equal(next_in - next_out, 3); /* full at capacity */
        int v;
        assert_int_equal(weft_chan_try_recv(ch, &v), 0);
        assert_int_equal(v, next_out++);
        assert_int_equal(weft_chan_try_recv(ch, &v), 0);
        assert_int_equal(v, next_out++);
    }
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static void test_close_then_drain(void **state) {
    (void)state;
    weft_chan *ch;
    assert_int_equal(weft_chan_create(&ch, sizeof(long), 4), 0);
    long v = 7;
    assert_int_equal(weft_chan_send(ch, &v), 0);
    assert_int_equal(weft_chan_close(ch), 0);
    assert_int_equal(weft_chan_close(ch), -EPIPE);
    assert_int_equal(weft_chan_send(ch, &v), -EPIPE);
    long got = 0;
    assert_int_equal(weft_chan_recv(ch, &got), 0);
    assert_int_equal(got, 7);
    assert_int_equal(weft_chan_recv(ch, &got), -EPIPE);
    assert_int_equal(weft_chan_try_recv(ch, &got), -EPIPE);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static void test_rendezvous_try_and_timeouts(void **state) {
    (void)state;
    weft_chan *ch;
    assert_int_equal(weft_chan_create(&ch, 1, 0), 0);
    char c = 'x';
    assert_int_equal(weft_chan_try_send(ch, &c), -EAGAIN); /* nobody receives */
    assert_int_equal(weft_chan_try_recv(ch, &c), -EAGAIN);
    uint64_t t0 = weft_now();
    assert_int_equal(weft_chan_send_for(ch, &c, 10 * WEFT_MSEC), -ETIMEDOUT);
    assert_true(weft_now() - t0 >= 10 * WEFT_MSEC);
    /* The timed-out value was withdrawn: nothing to receive. */
    assert_int_equal(weft_chan_try_recv(ch, &c), -EAGAIN);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static void test_bad_arguments(void **state) {
    (void)state;
    weft_chan *ch = (weft_chan *)1;
    assert_int_equal(weft_chan_create(NULL, 4, 1), -EINVAL);
    assert_int_equal(weft_chan_create(&ch, 0, 1), -EINVAL);
    assert_null(ch);
    assert_int_equal(weft_chan_send(NULL, &ch), -EINVAL);
    assert_int_equal(weft_chan_close(NULL), -EINVAL);
    assert_int_equal(weft_chan_destroy(NULL), -EINVAL);
    assert_int_equal(weft_chan_create(&ch, 4, 1), 0);
    assert_int_equal(weft_chan_send(ch, NULL), -EINVAL);
    assert_int_equal(weft_chan_recv(ch, NULL), -EINVAL);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_wraps_in_order),
        cmocka_unit_test(test_close_then_drain),
        cmocka_unit_test(test_rendezvous_try_and_timeouts),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}
