/* tests/unit/test_sync.c - lib/sync.[ch]: the wait queue, the spinlock,
 * and the primitives' misuse checks. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sync.h"
#include "test_util.h"

/* FIFO order, removal from the middle, and the queued flag (Q1). */
static void test_queue_fifo_and_remove(void **state) {
    (void)state;
    struct weft_wait_queue q = {0};
    struct weft_wait_node n[4];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 4; i++)
        weft__queue_push(&q, &n[i]);
    weft__queue_remove(&q, &n[2]);
    assert_false(n[2].queued);
    assert_ptr_equal(weft__queue_pop(&q), &n[0]);
    assert_ptr_equal(weft__queue_pop(&q), &n[1]);
    weft__queue_remove(&q, &n[3]); /* the tail */
    assert_true(weft__queue_empty(&q));
    assert_null(weft__queue_pop(&q));
    assert_null(q.tail);
}

/* A node pushed at the front comes out first; the links stay whole for
 * removal at either end (the mutex requeues a woken waiter that lost). */
static void test_queue_push_front(void **state) {
    (void)state;
    struct weft_wait_queue q = {0};
    struct weft_wait_node n[4];
    memset(n, 0, sizeof n);
    weft__queue_push_front(&q, &n[1]); /* into an empty queue */
    weft__queue_push(&q, &n[2]);
    weft__queue_push_front(&q, &n[0]);
    weft__queue_push(&q, &n[3]);
    assert_true(n[0].queued);
    assert_ptr_equal(q.head, &n[0]);
    assert_ptr_equal(q.tail, &n[3]);
    weft__queue_remove(&q, &n[1]);
    assert_ptr_equal(n[0].next, &n[2]);
    assert_ptr_equal(n[2].prev, &n[0]);
    assert_ptr_equal(weft__queue_pop(&q), &n[0]);
    assert_ptr_equal(weft__queue_pop(&q), &n[2]);
    assert_ptr_equal(weft__queue_pop(&q), &n[3]);
    assert_true(weft__queue_empty(&q));
    assert_null(q.tail);
}

static struct weft_spinlock lock;
static long counter;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        weft__spin_lock(&lock);
        counter++; /* plain: the lock is all that orders it */
        weft__spin_unlock(&lock);
    }
    return NULL;
}

static void test_spinlock_excludes(void **state) {
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(counter, 4 * 200000);
}

/* A locker that outlasts the spin announces itself (L2), and the unlock
 * that sees it lets it in; afterwards nobody is counted. */
static struct weft_spinlock slow_lock;
static atomic_int slow_got;

static void *slow_locker(void *arg) {
    (void)arg;
    weft__spin_lock(&slow_lock);
    atomic_store(&slow_got, 1);
    weft__spin_unlock(&slow_lock);
    return NULL;
}

static void test_spinlock_sleeper_is_let_in(void **state) {
    (void)state;
    weft__spin_lock(&slow_lock);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_locker, NULL), 0);
    /* It spins a few microseconds, then counts itself and sleeps. */
    while (atomic_load(&slow_lock.sleepers) == 0)
        sched_yield();
    assert_int_equal(atomic_load(&slow_got), 0);
    weft__spin_unlock(&slow_lock);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&slow_got), 1);
    assert_int_equal(atomic_load(&slow_lock.sleepers), 0);
    assert_int_equal(atomic_load(&slow_lock.held), 0);
}

/* Zeroed storage is not an initialised primitive; destroyed is not
 * either. */
static void test_uninitialised_and_destroyed_refused(void **state) {
    (void)state;
    weft_mutex m;
    weft_cond c;
    weft_sem s;
    weft_wg wg;
    memset(&m, 0, sizeof m);
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    memset(&wg, 0, sizeof wg);
    assert_int_equal(weft_mutex_lock(&m), -EINVAL);
    assert_int_equal(weft_cond_signal(&c), -EINVAL);
    assert_int_equal(weft_sem_release(&s), -EINVAL);
    assert_int_equal(weft_wg_add(&wg, 1), -EINVAL);
    assert_int_equal(weft_mutex_init(&m), 0);
    assert_int_equal(weft_mutex_lock(&m), 0);
    assert_int_equal(weft_mutex_lock(&m), -EDEADLK);
    assert_int_equal(weft_mutex_destroy(&m), -EBUSY);
    assert_int_equal(weft_mutex_unlock(&m), 0);
    assert_int_equal(weft_mutex_unlock(&m), -EPERM);
    assert_int_equal(weft_mutex_destroy(&m), 0);
    assert_int_equal(weft_mutex_lock(&m), -EINVAL);
    assert_int_equal(weft_sem_init(&s, 1), 0);
    assert_int_equal(weft_sem_try_acquire(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), -EAGAIN);
    assert_int_equal(weft_sem_acquire_for(&s, 5 * WEFT_MSEC), -ETIMEDOUT);
    assert_int_equal(weft_sem_destroy(&s), 0);
    assert_int_equal(weft_wg_init(&wg), 0);
    assert_int_equal(weft_wg_add(&wg, -1), -EINVAL);
    assert_int_equal(weft_wg_wait(&wg), 0);
    assert_int_equal(weft_wg_destroy(&wg), 0);
}

/* ---- Mutex hand-off (sync.c, "Mutex") ------------------------------------ */

