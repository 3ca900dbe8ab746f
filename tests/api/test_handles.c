/*
 * tests/api/test_handles.c - black-box: calls on handles that are no
 * longer live (already joined, gathered or detached-and-finished) return
 * -EINVAL and corrupt nothing (weft.h: "-EINVAL t is NULL or not a live
 * handle"; DESIGN 3: "Bad input returns an error; it never crashes").
 *
 * Kept apart from test_tasks.c: if the library does not validate handles
 * these tests crash (or ASan reports a use after free), and the crash
 * should not hide the results of the other api tests. Nothing is created
 * between consuming a handle (or runtime) and reusing it, so the stale
 * pointer cannot name a newer object; except in the tests of recycled
 * memory, which create one on purpose.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"

static int setup_rt(void **state) {
    wt_reset();
    *state = wt_runtime_new(2);
    return *state ? 0 : -1;
}

static int teardown_rt(void **state) {
    return weft_runtime_destroy(*state) == 0 ? 0 : -1;
}

static void *return_arg(void *arg) {
    return arg;
}

static atomic_int finished;

static void *finish_flag(void *arg) {
    atomic_store(&finished, 1);
    return arg;
}

/* Checks that the runtime still works after the misuse. */
static void check_still_works(weft_runtime *rt) {
    void *res = NULL;
    assert_int_equal(weft_run(rt, return_arg, WT_PTR(31), &res), 0);
    assert_int_equal(WT_INT(res), 31);
}

static void test_join_after_join_einval(void **state) {
    weft_runtime *rt = *state;
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(1), &t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    void *res = WT_PTR(3);
    assert_int_equal(weft_join(t, &res), -EINVAL);
    assert_null(res);
    assert_int_equal(weft_detach(t), -EINVAL);
    check_still_works(rt);
}

static void test_join_after_detach_einval(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&finished, 0);
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, finish_flag, NULL, &t), 0);
    assert_int_equal(weft_detach(t), 0);
    assert_true(wt_wait_atomic_ge(&finished, 1, 10 * WEFT_SEC));
    wt_thread_sleep_ns(20 * WEFT_MSEC); /* let it finish and free itself */
    assert_int_equal(weft_join(t, NULL), -EINVAL);
    assert_int_equal(weft_detach(t), -EINVAL);
    check_still_works(rt);
}

static void test_timed_calls_on_dead_handle_einval(void **state) {
    weft_runtime *rt = *state;
    weft_task *t = NULL;
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(1), &t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    size_t idx = 5;
    assert_int_equal(weft_join_for(t, WEFT_MSEC, NULL), -EINVAL);
    assert_int_equal(weft_cancel(t), -EINVAL);
    assert_int_equal(weft_wait_any(&t, 1, WEFT_MSEC, &idx), -EINVAL);
    assert_int_equal(weft_gather(&t, 1, NULL), -EINVAL);
    check_still_works(rt);
}

/* A dead entry among live ones: nothing is consumed. */
static void test_gather_dead_entry_consumes_nothing(void **state) {
    weft_runtime *rt = *state;
    weft_task *dead = NULL, *live[2] = {NULL, NULL};
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(1), &dead), 0);
    assert_int_equal(weft_join(dead, NULL), 0);
    /* Spawned after `dead` was consumed; they may reuse its memory, so
     * compare pointers and skip the check if they collide. */
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(2), &live[0]), 0);
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(3), &live[1]), 0);
    if (live[0] != dead && live[1] != dead) {
        weft_task *ts[3] = {live[0], dead, live[1]};
        assert_int_equal(weft_gather(ts, 3, NULL), -EINVAL);
    }
    void *r[2];
    assert_int_equal(weft_gather(live, 2, r), 0);
    assert_int_equal(WT_INT(r[0]), 2);
    assert_int_equal(WT_INT(r[1]), 3);
}

/* Detaching a task another thread is joining would consume its handle
 * twice: -EBUSY, and the join still gets the result. */
static atomic_int release_gate;

static void *wait_for_gate(void *arg) {
    while (!atomic_load(&release_gate))
        weft_sleep(WEFT_MSEC);
    return arg;
}

struct joiner {
    weft_task *task;
    void *result;
    int rc;
};

