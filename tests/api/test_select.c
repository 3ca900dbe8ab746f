/*
 * tests/api/test_select.c - black-box: weft_chan_select (weft.h
 * "Channels"). Bad arguments; a ready case completes at once and alone;
 * polling; timeouts never early and withdraw every case; a blocked select
 * completed by a sender, a receiver, another select or a close; exactly
 * one case takes effect when several become ready together; no case
 * starves; cancellation; plain threads; a channel in two cases; more
 * cases than fit on the stack; destroy while a select waits.
 *
 * Fibers and helper threads record failures with WT_CHECK*; the main
 * thread asserts only after everything it started has been joined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#include "test_api.h"

static weft_chan *new_chan(size_t capacity) {
    weft_chan *ch = NULL;
    assert_int_equal(weft_chan_create(&ch, sizeof(uint32_t), capacity), 0);
    return ch;
}

static void free_chan(weft_chan *ch) {
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static weft_chan_case recv_case(weft_chan *ch, uint32_t *dst) {
    return (weft_chan_case){.chan = ch, .op = WEFT_CHAN_RECV, .elem = dst};
}

static weft_chan_case send_case(weft_chan *ch, uint32_t *src) {
    return (weft_chan_case){.chan = ch, .op = WEFT_CHAN_SEND, .elem = src};
}

/* ---- A select run in a fiber or a plain thread ------------------------- */

#define MAX_CASES 32

struct sel {
    weft_chan_case cases[MAX_CASES];
    uint32_t values[MAX_CASES];
    size_t n;
    uint64_t timeout;
    atomic_int started, returned;
    int rc;
    size_t index;
    uint64_t took;
};

static void *run_select(void *arg) {
    struct sel *s = arg;
    s->index = SIZE_MAX;
    atomic_store(&s->started, 1);
    uint64_t t0 = wt_clock_ns();
    s->rc = weft_chan_select(s->cases, s->n, s->timeout, &s->index);
    s->took = wt_clock_ns() - t0;
    atomic_store(&s->returned, 1);
    return NULL;
}

/* Receive cases on chans[0..n), into s->values. */
static void sel_recv_all(struct sel *s, weft_chan **chans, size_t n, uint64_t timeout) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s->cases[i] = recv_case(chans[i], &s->values[i]);
    s->n = n;
    s->timeout = timeout;
}

/* Starts run_select as a fiber and waits until it is blocked. */
static weft_task *start_blocked(weft_runtime *rt, struct sel *s) {
    weft_task *t = spawn(rt, run_select, s);
    assert_true(poll_ge(&s->started, 1));
    settle();
    assert_int_equal(atomic_load(&s->returned), 0);
    return t;
}

/* ---- Bad arguments ----------------------------------------------------- */

static void test_select_bad_arguments(void **state) {
    (void)state;
    weft_chan *ch = new_chan(1);
    uint32_t v = 7;
    size_t index = 99;
    weft_chan_case ok = send_case(ch, &v);
    assert_int_equal(weft_chan_select(NULL, 1, 0, &index), -EINVAL);
    assert_int_equal(weft_chan_select(&ok, 1, 0, NULL), -EINVAL);
    assert_int_equal(weft_chan_select(&ok, 0, 0, &index), -EINVAL);
    assert_int_equal(weft_chan_select(&ok, WEFT_CHAN_SELECT_MAX + 1, 0, &index), -EINVAL);
    weft_chan_case bad[2] = {ok, ok};
    bad[1].chan = NULL;
    assert_int_equal(weft_chan_select(bad, 2, 0, &index), -EINVAL);
    bad[1] = ok;
    bad[1].elem = NULL;
    assert_int_equal(weft_chan_select(bad, 2, 0, &index), -EINVAL);
    bad[1] = ok;
    bad[1].op = (weft_chan_op)0;
    assert_int_equal(weft_chan_select(bad, 2, 0, &index), -EINVAL);
    bad[1].op = (weft_chan_op)3;
    assert_int_equal(weft_chan_select(bad, 2, 0, &index), -EINVAL);
    /* Nothing was sent by the refused calls, index untouched. */
    assert_int_equal(index, 99);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    free_chan(ch);
}

/* ---- Ready cases --------------------------------------------------------- */

