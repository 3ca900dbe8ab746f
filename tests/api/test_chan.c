/*
 * tests/api/test_chan.c - black-box: weft_chan (weft.h "Channels",
 * DESIGN 3). Bad arguments; buffered FIFO order and copy semantics;
 * rendezvous (send returns only once a receiver took the value; try_send
 * only with a receiver waiting); close (wakes blocked senders and
 * receivers with -EPIPE, receivers drain first); timeouts that never end
 * early and withdraw the value; cancellation; destroy while blocked on;
 * fibers and plain threads on one channel; a fiber that waits frees its
 * worker.
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

static weft_chan *new_chan(size_t elem_size, size_t capacity) {
    weft_chan *ch = NULL;
    assert_int_equal(weft_chan_create(&ch, elem_size, capacity), 0);
    assert_non_null(ch);
    return ch;
}

/*
 * One blocking channel operation, run in a fiber or a plain thread, with
 * what it returned, what it received and how long it took.
 */
enum op_kind { OP_SEND, OP_SEND_FOR, OP_RECV, OP_RECV_FOR };

struct op {
    weft_chan *ch;
    enum op_kind kind;
    uint64_t timeout;
    uint32_t value;        /* sent, or received */
    atomic_int started, returned;
    int rc;
    uint64_t took;
};

static void *run_op(void *arg) {
    struct op *o = arg;
    atomic_store(&o->started, 1);
    uint64_t t0 = wt_clock_ns();
    switch (o->kind) {
    case OP_SEND:
        o->rc = weft_chan_send(o->ch, &o->value);
        break;
    case OP_SEND_FOR:
        o->rc = weft_chan_send_for(o->ch, &o->value, o->timeout);
        break;
    case OP_RECV:
        o->rc = weft_chan_recv(o->ch, &o->value);
        break;
    case OP_RECV_FOR:
        o->rc = weft_chan_recv_for(o->ch, &o->value, o->timeout);
        break;
    }
    o->took = wt_clock_ns() - t0;
    atomic_store(&o->returned, 1);
    return NULL;
}

/* Starts op i of n as a fiber, or (every third) as a plain thread. */
struct op_set {
    int n;
    struct op *op;
    weft_task **t;
    pthread_t *th;
};

static void start_ops(weft_runtime *rt, struct op_set *s, weft_chan *ch,
                      int n, bool sending) {
    s->n = n;
    s->op = calloc((size_t)n, sizeof *s->op);
    s->t = calloc((size_t)n, sizeof *s->t);
    s->th = calloc((size_t)n, sizeof *s->th);
    assert_non_null(s->op);
    assert_non_null(s->t);
    assert_non_null(s->th);
    for (int i = 0; i < n; i++) {
        struct op *o = &s->op[i];
        o->ch = ch;
        o->timeout = LONG_WAIT;
        o->value = sending ? 1000u + (uint32_t)i : 0;
        if (sending)
            o->kind = i % 2 ? OP_SEND_FOR : OP_SEND;
        else
            o->kind = i % 2 ? OP_RECV_FOR : OP_RECV;
        if (i % 3 == 2)
            s->th[i] = start_thread(run_op, o);
        else
            s->t[i] = spawn(rt, run_op, o);
        poll_ge(&o->started, 1);
    }
    settle();
}

static void join_ops(struct op_set *s) {
    for (int i = 0; i < s->n; i++) {
        if (s->t[i])
            join_task(s->t[i]);
        else
            join_thread(s->th[i]);
    }
}

static void free_ops(struct op_set *s) {
    free(s->op);
    free(s->t);
    free(s->th);
}

/* ---- Arguments --------------------------------------------------------- */

