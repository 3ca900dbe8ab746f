/* tests/unit/test_wait.c - lib/wait.[ch]: the wait-word protocol, driven
 * by hand on a control block that never runs, and plain-thread waiters. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fiber.h"
#include "sched.h"
#include "timer.h"
#include "wait.h"

static void *body(void *arg) { return arg; }
#define WEFT_PTR_ONE ((void *)(uintptr_t)1)
static struct weft_fiber_pool pool;

static uint32_t state_of(struct weft_fiber *f) {
    return (uint32_t)atomic_load(&f->wait) & WEFT_WAIT_STATE_MASK;
}

/* A wake that comes while the fiber is still on its stack notifies; the
 * switch-out path would then queue it. A second wake of the same wait,
 * and any wake naming an older generation, are stale. */
static void test_claim_while_waiting_notifies_once(void **state) {
    (void)state;
    struct weft_fiber *f = weft__fiber_new(&pool, NULL, NULL, body, NULL, 0, false);
    uint32_t gen = weft__wait_prepare(f, false);
    assert_int_equal(state_of(f), WEFT_WAIT_WAITING);
    assert_int_equal(weft__wait_claim(f, gen - 1), WEFT_WAKE_STALE);
    assert_int_equal(weft__wait_claim(f, gen), WEFT_WAKE_NOTIFIED);
    assert_int_equal(state_of(f), WEFT_WAIT_NOTIFIED);
    assert_int_equal(weft__wait_claim(f, gen), WEFT_WAKE_STALE);
    weft__wait_abort(f);
    assert_int_equal(state_of(f), WEFT_WAIT_RUNNING);
    weft__fiber_unref(f, NULL);
}

/* Once parked, exactly one claim wins and must queue the fiber. */
static void test_claim_after_park_claims_once(void **state) {
    (void)state;
    struct weft_fiber *f = weft__fiber_new(&pool, NULL, NULL, body, NULL, 0, false);
    uint32_t gen = weft__wait_prepare(f, true);
    /* Simulate the publish half without a scheduler: WAITING -> PARKED. */
    uint64_t w = atomic_load(&f->wait);
    atomic_store(&f->wait, (w & ~(uint64_t)WEFT_WAIT_STATE_MASK) | WEFT_WAIT_PARKED);
    assert_int_equal(weft__wait_claim(f, gen), WEFT_WAKE_CLAIMED);
    assert_int_equal(state_of(f), WEFT_WAIT_RUNNABLE);
    assert_int_equal(weft__wait_claim(f, gen), WEFT_WAKE_STALE);
    /* A later wait has a new generation; the old one cannot end it. */
    weft__wait_abort(f);
    uint32_t gen2 = weft__wait_prepare(f, false);
    assert_int_not_equal(gen2, gen);
    assert_int_equal(weft__wait_claim(f, gen), WEFT_WAKE_STALE);
    assert_int_equal(weft__wait_claim(f, gen2), WEFT_WAKE_NOTIFIED);
    weft__wait_abort(f);
    weft__fiber_unref(f, NULL);
}

/* A waiter for n events ends on the n-th signal, not before. */
static struct weft_waiter thread_waiter;
static void *signal_three(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++)
        weft__waiter_signal(&thread_waiter);
    return NULL;
}

static void test_thread_waiter_counts_events(void **state) {
    (void)state;
    weft__waiter_init(&thread_waiter, NULL, 3, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, signal_three, NULL), 0);
    assert_int_equal(weft__waiter_block(&thread_waiter, WEFT_FOREVER), 0);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&thread_waiter.pending), 0);
}

/* A deadline with no event: -ETIMEDOUT, never early. */
static void test_thread_waiter_times_out_not_early(void **state) {
    (void)state;
    struct weft_waiter wt;
    weft__waiter_init(&wt, NULL, 1, false);
    uint64_t start = weft_now();
    assert_int_equal(weft__waiter_block(&wt, start + 20 * WEFT_MSEC), -ETIMEDOUT);
    assert_true(weft_now() - start >= 20 * WEFT_MSEC);
}

/* The cancel check at park: a cancel whose load of the wait word missed
 * the wait's start (store-buffering) leaves only the flag set; parking
 * must see it and end the wait, or the fiber would sleep forever. Made
 * deterministic by setting the flag by hand, as such a canceller leaves
 * it, between the wait's start and its park. */