static void test_select_ready_recv_completes_alone(void **state) {
    (void)state;
    weft_chan *a = new_chan(4), *b = new_chan(4);
    uint32_t v = 41, got[2] = {0, 0};
    assert_int_equal(weft_chan_send(b, &v), 0);
    weft_chan_case cs[2] = {recv_case(a, &got[0]), recv_case(b, &got[1])};
    size_t index = 99;
    assert_int_equal(weft_chan_select(cs, 2, WEFT_FOREVER, &index), 0);
    assert_int_equal(index, 1);
    assert_int_equal(got[1], 41);
    assert_int_equal(got[0], 0);
    assert_int_equal(weft_chan_try_recv(b, &v), -EAGAIN);
    free_chan(a);
    free_chan(b);
}

static void test_select_ready_send_completes_alone(void **state) {
    (void)state;
    weft_chan *full = new_chan(1), *room = new_chan(1);
    uint32_t v = 1, w = 2, out = 0;
    assert_int_equal(weft_chan_send(full, &v), 0);
    weft_chan_case cs[2] = {send_case(full, &w), send_case(room, &w)};
    size_t index = 99;
    assert_int_equal(weft_chan_select(cs, 2, 0, &index), 0);
    assert_int_equal(index, 1);
    assert_int_equal(weft_chan_try_recv(room, &out), 0);
    assert_int_equal(out, 2);
    assert_int_equal(weft_chan_try_recv(full, &out), 0);
    assert_int_equal(out, 1); /* the full one kept only its old value */
    assert_int_equal(weft_chan_try_recv(full, &out), -EAGAIN);
    free_chan(full);
    free_chan(room);
}

static void test_select_poll_nothing_ready(void **state) {
    (void)state;
    weft_chan *a = new_chan(0), *b = new_chan(1);
    uint32_t v = 3, got = 0;
    assert_int_equal(weft_chan_send(b, &v), 0);
    /* a: rendezvous without a receiver; b: full. */
    weft_chan_case cs[2] = {send_case(a, &v), send_case(b, &v)};
    cs[0].elem = &v;
    size_t index = 99;
    assert_int_equal(weft_chan_select(cs, 2, 0, &index), -ETIMEDOUT);
    assert_int_equal(index, 99);
    /* Nothing stayed queued: destroy succeeds after draining b. */
    assert_int_equal(weft_chan_try_recv(b, &got), 0);
    free_chan(a);
    free_chan(b);
}

/* ---- Timeouts ------------------------------------------------------------ */

static void *select_times_out(void *arg) {
    weft_chan **ch = arg;
    uint32_t v = 5, got = 0;
    weft_chan_case cs[2] = {send_case(ch[0], &v), recv_case(ch[1], &got)};
    static const uint64_t timeouts[] = {1 * WEFT_MSEC, 10 * WEFT_MSEC, 40 * WEFT_MSEC};
    for (size_t i = 0; i < 3; i++) {
        size_t index = 99;
        uint64_t t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_chan_select(cs, 2, timeouts[i], &index), -ETIMEDOUT);
        CHECK_NOT_EARLY(wt_clock_ns() - t0, timeouts[i]);
        WT_CHECK_EQ(index, 99);
    }
    return NULL;
}

static void test_select_timeout_not_early_and_withdrawn(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    join_task(spawn(rt, select_times_out, ch));
    pthread_join(start_thread(select_times_out, ch), NULL);
    WT_ASSERT_NO_FAILURES();
    /* The withdrawn send is never delivered; no node is left queued. */
    uint32_t got;
    assert_int_equal(weft_chan_try_recv(ch[0], &got), -EAGAIN);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

/* ---- Blocked selects, completed by others ------------------------------ */

static void test_select_woken_by_sender(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[3] = {new_chan(0), new_chan(2), new_chan(0)};
    struct sel s;
    sel_recv_all(&s, ch, 3, LONG_WAIT);
    weft_task *t = start_blocked(rt, &s);
    uint32_t v = 77;
    assert_int_equal(weft_chan_send(ch[1], &v), 0);
    join_task(t);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.index, 1);
    assert_int_equal(s.values[1], 77);
    assert_int_equal(s.values[0] | s.values[2], 0);
    for (int i = 0; i < 3; i++)
        free_chan(ch[i]);
}

