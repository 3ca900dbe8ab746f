/*
 * tests/stress/stress_chan.c - channels under load: close racing with
 * many blocked senders and receivers (fibers and plain threads), short
 * timeouts, try_ calls and cancels; and a pipeline of stages.
 *
 * Every value is unique. A send that returned 0 must be received exactly
 * once; a send that failed (-ETIMEDOUT, -EAGAIN, -EPIPE, -ECANCELED) must
 * never be received; each producer's values reach any one consumer in
 * order; no value is torn.
 *
 * Usage: stress_chan WORKERS [ROUNDS] [ITEMS]
 *   WORKERS  worker threads of the runtime under test
 *   ROUNDS   close races, each with a fresh channel; default 200
 *   ITEMS    send attempts per producer per round; default 200
 * $WEFT_TEST_SEED replays a run; the seed is printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_util.h"

static struct {
    unsigned workers;
    long rounds;
    long items;
    uint64_t seed;
} P;

static weft_runtime *new_runtime(void) {
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    return rt;
}

/* A value with redundancy, so a torn copy is caught. */
struct item {
    uint32_t v;
    uint32_t inv;  /* ~v */
    uint64_t hash; /* v * golden ratio */
};

static struct item make_item(uint32_t v) {
    return (struct item){v, ~v, (uint64_t)v * 0x9e3779b97f4a7c15ull};
}

static bool item_ok(const struct item *it) {
    return it->inv == ~it->v && it->hash == (uint64_t)it->v * 0x9e3779b97f4a7c15ull;
}

/* ---- Close races ------------------------------------------------------- */

enum { MAX_PROD = 8, MAX_CONS = 8 };

struct round {
    weft_chan *ch;
    int np, nc;
    long items;           /* attempts per producer */
    atomic_uchar *sent;   /* [np * items]: the send returned 0 */
    atomic_int *seen;     /* [np * items]: times received */
    atomic_int next_prod, next_cons;
    atomic_long ok_sends, failed_sends, received;
    atomic_long epipe_sends, epipe_recvs, cancels, timeouts;
    uint64_t close_delay; /* for a closer fiber */
    enum { BALANCED, SLOW_CONSUMERS, SLOW_PRODUCERS } mode;
    uint64_t key; /* random streams of this round's tasks derive from it */
};

/* A timeout for a _for call: often a few microseconds (deadlines that
 * fire just as a partner arrives), sometimes up to half a millisecond. */
static uint64_t short_timeout(uint64_t *rng) {
    uint32_t us = wt_rand_below(rng, 2) ? wt_rand_below(rng, 10)
                                        : wt_rand_below(rng, 500);
    return us * WEFT_USEC;
}

/* In a slow round, one side now and then sleeps a little, so that the
 * other side piles up blocked on a full or empty channel when close
 * comes. */
static void dawdle(struct round *r, bool consumer_side, uint64_t *rng) {
    bool slow = r->mode == (consumer_side ? SLOW_CONSUMERS : SLOW_PRODUCERS);
    if (slow && wt_rand_below(rng, 4) == 0) {
        int rc = weft_sleep(wt_rand_below(rng, 300) * WEFT_USEC);
        WT_CHECK(rc == 0 || rc == -ECANCELED);
    }
}

static void note_send_failure(struct round *r, int rc) {
    atomic_fetch_add(&r->failed_sends, 1);
    if (rc == -ETIMEDOUT)
        atomic_fetch_add(&r->timeouts, 1);
}

static void *producer(void *arg) {
    struct round *r = arg;
    int id = atomic_fetch_add(&r->next_prod, 1);
    uint64_t rng = wt_mix(r->key ^ 0x70726f64, (uint64_t)id);
    for (long a = 0; a < r->items; a++) {
        uint32_t v = (uint32_t)(id * r->items + a);
        struct item it = make_item(v);
        int rc;
        uint32_t pick = wt_rand_below(&rng, 10);
        if (pick < 4)
            rc = weft_chan_send(r->ch, &it);
        else if (pick < 7)
            rc = weft_chan_send_for(r->ch, &it, short_timeout(&rng));
        else
            rc = weft_chan_try_send(r->ch, &it);
        if (rc == 0) {
            atomic_store(&r->sent[v], 1);
            atomic_fetch_add(&r->ok_sends, 1);
        } else if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            WT_CHECK(rc == -EAGAIN ? pick >= 7 : (pick >= 4 && pick < 7));
            note_send_failure(r, rc);
        } else if (rc == -EPIPE) {
            note_send_failure(r, rc);
            atomic_fetch_add(&r->epipe_sends, 1);
            break;
        } else {
            WT_CHECK_EQ(rc, -ECANCELED);
            WT_CHECK(weft_cancelled());
            note_send_failure(r, rc);
            atomic_fetch_add(&r->cancels, 1);
            break;
        }
        if (wt_rand_below(&rng, 4) == 0)
            weft_yield();
        dawdle(r, false, &rng);
    }
    return NULL;
}

