/*
 * tests/stress/stress_sync.c - mutex, condition, semaphore and wait group
 * under load from many fibers and a few plain threads at once, with
 * random yields and sleeps inside critical sections, short timeouts, and
 * cancels racing with wake-ups and hand-offs.
 *
 * Usage: stress_sync WORKERS [ITERATIONS] [FIBERS]
 *   WORKERS     worker threads of the runtime under test
 *   ITERATIONS  operations per fiber or thread; default 2000
 *   FIBERS      fibers per test (plus 2 plain threads); default 32
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

enum { THREADS = 2 };

static struct {
    unsigned workers;
    long iterations;
    long fibers;
    uint64_t seed;
} P;

static weft_runtime *new_runtime(void) {
    weft_runtime *rt = wt_runtime_new(P.workers);
    assert_non_null(rt);
    return rt;
}

/*
 * The participants of one test: P.fibers fibers and THREADS plain threads
 * running the same body. Fibers with an odd index may be cancelled by the
 * main thread while they run (when the test asks for it).
 */
struct crowd {
    weft_task **t;
    pthread_t th[THREADS];
};

static void crowd_start(struct crowd *c, weft_runtime *rt, weft_fn fn,
                        void *arg) {
    c->t = calloc((size_t)P.fibers, sizeof *c->t);
    assert_non_null(c->t);
    for (long i = 0; i < P.fibers; i++)
        assert_int_equal(weft_spawn(rt, fn, arg, &c->t[i]), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&c->th[i], NULL, fn, arg), 0);
}

/* Cancels the odd-indexed fibers at random moments over about 20 ms. */
static void crowd_cancel_some(struct crowd *c, uint64_t *rng) {
    for (long i = 1; i < P.fibers; i += 2) {
        wt_thread_sleep_ns(wt_rand_below(rng, 20000000u / (uint32_t)P.fibers));
        int rc = weft_cancel(c->t[i]);
        assert_true(rc == 0 || rc == -ESRCH);
    }
}

/* Joins everyone; a cancelled fiber that never started joins -ECANCELED. */
static void crowd_join(struct crowd *c) {
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(c->th[i], NULL), 0);
    for (long i = 0; i < P.fibers; i++) {
        int rc = weft_join(c->t[i], NULL);
        assert_true(rc == 0 || (rc == -ECANCELED && i % 2 == 1));
    }
    free(c->t);
}

static long crowd_size(void) {
    return P.fibers + THREADS;
}

static uint64_t stream(atomic_int *next_id, uint64_t salt) {
    return wt_mix(P.seed ^ salt, (uint64_t)atomic_fetch_add(next_id, 1));
}

/* Yields (fiber) or sched_yields (thread) a random 0..n-1 times. */
static void jitter(uint64_t *rng, uint32_t n) {
    for (uint32_t k = wt_rand_below(rng, n); k > 0; k--)
        weft_yield();
}

/* ---- Mutex ------------------------------------------------------------- */

/*
 * Everyone increments one counter under the mutex, yielding and sometimes
 * sleeping inside the critical section, so that holders migrate and
 * waiters queue up. Half the fibers are cancelled as they go: lock is not
 * a cancellation point, so they still finish every increment.
 */
struct mstress {
    weft_mutex m;
    long counter;      /* protected by m */
    atomic_int inside; /* holders right now: 0 or 1 */
    atomic_int next_id;
    atomic_long cancelled_done; /* iterations done after a cancel */
};