static void test_chan_create_bad_args(void **state) {
    (void)state;
    weft_chan *ch = NULL;
    assert_int_equal(weft_chan_create(NULL, 4, 1), -EINVAL);

    static const struct {
        size_t elem, cap;
    } bad[] = {
        {0, 0},
        {0, 1},
        {64 * 1024 + 1, 1},
        {SIZE_MAX, 1},
        {4, (1u << 24) + 1},
        {4, SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch = (weft_chan *)&ch; /* not NULL: the call must clear it */
        assert_int_equal(weft_chan_create(&ch, bad[i].elem, bad[i].cap), -EINVAL);
        assert_null(ch);
    }

    /* The limits themselves are accepted. */
    ch = new_chan(64 * 1024, 1);
    assert_int_equal(weft_chan_destroy(ch), 0);
    ch = new_chan(1, 1u << 24);
    assert_int_equal(weft_chan_destroy(ch), 0);
    ch = new_chan(1, 0);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static void test_chan_null_args(void **state) {
    (void)state;
    int v = 7;
    assert_int_equal(weft_chan_send(NULL, &v), -EINVAL);
    assert_int_equal(weft_chan_recv(NULL, &v), -EINVAL);
    assert_int_equal(weft_chan_send_for(NULL, &v, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_chan_recv_for(NULL, &v, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_chan_try_send(NULL, &v), -EINVAL);
    assert_int_equal(weft_chan_try_recv(NULL, &v), -EINVAL);
    assert_int_equal(weft_chan_close(NULL), -EINVAL);
    assert_int_equal(weft_chan_destroy(NULL), -EINVAL);

    /* A NULL element is bad input too, even where the call would
     * otherwise complete at once; nothing changes. */
    weft_chan *ch = new_chan(sizeof v, 2);
    assert_int_equal(weft_chan_send(ch, &v), 0);
    assert_int_equal(weft_chan_send(ch, NULL), -EINVAL);
    assert_int_equal(weft_chan_send_for(ch, NULL, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_chan_try_send(ch, NULL), -EINVAL);
    assert_int_equal(weft_chan_recv(ch, NULL), -EINVAL);
    assert_int_equal(weft_chan_recv_for(ch, NULL, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_chan_try_recv(ch, NULL), -EINVAL);
    v = 0;
    assert_int_equal(weft_chan_try_recv(ch, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_destroy(ch), 0);

    /* A destroyed channel is not a channel: every call says so, without
     * reading freed memory (ASan and valgrind would report it). Nothing
     * is created in between, so the handle names no newer channel. */
    assert_int_equal(weft_chan_try_send(ch, &v), -EINVAL);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EINVAL);
    assert_int_equal(weft_chan_send_for(ch, &v, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_chan_close(ch), -EINVAL);
    weft_chan_case c = {ch, WEFT_CHAN_RECV, &v};
    size_t index;
    assert_int_equal(weft_chan_select(&c, 1, 0, &index), -EINVAL);
    assert_int_equal(weft_chan_destroy(ch), -EINVAL);
}

/* ---- Buffered ---------------------------------------------------------- */

static void test_chan_buffered_fifo(void **state) {
    (void)state;
    weft_chan *ch = new_chan(sizeof(uint32_t), 16);
    uint32_t v;
    for (uint32_t i = 0; i < 16; i++)
        assert_int_equal(weft_chan_try_send(ch, &i), 0);
    v = 99;
    assert_int_equal(weft_chan_try_send(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_send_for(ch, &v, WEFT_MSEC), -ETIMEDOUT);
    for (uint32_t i = 0; i < 16; i++) {
        assert_int_equal(weft_chan_recv(ch, &v), 0);
        assert_int_equal(v, i);
    }
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_recv_for(ch, &v, WEFT_MSEC), -ETIMEDOUT);

    /* Wrap around the ring with varying fill levels. */
    uint32_t next_in = 0, next_out = 0;
    uint64_t rng = wt_seed();
    for (int round = 0; round < 200; round++) {
        uint32_t room = 16 - (next_in - next_out);
        uint32_t n = wt_rand_below(&rng, room + 1);
        for (uint32_t k = 0; k < n; k++, next_in++)
            assert_int_equal(weft_chan_send(ch, &next_in), 0);
        uint32_t m = wt_rand_below(&rng, next_in - next_out + 1);
        for (uint32_t k = 0; k < m; k++, next_out++) {
            assert_int_equal(weft_chan_try_recv(ch, &v), 0);
            assert_int_equal(v, next_out);
        }
    }
    while (next_out < next_in) {
        assert_int_equal(weft_chan_recv_for(ch, &v, 0), 0);
        assert_int_equal(v, next_out++);
    }
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

/* Values are copied in at send and out at recv: exactly elem_size bytes,
 * whatever the size, and later changes to the sender's buffer do not
 * matter. */
static void check_copies(size_t elem_size) {
    enum { N = 3, SLACK = 16 };
    weft_chan *ch = new_chan(elem_size, N);
    unsigned char *buf = malloc(elem_size + SLACK);
    assert_non_null(buf);
    for (int k = 0; k < N; k++) {
        for (size_t i = 0; i < elem_size; i++)
            buf[i] = (unsigned char)(i * 7 + (size_t)k);
        assert_int_equal(weft_chan_send(ch, buf), 0);
        memset(buf, 0xee, elem_size); /* must not reach the receiver */
    }
    for (int k = 0; k < N; k++) {
        memset(buf, 0x5a, elem_size + SLACK);
        assert_int_equal(weft_chan_recv(ch, buf), 0);
        for (size_t i = 0; i < elem_size; i++)
            assert_int_equal(buf[i], (unsigned char)(i * 7 + (size_t)k));
        for (size_t i = elem_size; i < elem_size + SLACK; i++)
            assert_int_equal(buf[i], 0x5a); /* nothing written past it */
    }
    free(buf);
    assert_int_equal(weft_chan_destroy(ch), 0);
}

static void test_chan_copies_values(void **state) {
    (void)state;
    static const size_t sizes[] = {1, 3, 8, 24, 1000, 4096, 64 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_copies(sizes[i]);
}

/* Order is kept between a fiber and a plain thread, in both directions,
 * through a small buffer (so both sides block) and a rendezvous. */
enum { ORDER_N = 5000 };

static void *send_sequence(void *arg) {
    weft_chan *ch = arg;
    for (uint32_t i = 0; i < ORDER_N; i++)
        WT_CHECK_EQ(weft_chan_send(ch, &i), 0);
    return NULL;
}

static void *recv_sequence(void *arg) {
    weft_chan *ch = arg;
    for (uint32_t i = 0; i < ORDER_N; i++) {
        uint32_t v = UINT32_MAX;
        WT_CHECK_EQ(weft_chan_recv(ch, &v), 0);
        if (v != i) {
            WT_CHECK_EQ(v, i);
            break;
        }
    }
    return NULL;
}

static void test_chan_order_fiber_thread(void **state) {
    weft_runtime *rt = *state;
    static const size_t caps[] = {0, 1, 4};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        weft_chan *ch = new_chan(sizeof(uint32_t), caps[c]);
        weft_task *t = spawn(rt, send_sequence, ch);
        pthread_t th = start_thread(recv_sequence, ch);
        join_thread(th);
        join_task(t);
        t = spawn(rt, recv_sequence, ch);
        th = start_thread(send_sequence, ch);
        join_thread(th);
        join_task(t);
        assert_int_equal(weft_chan_destroy(ch), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/*
 * Fibers on both workers and plain threads send and receive on one
 * channel at once (rendezvous, capacity 1, capacity 16); every value
 * arrives exactly once, each producer's values in order for any one
 * consumer; close after the producers ends the consumers.
 */
enum { MIX_PER = 2000, MIX_PROD = 4, MIX_CONS = 4 };

struct mix {
    weft_chan *ch;
    atomic_int next_prod, next_cons;
    atomic_int seen[MIX_PROD * MIX_PER];
    atomic_long received;
};

static void *mix_produce(void *arg) {
    struct mix *m = arg;
    int id = atomic_fetch_add(&m->next_prod, 1);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)id);
    for (int i = 0; i < MIX_PER; i++) {
        uint32_t v = (uint32_t)(id * MIX_PER + i);
        int rc;
        switch (wt_rand_below(&rng, 3)) {
        case 0:
            rc = weft_chan_send(m->ch, &v);
            break;
        case 1:
            rc = weft_chan_send_for(m->ch, &v, LONG_WAIT);
            break;
        default:
            /* Bounded: two try_ calls never meet on a rendezvous. */
            for (int k = 0; (rc = weft_chan_try_send(m->ch, &v)) == -EAGAIN;
                 k++) {
                if (k == 64) {
                    rc = weft_chan_send(m->ch, &v);
                    break;
                }
                weft_yield();
            }
        }
        WT_CHECK_EQ(rc, 0);
    }
    return NULL;
}

static void *mix_consume(void *arg) {
    struct mix *m = arg;
    int id = atomic_fetch_add(&m->next_cons, 1);
    uint64_t rng = wt_mix(wt_seed() ^ 0xc0ffee, (uint64_t)id);
    long last[MIX_PROD];
    for (int p = 0; p < MIX_PROD; p++)
        last[p] = -1;
    for (;;) {
        uint32_t v = UINT32_MAX;
        int rc;
        switch (wt_rand_below(&rng, 3)) {
        case 0:
            rc = weft_chan_recv(m->ch, &v);
            break;
        case 1:
            rc = weft_chan_recv_for(m->ch, &v, LONG_WAIT);
            break;
        default:
            for (int k = 0; (rc = weft_chan_try_recv(m->ch, &v)) == -EAGAIN;
                 k++) {
                if (k == 64) {
                    rc = weft_chan_recv(m->ch, &v);
                    break;
                }
                weft_yield();
            }
        }
        if (rc == -EPIPE)
            break;
        WT_CHECK_EQ(rc, 0);
        if (rc != 0)
            break;
        if (v >= MIX_PROD * MIX_PER) {
            WT_CHECK(v < MIX_PROD * MIX_PER);
            break;
        }
        int p = (int)(v / MIX_PER);
        WT_CHECK((long)v > last[p]);
        last[p] = (long)v;
        WT_CHECK_EQ(atomic_fetch_add(&m->seen[v], 1), 0);
        atomic_fetch_add(&m->received, 1);
    }
    return NULL;
}

static void test_chan_fibers_and_threads(void **state) {
    weft_runtime *rt = *state;
    static const size_t caps[] = {0, 1, 16};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        struct mix *m = calloc(1, sizeof *m);
        assert_non_null(m);
        m->ch = new_chan(sizeof(uint32_t), caps[c]);
        weft_task *t[MIX_PROD + MIX_CONS] = {0};
        pthread_t th[MIX_PROD + MIX_CONS];
        /* Even indices: fibers; odd: plain threads. */
        for (int i = 0; i < MIX_PROD + MIX_CONS; i++) {
            weft_fn fn = i < MIX_PROD ? mix_produce : mix_consume;
            if (i % 2)
                th[i] = start_thread(fn, m);
            else
                t[i] = spawn(rt, fn, m);
        }
        for (int i = 0; i < MIX_PROD; i++) {
            if (i % 2)
                join_thread(th[i]);
            else
                join_task(t[i]);
        }
        assert_int_equal(weft_chan_close(m->ch), 0);
        for (int i = MIX_PROD; i < MIX_PROD + MIX_CONS; i++) {
            if (i % 2)
                join_thread(th[i]);
            else
                join_task(t[i]);
        }
        assert_int_equal(atomic_load(&m->received), MIX_PROD * MIX_PER);
        for (int v = 0; v < MIX_PROD * MIX_PER; v++)
            assert_int_equal(atomic_load(&m->seen[v]), 1);
        assert_int_equal(weft_chan_destroy(m->ch), 0);
        free(m);
    }
    WT_ASSERT_NO_FAILURES();
}

/* ---- Rendezvous -------------------------------------------------------- */

/* send returns only once a receiver has taken the value: the receiver
 * sleeps once the sender has started, then calls recv; the send cannot
 * finish before that call starts. */
#define LATE (50 * WEFT_MSEC)

struct rendezvous {
    weft_chan *ch;
    atomic_int sending;
    uint64_t recv_start;
    uint32_t got;
    int recv_rc;
};

static void *late_receiver(void *arg) {
    struct rendezvous *r = arg;
    wt_yield_until(&r->sending, 2000000000L);
    WT_CHECK_EQ(weft_sleep(LATE), 0);
    r->recv_start = wt_clock_ns();
    r->recv_rc = weft_chan_recv(r->ch, &r->got);
    return NULL;
}

struct timed_send {
    struct rendezvous *r;
    int rc;
    uint64_t t0, done;
};

static void *timed_send(void *arg) {
    struct timed_send *s = arg;
    uint32_t v = 77;
    s->t0 = wt_clock_ns();
    atomic_store(&s->r->sending, 1);
    s->rc = weft_chan_send(s->r->ch, &v);
    s->done = wt_clock_ns();
    return NULL;
}

static void test_chan_rendezvous_send_waits(void **state) {
    weft_runtime *rt = *state;
    for (int from_thread = 0; from_thread < 2; from_thread++) {
        struct rendezvous r = {.ch = new_chan(sizeof(uint32_t), 0)};
        struct timed_send s = {.r = &r};
        weft_task *recv_t = spawn(rt, late_receiver, &r);
        if (from_thread) {
            timed_send(&s);
        } else {
            weft_task *t = spawn(rt, timed_send, &s);
            join_task(t);
        }
        join_task(recv_t);
        assert_int_equal(s.rc, 0);
        assert_int_equal(r.recv_rc, 0);
        assert_int_equal(r.got, 77);
        assert_true(s.done >= r.recv_start);
        assert_true(s.done - s.t0 >= LATE);
        assert_int_equal(weft_chan_destroy(r.ch), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/* try_send succeeds only while a receiver waits; try_recv takes from a
 * waiting sender; both are -EAGAIN otherwise. */
static bool try_send_until_taken(weft_chan *ch, uint32_t v) {
    uint64_t deadline = wt_clock_ns() + POLL;
    int rc;
    while ((rc = weft_chan_try_send(ch, &v)) == -EAGAIN) {
        if (wt_clock_ns() > deadline)
            return false;
        wt_thread_sleep_ns(100 * WEFT_USEC);
    }
    return rc == 0;
}

static bool try_recv_until_got(weft_chan *ch, uint32_t *v) {
    uint64_t deadline = wt_clock_ns() + POLL;
    int rc;
    while ((rc = weft_chan_try_recv(ch, v)) == -EAGAIN) {
        if (wt_clock_ns() > deadline)
            return false;
        wt_thread_sleep_ns(100 * WEFT_USEC);
    }
    return rc == 0;
}

static void test_chan_rendezvous_try(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch = new_chan(sizeof(uint32_t), 0);
    uint32_t v = 5;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_chan_try_send(ch, &v), -EAGAIN);
        assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    }
    assert_int_equal(weft_chan_send_for(ch, &v, 0), -ETIMEDOUT);
    assert_int_equal(weft_chan_recv_for(ch, &v, 0), -ETIMEDOUT);

    /* A receiver waits: try_send hands it the value. */
    struct op r = {.ch = ch, .kind = OP_RECV_FOR, .timeout = LONG_WAIT};
    weft_task *t = spawn(rt, run_op, &r);
    bool sent = try_send_until_taken(ch, 41);
    if (!sent)
        assert_int_equal(weft_chan_close(ch), 0); /* let the receiver go */
    join_task(t);
    assert_true(sent);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.value, 41);
    assert_int_equal(weft_chan_try_send(ch, &v), -EAGAIN); /* nobody now */

    /* A sender waits: try_recv takes its value and the send returns 0. */
    struct op s = {.ch = ch, .kind = OP_SEND, .value = 42};
    t = spawn(rt, run_op, &s);
    uint32_t got = 0;
    bool received = try_recv_until_got(ch, &got);
    if (!received)
        assert_int_equal(weft_chan_close(ch), 0);
    join_task(t);
    assert_true(received);
    assert_int_equal(got, 42);
    assert_int_equal(s.rc, 0);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_destroy(ch), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Close ------------------------------------------------------------- */

enum { BLOCKED = 6 };

/* Blocked senders (fibers and threads, send and send_for) all get -EPIPE
 * on close, promptly; none of their values is delivered. With a full
 * buffer, the buffered value is still received. */
static void test_chan_close_wakes_senders(void **state) {
    weft_runtime *rt = *state;
    for (size_t cap = 0; cap < 2; cap++) {
        weft_chan *ch = new_chan(sizeof(uint32_t), cap);
        uint32_t v = 1;
        if (cap)
            assert_int_equal(weft_chan_send(ch, &v), 0); /* now full */
        struct op_set s;
        start_ops(rt, &s, ch, BLOCKED, true);
        int returned_early = 0;
        for (int i = 0; i < BLOCKED; i++)
            returned_early += atomic_load(&s.op[i].returned);
        assert_int_equal(weft_chan_close(ch), 0);
        join_ops(&s);
        assert_int_equal(returned_early, 0);
        for (int i = 0; i < BLOCKED; i++) {
            assert_int_equal(s.op[i].rc, -EPIPE);
            assert_true(s.op[i].took < PROMPT);
        }
        if (cap) {
            assert_int_equal(weft_chan_recv(ch, &v), 0);
            assert_int_equal(v, 1);
        }
        assert_int_equal(weft_chan_try_recv(ch, &v), -EPIPE);
        assert_int_equal(weft_chan_recv(ch, &v), -EPIPE);
        free_ops(&s);
        assert_int_equal(weft_chan_destroy(ch), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/* Blocked receivers (fibers and threads, recv and recv_for) all get
 * -EPIPE on close, promptly. */
static void test_chan_close_wakes_receivers(void **state) {
    weft_runtime *rt = *state;
    for (size_t cap = 0; cap < 17; cap += 16) {
        weft_chan *ch = new_chan(sizeof(uint32_t), cap);
        struct op_set s;
        start_ops(rt, &s, ch, BLOCKED, false);
        int returned_early = 0;
        for (int i = 0; i < BLOCKED; i++)
            returned_early += atomic_load(&s.op[i].returned);
        assert_int_equal(weft_chan_close(ch), 0);
        join_ops(&s);
        assert_int_equal(returned_early, 0);
        for (int i = 0; i < BLOCKED; i++) {
            assert_int_equal(s.op[i].rc, -EPIPE);
            assert_true(s.op[i].took < PROMPT);
        }
        free_ops(&s);
        assert_int_equal(weft_chan_destroy(ch), 0);
    }
    WT_ASSERT_NO_FAILURES();
}

/* After close, receivers drain what was buffered, in order, and only then
 * get -EPIPE; every send gets -EPIPE; a second close gets -EPIPE. */
static void *check_closed_drain(void *arg) {
    weft_chan *ch = arg;
    uint32_t v = 123;
    WT_CHECK_EQ(weft_chan_send(ch, &v), -EPIPE);
    WT_CHECK_EQ(weft_chan_try_send(ch, &v), -EPIPE);
    WT_CHECK_EQ(weft_chan_send_for(ch, &v, LONG_WAIT), -EPIPE);
    for (uint32_t i = 0; i < 5; i++) {
        int rc;
        switch (i % 3) {
        case 0:
            rc = weft_chan_recv(ch, &v);
            break;
        case 1:
            rc = weft_chan_try_recv(ch, &v);
            break;
        default:
            rc = weft_chan_recv_for(ch, &v, LONG_WAIT);
        }
        WT_CHECK_EQ(rc, 0);
        WT_CHECK_EQ(v, i);
    }
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_chan_recv(ch, &v), -EPIPE);
    WT_CHECK_EQ(weft_chan_try_recv(ch, &v), -EPIPE);
    WT_CHECK_EQ(weft_chan_recv_for(ch, &v, LONG_WAIT), -EPIPE);
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    WT_CHECK_EQ(weft_chan_close(ch), -EPIPE);
    return NULL;
}

static void test_chan_close_drains(void **state) {
    weft_runtime *rt = *state;
    for (int in_fiber = 0; in_fiber < 2; in_fiber++) {
        weft_chan *ch = new_chan(sizeof(uint32_t), 16);
        for (uint32_t i = 0; i < 5; i++)
            assert_int_equal(weft_chan_send(ch, &i), 0);
        assert_int_equal(weft_chan_close(ch), 0);
        assert_int_equal(weft_chan_close(ch), -EPIPE);
        if (in_fiber)
            assert_int_equal(weft_run(rt, check_closed_drain, ch, NULL), 0);
        else
            check_closed_drain(ch);
        assert_int_equal(weft_chan_destroy(ch), 0);
    }
    /* Closed with items left: destroy frees them. */
    weft_chan *ch = new_chan(sizeof(uint32_t), 4);
    uint32_t v = 9;
    assert_int_equal(weft_chan_send(ch, &v), 0);
    assert_int_equal(weft_chan_close(ch), 0);
    assert_int_equal(weft_chan_destroy(ch), 0);
    /* Rendezvous: close at once. */
    ch = new_chan(sizeof(uint32_t), 0);
    assert_int_equal(weft_chan_close(ch), 0);
    assert_int_equal(weft_chan_send(ch, &v), -EPIPE);
    assert_int_equal(weft_chan_try_send(ch, &v), -EPIPE);
    assert_int_equal(weft_chan_recv(ch, &v), -EPIPE);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EPIPE);
    assert_int_equal(weft_chan_close(ch), -EPIPE);
    assert_int_equal(weft_chan_destroy(ch), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Timeouts ---------------------------------------------------------- */

/* Timeouts never end early; a send that timed out is withdrawn. */
static void *chan_timeouts(void *arg) {
    (void)arg;
    static const uint64_t tmo[] = {0, 1, 50 * WEFT_USEC, 5 * WEFT_MSEC,
                                   30 * WEFT_MSEC};
    weft_chan *rv = NULL, *full = NULL;
    WT_CHECK_EQ(weft_chan_create(&rv, sizeof(uint32_t), 0), 0);
    WT_CHECK_EQ(weft_chan_create(&full, sizeof(uint32_t), 1), 0);
    uint32_t first = 1, v;
    WT_CHECK_EQ(weft_chan_send(full, &first), 0);
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
        v = 100 + (uint32_t)i;
        uint64_t t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_chan_send_for(rv, &v, tmo[i]), -ETIMEDOUT);
        CHECK_NOT_EARLY(wt_clock_ns() - t0, tmo[i]);
        t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_chan_recv_for(rv, &v, tmo[i]), -ETIMEDOUT);
        CHECK_NOT_EARLY(wt_clock_ns() - t0, tmo[i]);
        t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_chan_send_for(full, &v, tmo[i]), -ETIMEDOUT);
        CHECK_NOT_EARLY(wt_clock_ns() - t0, tmo[i]);
        WT_CHECK_EQ(weft_chan_try_recv(rv, &v), -EAGAIN);
    }
    /* Nothing that timed out was delivered. */
    WT_CHECK_EQ(weft_chan_recv_for(rv, &v, 20 * WEFT_MSEC), -ETIMEDOUT);
    WT_CHECK_EQ(weft_chan_try_recv(full, &v), 0);
    WT_CHECK_EQ(v, first);
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_chan_recv_for(full, &v, 20 * WEFT_MSEC), -ETIMEDOUT);
    CHECK_NOT_EARLY(wt_clock_ns() - t0, 20 * WEFT_MSEC);
    WT_CHECK_EQ(weft_chan_destroy(rv), 0);
    WT_CHECK_EQ(weft_chan_destroy(full), 0);
    return NULL;
}

static void test_chan_timeouts(void **state) {
    weft_runtime *rt = *state;
    weft_task *t = spawn(rt, chan_timeouts, NULL);
    chan_timeouts(NULL); /* plain thread, at the same time */
    join_task(t);
    WT_ASSERT_NO_FAILURES();
}

/*
 * A timed send races with a receiver that arrives around its deadline.
 * Whatever wins, the outcome agrees on both sides: the send returned 0
 * exactly when the receiver got the value.
 */
enum { RACE_ROUNDS = 60 };

struct race {
    weft_chan *ch;
    uint64_t delay;
    int recv_rc;
    uint32_t got;
};

static void *race_receiver(void *arg) {
    struct race *r = arg;
    WT_CHECK_EQ(weft_sleep(r->delay), 0);
    r->recv_rc = weft_chan_recv_for(r->ch, &r->got, 5 * WEFT_MSEC);
    return NULL;
}

static void test_chan_send_timeout_races_receiver(void **state) {
    weft_runtime *rt = *state;
    uint64_t rng = wt_seed();
    int delivered = 0, withdrawn = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        struct race r = {.ch = new_chan(sizeof(uint32_t), 0),
                         .delay = (8 + wt_rand_below(&rng, 5)) * WEFT_MSEC};
        weft_task *t = spawn(rt, race_receiver, &r);
        uint32_t v = 1000u + (uint32_t)i;
        int send_rc = weft_chan_send_for(r.ch, &v, 10 * WEFT_MSEC);
        join_task(t);
        assert_true(send_rc == 0 || send_rc == -ETIMEDOUT);
        if (send_rc == 0) {
            assert_int_equal(r.recv_rc, 0);
            assert_int_equal(r.got, v);
            delivered++;
        } else {
            assert_int_equal(r.recv_rc, -ETIMEDOUT);
            withdrawn++;
        }
        assert_int_equal(weft_chan_destroy(r.ch), 0);
    }
    print_message("send_for races: %d delivered, %d withdrawn\n", delivered,
                  withdrawn);
    WT_ASSERT_NO_FAILURES();
}

/*
 * The same race, many times over: timed sends and receives with timeouts
 * of a few microseconds on one rendezvous channel, from fibers and a
 * plain thread, so that deadlines often fire just as a partner arrives.
 * A value is received exactly when its send returned 0.
 */
enum { HAMMER_SENDERS = 3, HAMMER_RECEIVERS = 3, HAMMER_PER = 4000 };

struct hammer {
    weft_chan *ch;
    atomic_int next_id, next_recv_id, senders_done;
    atomic_uchar sent[HAMMER_SENDERS * HAMMER_PER];
    atomic_int seen[HAMMER_SENDERS * HAMMER_PER];
    atomic_long ok, timeouts;
};

static void *hammer_send(void *arg) {
    struct hammer *h = arg;
    int id = atomic_fetch_add(&h->next_id, 1);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)id);
    for (uint32_t i = 0; i < HAMMER_PER; i++) {
        uint32_t v = (uint32_t)id * HAMMER_PER + i;
        int rc = weft_chan_send_for(h->ch, &v,
                                    wt_rand_below(&rng, 20) * WEFT_USEC);
        if (rc == 0) {
            atomic_store(&h->sent[v], 1);
            atomic_fetch_add(&h->ok, 1);
        } else {
            WT_CHECK_EQ(rc, -ETIMEDOUT);
            atomic_fetch_add(&h->timeouts, 1);
        }
    }
    atomic_fetch_add(&h->senders_done, 1);
    return NULL;
}

static void *hammer_recv(void *arg) {
    struct hammer *h = arg;
    uint64_t rng = wt_mix(wt_seed() ^ 0x7265,
                          (uint64_t)atomic_fetch_add(&h->next_recv_id, 1));
    for (;;) {
        uint32_t v = UINT32_MAX;
        int rc = weft_chan_recv_for(h->ch, &v,
                                    wt_rand_below(&rng, 20) * WEFT_USEC);
        if (rc == -EPIPE)
            break;
        if (rc == -ETIMEDOUT)
            continue;
        WT_CHECK_EQ(rc, 0);
        if (rc != 0 || v >= HAMMER_SENDERS * HAMMER_PER) {
            WT_CHECK(v < HAMMER_SENDERS * HAMMER_PER);
            break;
        }
        WT_CHECK_EQ(atomic_fetch_add(&h->seen[v], 1), 0);
    }
    return NULL;
}

static void test_chan_timeouts_race_hammer(void **state) {
    weft_runtime *rt = *state;
    struct hammer *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->ch = new_chan(sizeof(uint32_t), 0);
    weft_task *s[HAMMER_SENDERS] = {0}, *r[HAMMER_RECEIVERS];
    pthread_t th;
    for (int i = 0; i < HAMMER_RECEIVERS; i++)
        r[i] = spawn(rt, hammer_recv, h);
    for (int i = 0; i < HAMMER_SENDERS; i++) {
        if (i == 0)
            th = start_thread(hammer_send, h);
        else
            s[i] = spawn(rt, hammer_send, h);
    }
    join_thread(th);
    for (int i = 1; i < HAMMER_SENDERS; i++)
        join_task(s[i]);
    assert_int_equal(weft_chan_close(h->ch), 0);
    for (int i = 0; i < HAMMER_RECEIVERS; i++)
        join_task(r[i]);
    assert_int_equal(weft_chan_destroy(h->ch), 0);
    WT_ASSERT_NO_FAILURES();
    long mismatches = 0;
    for (int v = 0; v < HAMMER_SENDERS * HAMMER_PER; v++)
        if (atomic_load(&h->seen[v]) != atomic_load(&h->sent[v]))
            mismatches++;
    print_message("timeout hammer: %ld delivered, %ld timed out, %ld "
                  "mismatches\n",
                  atomic_load(&h->ok), atomic_load(&h->timeouts), mismatches);
    assert_int_equal(mismatches, 0);
    free(h);
}

/* ---- Cancellation ------------------------------------------------------ */

/*
 * A fiber blocked in send, send_for, recv or recv_for is cancelled: it
 * returns -ECANCELED promptly; a cancelled send is withdrawn (never
 * delivered) and a cancelled receiver is no longer waiting (try_send to
 * it fails).
 */
static void test_chan_cancel_blocked(void **state) {
    weft_runtime *rt = *state;
    static const enum op_kind kinds[] = {OP_SEND, OP_SEND_FOR, OP_RECV,
                                         OP_RECV_FOR};
    for (size_t cap = 0; cap < 2; cap++) {
        for (size_t k = 0; k < 4; k++) {
            weft_chan *ch = new_chan(sizeof(uint32_t), cap);
            uint32_t v = 1;
            bool sending = kinds[k] == OP_SEND || kinds[k] == OP_SEND_FOR;
            if (cap && sending)
                assert_int_equal(weft_chan_send(ch, &v), 0); /* full */
            struct op o = {.ch = ch, .kind = kinds[k], .timeout = LONG_WAIT,
                           .value = 55};
            weft_task *t = spawn(rt, run_op, &o);
            poll_ge(&o.started, 1);
            settle();
            int early = atomic_load(&o.returned);
            assert_int_equal(weft_cancel(t), 0);
            join_task(t);
            assert_int_equal(early, 0);
            assert_int_equal(o.rc, -ECANCELED);
            assert_true(o.took < PROMPT);
            if (sending) {
                if (cap) {
                    assert_int_equal(weft_chan_try_recv(ch, &v), 0);
                    assert_int_equal(v, 1);
                }
                assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
                assert_int_equal(weft_chan_recv_for(ch, &v, 20 * WEFT_MSEC),
                                 -ETIMEDOUT);
            } else if (cap == 0) {
                assert_int_equal(weft_chan_try_send(ch, &v), -EAGAIN);
            } else {
                /* Buffered, not handed to the cancelled receiver. */
                v = 3;
                assert_int_equal(weft_chan_try_send(ch, &v), 0);
                v = 0;
                assert_int_equal(weft_chan_try_recv(ch, &v), 0);
                assert_int_equal(v, 3);
            }
            assert_int_equal(weft_chan_destroy(ch), 0);
        }
    }
    WT_ASSERT_NO_FAILURES();
}

/* Sticky: once cancelled, operations that can complete at once do; those
 * that would block return -ECANCELED at once. */
static void *chan_cancelled_first(void *arg) {
    weft_chan *ch = arg; /* capacity 1, empty */
    yield_until_cancelled();
    uint32_t v = 8, got = 0;
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_chan_send(ch, &v), 0);          /* room */
    WT_CHECK_EQ(weft_chan_send(ch, &v), -ECANCELED); /* full */
    WT_CHECK_EQ(weft_chan_send_for(ch, &v, LONG_WAIT), -ECANCELED);
    WT_CHECK_EQ(weft_chan_try_send(ch, &v), -EAGAIN);
    WT_CHECK_EQ(weft_chan_recv(ch, &got), 0);        /* an item */
    WT_CHECK_EQ(got, 8);
    WT_CHECK_EQ(weft_chan_recv(ch, &got), -ECANCELED); /* empty */
    WT_CHECK_EQ(weft_chan_recv_for(ch, &got, LONG_WAIT), -ECANCELED);
    WT_CHECK_EQ(weft_chan_send_for(ch, &v, LONG_WAIT), 0);
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    return NULL;
}

static void test_chan_cancel_sticky(void **state) {
    weft_runtime *rt = *state;
    weft_chan *ch = new_chan(sizeof(uint32_t), 1);
    weft_task *t = spawn_running(rt, chan_cancelled_first, ch);
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    uint32_t v = 0;
    assert_int_equal(weft_chan_try_recv(ch, &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(weft_chan_try_recv(ch, &v), -EAGAIN);
    assert_int_equal(weft_chan_destroy(ch), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Destroy ----------------------------------------------------------- */

static void test_chan_destroy_busy(void **state) {
    weft_runtime *rt = *state;
    for (int sending = 0; sending < 2; sending++) {
        weft_chan *ch = new_chan(sizeof(uint32_t), 0);
        struct op o = {.ch = ch, .kind = sending ? OP_SEND : OP_RECV,
                       .value = 31};
        weft_task *t = spawn(rt, run_op, &o);
        poll_ge(&o.started, 1);
        settle();
        int destroy_rc = weft_chan_destroy(ch);
        /* Release the waiter: complete its operation. */
        uint32_t v = 32;
        bool done = sending ? try_recv_until_got(ch, &v)
                            : try_send_until_taken(ch, v);
        if (!done)
            assert_int_equal(weft_chan_close(ch), 0);
        join_task(t);
        assert_int_equal(destroy_rc, -EBUSY);
        assert_true(done);
        assert_int_equal(o.rc, 0);
        assert_int_equal(sending ? v : o.value, sending ? 31 : 32);
        assert_int_equal(weft_chan_destroy(ch), 0);
    }
    /* A blocked receiver released by close; then destroy succeeds. */
    weft_chan *ch = new_chan(sizeof(uint32_t), 2);
    struct op o = {.ch = ch, .kind = OP_RECV};
    weft_task *t = spawn(rt, run_op, &o);
    poll_ge(&o.started, 1);
    settle();
    int destroy_rc = weft_chan_destroy(ch);
    assert_int_equal(weft_chan_close(ch), 0);
    join_task(t);
    assert_int_equal(destroy_rc, -EBUSY);
    assert_int_equal(o.rc, -EPIPE);
    assert_int_equal(weft_chan_destroy(ch), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- One worker: waits free the worker --------------------------------- */

/* Ping-pong between two fibers on the only worker, through rendezvous
 * channels: each blocking send or recv must switch to the other fiber.
 * errno survives every switch. */
enum { PINGS = 2000 };

struct pingpong {
    weft_chan *ping, *pong;
    uint64_t took;
};

static void *ponger(void *arg) {
    struct pingpong *p = arg;
    wt_set_errno(2222);
    for (uint32_t i = 0; i < PINGS; i++) {
        uint32_t v = 0;
        WT_CHECK_EQ(weft_chan_recv_for(p->ping, &v, PROMPT), 0);
        WT_CHECK_EQ(v, i);
        v = i + 1;
        WT_CHECK_EQ(weft_chan_send_for(p->pong, &v, PROMPT), 0);
        WT_CHECK_EQ(wt_errno(), 2222);
    }
    return NULL;
}

static void *pinger(void *arg) {
    struct pingpong *p = arg;
    weft_task *t = NULL;
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_spawn(NULL, ponger, p, &t), 0);
    wt_set_errno(1111);
    for (uint32_t i = 0; i < PINGS; i++) {
        uint32_t v = i;
        WT_CHECK_EQ(weft_chan_send_for(p->ping, &v, PROMPT), 0);
        WT_CHECK_EQ(weft_chan_recv_for(p->pong, &v, PROMPT), 0);
        WT_CHECK_EQ(v, i + 1);
        WT_CHECK_EQ(wt_errno(), 1111);
    }
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    p->took = wt_clock_ns() - t0;
    return NULL;
}

static void test_chan_waits_free_the_worker(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    struct pingpong p = {.ping = new_chan(sizeof(uint32_t), 0),
                         .pong = new_chan(sizeof(uint32_t), 0)};
    assert_int_equal(weft_run(rt, pinger, &p, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_true(p.took < 10 * PROMPT);
    assert_int_equal(weft_chan_destroy(p.ping), 0);
    assert_int_equal(weft_chan_destroy(p.pong), 0);
    WT_ASSERT_NO_FAILURES();
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_chan_create_bad_args),
        RT_TEST(test_chan_null_args),
        RT_TEST(test_chan_buffered_fifo),
        RT_TEST(test_chan_copies_values),
        RT_TEST(test_chan_order_fiber_thread),
        RT_TEST(test_chan_fibers_and_threads),
        RT_TEST(test_chan_rendezvous_send_waits),
        RT_TEST(test_chan_rendezvous_try),
        RT_TEST(test_chan_close_wakes_senders),
        RT_TEST(test_chan_close_wakes_receivers),
        RT_TEST(test_chan_close_drains),
        RT_TEST(test_chan_timeouts),
        RT_TEST(test_chan_send_timeout_races_receiver),
        RT_TEST(test_chan_timeouts_race_hammer),
        RT_TEST(test_chan_cancel_blocked),
        RT_TEST(test_chan_cancel_sticky),
        RT_TEST(test_chan_destroy_busy),
        cmocka_unit_test(test_chan_waits_free_the_worker),
    };
    return cmocka_run_group_tests_name("api.chan", tests, NULL, NULL);
}
