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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_fifo_and_remove),
        cmocka_unit_test(test_queue_push_front),
        cmocka_unit_test(test_spinlock_excludes),
        cmocka_unit_test(test_spinlock_sleeper_is_let_in),
        cmocka_unit_test(test_uninitialised_and_destroyed_refused),
    };
    return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