static void test_select_send_taken_by_receiver(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    struct sel s;
    memset(&s, 0, sizeof s);
    s.values[0] = 10;
    s.values[1] = 20;
    s.cases[0] = send_case(ch[0], &s.values[0]);
    s.cases[1] = send_case(ch[1], &s.values[1]);
    s.n = 2;
    s.timeout = WEFT_FOREVER;
    weft_task *t = start_blocked(rt, &s);
    uint32_t got = 0;
    assert_int_equal(weft_chan_recv(ch[1], &got), 0);
    assert_int_equal(got, 20);
    join_task(t);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.index, 1);
    /* The other send was withdrawn. */
    assert_int_equal(weft_chan_try_recv(ch[0], &got), -EAGAIN);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

static void test_select_matches_select(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    struct sel rx;
    sel_recv_all(&rx, ch, 2, LONG_WAIT);
    weft_task *t = start_blocked(rt, &rx);
    struct sel tx;
    memset(&tx, 0, sizeof tx);
    tx.values[0] = 99;
    tx.cases[0] = send_case(ch[0], &tx.values[0]);
    tx.n = 1;
    tx.timeout = LONG_WAIT;
    weft_task *u = spawn(rt, run_select, &tx);
    join_task(u);
    join_task(t);
    assert_int_equal(tx.rc, 0);
    assert_int_equal(tx.index, 0);
    assert_int_equal(rx.rc, 0);
    assert_int_equal(rx.index, 0);
    assert_int_equal(rx.values[0], 99);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

static void test_select_close(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(1)};
    struct sel s;
    sel_recv_all(&s, ch, 2, LONG_WAIT);
    weft_task *t = start_blocked(rt, &s);
    assert_int_equal(weft_chan_close(ch[1]), 0);
    join_task(t);
    assert_int_equal(s.rc, -EPIPE);
    assert_int_equal(s.index, 1);
    /* A closed channel is ready at once: a send case and a drained recv. */
    uint32_t v = 1;
    weft_chan_case snd = send_case(ch[1], &v);
    size_t index = 99;
    assert_int_equal(weft_chan_select(&snd, 1, WEFT_FOREVER, &index), -EPIPE);
    assert_int_equal(index, 0);
    s.timeout = WEFT_FOREVER;
    run_select(&s);
    assert_int_equal(s.rc, -EPIPE);
    assert_int_equal(s.index, 1);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

/* Values buffered before close are still selected first. */
static void test_select_close_drains_first(void **state) {
    (void)state;
    weft_chan *ch = new_chan(2);
    uint32_t v = 8, got = 0;
    assert_int_equal(weft_chan_send(ch, &v), 0);
    assert_int_equal(weft_chan_close(ch), 0);
    weft_chan_case c = recv_case(ch, &got);
    size_t index = 99;
    assert_int_equal(weft_chan_select(&c, 1, 0, &index), 0);
    assert_int_equal(got, 8);
    assert_int_equal(weft_chan_select(&c, 1, 0, &index), -EPIPE);
    free_chan(ch);
}

/* ---- Exactly one case takes effect --------------------------------------- */

struct racer {
    weft_chan *ch;
    uint32_t value;
    atomic_int *go;
    int rc;
};

static void *racing_send(void *arg) {
    struct racer *r = arg;
    while (!atomic_load(r->go))
        weft_yield();
    r->rc = weft_chan_send_for(r->ch, &r->value, 100 * WEFT_MSEC);
    return NULL;
}

/* Several senders reach one blocked select at once: one send completes,
 * the others time out with their value withdrawn. */
static void test_select_exactly_one_completes(void **state) {
    weft_runtime *rt = *state;
    enum { N = 4, ROUNDS = 10 };
    weft_chan *ch[N];
    for (int i = 0; i < N; i++)
        ch[i] = new_chan(0);
    for (int round = 0; round < ROUNDS; round++) {
        struct sel s;
        sel_recv_all(&s, ch, N, LONG_WAIT);
        weft_task *t = start_blocked(rt, &s);
        atomic_int go = 0;
        struct racer r[N];
        weft_task *rt_tasks[N];
        for (int i = 0; i < N; i++) {
            r[i] = (struct racer){ch[i], 100u + (uint32_t)i, &go, 1};
            rt_tasks[i] = spawn(rt, racing_send, &r[i]);
        }
        atomic_store(&go, 1);
        assert_int_equal(weft_gather(rt_tasks, N, NULL), 0);
        join_task(t);
        int sent = 0;
        for (int i = 0; i < N; i++) {
            if (r[i].rc == 0) {
                sent++;
                assert_int_equal(s.index, (size_t)i);
            } else {
                assert_int_equal(r[i].rc, -ETIMEDOUT);
            }
        }
        assert_int_equal(sent, 1);
        assert_int_equal(s.rc, 0);
        assert_int_equal(s.values[s.index], 100u + s.index);
    }
    for (int i = 0; i < N; i++)
        free_chan(ch[i]);
}

/* ---- Fairness --------------------------------------------------------- */

static void test_select_no_case_starves(void **state) {
    (void)state;
    enum { N = 3, ROUNDS = 3000 };
    weft_chan *ch[N];
    uint32_t got[N], v = 1;
    weft_chan_case cs[N];
    for (int i = 0; i < N; i++) {
        ch[i] = new_chan(1);
        cs[i] = recv_case(ch[i], &got[i]);
    }
    int chosen[N] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++)
            (void)weft_chan_try_send(ch[i], &v); /* keep every case ready */
        size_t index = 99;
        assert_int_equal(weft_chan_select(cs, N, 0, &index), 0);
        assert_true(index < N);
        chosen[index]++;
    }
    /* A uniform pick would give 1000 each; any fair pick gives each case
     * a fair share. */
    for (int i = 0; i < N; i++)
        assert_true(chosen[i] > ROUNDS / N / 2);
    for (int i = 0; i < N; i++) {
        (void)weft_chan_try_recv(ch[i], &got[i]);
        free_chan(ch[i]);
    }
}

