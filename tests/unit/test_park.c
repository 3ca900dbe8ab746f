/* tests/unit/test_park.c - lib/park.[ch]: futex sleep and wake. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "park.h"
#include "weft.h"

static _Atomic uint32_t word;

static void test_wait_on_changed_word_returns_at_once(void **state) {
    (void)state;
    atomic_store(&word, 1);
    assert_int_equal(weft__park_wait(&word, 0, WEFT_FOREVER), 0);
}

static void test_deadline_is_never_early_and_errno_kept(void **state) {
    (void)state;
    atomic_store(&word, 0);
    errno = 1234;
    uint64_t start = weft_now();
    int rc;
    do
        rc = weft__park_wait(&word, 0, start + 10 * WEFT_MSEC);
    while (rc != -ETIMEDOUT);
    assert_true(weft_now() - start >= 10 * WEFT_MSEC);
    assert_int_equal(errno, 1234);
}

static void *waker(void *arg) {
    (void)arg;
    atomic_store(&word, 1);
    weft__park_wake(&word, 1);
    return NULL;
}

static void test_wake_ends_the_wait(void **state) {
    (void)state;
    atomic_store(&word, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waker, NULL), 0);
    while (atomic_load(&word) == 0)
        weft__park_wait(&word, 0, WEFT_FOREVER);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&word), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_on_changed_word_returns_at_once),
        cmocka_unit_test(test_deadline_is_never_early_and_errno_kept),
        cmocka_unit_test(test_wake_ends_the_wait),
    };
    return cmocka_run_group_tests_name("park", tests, NULL, NULL);
}