struct handoff {
    weft_mutex m;
    atomic_int got;
};

static void *handoff_waiter(void *arg) {
    struct handoff *h = arg;
    WT_CHECK_EQ(weft_mutex_lock(&h->m), 0);
    atomic_store(&h->got, 1);
    WT_CHECK_EQ(weft_mutex_unlock(&h->m), 0);
    return NULL;
}

/* A fiber that keeps its worker busy, without yielding, until told to
 * stop: with both workers held so, a fiber woken meanwhile cannot run. */
struct worker_hold {
    atomic_int started;
    atomic_bool release;
};

static void *hold_worker(void *arg) {
    struct worker_hold *w = arg;
    atomic_fetch_add(&w->started, 1);
    while (!atomic_load(&w->release))
        sched_yield(); /* the thread's, not the fiber's: the worker stays */
    return NULL;
}

/* Poll the state word until pred holds, for at most 10 s. */
static bool state_reaches(weft_mutex *m, bool (*pred)(uint32_t)) {
    for (int i = 0; i < 100000; i++) {
        if (pred(weft__mutex_state(m)))
            return true;
        wt_thread_sleep_ns(100 * WEFT_USEC);
    }
    return false;
}

static bool one_queued(uint32_t s) { return s / WEFT_MUTEX_WAITER == 1; }

static bool starving_one_queued(uint32_t s) {
    return (s & WEFT_MUTEX_STARVING) && s / WEFT_MUTEX_WAITER == 1;
}

/* Spawn one hold_worker per worker of rt (2) and wait until each runs. */
static void hold_both_workers(weft_runtime *rt, struct worker_hold *w,
                              weft_task *holders[2]) {
    for (int i = 0; i < 2; i++)
        assert_int_equal(weft_spawn(rt, hold_worker, w, &holders[i]), 0);
    for (int i = 0; i < 100000 && atomic_load(&w->started) < 2; i++)
        wt_thread_sleep_ns(100 * WEFT_USEC);
    assert_int_equal(atomic_load(&w->started), 2);
}

static void let_workers_go(struct worker_hold *w, weft_task *holders[2]) {
    atomic_store(&w->release, true);
    for (int i = 0; i < 2; i++)
        assert_int_equal(weft_join(holders[i], NULL), 0);
}

/* The scene below. The waiter's wake-up is made to wait behind two fibers
 * that hold both workers, so that our trylock right after the unlock
 * surely wins: the kernel may well run the woken worker before this
 * thread's next instruction, and a loaded machine nearly always does. */
static void handoff_scene(weft_runtime *rt) {
    struct handoff h = {.got = 0};
    struct worker_hold w = {.started = 0, .release = false};
    weft_task *holders[2];
    assert_int_equal(weft_mutex_init(&h.m), 0);
    assert_int_equal(weft_mutex_lock(&h.m), 0);
    weft_task *t;
    assert_int_equal(weft_spawn(rt, handoff_waiter, &h, &t), 0);
    /* The fiber spins, then queues: counted, not starving yet. */
    assert_true(state_reaches(&h.m, one_queued));
    assert_false(weft__mutex_state(&h.m) & WEFT_MUTEX_STARVING);
    hold_both_workers(rt, &w, holders);
    wt_thread_sleep_ns(5 * WEFT_MSEC); /* past the 1 ms bound */
    /* Wake it (normal mode: the lock comes free) and barge back in, while
     * it cannot run. */
    assert_int_equal(weft_mutex_unlock(&h.m), 0);
    assert_int_equal(weft_mutex_trylock(&h.m), 0);
    let_workers_go(&w, holders);
    /* It loses, and having waited over 1 ms it queues again as starving. */
    assert_true(state_reaches(&h.m, starving_one_queued));
    assert_int_equal(atomic_load(&h.got), 0);
    /* Now an unlock hands the lock over without letting it go: a barger
     * finds it taken, unless the waiter has had it and is done already
     * (it sets got while it holds the lock). */
    assert_int_equal(weft_mutex_unlock(&h.m), 0);
    if (weft_mutex_trylock(&h.m) == 0) {
        assert_int_equal(atomic_load(&h.got), 1);
        assert_int_equal(weft_mutex_unlock(&h.m), 0);
    }
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(atomic_load(&h.got), 1);
    /* The last waiter ended starving mode; nothing is left set. */
    assert_int_equal(weft__mutex_state(&h.m), 0);
    assert_int_equal(weft_mutex_destroy(&h.m), 0);
}

/* A waiter woken after more than 1 ms of waiting that loses to a barger
 * turns the mutex to hand-off mode, where unlock passes the lock to it
 * directly (bounded unfairness). */
static void test_mutex_hands_off_to_a_starving_waiter(void **state) {
    (void)state;
    wt_reset();
    weft_runtime *rt = wt_runtime_new(2);
    assert_non_null(rt);
    handoff_scene(rt);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    WT_ASSERT_NO_FAILURES();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_fifo_and_remove),
        cmocka_unit_test(test_queue_push_front),
        cmocka_unit_test(test_spinlock_excludes),
        cmocka_unit_test(test_spinlock_sleeper_is_let_in),
        cmocka_unit_test(test_uninitialised_and_destroyed_refused),
        cmocka_unit_test(test_mutex_hands_off_to_a_starving_waiter),
    };
    return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
