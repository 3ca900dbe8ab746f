/* tests/unit/test_bias.c - lib/bias.[ch]: the biased lock's grant after
 * a run, its owner's plain sections, revocation by another thread (one
 * that waits for the owner's open section), the run a revocation then
 * asks for, and mutual exclusion while threads take the bias from one
 * another at random. Where this kernel
 * offers no asymmetric fence, the same tests check that no lock is ever
 * biased and that the lock still excludes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "bias.h"
#include "fence.h"
#include "test_util.h"

/* bias.c's first run; a test that earns the bias takes the lock more. */
#define FIRST_RUN 16
#define EARN (FIRST_RUN + 1)

static void lock_times(struct weft_bias_lock *l, int n) {
    for (int i = 0; i < n; i++) {
        weft__bias_lock(l);
        weft__bias_unlock(l);
    }
}

static void test_run_earns_the_bias(void **state) {
    (void)state;
    struct weft_bias_lock l;
    weft__bias_init(&l);
    lock_times(&l, EARN);
    if (!weft__fence_available()) {
        assert_null(atomic_load(&l.owner)); /* never biased */
        return;
    }
    assert_non_null(weft__bias_me);
    assert_ptr_equal(atomic_load(&l.owner), weft__bias_me);
    /* The owner's section is plain: the shared spinlock stays free. */
    weft__bias_lock(&l);
    assert_true(l.plain);
    assert_ptr_equal(atomic_load(&weft__bias_me->in), &l);
    assert_int_equal(atomic_load(&l.shared.held), 0);
    weft__bias_unlock(&l);
    assert_false(l.plain);
    assert_null(atomic_load(&weft__bias_me->in));
}

/* ---- Revocation ------------------------------------------------------- */

struct handoff {
    struct weft_bias_lock l;
    atomic_int step;     /* 1: the owner holds it; 2: the other is trying */
    atomic_int inside;   /* sections open now */
    uint64_t owner_left; /* when the owner's section closed */
    uint64_t other_in;   /* when the other's began */
};

static void *other_thread(void *arg) {
    struct handoff *h = arg;
    while (atomic_load(&h->step) < 1)
        sched_yield();
    atomic_store(&h->step, 2);
    weft__bias_lock(&h->l);
    h->other_in = weft_now();
    assert_int_equal(atomic_fetch_add(&h->inside, 1), 0);
    atomic_fetch_sub(&h->inside, 1);
    weft__bias_unlock(&h->l);
    return NULL;
}

/* Another thread that wants the lock while the owner is inside a plain
 * section waits for the section to close, then takes the bias away. */
static void test_revoker_waits_for_the_open_section(void **state) {
    (void)state;
    struct handoff h = {.step = 0};
    weft__bias_init(&h.l);
    lock_times(&h.l, EARN);
    bool biased = weft__fence_available();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &h), 0);
    weft__bias_lock(&h.l);
    assert_int_equal(h.l.plain, biased);
    assert_int_equal(atomic_fetch_add(&h.inside, 1), 0);
    atomic_store(&h.step, 1);
    while (atomic_load(&h.step) < 2)
        sched_yield();
    wt_thread_sleep_ns(50 * WEFT_MSEC); /* the other is at the lock by now */
    atomic_fetch_sub(&h.inside, 1);
    h.owner_left = weft_now();
    weft__bias_unlock(&h.l);
    pthread_join(t, NULL);
    assert_true(h.other_in >= h.owner_left);
    assert_null(atomic_load(&h.l.owner)); /* revoked, or never biased */
    assert_int_equal(atomic_load(&h.l.shared.held), 0);
    assert_int_equal(h.l.revocations, biased ? 1 : 0);
}

/* ---- A former owner's late attempt -------------------------------------- */

struct stale {
    struct weft_bias_lock l;
    struct weft_bias_self *owner; /* the new owner's record */
    atomic_int step;  /* 1: the new owner is inside; 2: it may leave */
    uint64_t left;    /* when its section closed */
};