static void *mutex_body(void *arg) {
    struct mstress *s = arg;
    uint64_t rng = stream(&s->next_id, 0x6d7574);
    bool fiber = weft_self() != NULL;
    for (long i = 0; i < P.iterations; i++) {
        if (wt_rand_below(&rng, 8) == 0) {
            int rc = -EBUSY;
            for (int k = 0; k < 16 && rc == -EBUSY; k++) {
                rc = weft_mutex_trylock(&s->m);
                if (rc == -EBUSY)
                    weft_yield();
            }
            if (rc == -EBUSY)
                rc = weft_mutex_lock(&s->m);
            WT_CHECK_EQ(rc, 0);
        } else {
            WT_CHECK_EQ(weft_mutex_lock(&s->m), 0);
        }
        WT_CHECK_EQ(atomic_fetch_add(&s->inside, 1), 0);
        long v = s->counter;
        if (fiber) {
            jitter(&rng, 3);
            if (wt_rand_below(&rng, 64) == 0) {
                int rc = weft_sleep(wt_rand_below(&rng, 50) * WEFT_USEC);
                WT_CHECK(rc == 0 || (rc == -ECANCELED && weft_cancelled()));
            }
        } else if (wt_rand_below(&rng, 16) == 0) {
            weft_yield();
        }
        s->counter = v + 1;
        WT_CHECK_EQ(atomic_fetch_sub(&s->inside, 1), 1);
        WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
        if (weft_cancelled())
            atomic_fetch_add(&s->cancelled_done, 1);
        jitter(&rng, 2);
    }
    return NULL;
}

/* Runs the crowd on body over one fresh struct mstress, cancelling some
 * of it if asked, and returns that struct once the runtime is gone. */
static struct mstress *mutex_crowd_run(weft_fn body, bool cancel_some) {
    wt_reset();
    weft_runtime *rt = new_runtime();
    struct mstress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(weft_mutex_init(&s->m), 0);
    uint64_t rng = wt_mix(P.seed, 1);
    struct crowd c;
    crowd_start(&c, rt, body, s);
    if (cancel_some)
        crowd_cancel_some(&c, &rng);
    crowd_join(&c);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
    return s;
}

static void mstress_free(struct mstress *s) {
    assert_int_equal(weft_mutex_destroy(&s->m), 0);
    free(s);
}

static void test_mutex_counter_with_cancels(void **state) {
    (void)state;
    struct mstress *s = mutex_crowd_run(mutex_body, true);
    /* Fibers cancelled before they started ran no iteration. */
    long started = atomic_load(&s->next_id);
    assert_int_equal(s->counter, started * P.iterations);
    assert_true(started >= THREADS + (P.fibers + 1) / 2);
    fprintf(stderr, "mutex: %ld increments, %ld by cancelled fibers\n",
            s->counter, atomic_load(&s->cancelled_done));
    mstress_free(s);
}

/*
 * Holders that now and then keep the lock for 1.5 ms, so that waiters
 * pass the mutex's 1 ms bound and it switches to handing the lock to the
 * oldest waiter, while tight lockers keep barging in and woken waiters
 * lose and queue again at the head. Nobody is cancelled here.
 */
enum { LONG_HOLD_ROUNDS = 40 }; /* per participant: the holds are serial */

static void *mutex_long_hold_body(void *arg) {
    struct mstress *s = arg;
    uint64_t rng = stream(&s->next_id, 0x6c6f6e67);
    for (long i = 0; i < LONG_HOLD_ROUNDS; i++) {
        WT_CHECK_EQ(weft_mutex_lock(&s->m), 0);
        WT_CHECK_EQ(atomic_fetch_add(&s->inside, 1), 0);
        long v = s->counter;
        if (wt_rand_below(&rng, 16) == 0) {
            if (weft_self())
                WT_CHECK_EQ(weft_sleep(1500 * WEFT_USEC), 0);
            else
                wt_thread_sleep_ns(1500 * WEFT_USEC);
        }
        s->counter = v + 1;
        WT_CHECK_EQ(atomic_fetch_sub(&s->inside, 1), 1);
        WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
        if (wt_rand_below(&rng, 4) == 0)
            weft_yield();
    }
    return NULL;
}

static void test_mutex_starving_handoffs(void **state) {
    (void)state;
    struct mstress *s = mutex_crowd_run(mutex_long_hold_body, false);
    assert_int_equal(s->counter, crowd_size() * LONG_HOLD_ROUNDS);
    mstress_free(s);
}

/* ---- Condition --------------------------------------------------------- */

/*
 * A bounded queue: half the crowd produces unique values, half consumes,
 * with predicate loops around wait and wait_for (short timeouts that often
 * fire), signal or broadcast at random. Every value arrives exactly once.
 */
enum { CQ_CAP = 8 };