/* Checks one received item; false stops the consumer. */
static bool take(struct round *r, const struct item *it, long *last) {
    if (!item_ok(it) || it->v >= (uint32_t)(r->np * r->items)) {
        WT_CHECK(!"torn or unknown value received");
        return false;
    }
    int p = (int)(it->v / (uint32_t)r->items);
    WT_CHECK((long)it->v > last[p]); /* a producer's values in order */
    last[p] = (long)it->v;
    WT_CHECK_EQ(atomic_fetch_add(&r->seen[it->v], 1), 0);
    atomic_fetch_add(&r->received, 1);
    return true;
}

static void *consumer(void *arg) {
    struct round *r = arg;
    int id = atomic_fetch_add(&r->next_cons, 1);
    uint64_t rng = wt_mix(r->key ^ 0x636f6e73, (uint64_t)id);
    long last[MAX_PROD];
    for (int p = 0; p < MAX_PROD; p++)
        last[p] = -1;
    for (;;) {
        struct item it = {0};
        int rc;
        uint32_t pick = wt_rand_below(&rng, 10);
        if (pick < 4)
            rc = weft_chan_recv(r->ch, &it);
        else if (pick < 7)
            rc = weft_chan_recv_for(r->ch, &it, short_timeout(&rng));
        else
            rc = weft_chan_try_recv(r->ch, &it);
        if (rc == 0) {
            if (!take(r, &it, last))
                break;
        } else if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            WT_CHECK(rc == -EAGAIN ? pick >= 7 : (pick >= 4 && pick < 7));
            weft_yield();
        } else if (rc == -EPIPE) {
            atomic_fetch_add(&r->epipe_recvs, 1);
            break;
        } else {
            WT_CHECK_EQ(rc, -ECANCELED);
            WT_CHECK(weft_cancelled());
            atomic_fetch_add(&r->cancels, 1);
            break;
        }
        if (wt_rand_below(&rng, 4) == 0)
            weft_yield();
        dawdle(r, true, &rng);
    }
    return NULL;
}

static void *closer(void *arg) {
    struct round *r = arg;
    WT_CHECK_EQ(weft_sleep(r->close_delay), 0);
    WT_CHECK_EQ(weft_chan_close(r->ch), 0);
    return NULL;
}

struct totals {
    long ok, failed, received, drained, epipe_sends, epipe_recvs, cancels,
        timeouts;
};

