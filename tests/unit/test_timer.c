/* tests/unit/test_timer.c - lib/timer.[ch]: never early, in order, and no
 * growth from abandoned timeouts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "runtime.h"
#include "timer.h"
#include "wait.h"

static atomic_int failures;
#define CHECK(c) do { if (!(c)) atomic_fetch_add(&failures, 1); } while (0)

static weft_runtime *make_rt(void) {
    weft_runtime *rt;
    weft_config cfg = {.workers = 2};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    return rt;
}

/* ---- Abandoned timeouts do not pile up -------------------------------- */

static void *arm_and_abandon(void *arg) {
    long n = (long)(intptr_t)arg;
    struct weft_fiber *self = weft__task_fiber(weft_self());
    struct weft_timer *t = self->sched->timer;
    for (long i = 0; i < n; i++) {
        /* An hour away: it never fires; the wait "ends" at once. */
        uint32_t gen = weft__wait_prepare(self, false);
        struct weft_timer_entry *e = weft__timer_arm(t, weft_now() + 3600 * WEFT_SEC, self, gen);
        CHECK(e != NULL);
        weft__wait_abort(self);
        CHECK(!weft__timer_disarm(e));
        if (i % 4096 == 0)
            weft_yield();
    }
    /* Entries ever allocated: the high-water mark of what was held. */
    return (void *)(uintptr_t)weft__timer_pending(t);
}

