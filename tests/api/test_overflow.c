/*
 * tests/api/test_overflow.c - a fiber that overflows its stack kills the
 * process with a message on stderr that says "stack overflow" and names
 * the fiber, never a bare SIGSEGV. Each case runs in a child process.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <weft.h>

#include "test_util.h"

/* Exported (the executable is linked with -rdynamic), so the report can
 * name it. */
static volatile int limit = 1 << 30; /* never reached: the stack ends first */

__attribute__((noinline)) int weft_test_recurse(volatile char *prev, int depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth >= limit)
        return frame[0];
    return weft_test_recurse(frame, depth + 1) + frame[100];
}

void *weft_test_overflowing_fiber(void *arg) {
    (void)arg;
    return (void *)(intptr_t)weft_test_recurse(NULL, 0);
}

/* Runs in the child: spawn the overflowing fiber, named, and join it. */
static void child(void) {
    weft_runtime *rt;
    weft_config cfg = {.workers = 2, .stack_size = 64 * 1024};
    if (weft_runtime_create(&rt, &cfg) != 0)
        _exit(3);
    weft_spawn_opts opts = {.name = "deep-diver"};
    weft_task *t;
    if (weft_spawn_ex(rt, weft_test_overflowing_fiber, NULL, &opts, &t) != 0)
        _exit(4);
    weft_join(t, NULL);
    _exit(0); /* not reached */
}

static void test_overflow_is_reported_and_named(void **state) {
    (void)state;
    char out[4096];
    int status = wt_run_child(child, out, sizeof out);
    print_message("child stderr: %s\n", out);
    assert_true(status != -1 && WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT); /* weft's abort, not SIGSEGV */
    assert_non_null(strstr(out, "stack overflow"));
    assert_non_null(strstr(out, "deep-diver"));
    assert_non_null(strstr(out, "weft_test_overflowing_fiber"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_is_reported_and_named),
    };
    return cmocka_run_group_tests_name("overflow", tests, NULL, NULL);
}