static void run_close_round(weft_runtime *rt, uint64_t *rng, struct totals *tot) {
    static const size_t caps[] = {0, 1, 16};
    size_t cap = caps[wt_rand_below(rng, 3)];
    struct round *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->np = 1 + (int)wt_rand_below(rng, MAX_PROD);
    r->nc = 1 + (int)wt_rand_below(rng, MAX_CONS);
    r->items = P.items;
    r->mode = wt_rand_below(rng, 3);
    r->key = wt_rand(rng);
    size_t nv = (size_t)r->np * (size_t)r->items;
    r->sent = calloc(nv, sizeof *r->sent);
    r->seen = calloc(nv, sizeof *r->seen);
    assert_non_null(r->sent);
    assert_non_null(r->seen);
    assert_int_equal(weft_chan_create(&r->ch, sizeof(struct item), cap), 0);

    /* Task 0 of each side may be a plain thread. */
    bool prod_thread = wt_rand_below(rng, 4) == 0;
    bool cons_thread = wt_rand_below(rng, 4) == 0;
    weft_task *pt[MAX_PROD] = {0}, *ct[MAX_CONS] = {0}, *cl = NULL;
    pthread_t pth, cth;
    for (int i = 0; i < r->np; i++) {
        if (i == 0 && prod_thread)
            assert_int_equal(pthread_create(&pth, NULL, producer, r), 0);
        else
            assert_int_equal(weft_spawn(rt, producer, r, &pt[i]), 0);
    }
    for (int i = 0; i < r->nc; i++) {
        if (i == 0 && cons_thread)
            assert_int_equal(pthread_create(&cth, NULL, consumer, r), 0);
        else
            assert_int_equal(weft_spawn(rt, consumer, r, &ct[i]), 0);
    }

    /* Close early (racing with blocked operations) or late, from a fiber
     * or from this thread; meanwhile perhaps cancel a task or two. */
    uint64_t delay = wt_rand_below(rng, 4) == 0
                         ? 0
                         : wt_rand_below(rng, 2000) * WEFT_USEC;
    bool fiber_closer = wt_rand_below(rng, 2);
    if (fiber_closer) {
        r->close_delay = delay;
        assert_int_equal(weft_spawn(rt, closer, r, &cl), 0);
    }
    for (int k = (int)wt_rand_below(rng, 3); k > 0; k--) {
        wt_thread_sleep_ns(wt_rand_below(rng, 1000) * WEFT_USEC);
        bool prod = wt_rand_below(rng, 2);
        int i = (int)wt_rand_below(rng, (uint32_t)(prod ? r->np : r->nc));
        weft_task *t = prod ? pt[i] : ct[i];
        if (t) {
            int rc = weft_cancel(t);
            assert_true(rc == 0 || rc == -ESRCH);
        }
    }
    if (!fiber_closer) {
        wt_thread_sleep_ns(delay);
        assert_int_equal(weft_chan_close(r->ch), 0);
    }

    if (prod_thread)
        assert_int_equal(pthread_join(pth, NULL), 0);
    if (cons_thread)
        assert_int_equal(pthread_join(cth, NULL), 0);
    for (int i = 0; i < r->np; i++)
        if (pt[i]) {
            int rc = weft_join(pt[i], NULL);
            assert_true(rc == 0 || rc == -ECANCELED);
        }
    for (int i = 0; i < r->nc; i++)
        if (ct[i]) {
            int rc = weft_join(ct[i], NULL);
            assert_true(rc == 0 || rc == -ECANCELED);
        }
    if (cl)
        assert_int_equal(weft_join(cl, NULL), 0);
    assert_int_equal(weft_chan_close(r->ch), -EPIPE);

    /* Consumers that were cancelled may have left items behind. */
    long drained = 0;
    long last[MAX_PROD];
    for (int p = 0; p < MAX_PROD; p++)
        last[p] = -1;
    struct item it;
    int rc;
    while ((rc = weft_chan_try_recv(r->ch, &it)) == 0) {
        if (!take(r, &it, last))
            break;
        drained++;
    }
    assert_int_equal(weft_chan_destroy(r->ch), 0);
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(rc, -EPIPE);

    /* Received exactly the values whose send returned 0. */
    for (size_t v = 0; v < nv; v++) {
        int seen = atomic_load(&r->seen[v]);
        int sent = atomic_load(&r->sent[v]);
        if (seen != sent)
            fprintf(stderr, "value %zu (producer %ld, attempt %ld, cap %zu): "
                            "sent %d, received %d times\n",
                    v, (long)v / r->items, (long)v % r->items, cap, sent, seen);
        assert_int_equal(seen, sent);
    }
    assert_int_equal(atomic_load(&r->received), atomic_load(&r->ok_sends));

    tot->ok += atomic_load(&r->ok_sends);
    tot->failed += atomic_load(&r->failed_sends);
    tot->received += atomic_load(&r->received);
    tot->drained += drained;
    tot->epipe_sends += atomic_load(&r->epipe_sends);
    tot->epipe_recvs += atomic_load(&r->epipe_recvs);
    tot->cancels += atomic_load(&r->cancels);
    tot->timeouts += atomic_load(&r->timeouts);
    free(r->sent);
    free(r->seen);
    free(r);
}

static void test_close_races(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    uint64_t rng = wt_mix(P.seed, 1);
    struct totals tot = {0};
    for (long i = 0; i < P.rounds; i++)
        run_close_round(rt, &rng, &tot);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    fprintf(stderr,
            "close races: %ld rounds, %ld sent (%ld drained after), %ld "
            "failed sends (%ld timeouts, %ld -EPIPE), %ld receivers ended "
            "by close, %ld cancelled\n",
            P.rounds, tot.ok, tot.drained, tot.failed, tot.timeouts,
            tot.epipe_sends, tot.epipe_recvs, tot.cancels);
    WT_ASSERT_NO_FAILURES();
    assert_true(tot.epipe_sends + tot.epipe_recvs > 0);
}

/* ---- Pipeline ---------------------------------------------------------- */

/*
 * source -> stage 1 -> ... -> stage S -> sink, one channel between each
 * pair, random capacities; one stage is a plain thread. Each channel has
 * a single sender, so the sink sees 0, 1, 2, ... exactly. Stages mix
 * blocking, timed and try_ calls; close propagates down the chain.
 */
enum { STAGES = 5 };

