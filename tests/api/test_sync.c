/*
 * tests/api/test_sync.c - black-box: weft_mutex, weft_cond, weft_sem and
 * weft_wg (weft.h "Synchronisation", DESIGN 3). Each primitive is used
 * from fibers and plain threads at once; error codes (-EINVAL for NULL,
 * never-initialised and destroyed objects, -EPERM, -EDEADLK, -EBUSY,
 * -EAGAIN, -EOVERFLOW); first come, first served; timeouts that never end
 * early; no spurious wake-ups; cancellation (every wait but mutex lock);
 * a fiber that waits frees its worker (one-worker runtimes).
 *
 * Fibers and helper threads record failures with WT_CHECK*; the main
 * thread asserts only after everything it started has been joined, so a
 * failed check never leaves a fiber blocked behind a longjmp.
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

/* Any thread: polls an int protected by m until it reaches target. */
static bool poll_locked_ge(weft_mutex *m, const int *v, int target) {
    uint64_t deadline = wt_clock_ns() + POLL;
    for (;;) {
        WT_CHECK_EQ(weft_mutex_lock(m), 0);
        int x = *v;
        WT_CHECK_EQ(weft_mutex_unlock(m), 0);
        if (x >= target)
            return true;
        if (wt_clock_ns() > deadline)
            return false;
        wt_thread_sleep_ns(100 * WEFT_USEC);
    }
}

/* ---- Bad arguments, never-initialised and destroyed objects ------------ */

