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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_value_has_a_text),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
