/*
 * tests/stress/stress_select.c - weft_chan_select under load: producers
 * offer each value to a random subset of channels in one select (the
 * same value in every case, so a select that completed two cases would
 * deliver it twice), consumers select over random subsets of the open
 * channels, both with random timeouts (0, short, none), and plain sends
 * and receives mixed in; fibers and plain threads; rendezvous and
 * buffered channels; then every channel is closed under the consumers.
 *
 * Checks: a value whose select returned 0 is received exactly once; a
 * value whose select timed out is never received; no value is torn; every
 * consumer sees every channel close (-EPIPE) and stops.
 *
 * Usage: stress_select WORKERS [ROUNDS] [ITEMS]
 *   WORKERS  worker threads of the runtime under test
 *   ROUNDS   rounds, each with fresh channels; default 20
 *   ITEMS    values per producer per round; default 500
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
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static struct {
    unsigned workers;
    long rounds;
    long items;
    uint64_t seed;
} P;

enum { CHANS = 5, PRODUCERS = 4, CONSUMERS = 4 };

/* A value with redundancy, so a torn copy is caught. */
struct item {
    uint32_t id;
    uint32_t inv; /* ~id */
};

struct round {
    weft_chan *ch[CHANS];
    uint64_t key;
    long items;
    atomic_uchar *received; /* per id: times received */
    unsigned char *sent;    /* per id: 1 if its send returned 0 (producer's) */
    atomic_int closed_seen; /* consumers that saw every channel close */
};

struct actor {
    struct round *r;
    int id;
};

/* Random timeout: 0 (poll), up to 300 us, or none. */
static uint64_t random_timeout(uint64_t *rng) {
    switch (wt_rand_below(rng, 4)) {
    case 0:
        return 0;
    case 1:
        return WEFT_FOREVER;
    default:
        return wt_rand_below(rng, 300) * WEFT_USEC;
    }
}

/* Picks a non-empty random subset of the channels still open for the
 * caller (open[i]); returns its size, the indices in pick. */
static size_t random_subset(uint64_t *rng, const bool *open, size_t *pick) {
    size_t n = 0;
    for (size_t i = 0; i < CHANS; i++) {
        if (open[i] && wt_rand_below(rng, 2))
            pick[n++] = i;
    }
    if (n == 0) {
        for (size_t i = 0; i < CHANS; i++) {
            if (open[i]) {
                pick[n++] = i;
                break;
            }
        }
    }
    return n;
}

/* ---- Producers --------------------------------------------------------- */

static int offer(struct round *r, uint64_t *rng, struct item *it) {
    static const bool all_open[CHANS] = {true, true, true, true, true};
    if (wt_rand_below(rng, 5) == 0) {
        weft_chan *ch = r->ch[wt_rand_below(rng, CHANS)];
        uint64_t t = random_timeout(rng);
        return t == WEFT_FOREVER ? weft_chan_send(ch, it) : weft_chan_send_for(ch, it, t);
    }
    size_t pick[CHANS];
    size_t n = random_subset(rng, all_open, pick);
    weft_chan_case cs[CHANS];
    for (size_t i = 0; i < n; i++)
        cs[i] = (weft_chan_case){.chan = r->ch[pick[i]], .op = WEFT_CHAN_SEND, .elem = it};
    size_t index = SIZE_MAX;
    int rc = weft_chan_select(cs, n, random_timeout(rng), &index);
    if (rc == 0)
        WT_CHECK(index < n);
    return rc;
}

static void *producer(void *arg) {
    struct actor *a = arg;
    struct round *r = a->r;
    uint64_t rng = wt_mix(r->key ^ 0x73656c70, (uint64_t)a->id);
    for (long s = 0; s < r->items; s++) {
        uint32_t id = (uint32_t)(a->id * r->items + s);
        struct item it = {id, ~id};
        int rc = offer(r, &rng, &it);
        if (rc == 0)
            r->sent[id] = 1;
        else
            WT_CHECK_EQ(rc, -ETIMEDOUT);
    }
    return NULL;
}

/* ---- Consumers ---------------------------------------------------------- */

static void record(struct round *r, const struct item *it) {
    WT_CHECK(it->inv == ~it->id);
    WT_CHECK(it->id < (uint32_t)(PRODUCERS * r->items));
    if (it->id < (uint32_t)(PRODUCERS * r->items))
        atomic_fetch_add(&r->received[it->id], 1);
}