/* ---- Cancellation ------------------------------------------------------- */

static void test_select_cancelled_while_blocked(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    struct sel s;
    sel_recv_all(&s, ch, 2, WEFT_FOREVER);
    weft_task *t = start_blocked(rt, &s);
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    assert_int_equal(s.rc, -ECANCELED);
    assert_int_equal(s.index, SIZE_MAX);
    /* No case is left queued. */
    uint32_t v = 1;
    assert_int_equal(weft_chan_try_send(ch[0], &v), -EAGAIN);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

struct sticky {
    weft_chan *ch[2];
    atomic_int started;
};

static void *cancelled_then_select(void *arg) {
    struct sticky *st = arg;
    weft_chan **ch = st->ch;
    atomic_store(&st->started, 1);
    if (!yield_until_cancelled())
        return NULL;
    uint32_t got = 0;
    weft_chan_case cs[2] = {recv_case(ch[0], &got), recv_case(ch[1], &got)};
    size_t index = 99;
    /* Sticky: a select that would block returns at once ... */
    WT_CHECK_EQ(weft_chan_select(cs, 2, WEFT_FOREVER, &index), -ECANCELED);
    /* ... one that can complete completes. */
    uint32_t v = 6;
    WT_CHECK_EQ(weft_chan_send(ch[1], &v), 0);
    WT_CHECK_EQ(weft_chan_select(cs, 2, WEFT_FOREVER, &index), 0);
    WT_CHECK_EQ(index, 1);
    WT_CHECK_EQ(got, 6);
    return NULL;
}

static void test_select_cancel_is_sticky(void **state) {
    weft_runtime *rt = *state;
    struct sticky st = {{new_chan(0), new_chan(1)}, 0};
    weft_task *t = spawn(rt, cancelled_then_select, &st);
    assert_true(poll_ge(&st.started, 1)); /* cancelled once running */
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    WT_ASSERT_NO_FAILURES();
    free_chan(st.ch[0]);
    free_chan(st.ch[1]);
}

/* ---- Threads, duplicates, many cases, destroy -------------------------- */

static void test_select_from_thread(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    struct sel s;
    sel_recv_all(&s, ch, 2, LONG_WAIT);
    pthread_t th = start_thread(run_select, &s);
    assert_true(poll_ge(&s.started, 1));
    settle();
    uint32_t v = 12;
    struct sel tx;
    memset(&tx, 0, sizeof tx);
    tx.values[0] = v;
    tx.cases[0] = send_case(ch[0], &tx.values[0]);
    tx.n = 1;
    tx.timeout = LONG_WAIT;
    join_task(spawn(rt, run_select, &tx));
    join_thread(th);
    assert_int_equal(tx.rc, 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.index, 0);
    assert_int_equal(s.values[0], 12);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

/* A send and a receive on one rendezvous channel in one select: it does
 * not meet itself; a sender from outside completes the receive. */
static void test_select_same_channel_twice(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch = new_chan(0);
    struct sel s;
    memset(&s, 0, sizeof s);
    s.values[0] = 1;
    s.cases[0] = send_case(ch, &s.values[0]);
    s.cases[1] = recv_case(ch, &s.values[1]);
    s.n = 2;
    s.timeout = 50 * WEFT_MSEC;
    run_select(&s);
    assert_int_equal(s.rc, -ETIMEDOUT);
    s.timeout = LONG_WAIT;
    atomic_store(&s.started, 0);
    atomic_store(&s.returned, 0);
    weft_task *t = start_blocked(rt, &s);
    uint32_t v = 55;
    assert_int_equal(weft_chan_send(ch, &v), 0);
    join_task(t);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.index, 1);
    assert_int_equal(s.values[1], 55);
    free_chan(ch);
}

static void test_select_many_cases(void **state) {
    weft_runtime *rt = *state;
    enum { N = MAX_CASES };
    weft_chan *ch[N];
    for (int i = 0; i < N; i++)
        ch[i] = new_chan(i % 2);
    struct sel s;
    sel_recv_all(&s, ch, N, LONG_WAIT);
    weft_task *t = start_blocked(rt, &s);
    uint32_t v = 2024;
    assert_int_equal(weft_chan_send(ch[N - 3], &v), 0);
    join_task(t);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.index, N - 3);
    assert_int_equal(s.values[N - 3], 2024);
    for (int i = 0; i < N; i++)
        free_chan(ch[i]);
}

