/*
 * bench/peers/weft_peer.c - weft running the peer workloads, as a user
 * program would: public API only, linked against libweft.a.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>

#include "peer.h"
#include "weft.h"

static weft_runtime *rt;

static void ok(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "weft: %s: %s\n", what, weft_strerror(rc));
        exit(1);
    }
}

/* ---- fib/30 -------------------------------------------------------------- */

static uint64_t fib(uint64_t n);

static void *fib_task(void *arg) {
    return (void *)(uintptr_t)fib((uint64_t)(uintptr_t)arg);
}

static uint64_t fib(uint64_t n) {
    if (n < 2)
        return n;
    weft_task *t;
    void *x;
    ok(weft_spawn(NULL, fib_task, (void *)(uintptr_t)(n - 1), &t), "spawn");
    uint64_t y = fib(n - 2);
    ok(weft_join(t, &x), "join");
    return (uintptr_t)x + y;
}

static uint64_t run_fib(void) {
    void *r;
    ok(weft_run(rt, fib_task, (void *)(uintptr_t)PEER_FIB_N, &r), "run");
    return (uintptr_t)r;
}

/* ---- skynet/1M: a node is (first leaf, size), packed as num * 8 + level -- */

static void *skynet_node(void *arg) {
    uint64_t num = (uintptr_t)arg / 8;
    unsigned level = (unsigned)((uintptr_t)arg % 8);
    if (level == 0)
        return (void *)(uintptr_t)num;
    uint64_t child = 1;
    for (unsigned i = 1; i < level; i++)
        child *= PEER_SKYNET_DIV;
    weft_task *t[PEER_SKYNET_DIV];
    for (unsigned i = 0; i < PEER_SKYNET_DIV; i++) {
        void *a = (void *)(uintptr_t)((num + i * child) * 8 + level - 1);
        ok(weft_spawn(NULL, skynet_node, a, &t[i]), "spawn");
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < PEER_SKYNET_DIV; i++) {
        void *r;
        ok(weft_join(t[i], &r), "join");
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

static uint64_t run_skynet(void) {
    unsigned levels = 0;
    for (uint64_t s = PEER_SKYNET_SIZE; s > 1; s /= PEER_SKYNET_DIV)
        levels++;
    void *r;
    ok(weft_run(rt, skynet_node, (void *)(uintptr_t)levels, &r), "run");
    return (uintptr_t)r;
}

/* ---- spawn_join/100k ----------------------------------------------------- */

static void *one(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)1;
}

static void *spawn_join_loop(void *arg) {
    (void)arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_SPAWN_JOIN_N; i++) {
        weft_task *t;
        void *r;
        ok(weft_spawn(NULL, one, NULL, &t), "spawn");
        ok(weft_join(t, &r), "join");
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

static uint64_t run_spawn_join(void) {
    void *r;
    ok(weft_run(rt, spawn_join_loop, NULL, &r), "run");
    return (uintptr_t)r;
}

/* ---- spawn_all/10k: spawn N, then weft_gather (asyncio.gather) ---------- */

struct spawn_all {
    weft_task **t;
    void **res;
};

static void *spawn_all_rounds(void *arg) {
    struct spawn_all *sa = arg;
    uint64_t sum = 0;
    for (uint64_t r = 0; r < PEER_SPAWN_ALL_ROUNDS; r++) {
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++)
            ok(weft_spawn(NULL, one, NULL, &sa->t[i]), "spawn");
        ok(weft_gather(sa->t, PEER_SPAWN_ALL_N, sa->res), "gather");
        for (uint64_t i = 0; i < PEER_SPAWN_ALL_N; i++)
            sum += (uintptr_t)sa->res[i];
    }
    return (void *)(uintptr_t)sum;
}

static uint64_t run_spawn_all(void) {
    struct spawn_all sa = {malloc(PEER_SPAWN_ALL_N * sizeof(*sa.t)),
                           malloc(PEER_SPAWN_ALL_N * sizeof(*sa.res))};
    if (sa.t == NULL || sa.res == NULL)
        ok(-ENOMEM, "malloc");
    void *r;
    ok(weft_run(rt, spawn_all_rounds, &sa, &r), "run");
    free(sa.t);
    free(sa.res);
    return (uintptr_t)r;
}

/* ---- yield_pingpong: as yield/roundtrip_two_fibers in bench_yield.c ------ */

/* rt has 1 worker for this workload (main). */
static void *yielder(void *arg) {
    (void)arg;
    uint64_t n = 0;
    for (; n < PEER_YIELD_N; n++)
        weft_yield();
    return (void *)(uintptr_t)n;
}

/* Starts both, then waits in join: the worker alternates between them. */
static void *yield_pair(void *arg) {
    (void)arg;
    weft_task *t[2];
    ok(weft_spawn(NULL, yielder, NULL, &t[0]), "spawn");
    ok(weft_spawn(NULL, yielder, NULL, &t[1]), "spawn");
    void *r0, *r1;
    ok(weft_join(t[0], &r0), "join");
    ok(weft_join(t[1], &r1), "join");
    return (void *)((uintptr_t)r0 + (uintptr_t)r1);
}

static uint64_t run_yield(void) {
    void *r;
    ok(weft_run(rt, yield_pair, NULL, &r), "run");
    return (uintptr_t)r;
}

/* ---- sleepers/N ---------------------------------------------------------- */

/* A sleeper needs little stack: 16 KiB, so that a million fit. */
static const weft_spawn_opts sleeper_opts = {.stack_size = 16 * 1024};
#define GATHER_CHUNK 1024

/* Sleeps from its own start; 1 if it woke as promised. */
static void *sleeper(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)(weft_sleep(PEER_SLEEP_MS * WEFT_MSEC) == 0);
}

