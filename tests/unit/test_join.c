/* tests/unit/test_join.c - lib/join.c: inline join, forwarding of
 * cancellation, gather with a task listed twice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime.h"
#include "sched.h"

static atomic_int failures;
#define CHECK(c) do { if (!(c)) atomic_fetch_add(&failures, 1); } while (0)

static weft_runtime *make_rt(unsigned workers) {
    weft_runtime *rt;
    weft_config cfg = {.workers = workers};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    return rt;
}

/* ---- Inline join: the child runs on the joiner's stack, as itself ----- */

static void *whoami(void *arg) {
    (void)arg;
    struct weft_fiber *f = weft__task_fiber(weft_self());
    CHECK(f->inlined);
    return (void *)weft_self();
}

static void *join_fresh_child(void *arg) {
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(NULL, whoami, NULL, &t) == 0);
    void *who;
    CHECK(weft_join(t, &who) == 0);
    CHECK(who == (void *)t);          /* weft_self() was the child */
    CHECK(weft_self() != (void *)t);  /* and is the parent again */
    return NULL;
}

static void test_join_of_fresh_child_runs_inline(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    assert_int_equal(weft_run(rt, join_fresh_child, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- Cancelling a joiner reaches the task it joins -------------------- */

static void *sleepy(void *arg) {
    (void)arg;
    int rc = weft_sleep(10 * WEFT_SEC);
    return (void *)(intptr_t)rc;
}

static void *joiner(void *arg) {
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(NULL, sleepy, NULL, &t) == 0);
    void *rc;
    CHECK(weft_join(t, &rc) == 0); /* consumed even though we are cancelled */
    CHECK((intptr_t)rc == -ECANCELED);
    CHECK(weft_cancelled());
    return NULL;
}

static void test_cancel_forwards_through_join(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    weft_task *j;
    uint64_t start = weft_now();
    assert_int_equal(weft_spawn(rt, joiner, NULL, &j), 0);
    weft_sleep(30 * WEFT_MSEC);
    assert_int_equal(weft_cancel(j), 0);
    assert_int_equal(weft_join(j, NULL), 0);
    assert_true(weft_now() - start < 5 * WEFT_SEC);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- gather with a task listed twice consumes it once ----------------- */

static void *seven(void *arg) {
    (void)arg;
    weft_sleep(2 * WEFT_MSEC);
    return (void *)7;
}

static void test_gather_with_duplicate_entry(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    weft_task *a, *b;
    assert_int_equal(weft_spawn(rt, seven, NULL, &a), 0);
    assert_int_equal(weft_spawn(rt, seven, NULL, &b), 0);
    weft_task *ts[3] = {a, b, a};
    void *r[3] = {0};
    assert_int_equal(weft_gather(ts, 3, r), 0);
    assert_ptr_equal(r[0], (void *)7);
    assert_ptr_equal(r[1], (void *)7);
    assert_ptr_equal(r[2], (void *)7);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* The same with a task that finished before the gather: its block must
 * be recycled once, or two later spawns on this worker would get the
 * same block (and the worker's cache a cycle). From a fiber, so that the
 * gather and the spawns after it use this worker's cache; and from a
 * plain thread, whose consume returns blocks to the pool. */
static void *quick(void *arg) { return arg; }

static void *gather_finished_twice(void *arg) {
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(NULL, quick, (void *)5, &t) == 0);
    size_t idx;
    CHECK(weft_wait_any(&t, 1, WEFT_FOREVER, &idx) == 0); /* finished now */
    weft_task *ts[2] = {t, t};
    void *r[2] = {0};
    CHECK(weft_gather(ts, 2, r) == 0);
    CHECK(r[0] == (void *)5 && r[1] == (void *)5);
    weft_task *u, *v;
    CHECK(weft_spawn(NULL, seven, NULL, &u) == 0);
    CHECK(weft_spawn(NULL, seven, NULL, &v) == 0);
    CHECK(weft__task_fiber(u) != weft__task_fiber(v));
    CHECK(weft_join(u, NULL) == 0);
    CHECK(weft_join(v, NULL) == 0);
    return NULL;
}

static void test_gather_with_duplicate_of_finished_task(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    assert_int_equal(weft_run(rt, gather_finished_twice, NULL, NULL), 0);
    weft_task *t;
    assert_int_equal(weft_spawn(rt, quick, (void *)6, &t), 0);
    size_t idx;
    assert_int_equal(weft_wait_any(&t, 1, WEFT_FOREVER, &idx), 0);
    weft_task *ts[3] = {t, t, t};
    void *r[3] = {0};
    assert_int_equal(weft_gather(ts, 3, r), 0);
    assert_ptr_equal(r[2], (void *)6);
    weft_task *u, *v;
    assert_int_equal(weft_spawn(rt, seven, NULL, &u), 0);
    assert_int_equal(weft_spawn(rt, seven, NULL, &v), 0);
    assert_ptr_not_equal(weft__task_fiber(u), weft__task_fiber(v));
    assert_int_equal(weft_join(u, NULL), 0);
    assert_int_equal(weft_join(v, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- A task run inline is awaited: nobody else may take its handle ---- */

static atomic_int inline_started;

static void *slow_nine(void *arg) {
    (void)arg;
    atomic_store(&inline_started, 1);
    weft_sleep(100 * WEFT_MSEC);
    return (void *)9;
}

static weft_task *inlined_task;

static void *join_inline(void *arg) {
    (void)arg;
    CHECK(weft_spawn(NULL, slow_nine, NULL, &inlined_task) == 0);
    void *r = NULL;
    CHECK(weft_join(inlined_task, &r) == 0); /* runs inline: one worker */
    CHECK(r == (void *)9);
    return NULL;
}

static void test_inline_task_counts_as_awaited(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    atomic_store(&inline_started, 0);
    weft_task *joiner;
    assert_int_equal(weft_spawn(rt, join_inline, NULL, &joiner), 0);
    while (!atomic_load(&inline_started))
        weft_sleep(WEFT_MSEC);
    weft_task *t = inlined_task;
    size_t idx;
    assert_true(weft__task_fiber(t)->inlined);
    assert_int_equal(weft_join(t, NULL), -EBUSY);
    assert_int_equal(weft_join_for(t, WEFT_MSEC, NULL), -EBUSY);
    assert_int_equal(weft_detach(t), -EBUSY);
    assert_int_equal(weft_gather(&t, 1, NULL), -EBUSY);
    assert_int_equal(weft_wait_any(&t, 1, 0, &idx), -EBUSY);
    assert_int_equal(weft_join(joiner, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- A cancelled joiner forwards its cancel instead of running inline -- */

static atomic_int child_ran;

static void *note_run(void *arg) {
    atomic_store(&child_ran, 1);
    return arg;
}

static void *cancelled_joiner(void *arg) {
    bool gather = arg != NULL;
    CHECK(weft_cancel(weft_self()) == 0);
    weft_task *c;
    CHECK(weft_spawn(NULL, note_run, NULL, &c) == 0); /* not started: one worker */
    int rc = gather ? weft_gather(&c, 1, NULL) : weft_join(c, NULL);
    CHECK(rc == -ECANCELED);
    return NULL;
}

static void test_cancelled_joiner_never_runs_unstarted_child(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    for (int gather = 0; gather < 2; gather++) {
        atomic_store(&child_ran, 0);
        assert_int_equal(weft_run(rt, cancelled_joiner, gather ? (void *)1 : NULL, NULL), 0);
        assert_int_equal(atomic_load(&child_ran), 0);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- A gather racing another awaiter: the task is consumed once ------ */

/* A plain thread joins t while a fiber gathers {u, t}; t is consumed
 * exactly once. Whichever comes second gets -EBUSY (or -EINVAL, the
 * handle consumed) and not t (a gather that finds t taken
 * between its check and its registration withdraws, u included). Run
 * many times: the window is narrow. */
static weft_task *race_t, *race_u;
static atomic_int race_go;
static int race_gather_rc;

static void *one_ms(void *arg) {
    weft_sleep(WEFT_MSEC);
    return arg;
}

static void *race_gather(void *arg) {
    (void)arg;
    atomic_store(&race_go, 1);
    weft_task *ts[2] = {race_u, race_t};
    race_gather_rc = weft_gather(ts, 2, NULL);
    return NULL;
}

/* Fewer under TSan, whose thread state for each started fiber costs a
 * 768 KiB memset (2000 rounds took 8 s of the 30 s unit timeout). */
#if defined(__SANITIZE_THREAD__)
#define RACE_ROUNDS 500
#else
#define RACE_ROUNDS 2000
#endif

static void test_gather_racing_a_join_consumes_once(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    int gather_won = 0, join_won = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        assert_int_equal(weft_spawn(rt, one_ms, (void *)1, &race_t), 0);
        assert_int_equal(weft_spawn(rt, one_ms, (void *)2, &race_u), 0);
        atomic_store(&race_go, 0);
        weft_task *g;
        assert_int_equal(weft_spawn(rt, race_gather, NULL, &g), 0);
        while (!atomic_load(&race_go)) {
        }
        for (volatile int spin = 0; spin < i % 64; spin++) {
        }
        int jrc = weft_join(race_t, NULL);
        assert_int_equal(weft_join(g, NULL), 0);
        if (race_gather_rc == 0) {
            /* Busy while the gather waited, dead once it had consumed. */
            assert_true(jrc == -EBUSY || jrc == -EINVAL);
            gather_won++;
        } else {
            /* -EINVAL: the join had consumed t before the gather looked. */
            assert_true(race_gather_rc == -EBUSY || race_gather_rc == -EINVAL);
            assert_int_equal(jrc, 0);
            /* Withdrawn before it waited, or never started: u not
             * consumed; or both saw t finished and the join consumed it
             * first: u consumed. */
            int urc = weft_join(race_u, NULL);
            assert_true(urc == 0 || urc == -EINVAL);
            join_won++;
        }
    }
    assert_int_equal(gather_won + join_won, RACE_ROUNDS);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* ---- A detach racing an inline join: the handle is consumed once ----- */

/* A fiber spawns t (it lands in its LIFO slot) and joins it, which runs
 * t inline; a plain thread detaches t at about the same moment. Exactly
 * one of the two consumes the handle; the other gets -EBUSY or -EINVAL.
 * The window (detach's look at the joiner word, the joiner's claim of
 * it, detach's claim of the handle) is narrow: many rounds, with a
 * varying head start. */
static _Atomic(weft_task *) detach_target;
static atomic_int detach_round, detach_done_round;
static int detach_join_rc[RACE_ROUNDS], detach_rc[RACE_ROUNDS];

static void *return_arg(void *arg) { return arg; }

static void *spawn_and_join_inline(void *arg) {
    (void)arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        weft_task *t;
        CHECK(weft_spawn(NULL, return_arg, (void *)1, &t) == 0);
        atomic_store(&detach_target, t);
        atomic_store(&detach_round, i + 1);
        for (volatile int spin = 0; spin < (i * 7) % 128; spin++) {
        }
        detach_join_rc[i] = weft_join(t, NULL);
        while (atomic_load(&detach_done_round) < i + 1)
            weft__cpu_relax();
    }
    return NULL;
}

static void test_detach_racing_an_inline_join_consumes_once(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    atomic_store(&detach_round, 0);
    atomic_store(&detach_done_round, 0);
    weft_task *joiner;
    assert_int_equal(weft_spawn(rt, spawn_and_join_inline, NULL, &joiner), 0);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        while (atomic_load(&detach_round) < i + 1) {
        }
        for (volatile int spin = 0; spin < (i * 13) % 128; spin++) {
        }
        detach_rc[i] = weft_detach(atomic_load(&detach_target));
        atomic_store(&detach_done_round, i + 1);
    }
    assert_int_equal(weft_join(joiner, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    int joined = 0, detached = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        if (detach_join_rc[i] == 0) {
            assert_true(detach_rc[i] == -EBUSY || detach_rc[i] == -EINVAL);
            joined++;
        } else {
            assert_int_equal(detach_rc[i], 0);
            assert_true(detach_join_rc[i] == -EBUSY || detach_join_rc[i] == -EINVAL);
            detached++;
        }
    }
    assert_int_equal(joined + detached, RACE_ROUNDS);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- One awaiter at a time ------------------------------------------ */

static void *nap(void *arg) {
    (void)arg;
    weft_sleep(50 * WEFT_MSEC);
    return (void *)9;
}

static weft_task *shared_task;

static void *second_awaiter(void *arg) {
    (void)arg;
    weft_sleep(10 * WEFT_MSEC); /* the main thread is joining by now */
    size_t idx;
    CHECK(weft_join(shared_task, NULL) == -EBUSY);
    CHECK(weft_wait_any(&shared_task, 1, WEFT_SEC, &idx) == -EBUSY);
    CHECK(weft_gather(&shared_task, 1, NULL) == -EBUSY);
    return NULL;
}

static void test_second_awaiter_gets_ebusy(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    weft_task *other;
    assert_int_equal(weft_spawn(rt, nap, NULL, &shared_task), 0);
    assert_int_equal(weft_spawn(rt, second_awaiter, NULL, &other), 0);
    void *r;
    assert_int_equal(weft_join(shared_task, &r), 0); /* consumed once, here */
    assert_ptr_equal(r, (void *)9);
    assert_int_equal(weft_join(other, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_of_fresh_child_runs_inline),
        cmocka_unit_test(test_cancel_forwards_through_join),
        cmocka_unit_test(test_gather_with_duplicate_entry),
        cmocka_unit_test(test_gather_with_duplicate_of_finished_task),
        cmocka_unit_test(test_second_awaiter_gets_ebusy),
        cmocka_unit_test(test_gather_racing_a_join_consumes_once),
        cmocka_unit_test(test_detach_racing_an_inline_join_consumes_once),
        cmocka_unit_test(test_inline_task_counts_as_awaited),
        cmocka_unit_test(test_cancelled_joiner_never_runs_unstarted_child),
    };
    return cmocka_run_group_tests_name("join", tests, NULL, NULL);
}