static void test_abandoned_timeouts_do_not_accumulate(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
    const long n = 200000;
    void *held;
    assert_int_equal(weft_run(rt, arm_and_abandon, (void *)(intptr_t)n, &held), 0);
    assert_int_equal(atomic_load(&failures), 0);
    /* Bounded by the sweep interval (4096 submissions a worker) and the
     * caches, not by the 200,000 timeouts abandoned, however late the
     * timer thread gets a CPU. */
    if ((uintptr_t)held > 16384)
        fail_msg("%lu timer entries allocated", (unsigned long)(uintptr_t)held);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* ---- The entry pool grows in few, growing chunks ----------------------- */

static void *arm_many_at_once(void *arg) {
    long n = (long)(intptr_t)arg;
    struct weft_fiber *self = weft__task_fiber(weft_self());
    struct weft_timer *t = self->sched->timer;
    struct weft_timer_entry **held = calloc((size_t)n, sizeof *held);
    CHECK(held != NULL);
    for (long i = 0; held && i < n; i++) {
        uint32_t gen = weft__wait_prepare(self, false);
        held[i] = weft__timer_arm(t, weft_now() + 3600 * WEFT_SEC, self, gen);
        CHECK(held[i] != NULL);
        weft__wait_abort(self);
    }
    size_t chunks = weft__timer_chunks(t);
    for (long i = 0; held && i < n; i++)
        CHECK(!weft__timer_disarm(held[i]));
    free(held);
    return (void *)(uintptr_t)chunks;
}

static void test_entry_pool_grows_geometrically(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
    const long n = 20000;
    void *chunks;
    assert_int_equal(weft_run(rt, arm_many_at_once, (void *)(intptr_t)n, &chunks), 0);
    assert_int_equal(atomic_load(&failures), 0);
    /* Fixed chunks of 256 entries (a page-rounded 307) would be 66
     * mappings; growing by an eighth of the pool, about 30. */
    if ((uintptr_t)chunks > 40)
        fail_msg("%lu chunks for %ld entries", (unsigned long)(uintptr_t)chunks, n);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* ---- Sleeps end in deadline order and never early ---------------------- */

static atomic_int wake_seq;
static int woke_at[8];

static void *sleep_slot(void *arg) {
    int i = (int)(intptr_t)arg;
    uint64_t start = weft_now();
    /* 100 ms apart: a woken fiber whose worker stalls for longer (a
     * loaded machine) would record its wake after the next one's. 25 ms
     * was not enough under a load average of 5. */
    uint64_t ns = (uint64_t)(i + 1) * 100 * WEFT_MSEC;
    CHECK(weft_sleep(ns) == 0);
    CHECK(weft_now() - start >= ns);
    woke_at[i] = atomic_fetch_add(&wake_seq, 1);
    return NULL;
}

static void *sleep_many(void *arg) {
    (void)arg;
    weft_task *t[8];
    /* Spawned in a scrambled order: the heap, not arrival, orders them. */
    for (int k = 0; k < 8; k++) {
        int i = (k * 5) % 8;
        CHECK(weft_spawn(NULL, sleep_slot, (void *)(intptr_t)i, &t[i]) == 0);
    }
    CHECK(weft_gather(t, 8, NULL) == 0);
    return NULL;
}

static void test_sleeps_end_in_order(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
    assert_int_equal(weft_run(rt, sleep_many, NULL, NULL), 0);
    assert_int_equal(atomic_load(&failures), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(woke_at[i], i);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* ---- Many timers firing together: each fiber woken exactly once -------- */

static atomic_long wakes;

static void *short_sleep(void *arg) {
    (void)arg;
    CHECK(weft_sleep(5 * WEFT_MSEC) == 0);
    atomic_fetch_add(&wakes, 1);
    return NULL;
}

static void test_batch_of_timers_wakes_each_once(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
#if defined(WEFT_TSAN)
    enum { N = 2000 }; /* TSan tracks each live fiber as a thread (max 8128) */
#else
    enum { N = 20000 };
#endif
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_spawn(rt, short_sleep, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&wakes), N);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- Workers fire what the timer thread is late for -------------------- */

#define LATE_SLEEPERS 64
#define LATE_SLEEP_NS (20 * WEFT_MSEC)
static atomic_int late_woken;
static uint64_t late_slept[LATE_SLEEPERS];

static void *late_sleeper(void *arg) {
    int i = (int)(intptr_t)arg;
    uint64_t start = weft_now();
    CHECK(weft_sleep(LATE_SLEEP_NS) == 0);
    late_slept[i] = weft_now() - start;
    atomic_fetch_add(&late_woken, 1);
    return NULL;
}

static void *nothing(void *arg) { return arg; }

/* The timer thread fires everything 2 s late here (as if it waited that
 * long for a CPU). Workers that pass through their scheduler meanwhile
 * fire the due sleeps themselves: each wakes once, never early, and
 * long before the thread would have. */
static void test_workers_fire_what_the_timer_thread_is_late_for(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
    struct weft_timer *t = rt->sched.timer;
    weft__timer_set_lag(t, 2 * WEFT_SEC);
    atomic_store(&late_woken, 0);
    weft_task *tasks[LATE_SLEEPERS];
    for (int i = 0; i < LATE_SLEEPERS; i++)
        assert_int_equal(weft_spawn(rt, late_sleeper, (void *)(intptr_t)i, &tasks[i]), 0);
    /* Bring the workers back to their scheduler now and then, as a
     * program with some work does: a tiny task every millisecond. (A
     * worker helps when it runs out of work; one that never does, with
     * work queued for it all the time, leaves the timer to its thread.) */
    uint64_t start = weft_now();
    while (atomic_load(&late_woken) < LATE_SLEEPERS && weft_now() - start < WEFT_SEC) {
        assert_int_equal(weft_spawn(rt, nothing, NULL, NULL), 0);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < LATE_SLEEPERS; i++)
        assert_int_equal(weft_join(tasks[i], NULL), 0);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&late_woken), LATE_SLEEPERS);
    for (int i = 0; i < LATE_SLEEPERS; i++) {
        if (late_slept[i] < LATE_SLEEP_NS || late_slept[i] >= WEFT_SEC)
            fail_msg("sleeper %d slept %llu ns", i, (unsigned long long)late_slept[i]);
    }
    assert_true(weft__timer_helped(t) >= LATE_SLEEPERS);
    weft__timer_set_lag(t, 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

/* ---- A burst's nodes go back to the system once it has fired --------- */

#define BURST 30000

/* Arm BURST timers a second away (deadlines scrambled over 100 ms, so
 * that most go to the heap), directly, as a waiting fiber would; return
 * the most the timer mapped before they fired, and once they have all
 * fired, free them. */
static void *burst(void *arg) {
    (void)arg;
    struct weft_fiber *self = weft__task_fiber(weft_self());
    struct weft_timer *t = self->sched->timer;
    struct weft_timer_entry **es = calloc(BURST, sizeof *es);
    CHECK(es != NULL);
    if (!es)
        return NULL;
    uint64_t base = weft_now() + WEFT_SEC;
    for (long i = 0; i < BURST; i++) {
        uint32_t gen = weft__wait_prepare(self, false);
        es[i] = weft__timer_arm(t, base + (uint64_t)(i * 7919 % 100) * WEFT_MSEC, self, gen);
        CHECK(es[i] != NULL);
        weft__wait_abort(self); /* the wait ends: the timers fire for nobody */
    }
    size_t most = 0;
    while (weft_now() < base) {
        size_t now = weft__timer_mapped(t);
        most = now > most ? now : most;
        weft_sleep(WEFT_MSEC);
    }
    weft_sleep_until(base + 100 * WEFT_MSEC);
    /* Each back to the pool, once: fired, or cancelled here if the
     * thread is late (it then drops the entry when it pops it). */
    for (long i = 0; i < BURST; i++)
        if (es[i])
            weft__timer_disarm(es[i]);
    free(es);
    return (void *)most;
}

static void test_a_burst_gives_its_memory_back(void **state) {
    (void)state;
    weft_runtime *rt = make_rt();
    struct weft_timer *t = rt->sched.timer;
    for (int round = 0; round < 2; round++) {
        void *during;
        assert_int_equal(weft_run(rt, burst, NULL, &during), 0);
        assert_int_equal(atomic_load(&failures), 0);
        /* 16-byte nodes, each armed timer in the heap or a ring. */
        if ((size_t)during < BURST * 16)
            fail_msg("only %zu bytes mapped during a burst of %d", (size_t)during, BURST);
        /* The thread shrinks them when it next idles: to the first sizes,
         * (1024 + 3) heap nodes and 1024 per run (2 workers). */
        size_t after = 0;
        for (int i = 0; i < 2000; i++) {
            after = weft__timer_mapped(t);
            if (after <= (1027 + 2 * 1024) * 16)
                break;
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        }
        if (after > (1027 + 2 * 1024) * 16)
            fail_msg("%zu bytes still mapped after the burst (round %d)", after, round);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abandoned_timeouts_do_not_accumulate),
        cmocka_unit_test(test_entry_pool_grows_geometrically),
        cmocka_unit_test(test_sleeps_end_in_order),
        cmocka_unit_test(test_batch_of_timers_wakes_each_once),
        cmocka_unit_test(test_workers_fire_what_the_timer_thread_is_late_for),
        cmocka_unit_test(test_a_burst_gives_its_memory_back),
    };
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