static void *consumer(void *arg) {
    struct actor *a = arg;
    struct round *r = a->r;
    uint64_t rng = wt_mix(r->key ^ 0x73656c63, (uint64_t)a->id);
    bool open[CHANS];
    size_t left = CHANS;
    for (size_t i = 0; i < CHANS; i++)
        open[i] = true;
    while (left > 0) {
        /* A select without a timeout takes every open channel: one that
         * waited for ever on a subset could wait for a producer blocked
         * on another subset. */
        uint64_t timeout = random_timeout(&rng);
        size_t pick[CHANS], n = 0;
        if (timeout == WEFT_FOREVER) {
            for (size_t i = 0; i < CHANS; i++) {
                if (open[i])
                    pick[n++] = i;
            }
        } else {
            n = random_subset(&rng, open, pick);
        }
        struct item got[CHANS];
        weft_chan_case cs[CHANS];
        for (size_t i = 0; i < n; i++)
            cs[i] = (weft_chan_case){.chan = r->ch[pick[i]], .op = WEFT_CHAN_RECV,
                                     .elem = &got[i]};
        size_t index = SIZE_MAX;
        int rc = weft_chan_select(cs, n, timeout, &index);
        if (rc == 0) {
            record(r, &got[index]);
        } else if (rc == -EPIPE) {
            WT_CHECK(index < n);
            if (index < n && open[pick[index]]) {
                open[pick[index]] = false;
                left--;
            }
        } else {
            WT_CHECK_EQ(rc, -ETIMEDOUT);
        }
    }
    atomic_fetch_add(&r->closed_seen, 1);
    return NULL;
}

/* ---- One round ------------------------------------------------------------ */

struct starter {
    weft_task *task;
    pthread_t thread;
    bool is_thread;
};

static void start(weft_runtime *rt, struct starter *s, bool as_thread, weft_fn fn, void *arg) {
    s->is_thread = as_thread;
    if (as_thread)
        assert_int_equal(pthread_create(&s->thread, NULL, fn, arg), 0);
    else
        assert_int_equal(weft_spawn(rt, fn, arg, &s->task), 0);
}

static void finish(struct starter *s) {
    if (s->is_thread)
        assert_int_equal(pthread_join(s->thread, NULL), 0);
    else
        assert_int_equal(weft_join(s->task, NULL), 0);
}

static void check_round(struct round *r) {
    long delivered = 0;
    for (long id = 0; id < PRODUCERS * r->items; id++) {
        int got = atomic_load(&r->received[id]);
        if (got != r->sent[id]) {
            fprintf(stderr, "value %ld: sent %d, received %d times\n", id, r->sent[id], got);
            fail();
        }
        delivered += got;
    }
    assert_int_equal(atomic_load(&r->closed_seen), CONSUMERS);
    assert_true(delivered > 0);
}

static void run_round(weft_runtime *rt, uint64_t *rng) {
    static const size_t caps[] = {0, 0, 1, 4};
    struct round r = {.key = wt_rand(rng), .items = P.items};
    for (int i = 0; i < CHANS; i++)
        assert_int_equal(weft_chan_create(&r.ch[i], sizeof(struct item),
                                          caps[wt_rand_below(rng, 4)]), 0);
    size_t nids = (size_t)(PRODUCERS * r.items);
    r.received = calloc(nids, sizeof *r.received);
    r.sent = calloc(nids, 1);
    assert_non_null(r.received);
    assert_non_null(r.sent);
    struct actor prod[PRODUCERS], cons[CONSUMERS];
    struct starter ps[PRODUCERS], cs[CONSUMERS];
    int thread_prod = (int)wt_rand_below(rng, PRODUCERS + 1); /* == PRODUCERS: none */
    int thread_cons = (int)wt_rand_below(rng, CONSUMERS + 1);
    for (int i = 0; i < CONSUMERS; i++) {
        cons[i] = (struct actor){&r, i};
        start(rt, &cs[i], i == thread_cons, consumer, &cons[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (struct actor){&r, i};
        start(rt, &ps[i], i == thread_prod, producer, &prod[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        finish(&ps[i]);
    for (int i = 0; i < CHANS; i++)
        assert_int_equal(weft_chan_close(r.ch[i]), 0);
    for (int i = 0; i < CONSUMERS; i++)
        finish(&cs[i]);
    WT_ASSERT_NO_FAILURES();
    check_round(&r);
    for (int i = 0; i < CHANS; i++)
        assert_int_equal(weft_chan_destroy(r.ch[i]), 0);
    free(r.received);
    free(r.sent);
}

static void test_select_rounds(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    uint64_t rng = wt_mix(P.seed, 3);
    for (long i = 0; i < P.rounds; i++)
        run_round(rt, &rng);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.rounds = wt_arg(argc, argv, 2, 20);
    P.items = wt_arg(argc, argv, 3, 500);
    if (P.workers > WEFT_MAX_WORKERS) {
        fprintf(stderr, "WORKERS must be at most %d\n", WEFT_MAX_WORKERS);
        return 2;
    }
    P.seed = wt_seed();
    fprintf(stderr, "stress_select: workers=%u rounds=%ld items=%ld\n", P.workers,
            P.rounds, P.items);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_rounds),
    };
    return cmocka_run_group_tests_name("stress.select", tests, NULL, NULL);
}
