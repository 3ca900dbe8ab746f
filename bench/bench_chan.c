/*
 * bench/bench_chan.c - channels (lib/chan.c) between fibers.
 *
 *   pingpong/workers:N  two fibers and two rendezvous channels: the pinger
 *                       sends i on `ping`, the ponger answers i + 1 on
 *                       `pong`. One iteration is one round trip: two
 *                       rendezvous hand-offs, two wake-ups, two switches.
 *                       With 1 worker both fibers share it; with 2 the
 *                       woken fiber may run on either worker.
 *   buffered_4x4        one channel of capacity CHAN_CAP, 4 producer and
 *                       4 consumer fibers. One iteration is one value
 *                       sent and received; items are values. Producers
 *                       block when the ring is full, consumers when it is
 *                       empty, so both queues and the ring hand-off run.
 *
 * The iterations of a measurement run as rounds of at most PINGPONG_ROUND
 * round trips or BUFFERED_ROUND values, each round with fresh fibers: the
 * same rounds as the peer workloads chan_pingpong and chan_buffered_4x4
 * (bench/peers/peer.h), whatever batch size Google Benchmark picks. Every
 * round checks its values through a sum: the answers of the ping-pong,
 * the values 1..n the consumers of buffered_4x4 received.
 */
#include <errno.h>

#include "harness.h"

/* The buffered channel: 8-byte values, room for 64 (PEER_CHAN_CAP of the
 * peers, as Go's make(chan uint64, 64)). */
#define CHAN_CAP 64
#define PRODUCERS 4
#define CONSUMERS 4
/* Round sizes: PEER_PINGPONG_N and PEER_CHAN_ITEMS of the peers. */
#define PINGPONG_ROUND 20000
#define BUFFERED_ROUND 1000000

/* The next round's size: at most `round`, and what is left of `total`. */
static uint64_t next_round(uint64_t total, uint64_t done, uint64_t round) {
    return total - done < round ? total - done : round;
}

/* Part i of `total` split into `parts` nearly equal shares. */
static uint64_t share(uint64_t total, unsigned parts, unsigned i) {
    return total / parts + (i < total % parts);
}

/* 1 + 2 + ... + n. */
static uint64_t triangle(uint64_t n) {
    return n % 2 ? (n + 1) / 2 * n : n / 2 * (n + 1);
}

/* ---- pingpong/workers:N --------------------------------------------------- */

struct pingpong {
    weft_chan *ping, *pong;
    uint64_t rounds; /* round trips in this round */
};

static int pingpong_setup(struct wb_ctx *c) {
    struct pingpong *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    int rc = weft_chan_create(&p->ping, sizeof(uint64_t), 0);
    if (rc == 0) {
        rc = weft_chan_create(&p->pong, sizeof(uint64_t), 0);
        if (rc != 0)
            WB_CHECK_OK(weft_chan_destroy(p->ping));
    }
    if (rc != 0) {
        free(p);
        return rc;
    }
    c->data = p;
    return 0;
}

static void pingpong_teardown(struct wb_ctx *c) {
    struct pingpong *p = c->data;
    WB_CHECK_OK(weft_chan_destroy(p->ping));
    WB_CHECK_OK(weft_chan_destroy(p->pong));
    free(p);
}

static void *ponger(void *arg) {
    struct pingpong *p = arg;
    for (uint64_t i = 0; i < p->rounds; i++) {
        uint64_t v;
        WB_CHECK_OK(weft_chan_recv(p->ping, &v));
        v++;
        WB_CHECK_OK(weft_chan_send(p->pong, &v));
    }
    return NULL;
}

/* The pinger: sends 0..rounds-1 and sums the answers. */
static void *pinger(void *arg) {
    struct pingpong *p = arg;
    weft_task *t;
    WB_CHECK_OK(weft_spawn(NULL, ponger, p, &t));
    uint64_t sum = 0;
    for (uint64_t i = 0; i < p->rounds; i++) {
        uint64_t v;
        WB_CHECK_OK(weft_chan_send(p->ping, &i));
        WB_CHECK_OK(weft_chan_recv(p->pong, &v));
        sum += v;
    }
    WB_CHECK_OK(weft_join(t, NULL));
    return (void *)(uintptr_t)sum;
}

