/* tests/unit/test_runtime.c - lib/runtime.[ch]: configuration checks,
 * repeated create/destroy without leaking threads. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime.h"

static int thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_bad_configs_are_refused(void **state) {
    (void)state;
    weft_runtime *rt = (weft_runtime *)0x1;
    assert_int_equal(weft_runtime_create(NULL, NULL), -EINVAL);
    weft_config cfg = {.workers = WEFT_MAX_WORKERS + 1};
    assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
    assert_null(rt);
    cfg = (weft_config){.stack_size = ((size_t)1 << 30) + 1};
    assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
    cfg = (weft_config){._reserved = {1}};
    assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
    assert_int_equal(weft_runtime_destroy(NULL), -EINVAL);
    assert_int_equal(weft_runtime_workers(NULL), -EINVAL);
}

static void test_defaults_and_small_stacks(void **state) {
    (void)state;
    weft_runtime *rt;
    assert_int_equal(weft_runtime_create(&rt, NULL), 0);
    assert_true(weft_runtime_workers(rt) >= 1);
    assert_int_equal(weft__runtime_sched(rt)->default_class,
                     weft__stack_class(WEFT_STACK_DEFAULT));
    assert_int_equal(weft_runtime_destroy(rt), 0);
    /* Sizes round up to a power-of-two class. */
    weft_config cfg = {.workers = 1, .stack_size = 20 * 1024};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    assert_int_equal(weft__runtime_sched(rt)->default_class, 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    cfg.stack_size = 1000;
    assert_int_equal(weft_runtime_create(&rt, &cfg), -EINVAL);
}

/* The thread count, once it settles on `want` (an exited thread may stay
 * listed in /proc for a moment after pthread_join returns). */
static int thread_count_settled(int want) {
    int n = thread_count();
    for (int i = 0; i < 200 && n != want; i++) {
        weft_sleep(5 * WEFT_MSEC);
        n = thread_count();
    }
    return n;
}

static void test_create_destroy_leaves_no_thread(void **state) {
    (void)state;
    /* Threads of earlier tests may still be listed: wait for a count
     * that holds for a while. */
    int before = thread_count();
    for (int i = 0, same = 0; i < 200 && same < 10; i++) {
        weft_sleep(2 * WEFT_MSEC);
        int now = thread_count();
        same = now == before ? same + 1 : 0;
        before = now;
    }
    for (int i = 0; i < 20; i++) {
        weft_runtime *rt;
        weft_config cfg = {.workers = 3};
        assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
        assert_int_equal(thread_count_settled(before + 4), before + 4); /* 3 workers + timer */
        assert_int_equal(weft_runtime_destroy(rt), 0);
    }
    assert_int_equal(thread_count_settled(before), before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs_are_refused),
        cmocka_unit_test(test_defaults_and_small_stacks),
        cmocka_unit_test(test_create_destroy_leaves_no_thread),
    };
    return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