struct cqueue {
    weft_mutex m;
    weft_cond not_empty, not_full;
    uint32_t buf[CQ_CAP];
    int head, count;   /* protected by m */
    long taken, total; /* protected by m (total is set before start) */
    long per_producer;
    atomic_int next_id;
    atomic_int *seen;
    atomic_long timeouts;
};

static void cq_wait(struct cqueue *q, weft_cond *c, uint64_t *rng) {
    if (wt_rand_below(rng, 2)) {
        WT_CHECK_EQ(weft_cond_wait(c, &q->m), 0);
        return;
    }
    int rc = weft_cond_wait_for(c, &q->m, wt_rand_below(rng, 300) * WEFT_USEC);
    WT_CHECK(rc == 0 || rc == -ETIMEDOUT);
    if (rc == -ETIMEDOUT)
        atomic_fetch_add(&q->timeouts, 1);
}

static void cq_wake(weft_cond *c, uint64_t *rng) {
    if (wt_rand_below(rng, 4) == 0)
        WT_CHECK_EQ(weft_cond_broadcast(c), 0);
    else
        WT_CHECK_EQ(weft_cond_signal(c), 0);
}

static void cq_produce(struct cqueue *q, int id, uint64_t *rng) {
    for (long i = 0; i < q->per_producer; i++) {
        WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        while (q->count == CQ_CAP)
            cq_wait(q, &q->not_full, rng);
        q->buf[(q->head + q->count++) % CQ_CAP] =
            (uint32_t)(id * q->per_producer + i);
        cq_wake(&q->not_empty, rng);
        WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
        jitter(rng, 2);
    }
}

static void cq_consume(struct cqueue *q, uint64_t *rng) {
    WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
    for (;;) {
        while (q->count == 0 && q->taken < q->total)
            cq_wait(q, &q->not_empty, rng);
        if (q->count == 0)
            break;
        uint32_t v = q->buf[q->head];
        q->head = (q->head + 1) % CQ_CAP;
        q->count--;
        if (++q->taken == q->total)
            WT_CHECK_EQ(weft_cond_broadcast(&q->not_empty), 0);
        WT_CHECK_EQ(atomic_fetch_add(&q->seen[v], 1), 0);
        cq_wake(&q->not_full, rng);
        if (wt_rand_below(rng, 4) == 0) {
            WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
            jitter(rng, 3);
            WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        }
    }
    WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
}

/* Even ids (in start order, fibers and threads alike) produce; odd ids
 * consume. */
static void *cq_body(void *arg) {
    struct cqueue *q = arg;
    int id = atomic_fetch_add(&q->next_id, 1);
    uint64_t rng = wt_mix(P.seed ^ 0x636f6e64, (uint64_t)id);
    if (id % 2 == 0)
        cq_produce(q, id / 2, &rng);
    else
        cq_consume(q, &rng);
    return NULL;
}

static void test_cond_bounded_queue(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    struct cqueue *q = calloc(1, sizeof *q);
    assert_non_null(q);
    long producers = (crowd_size() + 1) / 2;
    q->per_producer = P.iterations;
    q->total = producers * q->per_producer;
    q->seen = calloc((size_t)q->total, sizeof *q->seen);
    assert_non_null(q->seen);
    assert_int_equal(weft_mutex_init(&q->m), 0);
    assert_int_equal(weft_cond_init(&q->not_empty), 0);
    assert_int_equal(weft_cond_init(&q->not_full), 0);
    struct crowd c;
    crowd_start(&c, rt, cq_body, q);
    crowd_join(&c);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(q->taken, q->total);
    for (long v = 0; v < q->total; v++)
        assert_int_equal(atomic_load(&q->seen[v]), 1);
    fprintf(stderr, "cond: %ld items, %ld wait_for timeouts\n", q->total,
            atomic_load(&q->timeouts));
    assert_int_equal(weft_cond_destroy(&q->not_empty), 0);
    assert_int_equal(weft_cond_destroy(&q->not_full), 0);
    assert_int_equal(weft_mutex_destroy(&q->m), 0);
    free(q->seen);
    free(q);
}

/* ---- Semaphore --------------------------------------------------------- */

/*
 * A resource with K units: never more than K holders at once. acquire,
 * acquire_for with short timeouts and try_acquire race with releases
 * (hand-offs), timeouts and cancels; at the end exactly K units are left,
 * so no race lost a unit or made one up.
 */