static uint64_t pingpong(struct wb_ctx *c, uint64_t iterations) {
    struct pingpong *p = c->data;
    for (uint64_t done = 0; done < iterations; done += p->rounds) {
        void *sum;
        p->rounds = next_round(iterations, done, PINGPONG_ROUND);
        WB_CHECK_OK(weft_run(c->rt, pinger, p, &sum));
        WB_CHECK_EQ("chan/pingpong: sum of answers", (uintptr_t)sum, triangle(p->rounds));
    }
    return iterations;
}

/* ---- buffered_4x4 ---------------------------------------------------------- */

struct buffered {
    weft_chan *ch;
    uint64_t items; /* values in this round */
};

/* A producer or consumer: its index and the shared state. */
struct party {
    struct buffered *b;
    unsigned index;
};

static int buffered_setup(struct wb_ctx *c) {
    struct buffered *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    int rc = weft_chan_create(&b->ch, sizeof(uint64_t), CHAN_CAP);
    if (rc != 0) {
        free(b);
        return rc;
    }
    c->data = b;
    return 0;
}

static void buffered_teardown(struct wb_ctx *c) {
    struct buffered *b = c->data;
    WB_CHECK_OK(weft_chan_destroy(b->ch));
    free(b);
}

/* Producer p sends p + 1, p + 1 + PRODUCERS, ...: all producers together
 * send each of 1..items exactly once. */
static void *producer(void *arg) {
    const struct party *me = arg;
    uint64_t n = share(me->b->items, PRODUCERS, me->index);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = i * PRODUCERS + me->index + 1;
        WB_CHECK_OK(weft_chan_send(me->b->ch, &v));
    }
    return NULL;
}

/* Receives its share of the values; returns their sum. */
static void *consumer(void *arg) {
    const struct party *me = arg;
    uint64_t n = share(me->b->items, CONSUMERS, me->index);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        WB_CHECK_OK(weft_chan_recv(me->b->ch, &v));
        sum += v;
    }
    return (void *)(uintptr_t)sum;
}

/* Spawns the consumers, then the producers (as the peers do), joins all;
 * returns the sum the consumers received. */
static void *buffered_fiber(void *arg) {
    struct buffered *b = arg;
    struct party cons[CONSUMERS], prod[PRODUCERS];
    weft_task *tc[CONSUMERS], *tp[PRODUCERS];
    for (unsigned i = 0; i < CONSUMERS; i++) {
        cons[i] = (struct party){b, i};
        WB_CHECK_OK(weft_spawn(NULL, consumer, &cons[i], &tc[i]));
    }
    for (unsigned i = 0; i < PRODUCERS; i++) {
        prod[i] = (struct party){b, i};
        WB_CHECK_OK(weft_spawn(NULL, producer, &prod[i], &tp[i]));
    }
    void *r[CONSUMERS];
    WB_CHECK_OK(weft_gather(tp, PRODUCERS, NULL));
    WB_CHECK_OK(weft_gather(tc, CONSUMERS, r));
    uint64_t sum = 0;
    for (unsigned i = 0; i < CONSUMERS; i++)
        sum += (uintptr_t)r[i];
    return (void *)(uintptr_t)sum;
}

static uint64_t buffered(struct wb_ctx *c, uint64_t iterations) {
    struct buffered *b = c->data;
    for (uint64_t done = 0; done < iterations; done += b->items) {
        void *sum;
        b->items = next_round(iterations, done, BUFFERED_ROUND);
        WB_CHECK_OK(weft_run(c->rt, buffered_fiber, b, &sum));
        WB_CHECK_EQ("chan/buffered_4x4: sum received", (uintptr_t)sum, triangle(b->items));
    }
    return iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "chan/pingpong",
        .arg_name = "workers",
        .args = {1, 2},
        .nargs = 2,
        .workers = WB_WORKERS_FROM_ARG,
        .real_time = 1,
        .setup = pingpong_setup,
        .run = pingpong,
        .teardown = pingpong_teardown,
    },
    {
        .name = "chan/buffered_4x4",
        .real_time = 1,
        .setup = buffered_setup,
        .run = buffered,
        .teardown = buffered_teardown,
    },
};

WB_SUITE(chan, cases);