/* Every call on a NULL object returns -EINVAL. */
static void test_sync_null_args(void **state) {
    (void)state;
    weft_mutex m;
    weft_cond c;
    assert_int_equal(weft_mutex_init(&m), 0);
    assert_int_equal(weft_cond_init(&c), 0);
    assert_int_equal(weft_mutex_lock(&m), 0);

    assert_int_equal(weft_mutex_init(NULL), -EINVAL);
    assert_int_equal(weft_mutex_lock(NULL), -EINVAL);
    assert_int_equal(weft_mutex_trylock(NULL), -EINVAL);
    assert_int_equal(weft_mutex_unlock(NULL), -EINVAL);
    assert_int_equal(weft_mutex_destroy(NULL), -EINVAL);

    assert_int_equal(weft_cond_init(NULL), -EINVAL);
    assert_int_equal(weft_cond_wait_for(NULL, &m, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_cond_wait_for(&c, NULL, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_cond_wait(NULL, &m), -EINVAL);
    assert_int_equal(weft_cond_wait(&c, NULL), -EINVAL);
    assert_int_equal(weft_cond_signal(NULL), -EINVAL);
    assert_int_equal(weft_cond_broadcast(NULL), -EINVAL);
    assert_int_equal(weft_cond_destroy(NULL), -EINVAL);

    assert_int_equal(weft_sem_init(NULL, 1), -EINVAL);
    assert_int_equal(weft_sem_acquire(NULL), -EINVAL);
    assert_int_equal(weft_sem_acquire_for(NULL, WEFT_MSEC), -EINVAL);
    assert_int_equal(weft_sem_try_acquire(NULL), -EINVAL);
    assert_int_equal(weft_sem_release(NULL), -EINVAL);
    assert_int_equal(weft_sem_destroy(NULL), -EINVAL);

    assert_int_equal(weft_wg_init(NULL), -EINVAL);
    assert_int_equal(weft_wg_add(NULL, 1), -EINVAL);
    assert_int_equal(weft_wg_done(NULL), -EINVAL);
    assert_int_equal(weft_wg_wait(NULL), -EINVAL);
    assert_int_equal(weft_wg_destroy(NULL), -EINVAL);

    /* The failed calls changed nothing. */
    assert_int_equal(weft_mutex_unlock(&m), 0);
    assert_int_equal(weft_cond_destroy(&c), 0);
    assert_int_equal(weft_mutex_destroy(&m), 0);
}

/*
 * Every call on an object that is not initialised returns -EINVAL and
 * never blocks. Blocking calls are made only after a non-blocking call on
 * the same object was refused, so a missing check fails instead of
 * hanging.
 */
static void check_all_invalid(weft_mutex *m, weft_cond *c, weft_sem *s,
                              weft_wg *wg) {
    weft_mutex ok;
    WT_CHECK_EQ(weft_mutex_init(&ok), 0);
    WT_CHECK_EQ(weft_mutex_lock(&ok), 0);

    int rc = weft_mutex_trylock(m);
    WT_CHECK_EQ(rc, -EINVAL);
    if (rc == -EINVAL)
        WT_CHECK_EQ(weft_mutex_lock(m), -EINVAL);
    WT_CHECK_EQ(weft_mutex_unlock(m), -EINVAL);
    WT_CHECK_EQ(weft_mutex_destroy(m), -EINVAL);

    rc = weft_cond_wait_for(c, &ok, WEFT_MSEC);
    WT_CHECK_EQ(rc, -EINVAL);
    if (rc == -EINVAL)
        WT_CHECK_EQ(weft_cond_wait(c, &ok), -EINVAL);
    WT_CHECK_EQ(weft_cond_signal(c), -EINVAL);
    WT_CHECK_EQ(weft_cond_broadcast(c), -EINVAL);
    WT_CHECK_EQ(weft_cond_destroy(c), -EINVAL);

    rc = weft_sem_try_acquire(s);
    WT_CHECK_EQ(rc, -EINVAL);
    WT_CHECK_EQ(weft_sem_acquire_for(s, WEFT_MSEC), -EINVAL);
    if (rc == -EINVAL)
        WT_CHECK_EQ(weft_sem_acquire(s), -EINVAL);
    WT_CHECK_EQ(weft_sem_release(s), -EINVAL);
    WT_CHECK_EQ(weft_sem_destroy(s), -EINVAL);

    rc = weft_wg_add(wg, 0);
    WT_CHECK_EQ(rc, -EINVAL);
    WT_CHECK_EQ(weft_wg_add(wg, 1), -EINVAL);
    WT_CHECK_EQ(weft_wg_done(wg), -EINVAL);
    if (rc == -EINVAL)
        WT_CHECK_EQ(weft_wg_wait(wg), -EINVAL);
    WT_CHECK_EQ(weft_wg_destroy(wg), -EINVAL);

    /* A valid condition with a mutex that is not initialised. */
    weft_cond cok;
    WT_CHECK_EQ(weft_cond_init(&cok), 0);
    rc = weft_cond_wait_for(&cok, m, WEFT_MSEC);
    WT_CHECK_EQ(rc, -EINVAL);
    if (rc == -EINVAL)
        WT_CHECK_EQ(weft_cond_wait(&cok, m), -EINVAL);
    WT_CHECK_EQ(weft_cond_destroy(&cok), 0);

    WT_CHECK_EQ(weft_mutex_unlock(&ok), 0);
    WT_CHECK_EQ(weft_mutex_destroy(&ok), 0);
}

static void test_sync_never_initialised(void **state) {
    (void)state;
    /* Zeroed (static storage, calloc) and garbage (the stack). */
    static const int fills[] = {0x00, 0xa5, 0xff};
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) {
        weft_mutex m;
        weft_cond c;
        weft_sem s;
        weft_wg wg;
        memset(&m, fills[i], sizeof m);
        memset(&c, fills[i], sizeof c);
        memset(&s, fills[i], sizeof s);
        memset(&wg, fills[i], sizeof wg);
        check_all_invalid(&m, &c, &s, &wg);
    }
    WT_ASSERT_NO_FAILURES();
}

static void test_sync_destroyed(void **state) {
    (void)state;
    weft_mutex m;
    weft_cond c;
    weft_sem s;
    weft_wg wg;
    for (int round = 0; round < 2; round++) {
        /* init, destroy; everything refused; then init works again. */
        assert_int_equal(weft_mutex_init(&m), 0);
        assert_int_equal(weft_cond_init(&c), 0);
        assert_int_equal(weft_sem_init(&s, 3), 0);
        assert_int_equal(weft_wg_init(&wg), 0);
        assert_int_equal(weft_mutex_destroy(&m), 0);
        assert_int_equal(weft_cond_destroy(&c), 0);
        assert_int_equal(weft_sem_destroy(&s), 0);
        assert_int_equal(weft_wg_destroy(&wg), 0);
        check_all_invalid(&m, &c, &s, &wg);
    }
    assert_int_equal(weft_mutex_init(&m), 0);
    assert_int_equal(weft_mutex_lock(&m), 0);
    assert_int_equal(weft_mutex_unlock(&m), 0);
    assert_int_equal(weft_mutex_destroy(&m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Mutex ------------------------------------------------------------- */

/* The single-owner rules, from a fiber or a plain thread. errno is left
 * alone by failing calls. */
static void mutex_basics(bool in_fiber) {
    weft_mutex m;
    WT_CHECK_EQ(weft_mutex_init(&m), 0);
    wt_set_errno(4242);
    WT_CHECK_EQ(weft_mutex_unlock(&m), -EPERM); /* not locked */
    WT_CHECK_EQ(wt_errno(), 4242);
    WT_CHECK_EQ(weft_mutex_lock(&m), 0);
    WT_CHECK_EQ(weft_mutex_lock(&m), -EDEADLK);
    WT_CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    WT_CHECK_EQ(weft_mutex_destroy(&m), -EBUSY);
    WT_CHECK_EQ(wt_errno(), 4242);
    if (in_fiber) {
        /* The holder is the fiber, wherever it resumes. */
        for (int i = 0; i < 8; i++) {
            weft_yield();
            WT_CHECK_EQ(weft_sleep(200 * WEFT_USEC), 0);
        }
        WT_CHECK_EQ(weft_mutex_lock(&m), -EDEADLK);
    }
    WT_CHECK_EQ(weft_mutex_unlock(&m), 0);
    WT_CHECK_EQ(weft_mutex_unlock(&m), -EPERM);
    WT_CHECK_EQ(weft_mutex_trylock(&m), 0);
    WT_CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    WT_CHECK_EQ(weft_mutex_unlock(&m), 0);
    WT_CHECK_EQ(weft_mutex_destroy(&m), 0);
}

static void *mutex_basics_fiber(void *arg) {
    (void)arg;
    mutex_basics(true);
    return NULL;
}

static void test_mutex_basics(void **state) {
    weft_runtime *rt = *state;
    mutex_basics(false);
    assert_int_equal(weft_run(rt, mutex_basics_fiber, NULL, NULL), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A fiber facing a mutex held by someone else. */
static void *check_held_elsewhere(void *arg) {
    weft_mutex *m = arg;
    WT_CHECK_EQ(weft_mutex_trylock(m), -EBUSY);
    WT_CHECK_EQ(weft_mutex_unlock(m), -EPERM);
    WT_CHECK_EQ(weft_mutex_destroy(m), -EBUSY);
    return NULL;
}

struct holder {
    weft_mutex m;
    atomic_int held, release, released;
};

static void *hold_until_released(void *arg) {
    struct holder *h = arg;
    WT_CHECK_EQ(weft_mutex_lock(&h->m), 0);
    atomic_store(&h->held, 1);
    wt_yield_until(&h->release, 2000000000L);
    WT_CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    atomic_store(&h->released, 1);
    WT_CHECK_EQ(weft_mutex_unlock(&h->m), 0);
    return NULL;
}

/* Held by the main thread, then by a fiber: nobody else may unlock,
 * trylock or destroy it, and lock waits for the holder's unlock. */
static void test_mutex_other_holders(void **state) {
    weft_runtime *rt = *state;
    struct holder h = {0};
    assert_int_equal(weft_mutex_init(&h.m), 0);

    assert_int_equal(weft_mutex_lock(&h.m), 0);
    assert_int_equal(weft_run(rt, check_held_elsewhere, &h.m, NULL), 0);
    assert_int_equal(weft_mutex_unlock(&h.m), 0);

    weft_task *t = spawn(rt, hold_until_released, &h);
    bool held = poll_ge(&h.held, 1);
    int trylock_rc = weft_mutex_trylock(&h.m);
    int unlock_rc = weft_mutex_unlock(&h.m);
    int destroy_rc = weft_mutex_destroy(&h.m);
    assert_int_equal(weft_run(rt, check_held_elsewhere, &h.m, NULL), 0);
    atomic_store(&h.release, 1);
    int lock_rc = weft_mutex_lock(&h.m);
    int released = atomic_load(&h.released);
    assert_int_equal(weft_mutex_unlock(&h.m), 0);
    join_task(t);

    assert_true(held);
    assert_int_equal(trylock_rc, -EBUSY);
    assert_int_equal(unlock_rc, -EPERM);
    assert_int_equal(destroy_rc, -EBUSY);
    assert_int_equal(lock_rc, 0);
    assert_int_equal(released, 1);
    assert_int_equal(weft_mutex_destroy(&h.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * One worker: the holder and a second fiber run on the same thread. The
 * owner is the fiber, not the thread: the other fiber's unlock is -EPERM
 * and its lock waits (not -EDEADLK), freeing the worker so that the
 * holder can run and unlock.
 */
struct same_worker {
    weft_mutex m;
    atomic_int started, released;
    int lock_rc, saw_released;
};

static void *same_worker_other(void *arg) {
    struct same_worker *s = arg;
    WT_CHECK_EQ(weft_mutex_trylock(&s->m), -EBUSY);
    WT_CHECK_EQ(weft_mutex_unlock(&s->m), -EPERM);
    atomic_store(&s->started, 1);
    s->lock_rc = weft_mutex_lock(&s->m);
    s->saw_released = atomic_load(&s->released);
    if (s->lock_rc == 0)
        WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
    return NULL;
}

static void *same_worker_holder(void *arg) {
    struct same_worker *s = arg;
    WT_CHECK_EQ(weft_mutex_lock(&s->m), 0);
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, same_worker_other, s, &t), 0);
    wt_yield_until(&s->started, 2000000000L);
    WT_CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
    atomic_store(&s->released, 1);
    WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    return NULL;
}

static void test_mutex_owner_is_the_fiber(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    struct same_worker s = {0};
    assert_int_equal(weft_mutex_init(&s.m), 0);
    assert_int_equal(weft_run(rt, same_worker_holder, &s, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(s.lock_rc, 0);
    assert_int_equal(s.saw_released, 1);
    assert_int_equal(weft_mutex_destroy(&s.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * A task that ends holding a mutex keeps it held: no later task may
 * unlock it, even one whose task record reuses the first one's memory
 * (records are pooled and reused at once, so among many sequential
 * tasks on one worker some do).
 */
static void *lock_and_end(void *arg) {
    WT_CHECK_EQ(weft_mutex_lock(arg), 0);
    return NULL;
}

static void *try_unlock(void *arg) {
    WT_CHECK_EQ(weft_mutex_unlock(arg), -EPERM);
    WT_CHECK_EQ(weft_mutex_trylock(arg), -EBUSY);
    return NULL;
}

static void *owner_outlives_task(void *arg) {
    weft_mutex *m = arg;
    weft_task *t = NULL;
    WT_CHECK_EQ(weft_spawn(NULL, lock_and_end, m, &t), 0);
    WT_CHECK_EQ(weft_join(t, NULL), 0);
    for (int i = 0; i < 200; i++) {
        WT_CHECK_EQ(weft_spawn(NULL, try_unlock, m, &t), 0);
        WT_CHECK_EQ(weft_join(t, NULL), 0);
    }
    return NULL;
}

static void test_mutex_owner_id_not_reused(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    weft_mutex m;
    assert_int_equal(weft_mutex_init(&m), 0);
    assert_int_equal(weft_run(rt, owner_outlives_task, &m, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
    assert_int_equal(weft_mutex_trylock(&m), -EBUSY);
    assert_int_equal(weft_mutex_destroy(&m), -EBUSY); /* still held */
}

/*
 * Not a cancellation point: a fiber cancelled while waiting for the lock,
 * or before it asked, still gets it (lock returns 0, only once the holder
 * unlocks); its next cancellable wait then returns -ECANCELED.
 */
struct nocancel {
    weft_mutex m;
    bool cancel_first;
    atomic_int started, returned;
    int lock_rc, cancelled, unlock_rc, sleep_rc;
};

static void *lock_while_cancelled(void *arg) {
    struct nocancel *n = arg;
    atomic_store(&n->started, 1);
    if (n->cancel_first)
        yield_until_cancelled();
    n->lock_rc = weft_mutex_lock(&n->m);
    atomic_store(&n->returned, 1);
    n->cancelled = weft_cancelled();
    n->unlock_rc = weft_mutex_unlock(&n->m);
    n->sleep_rc = weft_sleep(LONG_WAIT);
    return NULL;
}

static void check_lock_not_cancellable(weft_runtime *rt, bool cancel_first) {
    struct nocancel n = {.cancel_first = cancel_first};
    assert_int_equal(weft_mutex_init(&n.m), 0);
    assert_int_equal(weft_mutex_lock(&n.m), 0);
    weft_task *t = spawn(rt, lock_while_cancelled, &n);
    bool started = poll_ge(&n.started, 1);
    settle();
    int cancel_rc = weft_cancel(t);
    settle();
    settle();
    int returned_early = atomic_load(&n.returned);
    assert_int_equal(weft_mutex_unlock(&n.m), 0);
    uint64_t t0 = wt_clock_ns();
    join_task(t);
    uint64_t took = wt_clock_ns() - t0;

    assert_true(started);
    assert_int_equal(cancel_rc, 0);
    assert_int_equal(returned_early, 0);
    assert_int_equal(n.lock_rc, 0);
    assert_int_equal(n.cancelled, 1);
    assert_int_equal(n.unlock_rc, 0);
    assert_int_equal(n.sleep_rc, -ECANCELED);
    assert_true(took < PROMPT);
    assert_int_equal(weft_mutex_destroy(&n.m), 0);
}

static void test_mutex_lock_not_cancellation_point(void **state) {
    check_lock_not_cancellable(*state, false);
    check_lock_not_cancellable(*state, true);
    WT_ASSERT_NO_FAILURES();
}

/* Fibers on both workers and plain threads increment one counter under
 * the mutex, yielding inside the critical section. */
enum { COUNT_FIBERS = 4, COUNT_THREADS = 2, COUNT_ITERS = 3000 };

struct counter {
    weft_mutex m;
    long value;        /* protected by m */
    atomic_int inside; /* holders right now: 0 or 1 */
    atomic_int next_id;
};

static void *count_up(void *arg) {
    struct counter *c = arg;
    int id = atomic_fetch_add(&c->next_id, 1);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)id);
    bool fiber = weft_self() != NULL;
    for (int i = 0; i < COUNT_ITERS; i++) {
        wt_set_errno(id + 100);
        if (wt_rand_below(&rng, 4) == 0) {
            int rc;
            while ((rc = weft_mutex_trylock(&c->m)) == -EBUSY)
                weft_yield();
            WT_CHECK_EQ(rc, 0);
        } else {
            WT_CHECK_EQ(weft_mutex_lock(&c->m), 0);
        }
        WT_CHECK_EQ(atomic_fetch_add(&c->inside, 1), 0);
        long v = c->value;
        if (fiber && wt_rand_below(&rng, 8) == 0)
            weft_yield();
        c->value = v + 1;
        WT_CHECK_EQ(atomic_fetch_sub(&c->inside, 1), 1);
        WT_CHECK_EQ(weft_mutex_unlock(&c->m), 0);
        WT_CHECK_EQ(wt_errno(), id + 100);
    }
    return NULL;
}

static void test_mutex_fibers_and_threads(void **state) {
    weft_runtime *rt = *state;
    struct counter c = {0};
    assert_int_equal(weft_mutex_init(&c.m), 0);
    weft_task *t[COUNT_FIBERS];
    pthread_t th[COUNT_THREADS];
    for (int i = 0; i < COUNT_FIBERS; i++)
        t[i] = spawn(rt, count_up, &c);
    for (int i = 0; i < COUNT_THREADS; i++)
        th[i] = start_thread(count_up, &c);
    for (int i = 0; i < COUNT_THREADS; i++)
        join_thread(th[i]);
    for (int i = 0; i < COUNT_FIBERS; i++)
        join_task(t[i]);
    assert_int_equal(c.value, (COUNT_FIBERS + COUNT_THREADS) * COUNT_ITERS);
    assert_int_equal(weft_mutex_destroy(&c.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* No starvation: a plain thread and a fiber relock in tight loops; a
 * third party still gets the lock soon (hand-off after ~1 ms). */
struct hammer {
    weft_mutex m;
    atomic_int stop, victim_started;
    uint64_t victim_took;
    int victim_rc;
};

static void *hammer_loop(void *arg) {
    struct hammer *h = arg;
    uint64_t deadline = wt_clock_ns() + POLL;
    for (long i = 0; !atomic_load(&h->stop); i++) {
        WT_CHECK_EQ(weft_mutex_lock(&h->m), 0);
        WT_CHECK_EQ(weft_mutex_unlock(&h->m), 0);
        /* A fiber yields now and then, so that a victim readied on its
         * worker is not starved by the scheduler rather than the mutex. */
        if (i % 64 == 63) {
            if (weft_self())
                weft_yield();
            if (wt_clock_ns() > deadline)
                break;
        }
    }
    return NULL;
}

static void *victim(void *arg) {
    struct hammer *h = arg;
    WT_CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    atomic_store(&h->victim_started, 1);
    uint64_t t0 = wt_clock_ns();
    h->victim_rc = weft_mutex_lock(&h->m);
    h->victim_took = wt_clock_ns() - t0;
    if (h->victim_rc == 0)
        WT_CHECK_EQ(weft_mutex_unlock(&h->m), 0);
    atomic_store(&h->stop, 1);
    return NULL;
}

static void test_mutex_no_starvation(void **state) {
    weft_runtime *rt = *state;
    struct hammer h = {0};
    assert_int_equal(weft_mutex_init(&h.m), 0);
    pthread_t th = start_thread(hammer_loop, &h);
    weft_task *f = spawn(rt, hammer_loop, &h);
    weft_task *v = spawn(rt, victim, &h);
    join_task(v);
    atomic_store(&h.stop, 1);
    join_thread(th);
    join_task(f);
    assert_int_equal(h.victim_rc, 0);
    assert_true(h.victim_took < 2 * WEFT_SEC);
    assert_int_equal(weft_mutex_destroy(&h.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Condition --------------------------------------------------------- */

/* Bounded queue: producers and consumers (fibers and threads) with
 * predicate loops. */
enum { QCAP = 4, QPER = 2000 };

struct queue {
    weft_mutex m;
    weft_cond not_empty, not_full;
    int buf[QCAP];
    int head, count;          /* protected by m */
    long taken, total, sum;   /* protected by m */
    atomic_int next_id;
};

static int cond_wait_some(weft_cond *c, weft_mutex *m, uint64_t *rng) {
    if (wt_rand_below(rng, 2))
        return weft_cond_wait(c, m);
    return weft_cond_wait_for(c, m, LONG_WAIT);
}

static void *q_produce(void *arg) {
    struct queue *q = arg;
    int id = atomic_fetch_add(&q->next_id, 1);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)id);
    for (int i = 0; i < QPER; i++) {
        WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        while (q->count == QCAP)
            WT_CHECK_EQ(cond_wait_some(&q->not_full, &q->m, &rng), 0);
        q->buf[(q->head + q->count++) % QCAP] = id * QPER + i;
        WT_CHECK_EQ(weft_cond_signal(&q->not_empty), 0);
        WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    }
    return NULL;
}

static void *q_consume(void *arg) {
    struct queue *q = arg;
    int id = atomic_fetch_add(&q->next_id, 1);
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)id);
    WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
    for (;;) {
        while (q->count == 0 && q->taken < q->total)
            WT_CHECK_EQ(cond_wait_some(&q->not_empty, &q->m, &rng), 0);
        if (q->count == 0)
            break;
        q->sum += q->buf[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        if (++q->taken == q->total)
            WT_CHECK_EQ(weft_cond_broadcast(&q->not_empty), 0);
        WT_CHECK_EQ(weft_cond_signal(&q->not_full), 0);
        if (wt_rand_below(&rng, 16) == 0) {
            WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
            weft_yield();
            WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        }
    }
    WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    return NULL;
}

static void test_cond_producer_consumer(void **state) {
    weft_runtime *rt = *state;
    /* Ids 0..2 produce (ids come from next_id in start order). */
    struct queue q = {.total = 3L * QPER};
    assert_int_equal(weft_mutex_init(&q.m), 0);
    assert_int_equal(weft_cond_init(&q.not_empty), 0);
    assert_int_equal(weft_cond_init(&q.not_full), 0);
    weft_task *t[4];
    pthread_t th[2];
    t[0] = spawn(rt, q_produce, &q);
    t[1] = spawn(rt, q_produce, &q);
    th[0] = start_thread(q_produce, &q);
    assert_true(poll_ge(&q.next_id, 3));
    t[2] = spawn(rt, q_consume, &q);
    t[3] = spawn(rt, q_consume, &q);
    th[1] = start_thread(q_consume, &q);
    for (int i = 0; i < 2; i++)
        join_thread(th[i]);
    for (int i = 0; i < 4; i++)
        join_task(t[i]);
    long n = q.total;
    assert_int_equal(q.taken, n);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.sum, n * (n - 1) / 2);
    assert_int_equal(weft_cond_destroy(&q.not_empty), 0);
    assert_int_equal(weft_cond_destroy(&q.not_full), 0);
    assert_int_equal(weft_mutex_destroy(&q.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * N waiters (fibers and threads) register under the mutex and wait, so the
 * main thread knows they are all queued once it sees the count under the
 * mutex. signal wakes exactly one, the oldest; broadcast wakes all.
 */
enum { NWAIT = 6 };

struct waiters {
    weft_mutex m;
    weft_cond c;
    int waiting, woken;  /* protected by m */
    int order[NWAIT];    /* registration number, in wake order */
    int rc[NWAIT];
};

static void *cond_waiter(void *arg) {
    struct waiters *w = arg;
    WT_CHECK_EQ(weft_mutex_lock(&w->m), 0);
    int me = w->waiting++;
    /* Fibers wait without a timeout; threads with a long one. */
    if (weft_self())
        w->rc[me] = weft_cond_wait(&w->c, &w->m);
    else
        w->rc[me] = weft_cond_wait_for(&w->c, &w->m, LONG_WAIT);
    w->order[w->woken++] = me;
    WT_CHECK_EQ(weft_mutex_unlock(&w->m), 0);
    return NULL;
}

struct waiter_set {
    weft_task *t[NWAIT];
    pthread_t th[NWAIT];
    bool is_thread[NWAIT];
};

/* Starts NWAIT waiters, one at a time so that registration order is the
 * start order; returns whether all registered. */
static bool start_waiters(weft_runtime *rt, struct waiters *w,
                          struct waiter_set *ws, weft_fn fn) {
    for (int i = 0; i < NWAIT; i++) {
        ws->is_thread[i] = i % 3 == 1;
        if (ws->is_thread[i])
            ws->th[i] = start_thread(fn, w);
        else
            ws->t[i] = spawn(rt, fn, w);
        if (!poll_locked_ge(&w->m, &w->waiting, i + 1))
            return false;
    }
    return true;
}

static void join_waiters(struct waiter_set *ws) {
    for (int i = 0; i < NWAIT; i++) {
        if (ws->is_thread[i])
            join_thread(ws->th[i]);
        else
            join_task(ws->t[i]);
    }
}

static int woken_count(struct waiters *w) {
    WT_CHECK_EQ(weft_mutex_lock(&w->m), 0);
    int n = w->woken;
    WT_CHECK_EQ(weft_mutex_unlock(&w->m), 0);
    return n;
}

static void test_cond_signal_wakes_oldest_one(void **state) {
    weft_runtime *rt = *state;
    struct waiters w = {0};
    struct waiter_set ws;
    assert_int_equal(weft_mutex_init(&w.m), 0);
    assert_int_equal(weft_cond_init(&w.c), 0);
    bool registered = start_waiters(rt, &w, &ws, cond_waiter);
    int woken_after[NWAIT] = {0};
    for (int i = 0; i < NWAIT; i++) {
        assert_int_equal(weft_cond_signal(&w.c), 0);
        bool one = poll_locked_ge(&w.m, &w.woken, i + 1);
        settle(); /* would a second waiter wake too? */
        woken_after[i] = woken_count(&w);
        if (!one)
            break;
    }
    /* Releases any waiter a lost signal left behind, so the joins return;
     * when all woke, nobody is left and it is harmless. */
    assert_int_equal(weft_cond_broadcast(&w.c), 0);
    join_waiters(&ws);

    assert_true(registered);
    for (int i = 0; i < NWAIT; i++) {
        assert_int_equal(woken_after[i], i + 1);
        assert_int_equal(w.order[i], i);
        assert_int_equal(w.rc[i], 0);
    }
    assert_int_equal(weft_cond_destroy(&w.c), 0);
    assert_int_equal(weft_mutex_destroy(&w.m), 0);
    WT_ASSERT_NO_FAILURES();
}

static void *timed_waiter(void *arg) {
    struct waiters *w = arg;
    WT_CHECK_EQ(weft_mutex_lock(&w->m), 0);
    uint64_t t0 = wt_clock_ns();
    int rc = weft_cond_wait_for(&w->c, &w->m, 50 * WEFT_MSEC);
    uint64_t took = wt_clock_ns() - t0;
    WT_CHECK_EQ(weft_mutex_unlock(&w->m), 0);
    WT_CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_NOT_EARLY(took, 50 * WEFT_MSEC);
    return NULL;
}

static void test_cond_broadcast_wakes_all(void **state) {
    weft_runtime *rt = *state;
    struct waiters w = {0};
    struct waiter_set ws;
    assert_int_equal(weft_mutex_init(&w.m), 0);
    assert_int_equal(weft_cond_init(&w.c), 0);
    bool registered = start_waiters(rt, &w, &ws, cond_waiter);
    settle();
    int before = woken_count(&w);
    assert_int_equal(weft_cond_broadcast(&w.c), 0);
    bool all = poll_locked_ge(&w.m, &w.woken, NWAIT);
    if (!all) /* release the rest, so the joins below return */
        assert_int_equal(weft_cond_broadcast(&w.c), 0);
    join_waiters(&ws);
    assert_true(registered);
    assert_int_equal(before, 0);
    assert_true(all);
    for (int i = 0; i < NWAIT; i++)
        assert_int_equal(w.rc[i], 0);

    /* A signal or broadcast with no waiter is not remembered. */
    assert_int_equal(weft_cond_signal(&w.c), 0);
    assert_int_equal(weft_cond_broadcast(&w.c), 0);
    assert_int_equal(weft_run(rt, timed_waiter, &w, NULL), 0);
    timed_waiter(&w);
    assert_int_equal(weft_cond_destroy(&w.c), 0);
    assert_int_equal(weft_mutex_destroy(&w.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* wait_for times out, never early, and returns with the mutex held: a
 * second fiber's trylock fails until the waiter unlocks. */
struct timeout_check {
    weft_mutex m;
    weft_cond c;
    atomic_int returned, checked;
    int rc, trylock_rc, unlock_rc;
    uint64_t took;
};

static void *timeout_waiter(void *arg) {
    struct timeout_check *tc = arg;
    WT_CHECK_EQ(weft_mutex_lock(&tc->m), 0);
    uint64_t t0 = wt_clock_ns();
    tc->rc = weft_cond_wait_for(&tc->c, &tc->m, 30 * WEFT_MSEC);
    tc->took = wt_clock_ns() - t0;
    atomic_store(&tc->returned, 1);
    wt_yield_until(&tc->checked, 2000000000L);
    tc->unlock_rc = weft_mutex_unlock(&tc->m);
    return NULL;
}

static void *timeout_checker(void *arg) {
    struct timeout_check *tc = arg;
    wt_yield_until(&tc->returned, 2000000000L);
    tc->trylock_rc = weft_mutex_trylock(&tc->m);
    if (tc->trylock_rc == 0)
        WT_CHECK_EQ(weft_mutex_unlock(&tc->m), 0);
    atomic_store(&tc->checked, 1);
    return NULL;
}

static void *trylock_busy(void *arg) {
    WT_CHECK_EQ(weft_mutex_trylock(arg), -EBUSY);
    return NULL;
}

static void test_cond_wait_for_times_out_with_mutex_held(void **state) {
    weft_runtime *rt = *state;
    struct timeout_check tc = {0};
    assert_int_equal(weft_mutex_init(&tc.m), 0);
    assert_int_equal(weft_cond_init(&tc.c), 0);
    weft_task *w = spawn(rt, timeout_waiter, &tc);
    weft_task *k = spawn(rt, timeout_checker, &tc);
    join_task(w);
    join_task(k);
    assert_int_equal(tc.rc, -ETIMEDOUT);
    assert_true(tc.took >= 30 * WEFT_MSEC);
    assert_int_equal(tc.trylock_rc, -EBUSY);
    assert_int_equal(tc.unlock_rc, 0);

    /* The same from a plain thread, and with a zero timeout. */
    static const uint64_t tmo[] = {0, 1, 20 * WEFT_MSEC};
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
        assert_int_equal(weft_mutex_lock(&tc.m), 0);
        uint64_t t0 = wt_clock_ns();
        int rc = weft_cond_wait_for(&tc.c, &tc.m, tmo[i]);
        uint64_t took = wt_clock_ns() - t0;
        assert_int_equal(weft_run(rt, trylock_busy, &tc.m, NULL), 0);
        assert_int_equal(weft_mutex_unlock(&tc.m), 0);
        assert_int_equal(rc, -ETIMEDOUT);
        assert_true(took >= tmo[i]);
    }
    assert_int_equal(weft_cond_destroy(&tc.c), 0);
    assert_int_equal(weft_mutex_destroy(&tc.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A waiter whose timeout expires while another holds the mutex returns
 * only once it has the mutex back. */
struct reacquire {
    weft_mutex m;
    weft_cond c;
    atomic_int waiting, released;
    int rc, saw_released;
};

static void *reacquire_waiter(void *arg) {
    struct reacquire *r = arg;
    WT_CHECK_EQ(weft_mutex_lock(&r->m), 0);
    atomic_store(&r->waiting, 1);
    r->rc = weft_cond_wait_for(&r->c, &r->m, 20 * WEFT_MSEC);
    r->saw_released = atomic_load(&r->released);
    WT_CHECK_EQ(weft_mutex_unlock(&r->m), 0);
    return NULL;
}

static void *reacquire_holder(void *arg) {
    struct reacquire *r = arg;
    wt_yield_until(&r->waiting, 2000000000L);
    /* Granted only once the waiter has released it inside the wait. */
    WT_CHECK_EQ(weft_mutex_lock(&r->m), 0);
    WT_CHECK_EQ(weft_sleep(80 * WEFT_MSEC), 0);
    atomic_store(&r->released, 1);
    WT_CHECK_EQ(weft_mutex_unlock(&r->m), 0);
    return NULL;
}

static void test_cond_timeout_reacquires_mutex(void **state) {
    weft_runtime *rt = *state;
    struct reacquire r = {0};
    assert_int_equal(weft_mutex_init(&r.m), 0);
    assert_int_equal(weft_cond_init(&r.c), 0);
    weft_task *w = spawn(rt, reacquire_waiter, &r);
    weft_task *h = spawn(rt, reacquire_holder, &r);
    join_task(w);
    join_task(h);
    assert_int_equal(r.rc, -ETIMEDOUT);
    assert_int_equal(r.saw_released, 1);
    assert_int_equal(weft_cond_destroy(&r.c), 0);
    assert_int_equal(weft_mutex_destroy(&r.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * No spurious wake-ups: two waiters (a fiber and a plain thread) that are
 * never signalled keep waiting for their whole timeout while, on the same
 * mutex, another condition is signalled and broadcast in a loop, and on
 * the same condition younger waiters time out or are cancelled.
 */
#define QUIET_WAIT (300 * WEFT_MSEC)

struct quiet {
    weft_mutex m;
    weft_cond c, other;
    int registered;          /* protected by m */
    atomic_int stop, victim_started;
};

static void *quiet_long_waiter(void *arg) {
    struct quiet *q = arg;
    WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
    q->registered++;
    uint64_t t0 = wt_clock_ns();
    int rc = weft_cond_wait_for(&q->c, &q->m, QUIET_WAIT);
    uint64_t took = wt_clock_ns() - t0;
    WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    WT_CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_NOT_EARLY(took, QUIET_WAIT);
    return NULL;
}

static void *quiet_short_waiter(void *arg) {
    struct quiet *q = arg;
    while (!atomic_load(&q->stop)) {
        WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        WT_CHECK_EQ(weft_cond_wait_for(&q->c, &q->m, 3 * WEFT_MSEC),
                    -ETIMEDOUT);
        WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    }
    return NULL;
}

static void *quiet_other_waiter(void *arg) {
    struct quiet *q = arg;
    while (!atomic_load(&q->stop)) {
        WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        int rc = weft_cond_wait_for(&q->other, &q->m, 2 * WEFT_MSEC);
        WT_CHECK(rc == 0 || rc == -ETIMEDOUT);
        WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    }
    return NULL;
}

static void *quiet_noise(void *arg) {
    struct quiet *q = arg;
    while (!atomic_load(&q->stop)) {
        WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
        WT_CHECK_EQ(weft_cond_signal(&q->other), 0);
        WT_CHECK_EQ(weft_cond_broadcast(&q->other), 0);
        WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
        WT_CHECK_EQ(weft_sleep(200 * WEFT_USEC), 0);
    }
    return NULL;
}

static void *quiet_cancelled_waiter(void *arg) {
    struct quiet *q = arg;
    WT_CHECK_EQ(weft_mutex_lock(&q->m), 0);
    atomic_store(&q->victim_started, 1);
    WT_CHECK_EQ(weft_cond_wait(&q->c, &q->m), -ECANCELED);
    WT_CHECK_EQ(weft_mutex_unlock(&q->m), 0);
    return NULL;
}

static void test_cond_no_spurious_wakeups(void **state) {
    weft_runtime *rt = *state;
    struct quiet q = {0};
    assert_int_equal(weft_mutex_init(&q.m), 0);
    assert_int_equal(weft_cond_init(&q.c), 0);
    assert_int_equal(weft_cond_init(&q.other), 0);
    weft_task *lf = spawn(rt, quiet_long_waiter, &q);
    pthread_t lt = start_thread(quiet_long_waiter, &q);
    bool registered = poll_locked_ge(&q.m, &q.registered, 2);
    weft_task *t[5];
    t[0] = spawn(rt, quiet_short_waiter, &q);
    t[1] = spawn(rt, quiet_other_waiter, &q);
    t[2] = spawn(rt, quiet_noise, &q);
    t[3] = spawn(rt, quiet_noise, &q);
    t[4] = spawn(rt, quiet_cancelled_waiter, &q);
    pthread_t st = start_thread(quiet_short_waiter, &q);
    bool victim = poll_ge(&q.victim_started, 1);
    settle();
    assert_int_equal(weft_cancel(t[4]), 0);
    join_task(lf);
    join_thread(lt);
    atomic_store(&q.stop, 1);
    join_thread(st);
    for (int i = 0; i < 5; i++)
        join_task(t[i]);
    assert_true(registered);
    assert_true(victim);
    assert_int_equal(weft_cond_destroy(&q.other), 0);
    assert_int_equal(weft_cond_destroy(&q.c), 0);
    assert_int_equal(weft_mutex_destroy(&q.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* wait without holding the mutex (unlocked, or held by someone else):
 * -EPERM, nothing changed. */
static void *cond_eperm(void *arg) {
    weft_mutex *held = arg;
    weft_mutex m;
    weft_cond c;
    WT_CHECK_EQ(weft_mutex_init(&m), 0);
    WT_CHECK_EQ(weft_cond_init(&c), 0);
    /* The untimed wait only once the timed one was refused, so that a
     * missing check fails instead of hanging. */
    int rc = weft_cond_wait_for(&c, &m, WEFT_MSEC);
    WT_CHECK_EQ(rc, -EPERM);
    if (rc == -EPERM)
        WT_CHECK_EQ(weft_cond_wait(&c, &m), -EPERM);
    WT_CHECK_EQ(weft_mutex_unlock(&m), -EPERM); /* still unlocked */
    if (held) {
        rc = weft_cond_wait_for(&c, held, WEFT_MSEC);
        WT_CHECK_EQ(rc, -EPERM);
        if (rc == -EPERM)
            WT_CHECK_EQ(weft_cond_wait(&c, held), -EPERM);
        WT_CHECK_EQ(weft_mutex_trylock(held), -EBUSY); /* still held */
    }
    WT_CHECK_EQ(weft_cond_destroy(&c), 0);
    WT_CHECK_EQ(weft_mutex_destroy(&m), 0);
    return NULL;
}

/* The other holder lets go by itself after a while, so that an
 * implementation that wrongly waits (and then relocks) fails the checks
 * instead of deadlocking. */
#define HOLD (300 * WEFT_MSEC)

struct eperm {
    weft_mutex held;
    atomic_int checked, holding;
};

static void *cond_eperm_fiber(void *arg) {
    struct eperm *e = arg;
    cond_eperm(&e->held);
    atomic_store(&e->checked, 1);
    return NULL;
}

static void *hold_a_while(void *arg) {
    struct eperm *e = arg;
    WT_CHECK_EQ(weft_mutex_lock(&e->held), 0);
    atomic_store(&e->holding, 1);
    WT_CHECK_EQ(weft_sleep(HOLD), 0);
    WT_CHECK_EQ(weft_mutex_unlock(&e->held), 0);
    return NULL;
}

static void test_cond_wait_without_mutex(void **state) {
    weft_runtime *rt = *state;
    struct eperm e = {0};
    assert_int_equal(weft_mutex_init(&e.held), 0);
    /* A fiber; the mutex held by the main thread. */
    assert_int_equal(weft_mutex_lock(&e.held), 0);
    weft_task *t = spawn(rt, cond_eperm_fiber, &e);
    bool checked = wt_wait_atomic_ge(&e.checked, 1, HOLD);
    assert_int_equal(weft_mutex_unlock(&e.held), 0);
    join_task(t);
    /* The main thread; the mutex held by a fiber. */
    t = spawn(rt, hold_a_while, &e);
    bool holding = poll_ge(&e.holding, 1);
    cond_eperm(&e.held);
    join_task(t);
    assert_true(checked);
    assert_true(holding);
    assert_int_equal(weft_mutex_destroy(&e.held), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A fiber cancelled inside cond_wait returns -ECANCELED with the mutex
 * held again: while another fiber holds the mutex at the time of the
 * cancel, the waiter returns only after that fiber unlocks. */
struct cond_cancel {
    weft_mutex m;
    weft_cond c;
    atomic_int waiting, holder_locked, go, released;
    int rc, saw_released, unlock_rc;
};

static void *cancelled_cond_waiter(void *arg) {
    struct cond_cancel *cc = arg;
    WT_CHECK_EQ(weft_mutex_lock(&cc->m), 0);
    atomic_store(&cc->waiting, 1);
    cc->rc = weft_cond_wait(&cc->c, &cc->m);
    cc->saw_released = atomic_load(&cc->released);
    cc->unlock_rc = weft_mutex_unlock(&cc->m);
    return NULL;
}

static void *cancel_time_holder(void *arg) {
    struct cond_cancel *cc = arg;
    wt_yield_until(&cc->waiting, 2000000000L);
    WT_CHECK_EQ(weft_mutex_lock(&cc->m), 0);
    atomic_store(&cc->holder_locked, 1);
    wt_yield_until(&cc->go, 2000000000L);
    WT_CHECK_EQ(weft_sleep(30 * WEFT_MSEC), 0);
    atomic_store(&cc->released, 1);
    WT_CHECK_EQ(weft_mutex_unlock(&cc->m), 0);
    return NULL;
}

/* Sticky: once cancelled, a condition wait returns -ECANCELED at once,
 * with the mutex still held. */
static void *cond_wait_cancelled_first(void *arg) {
    struct cond_cancel *cc = arg;
    atomic_store(&cc->waiting, 1);
    yield_until_cancelled();
    WT_CHECK_EQ(weft_mutex_lock(&cc->m), 0);
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_cond_wait(&cc->c, &cc->m), -ECANCELED);
    WT_CHECK_EQ(weft_cond_wait_for(&cc->c, &cc->m, LONG_WAIT), -ECANCELED);
    /* A timeout of 0 does not block, so it is no cancellation point:
     * -ETIMEDOUT, as every timed wait, with the mutex still held. */
    WT_CHECK_EQ(weft_cond_wait_for(&cc->c, &cc->m, 0), -ETIMEDOUT);
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    WT_CHECK_EQ(weft_mutex_unlock(&cc->m), 0);
    return NULL;
}

static void test_cond_cancel(void **state) {
    weft_runtime *rt = *state;
    struct cond_cancel cc = {0};
    assert_int_equal(weft_mutex_init(&cc.m), 0);
    assert_int_equal(weft_cond_init(&cc.c), 0);
    weft_task *w = spawn(rt, cancelled_cond_waiter, &cc);
    weft_task *h = spawn(rt, cancel_time_holder, &cc);
    bool locked = poll_ge(&cc.holder_locked, 1);
    assert_int_equal(weft_cancel(w), 0);
    atomic_store(&cc.go, 1);
    join_task(w);
    join_task(h);
    assert_true(locked);
    assert_int_equal(cc.rc, -ECANCELED);
    assert_int_equal(cc.saw_released, 1);
    assert_int_equal(cc.unlock_rc, 0);

    atomic_store(&cc.waiting, 0);
    weft_task *s = spawn(rt, cond_wait_cancelled_first, &cc);
    bool started = poll_ge(&cc.waiting, 1);
    assert_int_equal(weft_cancel(s), 0);
    join_task(s);
    assert_true(started);
    assert_int_equal(weft_cond_destroy(&cc.c), 0);
    assert_int_equal(weft_mutex_destroy(&cc.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A waiter that left by cancel or timeout is out of the queue: the next
 * signal wakes the waiter behind it. */
struct leaver {
    weft_mutex m;
    weft_cond c;
    int waiting;  /* protected by m */
    int rc[2];
    uint64_t took[2];
    uint64_t first_timeout;
};

static void *leaver_wait(void *arg, int idx) {
    struct leaver *l = arg;
    WT_CHECK_EQ(weft_mutex_lock(&l->m), 0);
    l->waiting++;
    uint64_t tmo = idx == 0 ? l->first_timeout : LONG_WAIT;
    uint64_t t0 = wt_clock_ns();
    int rc = weft_cond_wait_for(&l->c, &l->m, tmo);
    l->took[idx] = wt_clock_ns() - t0;
    l->rc[idx] = rc;
    WT_CHECK_EQ(weft_mutex_unlock(&l->m), 0);
    return NULL;
}

static void *leaver_first(void *arg) {
    return leaver_wait(arg, 0);
}

static void *leaver_second(void *arg) {
    return leaver_wait(arg, 1);
}

static void check_leaver(weft_runtime *rt, bool by_cancel) {
    struct leaver l = {.first_timeout = by_cancel ? LONG_WAIT : 20 * WEFT_MSEC};
    assert_int_equal(weft_mutex_init(&l.m), 0);
    assert_int_equal(weft_cond_init(&l.c), 0);
    weft_task *a = spawn(rt, leaver_first, &l);
    bool ok = poll_locked_ge(&l.m, &l.waiting, 1);
    weft_task *b = spawn(rt, leaver_second, &l);
    ok = ok && poll_locked_ge(&l.m, &l.waiting, 2);
    if (by_cancel)
        assert_int_equal(weft_cancel(a), 0);
    join_task(a);
    assert_int_equal(weft_cond_signal(&l.c), 0);
    join_task(b);
    assert_true(ok);
    assert_int_equal(l.rc[0], by_cancel ? -ECANCELED : -ETIMEDOUT);
    assert_int_equal(l.rc[1], 0);
    assert_true(l.took[1] < PROMPT);
    assert_int_equal(weft_cond_destroy(&l.c), 0);
    assert_int_equal(weft_mutex_destroy(&l.m), 0);
}

static void test_cond_leavers_leave_the_queue(void **state) {
    check_leaver(*state, true);
    check_leaver(*state, false);
    WT_ASSERT_NO_FAILURES();
}

static void test_cond_destroy_busy(void **state) {
    weft_runtime *rt = *state;
    struct waiters w = {0};
    assert_int_equal(weft_mutex_init(&w.m), 0);
    assert_int_equal(weft_cond_init(&w.c), 0);
    weft_task *t = spawn(rt, cond_waiter, &w);
    bool registered = poll_locked_ge(&w.m, &w.waiting, 1);
    int destroy_rc = weft_cond_destroy(&w.c);
    assert_int_equal(weft_cond_signal(&w.c), 0);
    join_task(t);
    assert_true(registered);
    assert_int_equal(destroy_rc, -EBUSY);
    assert_int_equal(w.rc[0], 0);
    assert_int_equal(weft_cond_destroy(&w.c), 0);
    assert_int_equal(weft_cond_destroy(&w.c), -EINVAL);
    assert_int_equal(weft_mutex_destroy(&w.m), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- One worker: a waiting fiber frees its worker ---------------------- */

/*
 * The only worker runs A, which starts B and then waits (with a timeout
 * long enough to notice) for something only B does. If the wait blocked
 * the worker thread, B could not run and A's wait would time out.
 */
struct solo {
    weft_mutex m;
    weft_cond c;
    weft_sem s;
    weft_wg wg;
    int flag; /* protected by m */
    int rc;
    uint64_t took;
};

static void *solo_cond_b(void *arg) {
    struct solo *s = arg;
    WT_CHECK_EQ(weft_mutex_lock(&s->m), 0);
    s->flag = 1;
    WT_CHECK_EQ(weft_cond_signal(&s->c), 0);
    WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
    return NULL;
}

static void *solo_sem_b(void *arg) {
    WT_CHECK_EQ(weft_sem_release(&((struct solo *)arg)->s), 0);
    return NULL;
}

static void *solo_wg_b(void *arg) {
    WT_CHECK_EQ(weft_wg_done(&((struct solo *)arg)->wg), 0);
    return NULL;
}

static void *solo_a(void *arg) {
    struct solo *s = arg;
    weft_task *t[3];
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_mutex_lock(&s->m), 0);
    WT_CHECK_EQ(weft_spawn(NULL, solo_cond_b, s, &t[0]), 0);
    while (!s->flag && (s->rc = weft_cond_wait_for(&s->c, &s->m, PROMPT)) == 0)
        ;
    WT_CHECK_EQ(weft_mutex_unlock(&s->m), 0);
    WT_CHECK_EQ(s->rc, 0);
    WT_CHECK_EQ(weft_spawn(NULL, solo_sem_b, s, &t[1]), 0);
    WT_CHECK_EQ(weft_sem_acquire_for(&s->s, PROMPT), 0);
    WT_CHECK_EQ(weft_wg_add(&s->wg, 1), 0);
    WT_CHECK_EQ(weft_spawn(NULL, solo_wg_b, s, &t[2]), 0);
    WT_CHECK_EQ(weft_wg_wait(&s->wg), 0);
    s->took = wt_clock_ns() - t0;
    for (int i = 0; i < 3; i++)
        WT_CHECK_EQ(weft_join(t[i], NULL), 0);
    return NULL;
}

static void test_sync_waits_free_the_worker(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(1);
    assert_non_null(rt);
    struct solo s = {0};
    assert_int_equal(weft_mutex_init(&s.m), 0);
    assert_int_equal(weft_cond_init(&s.c), 0);
    assert_int_equal(weft_sem_init(&s.s, 0), 0);
    assert_int_equal(weft_wg_init(&s.wg), 0);
    assert_int_equal(weft_run(rt, solo_a, &s, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_true(s.took < PROMPT);
    assert_int_equal(weft_cond_destroy(&s.c), 0);
    assert_int_equal(weft_mutex_destroy(&s.m), 0);
    assert_int_equal(weft_sem_destroy(&s.s), 0);
    assert_int_equal(weft_wg_destroy(&s.wg), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Semaphore --------------------------------------------------------- */

static void test_sem_counts(void **state) {
    (void)state;
    weft_sem s;
    assert_int_equal(weft_sem_init(&s, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_sem_try_acquire(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_acquire_for(&s, 0), -ETIMEDOUT);
    assert_int_equal(weft_sem_release(&s), 0);
    assert_int_equal(weft_sem_release(&s), 0);
    assert_int_equal(weft_sem_acquire(&s), 0);          /* available: at once */
    assert_int_equal(weft_sem_acquire_for(&s, 0), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&s), 0);

    assert_int_equal(weft_sem_init(&s, 0), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&s), 0);

    /* Past UINT32_MAX: -EOVERFLOW, count unchanged. */
    assert_int_equal(weft_sem_init(&s, UINT32_MAX), 0);
    assert_int_equal(weft_sem_release(&s), -EOVERFLOW);
    assert_int_equal(weft_sem_try_acquire(&s), 0);
    assert_int_equal(weft_sem_release(&s), 0);
    assert_int_equal(weft_sem_release(&s), -EOVERFLOW);
    assert_int_equal(weft_sem_destroy(&s), 0);
}

/* acquire blocks until a release, from a fiber and from a plain thread. */
struct sem_pair {
    weft_sem s;
    atomic_int started, released;
    int rc, saw_released;
};

static void *sem_blocking_acquirer(void *arg) {
    struct sem_pair *p = arg;
    atomic_store(&p->started, 1);
    p->rc = weft_sem_acquire(&p->s);
    p->saw_released = atomic_load(&p->released);
    return NULL;
}

static void *sem_late_releaser(void *arg) {
    struct sem_pair *p = arg;
    WT_CHECK_EQ(weft_sleep(SETTLE), 0);
    atomic_store(&p->released, 1);
    WT_CHECK_EQ(weft_sem_release(&p->s), 0);
    return NULL;
}

static void test_sem_acquire_blocks_until_release(void **state) {
    weft_runtime *rt = *state;
    /* Fiber waits, plain thread releases. */
    struct sem_pair p = {0};
    assert_int_equal(weft_sem_init(&p.s, 0), 0);
    weft_task *t = spawn(rt, sem_blocking_acquirer, &p);
    bool started = poll_ge(&p.started, 1);
    settle();
    atomic_store(&p.released, 1);
    assert_int_equal(weft_sem_release(&p.s), 0);
    join_task(t);
    assert_true(started);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.saw_released, 1);
    assert_int_equal(weft_sem_try_acquire(&p.s), -EAGAIN);

    /* Plain thread waits, fiber releases. */
    atomic_store(&p.released, 0);
    t = spawn(rt, sem_late_releaser, &p);
    sem_blocking_acquirer(&p);
    join_task(t);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.saw_released, 1);
    assert_int_equal(weft_sem_try_acquire(&p.s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&p.s), 0);
    WT_ASSERT_NO_FAILURES();
}

/* acquire_for times out, never early, and takes nothing. */
static void *sem_timeouts(void *arg) {
    weft_sem *s = arg;
    static const uint64_t tmo[] = {0, 1, 50 * WEFT_USEC, 5 * WEFT_MSEC,
                                   30 * WEFT_MSEC};
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
        uint64_t t0 = wt_clock_ns();
        WT_CHECK_EQ(weft_sem_acquire_for(s, tmo[i]), -ETIMEDOUT);
        uint64_t took = wt_clock_ns() - t0;
        CHECK_NOT_EARLY(took, tmo[i]);
    }
    return NULL;
}

static void test_sem_acquire_for_timeout(void **state) {
    weft_runtime *rt = *state;
    weft_sem s;
    assert_int_equal(weft_sem_init(&s, 0), 0);
    weft_task *t = spawn(rt, sem_timeouts, &s);
    sem_timeouts(&s);
    join_task(t);
    assert_int_equal(weft_sem_release(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&s), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * FIFO hand-off: waiters (fibers and threads) queue one after another;
 * each release goes to the oldest, directly: a try_acquire right after the
 * release finds nothing.
 */
enum { SEM_WAITERS = 5 };

struct sem_fifo {
    weft_sem s;
    atomic_int next, got;
    int order[SEM_WAITERS];
    int rc[SEM_WAITERS];
};

static void *sem_fifo_waiter(void *arg) {
    struct sem_fifo *f = arg;
    int me = atomic_fetch_add(&f->next, 1);
    f->rc[me] = weft_sem_acquire_for(&f->s, LONG_WAIT);
    f->order[atomic_fetch_add(&f->got, 1)] = me;
    return NULL;
}

static void test_sem_fifo_handoff(void **state) {
    weft_runtime *rt = *state;
    struct sem_fifo f = {0};
    assert_int_equal(weft_sem_init(&f.s, 0), 0);
    weft_task *t[SEM_WAITERS];
    pthread_t th[SEM_WAITERS];
    for (int i = 0; i < SEM_WAITERS; i++) {
        if (i % 2)
            th[i] = start_thread(sem_fifo_waiter, &f);
        else
            t[i] = spawn(rt, sem_fifo_waiter, &f);
        poll_ge(&f.next, i + 1);
        settle();
    }
    int barged[SEM_WAITERS], got_after[SEM_WAITERS];
    for (int i = 0; i < SEM_WAITERS; i++) {
        assert_int_equal(weft_sem_release(&f.s), 0);
        barged[i] = weft_sem_try_acquire(&f.s);
        if (barged[i] == 0) /* give the unit back to its owner */
            assert_int_equal(weft_sem_release(&f.s), 0);
        poll_ge(&f.got, i + 1);
        got_after[i] = atomic_load(&f.got);
    }
    for (int i = 0; i < SEM_WAITERS; i++) {
        if (i % 2)
            join_thread(th[i]);
        else
            join_task(t[i]);
    }
    for (int i = 0; i < SEM_WAITERS; i++) {
        assert_int_equal(barged[i], -EAGAIN);
        assert_int_equal(got_after[i], i + 1);
        assert_int_equal(f.rc[i], 0);
        assert_int_equal(f.order[i], i);
    }
    assert_int_equal(weft_sem_try_acquire(&f.s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&f.s), 0);
    WT_ASSERT_NO_FAILURES();
}

/*
 * Cancellation: a fiber waiting in acquire or acquire_for returns
 * -ECANCELED and takes no unit; the waiter behind it gets the next
 * release. Once cancelled, acquire still succeeds while units are
 * available, and returns -ECANCELED at once when it would block.
 */
struct sem_cancel {
    weft_sem s;
    atomic_int started;
    int rc;
    bool timed;
    uint64_t took;
};

static void *sem_cancel_waiter(void *arg) {
    struct sem_cancel *c = arg;
    atomic_store(&c->started, 1);
    uint64_t t0 = wt_clock_ns();
    c->rc = c->timed ? weft_sem_acquire_for(&c->s, LONG_WAIT)
                     : weft_sem_acquire(&c->s);
    c->took = wt_clock_ns() - t0;
    return NULL;
}

static void *sem_cancelled_first(void *arg) {
    weft_sem *s = arg;
    yield_until_cancelled();
    WT_CHECK_EQ(weft_sem_acquire(s), 0);
    WT_CHECK_EQ(weft_sem_acquire_for(s, LONG_WAIT), 0);
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_sem_acquire(s), -ECANCELED);
    WT_CHECK_EQ(weft_sem_acquire_for(s, LONG_WAIT), -ECANCELED);
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    WT_CHECK_EQ(weft_sem_try_acquire(s), -EAGAIN);
    WT_CHECK_EQ(weft_sem_release(s), 0);
    return NULL;
}

static void test_sem_cancel(void **state) {
    weft_runtime *rt = *state;
    for (int timed = 0; timed < 2; timed++) {
        struct sem_cancel a = {.timed = timed};
        assert_int_equal(weft_sem_init(&a.s, 0), 0);
        weft_task *ta = spawn(rt, sem_cancel_waiter, &a);
        poll_ge(&a.started, 1);
        settle();
        assert_int_equal(weft_cancel(ta), 0);
        join_task(ta);
        assert_int_equal(a.rc, -ECANCELED);
        assert_true(a.took < PROMPT);
        /* The cancelled waiter took nothing. */
        assert_int_equal(weft_sem_release(&a.s), 0);
        assert_int_equal(weft_sem_try_acquire(&a.s), 0);
        assert_int_equal(weft_sem_try_acquire(&a.s), -EAGAIN);
        assert_int_equal(weft_sem_destroy(&a.s), 0);
    }

    weft_sem s;
    assert_int_equal(weft_sem_init(&s, 2), 0);
    weft_task *t = spawn_running(rt, sem_cancelled_first, &s);
    assert_int_equal(weft_cancel(t), 0);
    join_task(t);
    assert_int_equal(weft_sem_try_acquire(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&s), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A cancelled waiter leaves the queue: the release goes to the waiter
 * behind it. */
struct sem_two {
    weft_sem s;
    atomic_int started[2];
    int rc[2];
    uint64_t took[2];
};

static void *sem_two_waiter(void *arg, int idx) {
    struct sem_two *w = arg;
    atomic_store(&w->started[idx], 1);
    uint64_t t0 = wt_clock_ns();
    w->rc[idx] = weft_sem_acquire_for(&w->s, LONG_WAIT);
    w->took[idx] = wt_clock_ns() - t0;
    return NULL;
}

static void *sem_two_first(void *arg) {
    return sem_two_waiter(arg, 0);
}

static void *sem_two_second(void *arg) {
    return sem_two_waiter(arg, 1);
}

static void test_sem_cancelled_waiter_leaves_queue(void **state) {
    weft_runtime *rt = *state;
    struct sem_two w = {0};
    assert_int_equal(weft_sem_init(&w.s, 0), 0);
    weft_task *a = spawn(rt, sem_two_first, &w);
    poll_ge(&w.started[0], 1);
    settle();
    weft_task *b = spawn(rt, sem_two_second, &w);
    poll_ge(&w.started[1], 1);
    settle();
    assert_int_equal(weft_cancel(a), 0);
    join_task(a);
    assert_int_equal(weft_sem_release(&w.s), 0);
    join_task(b);
    assert_int_equal(w.rc[0], -ECANCELED);
    assert_int_equal(w.rc[1], 0);
    assert_true(w.took[1] < PROMPT);
    assert_int_equal(weft_sem_try_acquire(&w.s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&w.s), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_sem_destroy_busy(void **state) {
    weft_runtime *rt = *state;
    struct sem_pair p = {0};
    assert_int_equal(weft_sem_init(&p.s, 0), 0);
    weft_task *t = spawn(rt, sem_blocking_acquirer, &p);
    poll_ge(&p.started, 1);
    settle();
    int destroy_rc = weft_sem_destroy(&p.s);
    atomic_store(&p.released, 1);
    assert_int_equal(weft_sem_release(&p.s), 0);
    join_task(t);
    assert_int_equal(destroy_rc, -EBUSY);
    assert_int_equal(p.rc, 0);
    assert_int_equal(weft_sem_destroy(&p.s), 0);
    assert_int_equal(weft_sem_destroy(&p.s), -EINVAL);
    WT_ASSERT_NO_FAILURES();
}

/* A bounded resource shared by fibers and threads: never more than K
 * holders; no unit lost or created. */
enum { SEM_K = 2, SEM_USERS_F = 4, SEM_USERS_T = 2, SEM_ITERS = 1000 };

struct bounded {
    weft_sem s;
    atomic_int holders, max_holders, next_id;
};

static void *sem_user(void *arg) {
    struct bounded *b = arg;
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)atomic_fetch_add(&b->next_id, 1));
    for (int i = 0; i < SEM_ITERS; i++) {
        switch (wt_rand_below(&rng, 3)) {
        case 0:
            WT_CHECK_EQ(weft_sem_acquire(&b->s), 0);
            break;
        case 1:
            WT_CHECK_EQ(weft_sem_acquire_for(&b->s, LONG_WAIT), 0);
            break;
        default: {
            int rc;
            while ((rc = weft_sem_try_acquire(&b->s)) == -EAGAIN)
                weft_yield();
            WT_CHECK_EQ(rc, 0);
        }
        }
        int h = atomic_fetch_add(&b->holders, 1) + 1;
        WT_CHECK(h <= SEM_K);
        int m = atomic_load(&b->max_holders);
        while (h > m && !atomic_compare_exchange_weak(&b->max_holders, &m, h))
            ;
        if (wt_rand_below(&rng, 4) == 0)
            weft_yield();
        atomic_fetch_sub(&b->holders, 1);
        WT_CHECK_EQ(weft_sem_release(&b->s), 0);
    }
    return NULL;
}

static void test_sem_fibers_and_threads(void **state) {
    weft_runtime *rt = *state;
    struct bounded b = {0};
    assert_int_equal(weft_sem_init(&b.s, SEM_K), 0);
    weft_task *t[SEM_USERS_F];
    pthread_t th[SEM_USERS_T];
    for (int i = 0; i < SEM_USERS_F; i++)
        t[i] = spawn(rt, sem_user, &b);
    for (int i = 0; i < SEM_USERS_T; i++)
        th[i] = start_thread(sem_user, &b);
    for (int i = 0; i < SEM_USERS_T; i++)
        join_thread(th[i]);
    for (int i = 0; i < SEM_USERS_F; i++)
        join_task(t[i]);
    assert_true(atomic_load(&b.max_holders) <= SEM_K);
    for (int i = 0; i < SEM_K; i++)
        assert_int_equal(weft_sem_try_acquire(&b.s), 0);
    assert_int_equal(weft_sem_try_acquire(&b.s), -EAGAIN);
    assert_int_equal(weft_sem_destroy(&b.s), 0);
    WT_ASSERT_NO_FAILURES();
}

/* ---- Wait group -------------------------------------------------------- */

static void *wg_wait_now(void *arg) {
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_wg_wait(arg), 0);
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    return NULL;
}

static void test_wg_counts(void **state) {
    weft_runtime *rt = *state;
    weft_wg wg;
    assert_int_equal(weft_wg_init(&wg), 0);
    /* Zero: wait returns at once, from a thread and from a fiber. */
    assert_int_equal(weft_wg_wait(&wg), 0);
    assert_int_equal(weft_run(rt, wg_wait_now, &wg, NULL), 0);
    /* Below zero: refused, count unchanged. */
    assert_int_equal(weft_wg_add(&wg, -1), -EINVAL);
    assert_int_equal(weft_wg_done(&wg), -EINVAL);
    assert_int_equal(weft_wg_add(&wg, INT32_MIN), -EINVAL);
    assert_int_equal(weft_wg_add(&wg, 0), 0);
    assert_int_equal(weft_wg_wait(&wg), 0);
    assert_int_equal(weft_wg_add(&wg, 2), 0);
    assert_int_equal(weft_wg_add(&wg, -3), -EINVAL);
    assert_int_equal(weft_wg_add(&wg, 3), 0);   /* 5 */
    assert_int_equal(weft_wg_add(&wg, -4), 0);  /* 1 */
    assert_int_equal(weft_wg_add(&wg, -2), -EINVAL);
    assert_int_equal(weft_wg_done(&wg), 0);     /* 0 */
    assert_int_equal(weft_wg_done(&wg), -EINVAL);
    assert_int_equal(weft_wg_wait(&wg), 0);
    assert_int_equal(weft_wg_destroy(&wg), 0);
    WT_ASSERT_NO_FAILURES();
}

/* Workers (fibers and threads) do their share and call done; waiters
 * (fibers, threads, the main thread) see all the work once wait returns.
 * Then the same wait group is reused for a second round. */
enum { WG_WORKERS_F = 4, WG_WORKERS_T = 2, WG_WAITERS_F = 40, WG_WAITERS_T = 2 };

struct wg_job {
    weft_wg wg;
    atomic_int work, next_id, woken, started_waiters;
    int expect;
};

static void *wg_worker(void *arg) {
    struct wg_job *j = arg;
    uint64_t rng = wt_mix(wt_seed(), (uint64_t)atomic_fetch_add(&j->next_id, 1));
    WT_CHECK_EQ(weft_sleep((1 + wt_rand_below(&rng, 10)) * WEFT_MSEC), 0);
    atomic_fetch_add(&j->work, 1);
    WT_CHECK_EQ(weft_wg_done(&j->wg), 0);
    return NULL;
}

static void *wg_waiter(void *arg) {
    struct wg_job *j = arg;
    atomic_fetch_add(&j->started_waiters, 1);
    WT_CHECK_EQ(weft_wg_wait(&j->wg), 0);
    WT_CHECK_EQ(atomic_load(&j->work), j->expect);
    atomic_fetch_add(&j->woken, 1);
    return NULL;
}

static void run_wg_round(weft_runtime *rt, struct wg_job *j) {
    atomic_store(&j->work, 0);
    atomic_store(&j->woken, 0);
    atomic_store(&j->started_waiters, 0);
    j->expect = WG_WORKERS_F + WG_WORKERS_T;
    /* One extra count, held by the main thread until every waiter is
     * known to be waiting. */
    assert_int_equal(weft_wg_add(&j->wg, j->expect + 1), 0);
    weft_task *wt[WG_WAITERS_F], *kt[WG_WORKERS_F];
    pthread_t wth[WG_WAITERS_T], kth[WG_WORKERS_T];
    for (int i = 0; i < WG_WAITERS_F; i++)
        wt[i] = spawn(rt, wg_waiter, j);
    for (int i = 0; i < WG_WAITERS_T; i++)
        wth[i] = start_thread(wg_waiter, j);
    for (int i = 0; i < WG_WORKERS_F; i++)
        kt[i] = spawn(rt, wg_worker, j);
    for (int i = 0; i < WG_WORKERS_T; i++)
        kth[i] = start_thread(wg_worker, j);
    bool started = poll_ge(&j->started_waiters, WG_WAITERS_F + WG_WAITERS_T);
    bool worked = poll_ge(&j->work, j->expect);
    settle();
    int woken_early = atomic_load(&j->woken);
    assert_int_equal(weft_wg_done(&j->wg), 0);
    assert_int_equal(weft_wg_wait(&j->wg), 0);
    for (int i = 0; i < WG_WORKERS_T; i++)
        join_thread(kth[i]);
    for (int i = 0; i < WG_WAITERS_T; i++)
        join_thread(wth[i]);
    for (int i = 0; i < WG_WORKERS_F; i++)
        join_task(kt[i]);
    for (int i = 0; i < WG_WAITERS_F; i++)
        join_task(wt[i]);
    assert_true(started);
    assert_true(worked);
    assert_int_equal(woken_early, 0);
    assert_int_equal(atomic_load(&j->woken), WG_WAITERS_F + WG_WAITERS_T);
}

static void test_wg_fibers_and_threads(void **state) {
    weft_runtime *rt = *state;
    struct wg_job j = {0};
    assert_int_equal(weft_wg_init(&j.wg), 0);
    run_wg_round(rt, &j);
    run_wg_round(rt, &j); /* reusable once back at zero */
    assert_int_equal(weft_wg_destroy(&j.wg), 0);
    WT_ASSERT_NO_FAILURES();
}

/* A fiber waiting in wg_wait is cancelled: -ECANCELED, count unchanged,
 * the other waiter unaffected. Once cancelled, wait at zero still
 * succeeds. */
struct wg_cancel {
    weft_wg *wg;
    atomic_int started, returned;
    int rc;
    uint64_t took;
};

static void *wg_cancel_waiter(void *arg) {
    struct wg_cancel *c = arg;
    atomic_store(&c->started, 1);
    uint64_t t0 = wt_clock_ns();
    c->rc = weft_wg_wait(c->wg);
    c->took = wt_clock_ns() - t0;
    atomic_store(&c->returned, 1);
    return NULL;
}

static void *wg_cancelled_first(void *arg) {
    struct wg_cancel *c = arg;
    atomic_store(&c->started, 1);
    yield_until_cancelled();
    uint64_t t0 = wt_clock_ns();
    WT_CHECK_EQ(weft_wg_wait(c->wg), -ECANCELED); /* count 1: would block */
    WT_CHECK(wt_clock_ns() - t0 < PROMPT);
    WT_CHECK_EQ(weft_wg_done(c->wg), 0);
    WT_CHECK_EQ(weft_wg_wait(c->wg), 0);          /* zero: no block */
    return NULL;
}

static void test_wg_cancel(void **state) {
    weft_runtime *rt = *state;
    weft_wg wg;
    assert_int_equal(weft_wg_init(&wg), 0);
    assert_int_equal(weft_wg_add(&wg, 2), 0);
    struct wg_cancel a = {.wg = &wg}, b = {.wg = &wg};
    weft_task *ta = spawn(rt, wg_cancel_waiter, &a);
    weft_task *tb = spawn(rt, wg_cancel_waiter, &b);
    poll_ge(&a.started, 1);
    poll_ge(&b.started, 1);
    settle();
    assert_int_equal(weft_cancel(ta), 0);
    join_task(ta);
    assert_int_equal(a.rc, -ECANCELED);
    assert_true(a.took < PROMPT);
    /* Count unchanged at 2; b waits on. */
    assert_int_equal(weft_wg_add(&wg, -3), -EINVAL);
    assert_int_equal(weft_wg_done(&wg), 0);
    settle();
    int b_early = atomic_load(&b.returned);
    assert_int_equal(weft_wg_done(&wg), 0);
    join_task(tb);
    assert_int_equal(b_early, 0);
    assert_int_equal(b.rc, 0);

    /* A fiber cancelled before it waits. */
    struct wg_cancel c = {.wg = &wg};
    assert_int_equal(weft_wg_add(&wg, 1), 0);
    weft_task *tc = spawn(rt, wg_cancelled_first, &c);
    poll_ge(&c.started, 1);
    assert_int_equal(weft_cancel(tc), 0);
    join_task(tc);
    assert_int_equal(weft_wg_done(&wg), -EINVAL); /* tc brought it to 0 */
    assert_int_equal(weft_wg_destroy(&wg), 0);
    WT_ASSERT_NO_FAILURES();
}

static void test_wg_destroy_busy(void **state) {
    weft_runtime *rt = *state;
    weft_wg wg;
    struct wg_cancel w = {.wg = &wg};
    assert_int_equal(weft_wg_init(&wg), 0);
    assert_int_equal(weft_wg_add(&wg, 1), 0);
    weft_task *t = spawn(rt, wg_cancel_waiter, &w);
    poll_ge(&w.started, 1);
    settle();
    int destroy_rc = weft_wg_destroy(&wg);
    assert_int_equal(weft_wg_done(&wg), 0);
    join_task(t);
    assert_int_equal(destroy_rc, -EBUSY);
    assert_int_equal(w.rc, 0);
    assert_int_equal(weft_wg_destroy(&wg), 0);
    assert_int_equal(weft_wg_destroy(&wg), -EINVAL);
    WT_ASSERT_NO_FAILURES();
}

#define RT_TEST(f) cmocka_unit_test_setup_teardown(f, setup_rt, teardown_rt)

int main(void) {
    wt_init();
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        RT_TEST(test_sync_null_args),
        RT_TEST(test_sync_never_initialised),
        RT_TEST(test_sync_destroyed),
        RT_TEST(test_mutex_basics),
        RT_TEST(test_mutex_other_holders),
        cmocka_unit_test(test_mutex_owner_is_the_fiber),
        cmocka_unit_test(test_mutex_owner_id_not_reused),
        RT_TEST(test_mutex_lock_not_cancellation_point),
        RT_TEST(test_mutex_fibers_and_threads),
        RT_TEST(test_mutex_no_starvation),
        RT_TEST(test_cond_producer_consumer),
        RT_TEST(test_cond_signal_wakes_oldest_one),
        RT_TEST(test_cond_broadcast_wakes_all),
        RT_TEST(test_cond_wait_for_times_out_with_mutex_held),
        RT_TEST(test_cond_timeout_reacquires_mutex),
        RT_TEST(test_cond_no_spurious_wakeups),
        RT_TEST(test_cond_wait_without_mutex),
        RT_TEST(test_cond_cancel),
        RT_TEST(test_cond_leavers_leave_the_queue),
        RT_TEST(test_cond_destroy_busy),
        cmocka_unit_test(test_sync_waits_free_the_worker),
        RT_TEST(test_sem_counts),
        RT_TEST(test_sem_acquire_blocks_until_release),
        RT_TEST(test_sem_acquire_for_timeout),
        RT_TEST(test_sem_fifo_handoff),
        RT_TEST(test_sem_cancel),
        RT_TEST(test_sem_cancelled_waiter_leaves_queue),
        RT_TEST(test_sem_destroy_busy),
        RT_TEST(test_sem_fibers_and_threads),
        RT_TEST(test_wg_counts),
        RT_TEST(test_wg_fibers_and_threads),
        RT_TEST(test_wg_cancel),
        RT_TEST(test_wg_destroy_busy),
    };
    return cmocka_run_group_tests_name("api.sync", tests, NULL, NULL);
}