struct sleepers {
    weft_task **tasks;
    uint64_t n;
};

/* Spawns every sleeper from this fiber, then gathers them in chunks (a
 * gather registers on each task and is woken once, when all are done). */
static void *spawn_sleepers(void *arg) {
    struct sleepers *s = arg;
    for (uint64_t i = 0; i < s->n; i++)
        ok(weft_spawn_ex(NULL, sleeper, NULL, &sleeper_opts, &s->tasks[i]), "spawn");
    uint64_t woke = 0;
    void *r[GATHER_CHUNK];
    for (uint64_t i = 0; i < s->n; i += GATHER_CHUNK) {
        size_t k = s->n - i < GATHER_CHUNK ? (size_t)(s->n - i) : GATHER_CHUNK;
        ok(weft_gather(&s->tasks[i], k, r), "gather");
        for (size_t j = 0; j < k; j++)
            woke += (uintptr_t)r[j];
    }
    return (void *)(uintptr_t)woke;
}

static uint64_t run_sleepers(uint64_t n) {
    struct sleepers s = {malloc(n * sizeof(weft_task *)), n};
    if (s.tasks == NULL)
        ok(-ENOMEM, "malloc");
    void *r;
    ok(weft_run(rt, spawn_sleepers, &s, &r), "run");
    free(s.tasks);
    return (uintptr_t)r;
}

static uint64_t run_sleepers_10k(void) { return run_sleepers(PEER_SLEEPERS_10K); }
static uint64_t run_sleepers_100k(void) { return run_sleepers(PEER_SLEEPERS_100K); }
static uint64_t run_sleepers_1m(void) { return run_sleepers(PEER_SLEEPERS_1M); }

/* ---- chan_pingpong --------------------------------------------------------- */

struct pingpong {
    weft_chan *ping, *pong;
};

static void *ponger(void *arg) {
    struct pingpong *p = arg;
    for (uint64_t i = 0; i < PEER_PINGPONG_N; i++) {
        uint64_t v;
        ok(weft_chan_recv(p->ping, &v), "recv");
        v++;
        ok(weft_chan_send(p->pong, &v), "send");
    }
    return NULL;
}

static void *pinger(void *arg) {
    struct pingpong *p = arg;
    weft_task *t;
    ok(weft_spawn(NULL, ponger, p, &t), "spawn");
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_PINGPONG_N; i++) {
        uint64_t v;
        ok(weft_chan_send(p->ping, &i), "send");
        ok(weft_chan_recv(p->pong, &v), "recv");
        sum += v;
    }
    ok(weft_join(t, NULL), "join");
    return (void *)(uintptr_t)sum;
}

static uint64_t run_pingpong(void) {
    struct pingpong p;
    ok(weft_chan_create(&p.ping, sizeof(uint64_t), 0), "chan_create");
    ok(weft_chan_create(&p.pong, sizeof(uint64_t), 0), "chan_create");
    void *r;
    ok(weft_run(rt, pinger, &p, &r), "run");
    ok(weft_chan_destroy(p.ping), "chan_destroy");
    ok(weft_chan_destroy(p.pong), "chan_destroy");
    return (uintptr_t)r;
}

/* ---- chan_buffered_4x4 ----------------------------------------------------- */

struct party {
    weft_chan *ch;
    uint64_t index;
};

static void *producer(void *arg) {
    const struct party *me = arg;
    for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_PRODUCERS; i++) {
        uint64_t v = i * PEER_CHAN_PRODUCERS + me->index + 1;
        ok(weft_chan_send(me->ch, &v), "send");
    }
    return NULL;
}

static void *consumer(void *arg) {
    const struct party *me = arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_CONSUMERS; i++) {
        uint64_t v;
        ok(weft_chan_recv(me->ch, &v), "recv");
        sum += v;
    }
    return (void *)(uintptr_t)sum;
}