static void *new_owner(void *arg) {
    struct stale *st = arg;
    lock_times(&st->l, 64 * FIRST_RUN); /* revokes, then earns the bias */
    weft__bias_lock(&st->l);
    st->owner = weft__bias_me;
    atomic_store(&st->step, 1);
    while (atomic_load(&st->step) < 2)
        sched_yield();
    wt_thread_sleep_ns(50 * WEFT_MSEC); /* a revoker is at the lock by now */
    st->left = weft_now();
    weft__bias_unlock(&st->l);
    return NULL;
}

static void *late_revoker(void *arg) {
    struct stale *st = arg;
    weft__bias_lock(&st->l);
    uint64_t in = weft_now();
    weft__bias_unlock(&st->l);
    return (void *)(uintptr_t)in;
}

/* This thread owned the lock, read owner == me, and only then reached O1,
 * after the bias had gone to another thread that is now inside. Its O1
 * and its bail must leave that owner's mark alone: a third thread that
 * revokes still waits for the owner's section. (With the mark in the lock,
 * the bail cleared it and the third thread walked in.) */
static void test_a_late_former_owner_leaves_the_mark_alone(void **state) {
    (void)state;
    if (!weft__fence_available())
        skip(); /* nothing is ever biased: no owner, no mark */
    struct stale st = {.step = 0};
    weft__bias_init(&st.l);
    lock_times(&st.l, EARN);
    struct weft_bias_self *me = weft__bias_me;
    assert_ptr_equal(atomic_load(&st.l.owner), me);
    pthread_t owner, revoker;
    assert_int_equal(pthread_create(&owner, NULL, new_owner, &st), 0);
    while (atomic_load(&st.step) < 1)
        sched_yield();
    assert_true(st.l.plain);
    assert_ptr_equal(atomic_load(&st.l.owner), st.owner);
    /* Our late O1, O3 and bail, as weft__bias_lock runs them. */
    atomic_store(&me->in, &st.l);
    assert_ptr_not_equal(atomic_load(&st.l.owner), me);
    atomic_store(&me->in, NULL);
    assert_ptr_equal(atomic_load(&st.owner->in), &st.l);
    assert_int_equal(pthread_create(&revoker, NULL, late_revoker, &st), 0);
    atomic_store(&st.step, 2);
    void *in;
    pthread_join(revoker, &in);
    pthread_join(owner, NULL);
    assert_true((uint64_t)(uintptr_t)in >= st.left);
    assert_null(atomic_load(&st.l.owner));
}

/* ---- What a revocation costs the next grant ----------------------------- */

static void *lock_once(void *arg) {
    weft__bias_lock(arg);
    weft__bias_unlock(arg);
    return NULL;
}

/* Take the bias from this thread from another one. */
static void revoke_from_another_thread(struct weft_bias_lock *l) {
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, lock_once, l), 0);
    pthread_join(t, NULL);
}

/* A bias revoked soon after its grant must be earned by a run four
 * times as long; one that lasted (paid for its revocation) by the first
 * run again. */
static void test_the_run_needed_after_a_revocation(void **state) {
    (void)state;
    struct weft_bias_lock l;
    weft__bias_init(&l);
    l.paid_ns = WEFT_FOREVER; /* no bias lasts long enough */
    lock_times(&l, EARN);
    if (!weft__fence_available()) {
        revoke_from_another_thread(&l);
        assert_null(atomic_load(&l.owner));
        assert_int_equal(l.revocations, 0); /* nothing to revoke */
        return;
    }
    assert_ptr_equal(atomic_load(&l.owner), weft__bias_me);
    revoke_from_another_thread(&l);
    assert_null(atomic_load(&l.owner));
    assert_int_equal(l.run_needed, 4 * FIRST_RUN);
    lock_times(&l, 4 * FIRST_RUN - 1);
    assert_null(atomic_load(&l.owner));
    lock_times(&l, 1);
    assert_ptr_equal(atomic_load(&l.owner), weft__bias_me);
    revoke_from_another_thread(&l);
    assert_int_equal(l.run_needed, 16 * FIRST_RUN);
    lock_times(&l, 16 * FIRST_RUN);
    assert_ptr_equal(atomic_load(&l.owner), weft__bias_me);

    l.paid_ns = 1; /* every bias lasts long enough */
    revoke_from_another_thread(&l);
    assert_int_equal(l.revocations, 3);
    assert_int_equal(l.run_needed, FIRST_RUN);
    lock_times(&l, FIRST_RUN);
    assert_ptr_equal(atomic_load(&l.owner), weft__bias_me);
}

