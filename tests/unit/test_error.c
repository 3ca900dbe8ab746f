/* tests/unit/test_error.c - lib/error.c: weft_strerror. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "weft.h"

static void test_every_value_has_a_text(void **state) {
    (void)state;
    for (int e = -200; e <= 200; e++) {
        const char *s = weft_strerror(e);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
    assert_string_equal(weft_strerror(-ETIMEDOUT), "timed out");
    assert_string_equal(weft_strerror(-ECANCELED), "cancelled");
    assert_string_equal(weft_strerror(0), "success");
    assert_string_not_equal(weft_strerror(-EINVAL), weft_strerror(-ENOMEM));
}

/* Every code a weft call documents has a name of its own, not the
 * generic text of unknown values. */
static void test_every_documented_code_is_named(void **state) {
    (void)state;
    const int codes[] = {EINVAL, ENOMEM, EAGAIN, ETIMEDOUT, ECANCELED, EDEADLK,
                         EPIPE,  EBUSY,  EPERM,  ESRCH,     EOVERFLOW, EINTR};
    const char *unknown = weft_strerror(-9999);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_not_equal(weft_strerror(-codes[i]), unknown);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_value_has_a_text),
        cmocka_unit_test(test_every_documented_code_is_named),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