static void *join_in_thread(void *arg) {
    struct joiner *j = arg;
    j->rc = weft_join(j->task, &j->result);
    return NULL;
}

static void test_detach_while_joined_ebusy(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&release_gate, 0);
    struct joiner j = {.rc = 1};
    assert_int_equal(weft_spawn(rt, wait_for_gate, WT_PTR(17), &j.task), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, join_in_thread, &j), 0);
    /* Until the join has registered, detach could still take the handle:
     * give the thread time, then expect -EBUSY. */
    wt_thread_sleep_ns(50 * WEFT_MSEC);
    assert_int_equal(weft_detach(j.task), -EBUSY);
    atomic_store(&release_gate, 1);
    pthread_join(th, NULL);
    assert_int_equal(j.rc, 0);
    assert_int_equal(WT_INT(j.result), 17);
    assert_int_equal(weft_detach(j.task), -EINVAL);
    check_still_works(rt);
}

/* A destroyed runtime is not a live runtime. */
static void test_destroy_twice_einval(void **state) {
    (void)state;
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(weft_runtime_destroy(rt), -EINVAL);
    assert_int_equal(weft_runtime_workers(rt), -EINVAL);
}

/* Task handles kept past their runtime's destroy (never consumed, or
 * detached) are dead: -EINVAL from every call, not a read of memory the
 * runtime gave back. Then a new runtime, which may map the same memory
 * again, works. */
