/*
 * tests/api/test_runtime.c - black-box: runtime create/destroy, config
 * checks, weft_run, several runtimes at once, and destroy waiting for
 * every task (weft.h "Runtime").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define SENTINEL_RT ((weft_runtime *)(uintptr_t)0x1)
#define SENTINEL_TASK ((weft_task *)(uintptr_t)0x1)

static void *return_arg(void *arg) {
    return arg;
}

static atomic_int counter;

static void *count_once(void *arg) {
    (void)arg;
    atomic_fetch_add(&counter, 1);
    return NULL;
}

/* Creates and destroys a runtime of n workers; checks the count. */
static void check_workers(unsigned n) {
    weft_runtime *rt = wt_runtime_new(n);
    assert_non_null(rt);
    assert_int_equal(weft_runtime_workers(rt), (int)n);
    void *res = NULL;
    assert_int_equal(weft_run(rt, return_arg, WT_PTR(n), &res), 0);
    assert_int_equal(WT_INT(res), n);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

static void test_create_destroy_worker_counts(void **state) {
    (void)state;
    check_workers(1);
    check_workers(2);
    check_workers(3);
    check_workers(16);
}

/* NULL config and a zeroed config both mean the defaults: one worker per
 * online CPU (the CPUs this process may use are accepted too). */
static void test_default_config(void **state) {
    (void)state;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                             : (int)online;

    weft_runtime *rt = SENTINEL_RT;
    assert_int_equal(weft_runtime_create(&rt, NULL), 0);
    assert_non_null(rt);
    int w = weft_runtime_workers(rt);
    assert_true(w == (int)online || w == allowed);
    assert_int_equal(weft_runtime_destroy(rt), 0);

    weft_config zero;
    memset(&zero, 0, sizeof zero);
    rt = SENTINEL_RT;
    assert_int_equal(weft_runtime_create(&rt, &zero), 0);
    assert_int_equal(weft_runtime_workers(rt), w);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* The upper bound itself is accepted; -EAGAIN is allowed if this machine
 * cannot start that many threads. */
static void test_max_workers_accepted(void **state) {
    (void)state;
    weft_runtime *rt = SENTINEL_RT;
    weft_config cfg = {.workers = WEFT_MAX_WORKERS};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc == -EAGAIN) {
        assert_null(rt);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(weft_runtime_workers(rt), WEFT_MAX_WORKERS);
    void *res = NULL;
    assert_int_equal(weft_run(rt, return_arg, WT_PTR(7), &res), 0);
    assert_int_equal(WT_INT(res), 7);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* A macro, so a failure reports the caller's line. */
#define expect_create_einval(cfg)                                            \
    do {                                                                     \
        weft_runtime *rt_ = SENTINEL_RT;                                     \
        assert_int_equal(weft_runtime_create(&rt_, (cfg)), -EINVAL);         \
        assert_null(rt_);                                                    \
    } while (0)

static void test_bad_config_einval(void **state) {
    (void)state;
    weft_config cfg;

    assert_int_equal(weft_runtime_create(NULL, NULL), -EINVAL);

    memset(&cfg, 0, sizeof cfg);
    cfg.workers = WEFT_MAX_WORKERS + 1;
    expect_create_einval(&cfg);

    memset(&cfg, 0, sizeof cfg);
    cfg.workers = UINT32_MAX;
    expect_create_einval(&cfg);

    memset(&cfg, 0, sizeof cfg);
    cfg.stack_size = (size_t)2 << 30; /* above the 1 GiB maximum */
    expect_create_einval(&cfg);

    memset(&cfg, 0, sizeof cfg);
    cfg.stack_size = SIZE_MAX;
    expect_create_einval(&cfg);

    /* Unknown trailing fields must be zero. */
    memset(&cfg, 0, sizeof cfg);
    cfg._reserved[0] = 1;
    expect_create_einval(&cfg);
    memset(&cfg, 0, sizeof cfg);
    cfg._reserved[6] = 1;
    expect_create_einval(&cfg);

    /* Still usable afterwards: nothing was left half-created. */
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* weft.h: "minimum 16 KiB, maximum 1 GiB"; a field out of range is
 * -EINVAL, below the minimum as above the maximum. */
static void test_stack_size_below_minimum_einval(void **state) {
    (void)state;
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.stack_size = 4096;
    expect_create_einval(&cfg);
    cfg.stack_size = 1;
    expect_create_einval(&cfg);
}

static void test_stack_size_bounds_accepted(void **state) {
    (void)state;
    size_t sizes[] = {16 * 1024, 20000 /* rounded up to pages */,
                      (size_t)1 << 30};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        weft_config cfg = {.workers = 2, .stack_size = sizes[i]};
        weft_runtime *rt = NULL;
        assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
        void *res = NULL;
        assert_int_equal(weft_run(rt, return_arg, WT_PTR(i + 1), &res), 0);
        assert_int_equal(WT_INT(res), i + 1);
        assert_int_equal(weft_runtime_destroy(rt), 0);
    }
}

/* A fiber may use most of a large stack: pages are committed on touch. */
static void *touch_deep_stack(void *arg) {
    size_t n = (size_t)WT_INT(arg);
    volatile char buf[8 << 20];
    for (size_t i = 0; i < n; i += 4096)
        buf[i] = (char)i;
    return WT_PTR(buf[n - 4096] == (char)(n - 4096));
}

static void test_large_stack_usable(void **state) {
    (void)state;
    weft_config cfg = {.workers = 2, .stack_size = (size_t)64 << 20};
    weft_runtime *rt = NULL;
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    void *res = NULL;
    assert_int_equal(weft_run(rt, touch_deep_stack, WT_PTR(8 << 20), &res), 0);
    assert_int_equal(WT_INT(res), 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

static void test_null_runtime_args(void **state) {
    (void)state;
    assert_int_equal(weft_runtime_destroy(NULL), -EINVAL);
    assert_int_equal(weft_runtime_workers(NULL), -EINVAL);
    assert_null(weft_runtime_current());

    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    void *res = WT_PTR(99);
    assert_int_equal(weft_run(NULL, return_arg, NULL, &res), -EINVAL);
    assert_int_equal(weft_run(rt, NULL, NULL, &res), -EINVAL);
    assert_int_equal(weft_run(rt, return_arg, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* A pointer that is not a runtime's, even a misaligned one, is refused
 * before anything is read through it (under UBSan, a misaligned read
 * would stop the test); so are misaligned synchronisation objects. */
static void test_misaligned_pointers_einval(void **state) {
    (void)state;
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    weft_runtime *bad = (weft_runtime *)((char *)rt + 1);
    assert_int_equal(weft_runtime_workers(bad), -EINVAL);
    assert_int_equal(weft_run(bad, return_arg, NULL, NULL), -EINVAL);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(bad, return_arg, NULL, &t), -EINVAL);
    assert_int_equal(weft_runtime_destroy(bad), -EINVAL);
    assert_int_equal(weft_runtime_destroy(rt), 0);

    static union {
        weft_mutex m;
        weft_cond c;
        weft_sem s;
        weft_wg wg;
        char bytes[256];
    } storage;
    void *odd = storage.bytes + 1;
    assert_int_equal(weft_mutex_init(odd), -EINVAL);
    assert_int_equal(weft_mutex_lock(odd), -EINVAL);
    assert_int_equal(weft_cond_init(odd), -EINVAL);
    assert_int_equal(weft_cond_signal(odd), -EINVAL);
    assert_int_equal(weft_sem_init(odd, 1), -EINVAL);
    assert_int_equal(weft_sem_release(odd), -EINVAL);
    assert_int_equal(weft_wg_init(odd), -EINVAL);
    assert_int_equal(weft_wg_done(odd), -EINVAL);
}

/* ---- From inside fibers ------------------------------------------------ */

struct inside {
    weft_runtime *rt;
    int destroy_rc;
    int run_rc;
    weft_runtime *current;
};

static void *call_destroy_and_run_on_own(void *arg) {
    struct inside *in = arg;
    in->current = weft_runtime_current();
    in->destroy_rc = weft_runtime_destroy(in->rt);
    in->run_rc = weft_run(in->rt, return_arg, NULL, NULL);
    return NULL;
}

static void test_destroy_and_run_from_own_fiber_edeadlk(void **state) {
    (void)state;
    struct inside in = {.rt = wt_runtime_new(2)};
    assert_non_null(in.rt);
    assert_int_equal(weft_run(in.rt, call_destroy_and_run_on_own, &in, NULL),
                     0);
    assert_ptr_equal(in.current, in.rt);
    assert_int_equal(in.destroy_rc, -EDEADLK);
    assert_int_equal(in.run_rc, -EDEADLK);
    /* The failed calls changed nothing: the runtime still works. */
    void *res = NULL;
    assert_int_equal(weft_run(in.rt, return_arg, WT_PTR(5), &res), 0);
    assert_int_equal(WT_INT(res), 5);
    assert_int_equal(weft_runtime_destroy(in.rt), 0);
}

/* ---- Several runtimes -------------------------------------------------- */

struct other {
    weft_runtime *outer;
    weft_runtime *inner;
};

static void *inner_body(void *arg) {
    struct other *o = arg;
    WT_CHECK(weft_runtime_current() == o->inner);
    int w = weft_worker_index();
    WT_CHECK(w >= 0 && w < 3);
    return WT_PTR(41);
}

/* In a fiber of `outer`: weft_run into `inner`, a cross-runtime spawn and
 * join, then create and destroy a third runtime from this fiber. */
static void *outer_body(void *arg) {
    struct other *o = arg;
    WT_CHECK(weft_runtime_current() == o->outer);

    void *res = NULL;
    WT_CHECK_EQ(weft_run(o->inner, inner_body, o, &res), 0);
    WT_CHECK_EQ(WT_INT(res), 41);
    WT_CHECK(weft_runtime_current() == o->outer);

    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(o->inner, inner_body, o, &t), 0);
    res = NULL;
    WT_CHECK_EQ(weft_join(t, &res), 0);
    WT_CHECK_EQ(WT_INT(res), 41);

    weft_runtime *third = NULL;
    WT_CHECK_EQ(weft_runtime_create(&third, &(weft_config){.workers = 1}), 0);
    if (third) {
        atomic_store(&counter, 0);
        for (int i = 0; i < 100; i++)
            WT_CHECK_EQ(weft_spawn(third, count_once, NULL, NULL), 0);
        /* Destroy from a fiber of another runtime waits like a join. */
        WT_CHECK_EQ(weft_runtime_destroy(third), 0);
        WT_CHECK_EQ(atomic_load(&counter), 100);
    }
    WT_CHECK(weft_runtime_current() == o->outer);
    return NULL;
}

static void test_nested_runtimes(void **state) {
    (void)state;
    wt_reset();
    struct other o = {.outer = wt_runtime_new(2), .inner = wt_runtime_new(3)};
    assert_non_null(o.outer);
    assert_non_null(o.inner);
    assert_int_equal(weft_run(o.outer, outer_body, &o, NULL), 0);
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(weft_runtime_destroy(o.inner), 0);
    assert_int_equal(weft_runtime_destroy(o.outer), 0);
}

/* ---- Destroy waits for every task -------------------------------------- */

/* Yields once, so that many tasks are started and unfinished at once;
 * not under TSan, whose limit on live fibers (test_util.h) that would
 * exceed. */
static void *count_after_yield(void *arg) {
    (void)arg;
    if (!WT_TSAN)
        weft_yield();
    atomic_fetch_add(&counter, 1);
    return NULL;
}

static void test_destroy_waits_for_detached(void **state) {
    (void)state;
    /* Fewer under TSan, whose thread state for each started fiber costs
     * a 768 KiB memset: 100k of them took 35 s of a 120 s timeout. */
    enum { N = WT_TSAN ? 10000 : 100000 };
    atomic_store(&counter, 0);
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    int spawned = 0;
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            spawned += weft_spawn(rt, count_after_yield, NULL, NULL) == 0;
        } else {
            weft_task *t = NULL;
            if (weft_spawn(rt, count_after_yield, NULL, &t) == 0 &&
                weft_detach(t) == 0)
                spawned++;
        }
    }
    assert_int_equal(spawned, N);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&counter), N);
}

/* Tasks whose handles are never consumed also finish before destroy
 * returns, and destroy frees their handles (ASan checks the leak). */
static void test_destroy_waits_for_unconsumed_handles(void **state) {
    (void)state;
    enum { N = 1000 };
    atomic_store(&counter, 0);
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    for (int i = 0; i < N; i++) {
        weft_task *t = NULL;
        assert_int_equal(weft_spawn(rt, count_after_yield, NULL, &t), 0);
        assert_non_null(t);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&counter), N);
}

/* A detached tree: nodes spawn detached children while destroy is
 * already waiting. A runtime's own fibers may spawn until the end, so
 * every node of every tree runs before destroy returns. */
enum { TREES = 8, TREE_DEPTH = 9 };
static atomic_int tree_ran, tree_bad_rc;

static void *detached_node(void *arg) {
    int depth = (int)WT_INT(arg);
    atomic_fetch_add(&tree_ran, 1);
    for (int i = 0; depth > 0 && i < 2; i++) {
        weft_yield();
        if (weft_spawn(NULL, detached_node, WT_PTR(depth - 1), NULL) != 0)
            atomic_fetch_add(&tree_bad_rc, 1);
    }
    return NULL;
}

static void test_destroy_waits_for_detached_tree(void **state) {
    (void)state;
    atomic_store(&tree_ran, 0);
    atomic_store(&tree_bad_rc, 0);
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    for (int i = 0; i < TREES; i++)
        assert_int_equal(
            weft_spawn(rt, detached_node, WT_PTR(TREE_DEPTH), NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&tree_bad_rc), 0);
    assert_int_equal(atomic_load(&tree_ran),
                     TREES * ((1 << (TREE_DEPTH + 1)) - 1));
}

/* While destroy waits, a spawn from a plain thread is refused, while the
 * runtime's own fibers may still spawn. */
static atomic_int release_blocker, blocker_started, blocker_spawn_rc;

static void *blocker(void *arg) {
    (void)arg;
    atomic_store(&blocker_started, 1);
    wt_yield_until(&release_blocker, 2000000000L);
    /* Destroy is waiting for this fiber, which may still spawn. */
    weft_task *t = NULL;
    int rc = weft_spawn(NULL, count_once, NULL, &t);
    if (rc == 0)
        rc = weft_join(t, NULL);
    atomic_store(&blocker_spawn_rc, rc);
    return NULL;
}

struct destroyer {
    weft_runtime *rt;
    int rc;
    atomic_int done;
};

static void *destroy_thread(void *arg) {
    struct destroyer *d = arg;
    d->rc = weft_runtime_destroy(d->rt);
    atomic_store(&d->done, 1);
    return NULL;
}

static void test_spawn_while_destroying_einval(void **state) {
    (void)state;
    wt_reset();
    atomic_store(&release_blocker, 0);
    atomic_store(&blocker_started, 0);
    atomic_store(&blocker_spawn_rc, 1);
    atomic_store(&counter, 0);
    struct destroyer d = {.rt = wt_runtime_new(2)};
    assert_non_null(d.rt);
    assert_int_equal(weft_spawn(d.rt, blocker, NULL, NULL), 0);
    assert_true(wt_wait_atomic_ge(&blocker_started, 1, 10 * WEFT_SEC));

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, destroy_thread, &d), 0);

    /* Destroy starts at some point after pthread_create; until it does,
     * spawns are accepted (and must run). */
    int rc = 0, accepted = 0;
    uint64_t deadline = wt_clock_ns() + 10 * WEFT_SEC;
    while (wt_clock_ns() < deadline) {
        weft_task *t = SENTINEL_TASK;
        rc = weft_spawn(d.rt, count_once, NULL, &t);
        if (rc != 0) {
            assert_null(t);
            break;
        }
        accepted++;
        assert_int_equal(weft_detach(t), 0);
        wt_thread_sleep_ns(WEFT_MSEC);
    }
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(atomic_load(&d.done), 0); /* still waiting for blocker */

    atomic_store(&release_blocker, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(d.rc, 0);
    assert_int_equal(atomic_load(&blocker_spawn_rc), 0);
    assert_int_equal(atomic_load(&counter), accepted + 1);
    WT_ASSERT_NO_FAILURES();
}