static void *park_with_flag_set(void *arg) {
    (void)arg;
    struct weft_worker *w = weft__sched_worker();
    struct weft_fiber *self = w->current;
    weft__wait_prepare(self, true);
    atomic_store(&self->cancel, 1); /* the canceller's store; its load missed */
    weft__wait_park(w, NULL);       /* no timer, no waker: only the check */
    return WEFT_PTR_ONE;
}

static void test_park_sees_a_cancel_that_missed_the_wait(void **state) {
    (void)state;
    weft_runtime *rt;
    weft_config cfg = {.workers = 1};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    weft_task *t;
    assert_int_equal(weft_spawn(rt, park_with_flag_set, NULL, &t), 0);
    void *r = NULL;
    assert_int_equal(weft_join_for(t, 5 * WEFT_SEC, &r), 0);
    assert_ptr_equal(r, WEFT_PTR_ONE);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* The timer's claim marks the wait (WEFT_WAIT_BY_TIMER) and park reports
 * it, also when the claim came while the fiber was still on its stack;
 * any other claim leaves no mark. */
static void *park_claimed_by(void *arg) {
    bool by_timer_claim = arg != NULL;
    struct weft_worker *w = weft__sched_worker();
    struct weft_fiber *self = w->current;
    uint32_t gen = weft__wait_prepare(self, false);
    enum weft_wake_result r = by_timer_claim ? weft__wait_claim_by_timer(self, gen)
                                             : weft__wait_claim(self, gen);
    if (r != WEFT_WAKE_NOTIFIED)
        return NULL;
    bool by_timer = !by_timer_claim;
    weft__wait_park(w, &by_timer); /* queues itself, resumes at once */
    return by_timer == by_timer_claim ? WEFT_PTR_ONE : NULL;
}

/* A timer entry that the timer thread pops after the wait ended (its
 * claim is stale) is the disarm's to free: disarm then says it fired.
 * Whether the timer thread got there first depends on the machine, so a
 * few tries; each entry is given back either way. */
static void *disarm_after_stale_fire(void *arg) {
    (void)arg;
    struct weft_fiber *self = weft__sched_worker()->current;
    for (int i = 0; i < 20; i++) {
        uint32_t gen = weft__wait_prepare(self, false);
        struct weft_timer_entry *e =
            weft__timer_arm(self->sched->timer, weft_now() + WEFT_MSEC, self, gen);
        if (!e)
            return NULL;
        weft__wait_abort(self); /* the wait ends before its deadline */
        uint64_t until = weft_now() + 50 * WEFT_MSEC;
        while (weft_now() < until) {
        }
        if (weft__timer_disarm(e))
            return WEFT_PTR_ONE;
    }
    return NULL;
}

static void test_timer_claim_marks_the_wait(void **state) {
    (void)state;
    weft_runtime *rt;
    weft_config cfg = {.workers = 1};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    void *r = NULL;
    assert_int_equal(weft_run(rt, park_claimed_by, WEFT_PTR_ONE, &r), 0);
    assert_ptr_equal(r, WEFT_PTR_ONE);
    r = NULL;
    assert_int_equal(weft_run(rt, park_claimed_by, NULL, &r), 0);
    assert_ptr_equal(r, WEFT_PTR_ONE);
    r = NULL;
    assert_int_equal(weft_run(rt, disarm_after_stale_fire, NULL, &r), 0);
    assert_ptr_equal(r, WEFT_PTR_ONE);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

int main(void) {
    weft__fiber_pool_init(&pool);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_while_waiting_notifies_once),
        cmocka_unit_test(test_claim_after_park_claims_once),
        cmocka_unit_test(test_thread_waiter_counts_events),
        cmocka_unit_test(test_thread_waiter_times_out_not_early),
        cmocka_unit_test(test_park_sees_a_cancel_that_missed_the_wait),
        cmocka_unit_test(test_timer_claim_marks_the_wait),
    };
    int failed = cmocka_run_group_tests_name("wait", tests, NULL, NULL);
    weft__fiber_pool_fini(&pool);
    return failed;
}