enum { SEM_K = 3 };

struct sstress {
    weft_sem s;
    atomic_int holders, max_holders, next_id;
    atomic_long acquired, timeouts, busy, cancels;
};

/* One acquisition attempt: 0 (holding a unit), or why not. */
static int sem_attempt(struct sstress *s, uint64_t *rng) {
    switch (wt_rand_below(rng, 4)) {
    case 0:
        return weft_sem_acquire(&s->s);
    case 1:
    case 2: {
        int rc = weft_sem_acquire_for(&s->s,
                                      wt_rand_below(rng, 200) * WEFT_USEC);
        WT_CHECK(rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED);
        return rc;
    }
    default: {
        int rc = weft_sem_try_acquire(&s->s);
        WT_CHECK(rc == 0 || rc == -EAGAIN);
        return rc;
    }
    }
}

static void *sem_body(void *arg) {
    struct sstress *s = arg;
    uint64_t rng = stream(&s->next_id, 0x73656d);
    for (long i = 0; i < P.iterations; i++) {
        int rc = sem_attempt(s, &rng);
        if (rc == -ECANCELED) {
            WT_CHECK(weft_cancelled());
            atomic_fetch_add(&s->cancels, 1);
            break;
        }
        if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            atomic_fetch_add(rc == -EAGAIN ? &s->busy : &s->timeouts, 1);
            jitter(&rng, 2);
            continue;
        }
        WT_CHECK_EQ(rc, 0);
        int h = atomic_fetch_add(&s->holders, 1) + 1;
        WT_CHECK(h <= SEM_K);
        int m = atomic_load(&s->max_holders);
        while (h > m && !atomic_compare_exchange_weak(&s->max_holders, &m, h))
            ;
        atomic_fetch_add(&s->acquired, 1);
        jitter(&rng, 3);
        atomic_fetch_sub(&s->holders, 1);
        WT_CHECK_EQ(weft_sem_release(&s->s), 0);
    }
    return NULL;
}

static void test_sem_bounded_with_cancels(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    struct sstress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(weft_sem_init(&s->s, SEM_K), 0);
    uint64_t rng = wt_mix(P.seed, 3);
    struct crowd c;
    crowd_start(&c, rt, sem_body, s);
    crowd_cancel_some(&c, &rng);
    crowd_join(&c);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
    assert_true(atomic_load(&s->max_holders) <= SEM_K);
    for (int i = 0; i < SEM_K; i++)
        assert_int_equal(weft_sem_try_acquire(&s->s), 0);
    assert_int_equal(weft_sem_try_acquire(&s->s), -EAGAIN);
    fprintf(stderr,
            "sem: %ld acquired, %ld timeouts, %ld busy, %ld cancelled, "
            "max holders %d\n",
            atomic_load(&s->acquired), atomic_load(&s->timeouts),
            atomic_load(&s->busy), atomic_load(&s->cancels),
            atomic_load(&s->max_holders));
    assert_int_equal(weft_sem_destroy(&s->s), 0);
    free(s);
}

/* ---- Wait group -------------------------------------------------------- */

/*
 * Rounds on one reused wait group: n workers (fibers, sometimes a thread)
 * finish at random moments; waiters (fibers, sometimes a thread) see all
 * the work when wait returns; some waiters are cancelled on the way.
 */
enum { WG_MAX_WORKERS = 16, WG_MAX_WAITERS = 8 };

struct wround {
    weft_wg *wg;
    int n;
    uint64_t key;
    atomic_int next_id;
    atomic_int work;
    atomic_long *cancelled_waits;
};

static void *wg_worker(void *arg) {
    struct wround *r = arg;
    uint64_t rng = wt_mix(r->key, (uint64_t)atomic_fetch_add(&r->next_id, 1));
    jitter(&rng, 4);
    if (wt_rand_below(&rng, 4) == 0)
        WT_CHECK_EQ(weft_sleep(wt_rand_below(&rng, 100) * WEFT_USEC), 0);
    atomic_fetch_add(&r->work, 1);
    WT_CHECK_EQ(weft_wg_done(r->wg), 0);
    return NULL;
}