static void test_now_is_monotonic_clock(void **state) {
    (void)state;
    uint64_t a = wt_clock_ns();
    uint64_t n = weft_now();
    uint64_t b = wt_clock_ns();
    assert_true(a <= n && n <= b);
    uint64_t prev = weft_now();
    for (int i = 0; i < 100000; i++) {
        uint64_t cur = weft_now();
        assert_true(cur >= prev);
        prev = cur;
    }
}

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_destroy_worker_counts),
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_max_workers_accepted),
        cmocka_unit_test(test_bad_config_einval),
        cmocka_unit_test(test_stack_size_below_minimum_einval),
        cmocka_unit_test(test_stack_size_bounds_accepted),
        cmocka_unit_test(test_large_stack_usable),
        cmocka_unit_test(test_null_runtime_args),
        cmocka_unit_test(test_misaligned_pointers_einval),
        cmocka_unit_test(test_destroy_and_run_from_own_fiber_edeadlk),
        cmocka_unit_test(test_nested_runtimes),
        cmocka_unit_test(test_destroy_waits_for_detached),
        cmocka_unit_test(test_destroy_waits_for_unconsumed_handles),
        cmocka_unit_test(test_destroy_waits_for_detached_tree),
        cmocka_unit_test(test_spawn_while_destroying_einval),
        cmocka_unit_test(test_now_is_monotonic_clock),
    };
    return cmocka_run_group_tests_name("api.runtime", tests, NULL, NULL);
}