/* Spawns the consumers, then the producers; gathers all. */
static void *buffered(void *arg) {
    weft_chan *ch = arg;
    struct party cons[PEER_CHAN_CONSUMERS], prod[PEER_CHAN_PRODUCERS];
    weft_task *t[PEER_CHAN_CONSUMERS + PEER_CHAN_PRODUCERS];
    for (unsigned i = 0; i < PEER_CHAN_CONSUMERS; i++) {
        cons[i] = (struct party){ch, i};
        ok(weft_spawn(NULL, consumer, &cons[i], &t[i]), "spawn");
    }
    for (unsigned i = 0; i < PEER_CHAN_PRODUCERS; i++) {
        prod[i] = (struct party){ch, i};
        ok(weft_spawn(NULL, producer, &prod[i], &t[PEER_CHAN_CONSUMERS + i]), "spawn");
    }
    void *r[PEER_CHAN_CONSUMERS + PEER_CHAN_PRODUCERS];
    ok(weft_gather(t, PEER_CHAN_CONSUMERS + PEER_CHAN_PRODUCERS, r), "gather");
    uint64_t sum = 0;
    for (unsigned i = 0; i < PEER_CHAN_CONSUMERS; i++)
        sum += (uintptr_t)r[i];
    return (void *)(uintptr_t)sum;
}

static uint64_t run_buffered(void) {
    weft_chan *ch;
    ok(weft_chan_create(&ch, sizeof(uint64_t), PEER_CHAN_CAP), "chan_create");
    void *r;
    ok(weft_run(rt, buffered, ch, &r), "run");
    ok(weft_chan_destroy(ch), "chan_destroy");
    return (uintptr_t)r;
}

/* ---- mutex_contended ------------------------------------------------------- */

struct counter {
    weft_mutex m;
    uint64_t n; /* m */
};

static void *contender(void *arg) {
    struct counter *c = arg;
    for (uint64_t i = 0; i < PEER_MUTEX_OPS / PEER_MUTEX_TASKS; i++) {
        ok(weft_mutex_lock(&c->m), "mutex_lock");
        c->n++;
        ok(weft_mutex_unlock(&c->m), "mutex_unlock");
    }
    return NULL;
}

static void *contenders(void *arg) {
    weft_task *t[PEER_MUTEX_TASKS];
    for (unsigned i = 0; i < PEER_MUTEX_TASKS; i++)
        ok(weft_spawn(NULL, contender, arg, &t[i]), "spawn");
    ok(weft_gather(t, PEER_MUTEX_TASKS, NULL), "gather");
    return NULL;
}

static uint64_t run_mutex(void) {
    struct counter c = {.n = 0};
    ok(weft_mutex_init(&c.m), "mutex_init");
    ok(weft_run(rt, contenders, &c, NULL), "run");
    ok(weft_mutex_destroy(&c.m), "mutex_destroy");
    return c.n;
}

/* ---- pfor_balanced, pfor_imbalanced --------------------------------------- */

/* From the main thread, as an OpenMP or TBB program calls its loop. */
static uint64_t run_pfor(weft_reduce_fn body) {
    uint64_t zero = 0, sum = 0;
    ok(weft_parallel_reduce(rt, 0, PEER_PFOR_N, 0, &zero, sizeof zero, body, peer_add_u64,
                            NULL, &sum),
       "parallel_reduce");
    return sum;
}

static uint64_t run_pfor_balanced(void) { return run_pfor(peer_pfor_balanced_body); }
static uint64_t run_pfor_imbalanced(void) { return run_pfor(peer_pfor_imbalanced_body); }

int main(int argc, char **argv) {
    static const struct peer_workload ws[] = {
        {"fib/30", run_fib, PEER_FIB_WANT},
        {"skynet/1M", run_skynet, PEER_SKYNET_WANT},
        {"spawn_join/100k", run_spawn_join, PEER_SPAWN_JOIN_N},
        {"sleepers/10k", run_sleepers_10k, PEER_SLEEPERS_10K},
        {"sleepers/100k", run_sleepers_100k, PEER_SLEEPERS_100K},
        {"sleepers/1M", run_sleepers_1m, PEER_SLEEPERS_1M},
        {"chan_pingpong", run_pingpong, PEER_PINGPONG_WANT},
        {"chan_buffered_4x4", run_buffered, PEER_CHAN_WANT},
        {"mutex_contended", run_mutex, PEER_MUTEX_OPS},
        {"pfor_balanced", run_pfor_balanced, PEER_PFOR_BAL_WANT},
        {"pfor_imbalanced", run_pfor_imbalanced, PEER_PFOR_IMB_WANT},
        {PEER_YIELD_WORKLOAD, run_yield, PEER_YIELD_WANT},
        {"spawn_all/10k", run_spawn_all, PEER_SPAWN_ALL_WANT},
    };
    weft_config cfg = {.workers = peer_one_worker(argc, argv) ? 1 : peer_threads()};
    ok(weft_runtime_create(&rt, &cfg), "runtime_create");
    int status = peer_main(argc, argv, "weft", ws, sizeof(ws) / sizeof(ws[0]));
    ok(weft_runtime_destroy(rt), "runtime_destroy");
    return status;
}
