/*
 * bench/peers/pthread_peer.c - the channel, mutex and yield workloads on
 * plain POSIX threads, as a C program without fibers would write them: one
 * thread per task, and for a channel the classic bounded queue, a ring
 * under a pthread_mutex_t with two condition variables (not empty, not
 * full).
 *
 *   chan_pingpong      main thread and one thread, two queues of
 *                      capacity 1 (a rendezvous needs no more here: each
 *                      side waits for the answer before it sends again)
 *   chan_buffered_4x4  4 producer and 4 consumer threads, one queue of
 *                      capacity PEER_CHAN_CAP
 *   mutex_contended    PEER_MUTEX_TASKS threads and a default
 *                      pthread_mutex_t: as many threads as the other
 *                      peers have tasks, whatever WEFT_BENCH_WORKERS says
 *   yield_pingpong     two threads calling sched_yield(), not pinned: the
 *                      kernel may run them on two CPUs at once, and then
 *                      a sched_yield() finds no one to switch to
 *
 * No spawn_all/10k: 10,000 threads at once is not what a C program would
 * write.
 *
 * Threads are created and joined inside each timed run, as the other
 * peers start their tasks inside theirs.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "peer.h"

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "pthread: %s: %s\n", what, strerror(rc));
        exit(1);
    }
}

/* ---- The bounded queue -------------------------------------------------- */

struct queue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    uint64_t *slots; /* cap values; head, len and slots under m */
    size_t cap, head, len;
};

static void queue_init(struct queue *q, size_t cap) {
    check(pthread_mutex_init(&q->m, NULL), "mutex_init");
    check(pthread_cond_init(&q->not_empty, NULL), "cond_init");
    check(pthread_cond_init(&q->not_full, NULL), "cond_init");
    q->slots = (uint64_t *)malloc(cap * sizeof(*q->slots));
    if (q->slots == NULL)
        check(ENOMEM, "malloc");
    q->cap = cap;
    q->head = q->len = 0;
}

static void queue_destroy(struct queue *q) {
    check(pthread_cond_destroy(&q->not_full), "cond_destroy");
    check(pthread_cond_destroy(&q->not_empty), "cond_destroy");
    check(pthread_mutex_destroy(&q->m), "mutex_destroy");
    free(q->slots);
}

static void queue_push(struct queue *q, uint64_t v) {
    check(pthread_mutex_lock(&q->m), "mutex_lock");
    while (q->len == q->cap)
        check(pthread_cond_wait(&q->not_full, &q->m), "cond_wait");
    q->slots[(q->head + q->len++) % q->cap] = v;
    check(pthread_cond_signal(&q->not_empty), "cond_signal");
    check(pthread_mutex_unlock(&q->m), "mutex_unlock");
}

static uint64_t queue_pop(struct queue *q) {
    check(pthread_mutex_lock(&q->m), "mutex_lock");
    while (q->len == 0)
        check(pthread_cond_wait(&q->not_empty, &q->m), "cond_wait");
    uint64_t v = q->slots[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    check(pthread_cond_signal(&q->not_full), "cond_signal");
    check(pthread_mutex_unlock(&q->m), "mutex_unlock");
    return v;
}

/* ---- chan_pingpong ------------------------------------------------------ */

struct pingpong {
    struct queue ping, pong;
};

static void *ponger(void *arg) {
    struct pingpong *p = arg;
    for (uint64_t i = 0; i < PEER_PINGPONG_N; i++)
        queue_push(&p->pong, queue_pop(&p->ping) + 1);
    return NULL;
}

static uint64_t run_pingpong(void) {
    struct pingpong p;
    queue_init(&p.ping, 1);
    queue_init(&p.pong, 1);
    pthread_t t;
    check(pthread_create(&t, NULL, ponger, &p), "create");
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_PINGPONG_N; i++) {
        queue_push(&p.ping, i);
        sum += queue_pop(&p.pong);
    }
    check(pthread_join(t, NULL), "join");
    queue_destroy(&p.ping);
    queue_destroy(&p.pong);
    return sum;
}

/* ---- chan_buffered_4x4 -------------------------------------------------- */

struct party {
    struct queue *q;
    uint64_t index;
    uint64_t sum; /* a consumer's result */
};

static void *producer(void *arg) {
    struct party *me = arg;
    for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_PRODUCERS; i++)
        queue_push(me->q, i * PEER_CHAN_PRODUCERS + me->index + 1);
    return NULL;
}

static void *consumer(void *arg) {
    struct party *me = arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PEER_CHAN_ITEMS / PEER_CHAN_CONSUMERS; i++)
        sum += queue_pop(me->q);
    me->sum = sum;
    return NULL;
}

static uint64_t run_buffered(void) {
    enum { N = PEER_CHAN_CONSUMERS + PEER_CHAN_PRODUCERS };
    struct queue q;
    queue_init(&q, PEER_CHAN_CAP);
    struct party who[N];
    pthread_t t[N];
    for (unsigned i = 0; i < N; i++) {
        int cons = i < PEER_CHAN_CONSUMERS;
        who[i] = (struct party){&q, cons ? i : i - PEER_CHAN_CONSUMERS, 0};
        check(pthread_create(&t[i], NULL, cons ? consumer : producer, &who[i]), "create");
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < N; i++) {
        check(pthread_join(t[i], NULL), "join");
        sum += who[i].sum;
    }
    queue_destroy(&q);
    return sum;
}

/* ---- mutex_contended ---------------------------------------------------- */

struct counter {
    pthread_mutex_t m;
    uint64_t n; /* m */
};

static void *contender(void *arg) {
    struct counter *c = arg;
    for (uint64_t i = 0; i < PEER_MUTEX_OPS / PEER_MUTEX_TASKS; i++) {
        check(pthread_mutex_lock(&c->m), "mutex_lock");
        c->n++;
        check(pthread_mutex_unlock(&c->m), "mutex_unlock");
    }
    return NULL;
}

static uint64_t run_mutex(void) {
    struct counter c = {.n = 0};
    check(pthread_mutex_init(&c.m, NULL), "mutex_init");
    pthread_t t[PEER_MUTEX_TASKS];
    for (unsigned i = 0; i < PEER_MUTEX_TASKS; i++)
        check(pthread_create(&t[i], NULL, contender, &c), "create");
    for (unsigned i = 0; i < PEER_MUTEX_TASKS; i++)
        check(pthread_join(t[i], NULL), "join");
    check(pthread_mutex_destroy(&c.m), "mutex_destroy");
    return c.n;
}

/* ---- yield_pingpong ----------------------------------------------------- */

static void *yielder(void *arg) {
    uint64_t *count = arg;
    uint64_t n = 0;
    for (; n < PEER_YIELD_N; n++)
        sched_yield();
    *count = n;
    return NULL;
}

static uint64_t run_yield(void) {
    uint64_t counts[2] = {0, 0};
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++)
        check(pthread_create(&t[i], NULL, yielder, &counts[i]), "create");
    for (unsigned i = 0; i < 2; i++)
        check(pthread_join(t[i], NULL), "join");
    return counts[0] + counts[1];
}

int main(int argc, char **argv) {
    static const struct peer_workload ws[] = {
        {"chan_pingpong", run_pingpong, PEER_PINGPONG_WANT},
        {"chan_buffered_4x4", run_buffered, PEER_CHAN_WANT},
        {"mutex_contended", run_mutex, PEER_MUTEX_OPS},
        {PEER_YIELD_WORKLOAD, run_yield, PEER_YIELD_WANT},
    };
    return peer_main(argc, argv, "pthread", ws, sizeof(ws) / sizeof(ws[0]));
}