struct pipe_stage {
    weft_chan *in, *out; /* in NULL: the source; out NULL: the sink */
    long n;
    uint64_t seed;
    long got; /* sink: items received */
};

static int pipe_send(weft_chan *ch, const struct item *it, uint64_t *rng) {
    for (;;) {
        int rc;
        switch (wt_rand_below(rng, 3)) {
        case 0:
            return weft_chan_send(ch, it);
        case 1:
            rc = weft_chan_send_for(ch, it, wt_rand_below(rng, 200) * WEFT_USEC);
            break;
        default:
            rc = weft_chan_try_send(ch, it);
        }
        if (rc != -ETIMEDOUT && rc != -EAGAIN)
            return rc;
        weft_yield();
    }
}

static int pipe_recv(weft_chan *ch, struct item *it, uint64_t *rng) {
    for (;;) {
        int rc;
        switch (wt_rand_below(rng, 3)) {
        case 0:
            return weft_chan_recv(ch, it);
        case 1:
            rc = weft_chan_recv_for(ch, it, wt_rand_below(rng, 200) * WEFT_USEC);
            break;
        default:
            rc = weft_chan_try_recv(ch, it);
        }
        if (rc != -ETIMEDOUT && rc != -EAGAIN)
            return rc;
        weft_yield();
    }
}

static void *pipe_body(void *arg) {
    struct pipe_stage *s = arg;
    uint64_t rng = s->seed;
    if (!s->in) {
        for (long i = 0; i < s->n; i++) {
            struct item it = make_item((uint32_t)i);
            WT_CHECK_EQ(pipe_send(s->out, &it, &rng), 0);
        }
        WT_CHECK_EQ(weft_chan_close(s->out), 0);
        return NULL;
    }
    for (;;) {
        struct item it;
        int rc = pipe_recv(s->in, &it, &rng);
        if (rc == -EPIPE)
            break;
        WT_CHECK_EQ(rc, 0);
        if (rc != 0)
            break;
        WT_CHECK(item_ok(&it));
        if (!s->out) {
            WT_CHECK_EQ(it.v, s->got);
            s->got++;
        } else {
            WT_CHECK_EQ(pipe_send(s->out, &it, &rng), 0);
        }
    }
    if (s->out)
        WT_CHECK_EQ(weft_chan_close(s->out), 0);
    return NULL;
}

static void test_pipeline(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    uint64_t rng = wt_mix(P.seed, 2);
    static const size_t caps[] = {0, 1, 4, 64};
    long n = P.rounds * P.items / 4 + 1;
    weft_chan *ch[STAGES + 1];
    for (int i = 0; i <= STAGES; i++)
        assert_int_equal(weft_chan_create(&ch[i], sizeof(struct item),
                                          caps[wt_rand_below(&rng, 4)]),
                         0);
    /* stage 0: source; 1..STAGES: relays; STAGES+1: sink. */
    struct pipe_stage st[STAGES + 2];
    weft_task *t[STAGES + 2] = {0};
    int thread_stage = 1 + (int)wt_rand_below(&rng, STAGES + 1);
    pthread_t th;
    for (int i = 0; i < STAGES + 2; i++) {
        st[i] = (struct pipe_stage){
            .in = i == 0 ? NULL : ch[i - 1],
            .out = i == STAGES + 1 ? NULL : ch[i],
            .n = n,
            .seed = wt_mix(P.seed ^ 0x70697065, (uint64_t)i),
        };
        if (i == thread_stage)
            assert_int_equal(pthread_create(&th, NULL, pipe_body, &st[i]), 0);
        else
            assert_int_equal(weft_spawn(rt, pipe_body, &st[i], &t[i]), 0);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < STAGES + 2; i++)
        if (t[i])
            assert_int_equal(weft_join(t[i], NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    for (int i = 0; i <= STAGES; i++)
        assert_int_equal(weft_chan_destroy(ch[i]), 0);
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(st[STAGES + 1].got, n);
    fprintf(stderr, "pipeline: %ld items through %d stages\n", n, STAGES);
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.rounds = wt_arg(argc, argv, 2, 200);
    P.items = wt_arg(argc, argv, 3, 200);
    if (P.workers > WEFT_MAX_WORKERS) {
        fprintf(stderr, "WORKERS must be at most %d\n", WEFT_MAX_WORKERS);
        return 2;
    }
    P.seed = wt_seed();
    fprintf(stderr, "stress_chan: workers=%u rounds=%ld items=%ld\n",
            P.workers, P.rounds, P.items);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_races),
        cmocka_unit_test(test_pipeline),
    };
    return cmocka_run_group_tests_name("stress.chan", tests, NULL, NULL);
}
