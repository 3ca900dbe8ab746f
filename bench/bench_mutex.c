/*
 * bench/bench_mutex.c - a contended weft_mutex (lib/sync.c), and a
 * pthread_mutex_t under the same contention for the ratio.
 *
 *   contended/fibers:M          M fibers on the runtime's workers; each
 *                               locks, increments a shared counter and
 *                               unlocks, over and over.
 *   pthread_contended/threads:M the same loop on M plain pthreads and a
 *                               default pthread_mutex_t: what a C program
 *                               without fibers would do with M activities.
 *
 * One iteration is one lock/increment/unlock. A measurement's iterations
 * run as rounds of at most ROUND_OPS, split evenly between M fresh
 * contenders, and the counter must end each round at the round's total.
 * With M = 64 a round is the peer workload mutex_contended (64 tasks,
 * 15,625 each; bench/peers/peer.h), whatever batch size Google Benchmark
 * picks. M = 64 is the contended case ("many fibers"); M = 2, one
 * contender per core of the development machine, is the least contended
 * that still contends. The time includes starting the M fibers or
 * threads of each round (microseconds, against milliseconds of locking).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"

#define MAX_CONTENDERS 64
/* PEER_MUTEX_OPS of the peers. */
#define ROUND_OPS 1000000

/* The next round's size: at most ROUND_OPS, and what is left of `total`. */
static uint64_t next_round(uint64_t total, uint64_t done) {
    return total - done < ROUND_OPS ? total - done : ROUND_OPS;
}

/* Part i of `total` split into `parts` nearly equal shares. */
static uint64_t share(uint64_t total, unsigned parts, unsigned i) {
    return total / parts + (i < total % parts);
}

/* For pthread calls, which return a positive errno value. */
#define CHECK_PTHREAD(call)                                                    \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != 0) {                                                        \
            fprintf(stderr, "weft_bench: %s: %s\n", #call, strerror(rc_));     \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ---- contended/fibers:M ---------------------------------------------------- */

struct fib_mutex {
    weft_mutex m;
    uint64_t counter; /* m */
    uint64_t ops;     /* this round's iterations */
    unsigned contenders;
};

struct contender {
    struct fib_mutex *s;
    uint64_t n;
};

static void *fiber_contender(void *arg) {
    const struct contender *me = arg;
    weft_mutex *m = &me->s->m;
    for (uint64_t i = 0; i < me->n; i++) {
        WB_CHECK_OK(weft_mutex_lock(m));
        me->s->counter++;
        WB_CHECK_OK(weft_mutex_unlock(m));
    }
    return NULL;
}

static void *fiber_contenders(void *arg) {
    struct fib_mutex *s = arg;
    struct contender who[MAX_CONTENDERS];
    weft_task *t[MAX_CONTENDERS];
    for (unsigned i = 0; i < s->contenders; i++) {
        who[i] = (struct contender){s, share(s->ops, s->contenders, i)};
        WB_CHECK_OK(weft_spawn(NULL, fiber_contender, &who[i], &t[i]));
    }
    WB_CHECK_OK(weft_gather(t, s->contenders, NULL));
    return NULL;
}

static int fibers_setup(struct wb_ctx *c) {
    if (c->arg < 1 || c->arg > MAX_CONTENDERS)
        return -EINVAL;
    struct fib_mutex *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    WB_CHECK_OK(weft_mutex_init(&s->m));
    s->contenders = (unsigned)c->arg;
    c->data = s;
    return 0;
}

static void fibers_teardown(struct wb_ctx *c) {
    struct fib_mutex *s = c->data;
    WB_CHECK_OK(weft_mutex_destroy(&s->m));
    free(s);
}

static uint64_t fibers(struct wb_ctx *c, uint64_t iterations) {
    struct fib_mutex *s = c->data;
    for (uint64_t done = 0; done < iterations; done += s->ops) {
        s->counter = 0;
        s->ops = next_round(iterations, done);
        WB_CHECK_OK(weft_run(c->rt, fiber_contenders, s, NULL));
        WB_CHECK_EQ("mutex/contended: counter", s->counter, s->ops);
    }
    return iterations;
}

/* ---- pthread_contended/threads:M ------------------------------------------- */

struct thr_mutex {
    pthread_mutex_t m;
    uint64_t counter; /* m */
};

struct thr_contender {
    struct thr_mutex *s;
    uint64_t n;
};

static void *thread_contender(void *arg) {
    const struct thr_contender *me = arg;
    pthread_mutex_t *m = &me->s->m;
    for (uint64_t i = 0; i < me->n; i++) {
        CHECK_PTHREAD(pthread_mutex_lock(m));
        me->s->counter++;
        CHECK_PTHREAD(pthread_mutex_unlock(m));
    }
    return NULL;
}

static int threads_setup(struct wb_ctx *c) {
    if (c->arg < 1 || c->arg > MAX_CONTENDERS)
        return -EINVAL;
    struct thr_mutex *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    CHECK_PTHREAD(pthread_mutex_init(&s->m, NULL));
    c->data = s;
    return 0;
}

static void threads_teardown(struct wb_ctx *c) {
    struct thr_mutex *s = c->data;
    CHECK_PTHREAD(pthread_mutex_destroy(&s->m));
    free(s);
}

/* One round: m threads share `ops` iterations. */
static void threads_round(struct thr_mutex *s, unsigned m, uint64_t ops) {
    struct thr_contender who[MAX_CONTENDERS];
    pthread_t t[MAX_CONTENDERS];
    s->counter = 0;
    for (unsigned i = 0; i < m; i++) {
        who[i] = (struct thr_contender){s, share(ops, m, i)};
        CHECK_PTHREAD(pthread_create(&t[i], NULL, thread_contender, &who[i]));
    }
    for (unsigned i = 0; i < m; i++)
        CHECK_PTHREAD(pthread_join(t[i], NULL));
    WB_CHECK_EQ("mutex/pthread_contended: counter", s->counter, ops);
}

static uint64_t threads(struct wb_ctx *c, uint64_t iterations) {
    uint64_t ops;
    for (uint64_t done = 0; done < iterations; done += ops) {
        ops = next_round(iterations, done);
        threads_round(c->data, (unsigned)c->arg, ops);
    }
    return iterations;
}

static const struct wb_case cases[] = {
    {
        .name = "mutex/contended",
        .arg_name = "fibers",
        .args = {2, 64},
        .nargs = 2,
        .real_time = 1,
        .setup = fibers_setup,
        .run = fibers,
        .teardown = fibers_teardown,
    },
    {
        .name = "mutex/pthread_contended",
        .arg_name = "threads",
        .args = {2, 64},
        .nargs = 2,
        .workers = WB_NO_RUNTIME,
        .real_time = 1,
        .setup = threads_setup,
        .run = threads,
        .teardown = threads_teardown,
    },
};

WB_SUITE(mutex, cases);