/* ---- Mutual exclusion under churn --------------------------------------- */

#ifdef WEFT_TEST_TSAN
#define CHURN_ROUNDS 1000
#else
#define CHURN_ROUNDS 10000
#endif
#define CHURN_THREADS 3

struct churn {
    struct weft_bias_lock l;
    uint64_t counter;   /* plain: the lock protects it */
    int inside;         /* plain: sections open now, seen under the lock */
    atomic_int overlaps;
    atomic_int ready;
};

static struct churn churn;
static uint64_t churn_done[CHURN_THREADS];

/* Each round: a run of locks long enough, at times, to earn the bias,
 * so that the threads take it from one another again and again. */
static void *churner(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    uint64_t rng = wt_seed() ^ (id * 0x9E3779B97F4A7C15ull);
    atomic_fetch_add(&churn.ready, 1);
    while (atomic_load(&churn.ready) < CHURN_THREADS)
        sched_yield();
    uint64_t done = 0;
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        uint32_t run = 1 + wt_rand_below(&rng, 4 * FIRST_RUN);
        for (uint32_t i = 0; i < run; i++) {
            /* Some sections last long enough for a revocation to
             * land inside them (the fence takes microseconds). */
            uint32_t linger = wt_rand_below(&rng, 4) == 0 ? wt_rand_below(&rng, 2000) : 0;
            weft__bias_lock(&churn.l);
            if (churn.inside++ != 0)
                atomic_fetch_add(&churn.overlaps, 1);
            churn.counter++;
            /* Keep the bias within reach (B4: any holder may), so that it
             * moves all through the test, not only in its first rounds. */
            churn.l.run_needed = FIRST_RUN;
            for (uint32_t k = 0; k < linger; k++)
                atomic_signal_fence(memory_order_seq_cst);
            if (churn.inside != 1)
                atomic_fetch_add(&churn.overlaps, 1);
            churn.inside--;
            weft__bias_unlock(&churn.l);
            done++;
        }
        if (wt_rand_below(&rng, 8) == 0)
            sched_yield();
    }
    churn_done[id] = done;
    return NULL;
}

static void test_exclusion_while_the_bias_moves(void **state) {
    (void)state;
    weft__bias_init(&churn.l);
    lock_times(&churn.l, EARN); /* biased to this thread: the first revocation is certain */
    pthread_t t[CHURN_THREADS];
    for (uintptr_t i = 0; i < CHURN_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churner, (void *)i), 0);
    uint64_t total = 0;
    for (int i = 0; i < CHURN_THREADS; i++) {
        pthread_join(t[i], NULL);
        total += churn_done[i];
    }
    assert_int_equal(atomic_load(&churn.overlaps), 0);
    assert_int_equal(churn.counter, total);
    assert_int_equal(churn.inside, 0);
    struct weft_bias_self *last_owner = atomic_load(&churn.l.owner);
    if (last_owner)
        assert_ptr_not_equal(atomic_load(&last_owner->in), &churn.l);
    assert_int_equal(atomic_load(&churn.l.shared.held), 0);
    assert_false(churn.l.plain);
    if (weft__fence_available())
        assert_true(churn.l.revocations > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_earns_the_bias),
        cmocka_unit_test(test_revoker_waits_for_the_open_section),
        cmocka_unit_test(test_the_run_needed_after_a_revocation),
        cmocka_unit_test(test_a_late_former_owner_leaves_the_mark_alone),
        cmocka_unit_test(test_exclusion_while_the_bias_moves),
    };
    return cmocka_run_group_tests_name("bias", tests, NULL, NULL);
}