static void *wg_waiter(void *arg) {
    struct wround *r = arg;
    int rc = weft_wg_wait(r->wg);
    if (rc == -ECANCELED) {
        WT_CHECK(weft_cancelled());
        atomic_fetch_add(r->cancelled_waits, 1);
        return NULL;
    }
    WT_CHECK_EQ(rc, 0);
    WT_CHECK_EQ(atomic_load(&r->work), r->n);
    return NULL;
}

static void test_wg_rounds(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = new_runtime();
    weft_wg wg;
    assert_int_equal(weft_wg_init(&wg), 0);
    atomic_long cancelled_waits = 0;
    uint64_t rng = wt_mix(P.seed, 4);
    long rounds = P.iterations / 10 + 1;
    for (long round = 0; round < rounds; round++) {
        struct wround r = {.wg = &wg, .cancelled_waits = &cancelled_waits};
        r.n = 1 + (int)wt_rand_below(&rng, WG_MAX_WORKERS);
        r.key = wt_rand(&rng);
        int nwait = 1 + (int)wt_rand_below(&rng, WG_MAX_WAITERS);
        bool thread_worker = wt_rand_below(&rng, 8) == 0;
        bool thread_waiter = wt_rand_below(&rng, 8) == 0;
        assert_int_equal(weft_wg_add(&wg, r.n), 0);
        weft_task *waiters[WG_MAX_WAITERS], *workers[WG_MAX_WORKERS] = {0};
        pthread_t wth, kth;
        for (int i = 0; i < nwait; i++)
            assert_int_equal(weft_spawn(rt, wg_waiter, &r, &waiters[i]), 0);
        if (thread_waiter)
            assert_int_equal(pthread_create(&wth, NULL, wg_waiter, &r), 0);
        for (int i = thread_worker; i < r.n; i++)
            assert_int_equal(weft_spawn(rt, wg_worker, &r, &workers[i]), 0);
        if (thread_worker)
            assert_int_equal(pthread_create(&kth, NULL, wg_worker, &r), 0);
        if (wt_rand_below(&rng, 2)) {
            int rc = weft_cancel(waiters[wt_rand_below(&rng, (uint32_t)nwait)]);
            assert_true(rc == 0 || rc == -ESRCH);
        }
        assert_int_equal(weft_wg_wait(&wg), 0);
        assert_int_equal(atomic_load(&r.work), r.n);
        if (thread_worker)
            assert_int_equal(pthread_join(kth, NULL), 0);
        if (thread_waiter)
            assert_int_equal(pthread_join(wth, NULL), 0);
        for (int i = thread_worker; i < r.n; i++)
            assert_int_equal(weft_join(workers[i], NULL), 0);
        for (int i = 0; i < nwait; i++) {
            int rc = weft_join(waiters[i], NULL);
            assert_true(rc == 0 || rc == -ECANCELED);
        }
    }
    assert_int_equal(weft_wg_done(&wg), -EINVAL); /* back at zero */
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
    fprintf(stderr, "wg: %ld rounds, %ld waits cancelled\n", rounds,
            atomic_load(&cancelled_waits));
    assert_int_equal(weft_wg_destroy(&wg), 0);
}

int main(int argc, char **argv) {
    wt_init();
    P.workers = (unsigned)wt_arg(argc, argv, 1, 2);
    P.iterations = wt_arg(argc, argv, 2, 2000);
    P.fibers = wt_arg(argc, argv, 3, 32);
    if (P.workers > WEFT_MAX_WORKERS) {
        fprintf(stderr, "WORKERS must be at most %d\n", WEFT_MAX_WORKERS);
        return 2;
    }
    P.seed = wt_seed();
    fprintf(stderr, "stress_sync: workers=%u iterations=%ld fibers=%ld\n",
            P.workers, P.iterations, P.fibers);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_counter_with_cancels),
        cmocka_unit_test(test_mutex_starving_handoffs),
        cmocka_unit_test(test_cond_bounded_queue),
        cmocka_unit_test(test_sem_bounded_with_cancels),
        cmocka_unit_test(test_wg_rounds),
    };
    return cmocka_run_group_tests_name("stress.sync", tests, NULL, NULL);
}