static void test_handles_past_their_runtime_einval(void **state) {
    (void)state;
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    weft_task *kept = NULL, *detached = NULL;
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(5), &kept), 0);
    assert_int_equal(weft_spawn(rt, return_arg, WT_PTR(6), &detached), 0);
    weft_task *detached_handle = detached;
    assert_int_equal(weft_detach(detached), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    weft_task *stale[] = {kept, detached_handle};
    for (size_t i = 0; i < 2; i++) {
        void *r = NULL;
        size_t index = 0;
        assert_int_equal(weft_join(stale[i], &r), -EINVAL);
        assert_int_equal(weft_join_for(stale[i], WEFT_MSEC, &r), -EINVAL);
        assert_int_equal(weft_cancel(stale[i]), -EINVAL);
        assert_int_equal(weft_detach(stale[i]), -EINVAL);
        assert_int_equal(weft_wait_any(&stale[i], 1, WEFT_MSEC, &index), -EINVAL);
        assert_int_equal(weft_gather(&stale[i], 1, &r), -EINVAL);
    }
    rt = wt_runtime_new(2);
    assert_non_null(rt);
    check_still_works(rt);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* A handle kept after its task was joined stays dead even once its
 * control block holds a newer task (blocks are recycled, often by the
 * very next spawn): using it is -EINVAL, and the newer task's own handle
 * is untouched. Spawned and joined from a fiber, so that blocks come back
 * through one worker's cache. */
static void *stale_handles(void *arg) {
    (void)arg;
    int stale_accepted = 0;
    for (int i = 0; i < 1000; i++) {
        weft_task *old = NULL, *young = NULL;
        WT_CHECK_EQ(weft_spawn(NULL, return_arg, WT_PTR(1), &old), 0);
        WT_CHECK_EQ(weft_join(old, NULL), 0);
        WT_CHECK_EQ(weft_spawn(NULL, return_arg, WT_PTR(2), &young), 0);
        void *r = NULL;
        if (weft_join(old, &r) != -EINVAL || weft_cancel(old) != -EINVAL ||
            weft_detach(old) != -EINVAL)
            stale_accepted++;
        r = NULL;
        WT_CHECK_EQ(weft_join(young, &r), 0);
        WT_CHECK_EQ(WT_INT(r), 2);
    }
    return WT_PTR(stale_accepted);
}

static void test_stale_handle_of_recycled_block_einval(void **state) {
    weft_runtime *rt = *state;
    void *accepted = NULL;
    assert_int_equal(weft_run(rt, stale_handles, NULL, &accepted), 0);
    assert_int_equal(WT_INT(accepted), 0);
    WT_ASSERT_NO_FAILURES();
    check_still_works(rt);
}

/* The same for channels and groups, whose memory is reused by the next
 * create (often this one's): a handle kept past destroy is -EINVAL, and
 * neither reaches nor destroys the newer object. */
static void test_stale_channel_handle_einval(void **state) {
    (void)state;
    int stale_accepted = 0;
    for (int i = 0; i < 200; i++) {
        weft_chan *old, *young;
        assert_int_equal(weft_chan_create(&old, sizeof(int), 1), 0);
        assert_int_equal(weft_chan_destroy(old), 0);
        assert_int_equal(weft_chan_create(&young, sizeof(int), 1), 0);
        int v = 7;
        if (weft_chan_try_send(old, &v) != -EINVAL || weft_chan_close(old) != -EINVAL ||
            weft_chan_destroy(old) != -EINVAL)
            stale_accepted++;
        assert_int_equal(weft_chan_try_send(young, &v), 0);
        v = 0;
        assert_int_equal(weft_chan_try_recv(young, &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(weft_chan_destroy(young), 0);
    }
    assert_int_equal(stale_accepted, 0);
}

static void test_stale_group_handle_einval(void **state) {
    weft_runtime *rt = *state;
    int stale_accepted = 0;
    for (int i = 0; i < 200; i++) {
        weft_group *old, *young;
        assert_int_equal(weft_group_create(&old, rt), 0);
        assert_int_equal(weft_group_wait(old), 0);
        assert_int_equal(weft_group_destroy(old), 0);
        assert_int_equal(weft_group_create(&young, rt), 0);
        size_t n = 1;
        if (weft_group_size(old, &n) != -EINVAL || weft_group_destroy(old) != -EINVAL)
            stale_accepted++;
        assert_int_equal(weft_group_size(young, &n), 0);
        assert_int_equal(weft_group_wait(young), 0);
        assert_int_equal(weft_group_destroy(young), 0);
    }
    assert_int_equal(stale_accepted, 0);
}

/* Calls on dead handles while another thread creates in their memory:
 * both are allowed at once, so the create must not clear with plain
 * stores what the checks read (ThreadSanitizer saw the race). */
static _Atomic(weft_chan *) dead_chan;
static _Atomic(weft_group *) dead_group;
static atomic_int stop_prodding;
static atomic_int dead_accepted;

static void *prod_dead_handles(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_prodding)) {
        weft_chan *c = atomic_load(&dead_chan);
        weft_group *g = atomic_load(&dead_group);
        int v;
        if (c && weft_chan_try_recv(c, &v) != -EINVAL)
            atomic_fetch_add(&dead_accepted, 1);
        if (g && weft_group_cancel(g) != -EINVAL)
            atomic_fetch_add(&dead_accepted, 1);
    }
    return NULL;
}

static void test_dead_handles_used_during_create(void **state) {
    weft_runtime *rt = *state;
    atomic_store(&stop_prodding, 0);
    atomic_store(&dead_accepted, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, prod_dead_handles, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        weft_chan *c;
        assert_int_equal(weft_chan_create(&c, sizeof(int), 1), 0);
        assert_int_equal(weft_chan_destroy(c), 0);
        atomic_store(&dead_chan, c);
        weft_group *g;
        assert_int_equal(weft_group_create(&g, rt), 0);
        assert_int_equal(weft_group_wait(g), 0);
        assert_int_equal(weft_group_destroy(g), 0);
        atomic_store(&dead_group, g);
    }
    atomic_store(&stop_prodding, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&dead_accepted), 0);
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_join_after_join_einval),
        RT_TEST(test_join_after_detach_einval),
        RT_TEST(test_detach_while_joined_ebusy),
        RT_TEST(test_timed_calls_on_dead_handle_einval),
        RT_TEST(test_gather_dead_entry_consumes_nothing),
        RT_TEST(test_stale_handle_of_recycled_block_einval),
        cmocka_unit_test(test_stale_channel_handle_einval),
        RT_TEST(test_stale_group_handle_einval),
        RT_TEST(test_dead_handles_used_during_create),
        cmocka_unit_test(test_destroy_twice_einval),
        cmocka_unit_test(test_handles_past_their_runtime_einval),
    };
    return cmocka_run_group_tests_name("api.handles", tests, NULL, NULL);
}