static void test_select_destroy_while_waiting(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch[2] = {new_chan(0), new_chan(0)};
    struct sel s;
    sel_recv_all(&s, ch, 2, WEFT_FOREVER);
    weft_task *t = start_blocked(rt, &s);
    assert_int_equal(weft_chan_destroy(ch[0]), -EBUSY);
    assert_int_equal(weft_chan_destroy(ch[1]), -EBUSY);
    assert_int_equal(weft_chan_close(ch[0]), 0);
    join_task(t);
    assert_int_equal(s.rc, -EPIPE);
    assert_int_equal(s.index, 0);
    free_chan(ch[0]);
    free_chan(ch[1]);
}

/* A select whose fiber waits frees its worker: with one worker, another
 * fiber still runs and completes it. */
static void *send_later(void *arg) {
    uint32_t v = 31;
    WT_CHECK_EQ(weft_chan_send(arg, &v), 0);
    return NULL;
}

static void *select_then_check(void *arg) {
    weft_chan *ch = arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, send_later, ch, &t), 0);
    uint32_t got = 0;
    weft_chan_case c = recv_case(ch, &got);
    size_t index = 99;
    WT_CHECK_EQ(weft_chan_select(&c, 1, LONG_WAIT, &index), 0);
    WT_CHECK_EQ(got, 31);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    return NULL;
}

static void test_select_frees_the_worker(void **state) {
    (void)state;
    weft_runtime *one = wt_runtime_new(1);
    assert_non_null(one);
    weft_chan *ch = new_chan(0);
    assert_int_equal(weft_run(one, select_then_check, ch, NULL), 0);
    WT_ASSERT_NO_FAILURES();
    free_chan(ch);
    assert_int_equal(weft_runtime_destroy(one), 0);
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_select_bad_arguments),
        RT_TEST(test_select_ready_recv_completes_alone),
        RT_TEST(test_select_ready_send_completes_alone),
        RT_TEST(test_select_poll_nothing_ready),
        RT_TEST(test_select_timeout_not_early_and_withdrawn),
        RT_TEST(test_select_woken_by_sender),
        RT_TEST(test_select_send_taken_by_receiver),
        RT_TEST(test_select_matches_select),
        RT_TEST(test_select_close),
        RT_TEST(test_select_close_drains_first),
        RT_TEST(test_select_exactly_one_completes),
        RT_TEST(test_select_no_case_starves),
        RT_TEST(test_select_cancelled_while_blocked),
        RT_TEST(test_select_cancel_is_sticky),
        RT_TEST(test_select_from_thread),
        RT_TEST(test_select_same_channel_twice),
        RT_TEST(test_select_many_cases),
        RT_TEST(test_select_destroy_while_waiting),
        cmocka_unit_test(test_select_frees_the_worker),
    };
    return cmocka_run_group_tests_name("api.select", tests, NULL, NULL);
}
