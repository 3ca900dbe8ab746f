/* tests/unit/test_sched.c - lib/sched.[ch]: depth-first fork-join, the
 * fairness of yield, the wake queue's priority, woken fibers stolen from
 * a blocked worker, held work found by a parked worker, take-back,
 * quiescence. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime.h"
#include "test_util.h"
#include "sched.h"
#include "wait.h"

static atomic_int failures; /* seen inside fibers; asserted on main */
#define CHECK(c) do { if (!(c)) atomic_fetch_add(&failures, 1); } while (0)

static weft_runtime *make_rt(unsigned workers) {
    weft_runtime *rt;
    weft_config cfg = {.workers = workers};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    return rt;
}

/* ---- Depth-first fork-join: live fibers ~ depth x workers ------------- */

static atomic_long live, max_live;

static void *tree(void *arg) {
    long d = (long)(intptr_t)arg;
    long now = atomic_fetch_add(&live, 1) + 1;
    long seen = atomic_load(&max_live);
    while (now > seen && !atomic_compare_exchange_weak(&max_live, &seen, now))
        ;
    long sum = 1;
    if (d > 0) {
        weft_task *l, *r;
        CHECK(weft_spawn(NULL, tree, (void *)(intptr_t)(d - 1), &l) == 0);
        CHECK(weft_spawn(NULL, tree, (void *)(intptr_t)(d - 1), &r) == 0);
        void *a = NULL, *b = NULL;
        CHECK(weft_join(r, &b) == 0);
        CHECK(weft_join(l, &a) == 0);
        sum += (long)(intptr_t)a + (long)(intptr_t)b;
    }
    atomic_fetch_sub(&live, 1);
    return (void *)(intptr_t)sum;
}

static void test_fork_join_runs_depth_first(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    const long depth = 16;
    void *sum;
    assert_int_equal(weft_run(rt, tree, (void *)(intptr_t)depth, &sum), 0);
    assert_int_equal((long)(intptr_t)sum, (1L << (depth + 1)) - 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
    /* 131,071 tasks; depth-first keeps a few per level per worker live,
     * breadth-first would have tens of thousands. (The smallq build's
     * 4-slot deques spill to the FIFO inject queue: no such bound.) */
#if WEFT_DEQUE_CAP >= 64
    if (atomic_load(&max_live) > 4 * (depth + 1) * 2)
        fail_msg("%ld fibers live at once", atomic_load(&max_live));
#endif
}

/* ---- Yield: a spinning fiber does not starve the one it waits for ----- */

static atomic_int flag;

static void *set_flag(void *arg) {
    (void)arg;
    atomic_store(&flag, 1);
    return NULL;
}

static void *spin_until_flag(void *arg) {
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(NULL, set_flag, NULL, &t) == 0);
    /* Many yields but a bounded number: the setter must run soon. */
    long spins = 0;
    while (!atomic_load(&flag) && spins < 1000000) {
        weft_yield();
        spins++;
    }
    CHECK(atomic_load(&flag) == 1);
    CHECK(weft_join(t, NULL) == 0);
    return (void *)spins;
}

static void test_yield_lets_others_run(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    void *spins;
    assert_int_equal(weft_run(rt, spin_until_flag, NULL, &spins), 0);
    assert_true((long)(intptr_t)spins < 1000);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- The wake queue: timer wakes run before queued new fibers -------- */

static void *nothing(void *arg) { return arg; }

static atomic_int order;        /* finishing order of the fibers below */
static atomic_int woken_at;     /* the sleeper's place in it */
static atomic_int sleeper_started;

static void *record_order(void *arg) {
    (void)arg;
    atomic_fetch_add(&order, 1);
    return NULL;
}

static void *sleep_then_record(void *arg) {
    (void)arg;
    atomic_store(&sleeper_started, 1);
    CHECK(weft_sleep(200 * WEFT_MSEC) == 0);
    atomic_store(&woken_at, atomic_fetch_add(&order, 1));
    return NULL;
}

/* Holds the only worker until the sleeper's wake is queued. */
static void *hold_worker_until_woken(void *arg) {
    struct weft_sched *s = arg;
    uint64_t give_up = weft_now() + 10 * WEFT_SEC;
    while (weft__inject_len(&s->woken) == 0 && weft_now() < give_up)
        weft__cpu_relax();
    CHECK(weft__inject_len(&s->woken) == 1);
    return NULL;
}

static void test_timer_wakes_run_before_new_fibers(void **state) {
    (void)state;
    enum { N = 1000 };
    weft_runtime *rt = make_rt(1);
    struct weft_sched *s = &rt->sched;
    atomic_store(&order, 0);
    atomic_store(&woken_at, -1);
    assert_int_equal(weft_spawn(rt, sleep_then_record, NULL, NULL), 0);
    while (!atomic_load(&sleeper_started))
        usleep(100);
    /* The worker is held while N new fibers queue up from this thread
     * (the inject queue) and the sleeper's timer fires behind them. */
    assert_int_equal(weft_spawn(rt, hold_worker_until_woken, s, NULL), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_spawn(rt, record_order, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&order), N + 1);
    /* First, or second after one fairness pick of the inject queue; in
     * the inject queue's FIFO order it would be last. */
    assert_in_range(atomic_load(&woken_at), 0, 1);
}

/* ---- Woken fibers run in the order they were woken --------------------- */

enum { ORDERED_N = 300 };
static _Atomic uint64_t ordered_base; /* 0 until the driver sets it */
static atomic_int ordered_started, ordered_armed, ordered_seq;
static int ordered_at[ORDERED_N];

static void *sleep_in_turn(void *arg) {
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&ordered_started, 1);
    while (!atomic_load(&ordered_base))
        weft_yield();
    /* One worker: nothing runs between this and the park. */
    atomic_fetch_add(&ordered_armed, 1);
    CHECK(weft_sleep_until(atomic_load(&ordered_base) + (uint64_t)i * WEFT_USEC) == 0);
    ordered_at[i] = atomic_fetch_add(&ordered_seq, 1);
    return NULL;
}

/* Starts ORDERED_N sleeps due one microsecond apart (all armed before
 * the first is due, however slow the build), then holds the only worker
 * until every one is due, so that the timer queues them all in the wake
 * queue in deadline order; then lets them run. */
static void *wake_in_order(void *arg) {
    (void)arg;
    static weft_task *t[ORDERED_N];
    for (int i = 0; i < ORDERED_N; i++)
        CHECK(weft_spawn(NULL, sleep_in_turn, (void *)(intptr_t)i, &t[i]) == 0);
    while (atomic_load(&ordered_started) < ORDERED_N)
        weft_yield();
    uint64_t base = weft_now() + 200 * WEFT_MSEC;
    atomic_store(&ordered_base, base);
    while (atomic_load(&ordered_armed) < ORDERED_N)
        weft_yield();
    CHECK(weft_now() < base); /* else the test proves nothing */
    while (weft_now() < base + ORDERED_N * WEFT_USEC + 20 * WEFT_MSEC)
        ; /* hold the worker */
    CHECK(weft_gather(t, ORDERED_N, NULL) == 0);
    return NULL;
}

/* Batches taken from the wake queue run oldest first: pushed onto the
 * LIFO deque, each batch ran newest first, and under a steady stream of
 * wakes the oldest waited at the bottom. */
static void test_woken_fibers_run_oldest_first(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    assert_int_equal(weft_run(rt, wake_in_order, NULL, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
    for (int i = 0; i < ORDERED_N; i++)
        assert_int_equal(ordered_at[i], i);
}

/* A batch from the wake queue takes no more than fit in the deque: a
 * spill would send the deque's oldest half to the back of the inject
 * queue. */
#if WEFT_DEQUE_CAP >= 64 /* the smallq build's deques spill anyway */
enum { WOKEN_N = 100 };
static atomic_int sleepers_started;
static atomic_size_t max_inject_seen;
static weft_runtime *spill_rt;
/* One deadline for all: far enough that the worker is held before it. */
static uint64_t wake_deadline;

static void *sleep_then_look(void *arg) {
    (void)arg;
    atomic_fetch_add(&sleepers_started, 1);
    CHECK(weft_sleep_until(wake_deadline) == 0);
    size_t len = weft__inject_len(&spill_rt->sched.inject);
    size_t seen = atomic_load(&max_inject_seen);
    while (len > seen && !atomic_compare_exchange_weak(&max_inject_seen, &seen, len))
        ;
    return NULL;
}

/* Fills its deque with new fibers, then holds the worker until every
 * sleeper's wake is queued. */
static void *fill_deque_until_woken(void *arg) {
    struct weft_sched *s = arg;
    for (int i = 0; i < WEFT_DEQUE_CAP + 1; i++)
        CHECK(weft_spawn(NULL, nothing, NULL, NULL) == 0);
    CHECK(weft__deque_size(&weft__sched_worker()->deque) == WEFT_DEQUE_CAP);
    uint64_t give_up = weft_now() + 10 * WEFT_SEC;
    while (weft__inject_len(&s->woken) < WOKEN_N && weft_now() < give_up)
        weft__cpu_relax();
    CHECK(weft__inject_len(&s->woken) == WOKEN_N);
    return NULL;
}
#endif

static void test_wake_batch_does_not_spill(void **state) {
    (void)state;
#if WEFT_DEQUE_CAP >= 64
    spill_rt = make_rt(1);
    atomic_store(&max_inject_seen, 0);
    wake_deadline = weft_now() + 500 * WEFT_MSEC;
    for (int i = 0; i < WOKEN_N; i++)
        assert_int_equal(weft_spawn(spill_rt, sleep_then_look, NULL, NULL), 0);
    while (atomic_load(&sleepers_started) < WOKEN_N)
        usleep(100);
    assert_int_equal(weft_spawn(spill_rt, fill_deque_until_woken, &spill_rt->sched, NULL), 0);
    assert_int_equal(weft_runtime_destroy(spill_rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&max_inject_seen), 0);
#endif
}

/* ---- Woken fibers are not held by a blocked worker --------------------- */

enum { BLOCKED_N = 4 };
static uint64_t blocked_deadline;
static atomic_int blocked_order;
static weft_sem blocked_units;
static atomic_int units_got;

/* A plain thread waits for one unit from each of the other sleepers. */
static void *collect_units(void *arg) {
    (void)arg;
    for (int i = 1; i < BLOCKED_N; i++) {
        if (weft_sem_acquire_for(&blocked_units, 3 * WEFT_SEC) != 0)
            return NULL;
        atomic_fetch_add(&units_got, 1);
    }
    return NULL;
}

/* All wake together. The first to run blocks its worker thread in
 * pthread_join on a thread that waits for the others. */
static void *sleep_then_block_or_give(void *arg) {
    (void)arg;
    CHECK(weft_sleep_until(blocked_deadline) == 0);
    if (atomic_fetch_add(&blocked_order, 1) == 0) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, collect_units, NULL) == 0);
        CHECK(pthread_join(th, NULL) == 0);
    } else {
        CHECK(weft_sem_release(&blocked_units) == 0);
    }
    return NULL;
}

/* Holds a worker while the sleepers wake, without calling weft. */
static void *hold_past_deadline(void *arg) {
    (void)arg;
    while (weft_now() < blocked_deadline + 5 * WEFT_MSEC)
        weft__cpu_relax();
    return NULL;
}

static void *wake_while_one_worker_held(void *arg) {
    (void)arg;
    weft_task *t[BLOCKED_N + 1];
    blocked_deadline = weft_now() + 20 * WEFT_MSEC;
    for (int i = 0; i < BLOCKED_N; i++)
        CHECK(weft_spawn(NULL, sleep_then_block_or_give, NULL, &t[i]) == 0);
    CHECK(weft_sleep(10 * WEFT_MSEC) == 0);
    CHECK(weft_spawn(NULL, hold_past_deadline, NULL, &t[BLOCKED_N]) == 0);
    CHECK(weft_gather(t, BLOCKED_N + 1, NULL) == 0);
    return NULL;
}

/* The sleepers wake as one batch, taken by the free worker; the first
 * blocks that worker's thread until the others have run. They must run
 * on the other worker once it is free: when a worker kept the rest of a
 * batch to itself (an owner-only list), they never ran and the plain
 * thread timed out (or, without a timeout, hung). */
static void test_woken_fibers_leave_a_blocked_worker(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    for (int round = 0; round < 3; round++) {
        atomic_store(&blocked_order, 0);
        atomic_store(&units_got, 0);
        assert_int_equal(weft_sem_init(&blocked_units, 0), 0);
        assert_int_equal(weft_run(rt, wake_while_one_worker_held, NULL, NULL), 0);
        assert_int_equal(atomic_load(&units_got), BLOCKED_N - 1);
        assert_int_equal(weft_sem_destroy(&blocked_units), 0);
    }
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- A parked worker finds work nobody told it of ---------------------- */

static atomic_int unheard_ran;

static void *mark_ran(void *arg) {
    (void)arg;
    atomic_store(&unheard_ran, 1);
    return NULL;
}

/* Until n workers are parked (5 s at most). */
static void wait_until_parked(struct weft_sched *s, uint32_t n) {
    uint64_t give_up = weft_now() + 5 * WEFT_SEC;
    while (atomic_load(&s->nidle) < n && weft_now() < give_up)
        weft__cpu_relax();
    CHECK(atomic_load(&s->nidle) == n);
}

/* Spawn mark_ran with its notification lost, then hold this worker's
 * thread in the kernel until the task has run elsewhere (3 s at most). */
static void push_unheard_and_block(struct weft_sched *s) {
    /* A spinner that will never look: the push notifies nobody. */
    atomic_fetch_add(&s->nspinning, 1);
    CHECK(weft_spawn(NULL, mark_ran, NULL, NULL) == 0);
    atomic_fetch_sub(&s->nspinning, 1);
    for (int i = 0; i < 3000 && !atomic_load(&unheard_ran); i++)
        usleep(1000);
    CHECK(atomic_load(&unheard_ran));
}

/* Queues a task as a local push does, with its notification lost (as
 * when the other worker parks at that very moment: "Local pushes" in
 * sched.c), then blocks its worker thread in the kernel until the task
 * has run elsewhere. */
static void *push_unheard_then_block(void *arg) {
    struct weft_sched *s = arg;
    wait_until_parked(s, 1); /* the other worker */
    push_unheard_and_block(s);
    return NULL;
}

/* "Held work": while a worker runs, a parked one looks for work every
 * few milliseconds. Without that, the task waited in the blocked
 * worker's slot until its thread came back (here: never, as it waits
 * for the task). */
static void test_parked_worker_finds_unheard_work(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    atomic_store(&unheard_ran, 0);
    weft_task *t;
    assert_int_equal(weft_spawn(rt, push_unheard_then_block, &rt->sched, &t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(atomic_load(&unheard_ran), 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* Who watches for held work when the role's holder does not: three
 * fibers meet, one per worker, so nobody is parked and nobody holds the
 * role; the role is then set by hand while two of them end and their
 * workers park, and the third pushes a task unheard and blocks its
 * worker. One of the parked workers must find the task.
 *   - held by a watcher, freed once both parked: as when the watcher
 *     leaves the park; the two parked under it, as non-watchers, and
 *     must take the free role over.
 *   - held by a watcher asleep until notified (as after every worker was
 *     idle): a worker that parks must take it over.
 * The holder is a worker index the runtime does not have. */
#define NOBODY 99
struct role_case {
    struct weft_sched *s;
    uint32_t held;    /* the role while the two park */
    bool free_after;  /* then let it fall free */
};

static atomic_int met, released;

static void meet(void) {
    atomic_fetch_add(&met, 1);
    uint64_t give_up = weft_now() + 5 * WEFT_SEC;
    while (atomic_load(&met) < 3 && weft_now() < give_up)
        weft__cpu_relax();
    CHECK(atomic_load(&met) == 3);
}

static void *meet_then_end(void *arg) {
    (void)arg;
    meet();
    while (!atomic_load(&released))
        weft__cpu_relax();
    return NULL;
}

static void *push_unheard_with_role(void *arg) {
    const struct role_case *c = arg;
    struct weft_sched *s = c->s;
    meet();
    /* All three workers run: no parked worker holds the role. */
    atomic_store(&s->watcher, c->held);
    atomic_store(&released, 1);
    wait_until_parked(s, 2);
    if (c->free_after)
        atomic_store(&s->watcher, WEFT_ROLE_FREE);
    push_unheard_and_block(s);
    return NULL;
}

static void run_role_case(uint32_t held, bool free_after) {
    weft_runtime *rt = make_rt(3);
    struct role_case c = {&rt->sched, held, free_after};
    atomic_store(&unheard_ran, 0);
    atomic_store(&met, 0);
    atomic_store(&released, 0);
    weft_task *t[3];
    assert_int_equal(weft_spawn(rt, meet_then_end, NULL, &t[0]), 0);
    assert_int_equal(weft_spawn(rt, meet_then_end, NULL, &t[1]), 0);
    assert_int_equal(weft_spawn(rt, push_unheard_with_role, &c, &t[2]), 0);
    assert_int_equal(weft_gather(t, 3, NULL), 0);
    assert_int_equal(atomic_load(&unheard_ran), 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

static void test_parked_worker_takes_a_free_watcher_role(void **state) {
    (void)state;
    run_role_case(WEFT_ROLE_OF(NOBODY), true);
}

static void test_parking_worker_takes_over_a_sleeping_watcher(void **state) {
    (void)state;
    run_role_case(WEFT_ROLE_OF(NOBODY) | WEFT_ROLE_ASLEEP, false);
}

/* ---- Take-back: a fiber among the last few of our deque ------------- */

/* Finish a taken-back fiber by hand, as join.c's inline path does. */
static void finish_by_hand(struct weft_worker *w, weft_task *t) {
    struct weft_fiber *f = weft__task_fiber(t);
    uint32_t expect = WEFT_FIBER_NEW;
    CHECK(atomic_compare_exchange_strong(&f->status, &expect, WEFT_FIBER_STARTED));
    weft__task_publish(f, NULL, 0, WEFT_FIBER_DONE);
    weft__sched_count_finished(w);
    weft__fiber_unref(f, NULL); /* the run reference */
}

static void *take_back_cases(void *arg) {
    (void)arg;
    struct weft_worker *w = weft__sched_worker();
#if WEFT_DEQUE_CAP < 32
    /* The smallq build spills most of these to the inject queue. */
    (void)finish_by_hand;
    weft_task *one;
    CHECK(weft_spawn(NULL, nothing, NULL, &one) == 0);
    CHECK(weft__sched_take_back(w, weft__task_fiber(one)));
    finish_by_hand(w, one);
    CHECK(weft_join(one, NULL) == 0);
    return NULL;
#endif
    enum { N = 20 };
    weft_task *t[N];
    for (int i = 0; i < N; i++)
        CHECK(weft_spawn(NULL, nothing, NULL, &t[i]) == 0);
    /* The newest is in the LIFO slot, the rest in the deque. */
    CHECK(weft__slot_peek(&w->next) == weft__task_fiber(t[N - 1]));
    CHECK(weft__deque_size(&w->deque) == N - 1);
    /* t[0] is under eighteen others: too deep to take back; all stay. */
    CHECK(!weft__sched_take_back(w, weft__task_fiber(t[0])));
    CHECK(weft__deque_size(&w->deque) == N - 1);
    /* t[9] is ten from the bottom: taken, the nine above it stay. */
    CHECK(weft__sched_take_back(w, weft__task_fiber(t[9])));
    CHECK(weft__deque_size(&w->deque) == N - 2);
    finish_by_hand(w, t[9]);
    /* The order of the rest is kept: newest first. */
    CHECK(weft__deque_pop(&w->deque) == weft__task_fiber(t[N - 2]));
    CHECK(weft__deque_push(&w->deque, weft__task_fiber(t[N - 2])) == 0);
    /* And the LIFO slot's fiber is taken back from the slot. */
    CHECK(weft__sched_take_back(w, weft__task_fiber(t[N - 1])));
    CHECK(weft__slot_peek(&w->next) == NULL);
    finish_by_hand(w, t[N - 1]);
    for (int i = 0; i < N; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    return NULL;
}

static void test_take_back_only_near_the_bottom(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(1);
    assert_int_equal(weft_run(rt, take_back_cases, NULL, NULL), 0);
    /* The root counts itself finished just after it wakes its joiner. */
    uint64_t deadline = weft_now() + 5 * WEFT_SEC;
    while (!weft__sched_quiescent(weft__runtime_sched(rt)) && weft_now() < deadline)
        weft_sleep(WEFT_MSEC);
    assert_true(weft__sched_quiescent(weft__runtime_sched(rt)));
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- Stack room reported for the running fiber ------------------------ */

static void *stack_room(void *arg) {
    (void)arg;
    struct weft_worker *w = weft__sched_worker();
    size_t left = weft__sched_stack_left(w);
    CHECK(left > 0 && left <= w->current->stack->size);
    CHECK(left > w->current->stack->size / 2);
    return NULL;
}

static void test_stack_left_is_within_the_stack(void **state) {
    (void)state;
    weft_runtime *rt = make_rt(2);
    weft_task *t;
    assert_int_equal(weft_spawn(rt, stack_room, NULL, &t), 0);
    assert_int_equal(weft_join(t, NULL), 0);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- A clobbered canary is caught at the next switch-out ------------- */

static void *clobber_canary(void *arg) {
    (void)arg;
    struct weft_worker *w = weft__sched_worker();
    *w->current->stack->canary = 0; /* what an overflow past the guard does */
    weft_yield();
    return NULL;
}

static void canary_child(void) {
    weft_runtime *rt;
    weft_config cfg = {.workers = 1};
    if (weft_runtime_create(&rt, &cfg) != 0)
        _exit(3);
    weft_task *t;
    weft_spawn_opts opts = {.name = "clobberer"};
    weft_spawn_ex(rt, clobber_canary, NULL, &opts, &t);
    /* Something else to switch to, so the yield switches out. */
    weft_spawn(rt, nothing, NULL, NULL);
    weft_join(t, NULL);
}

static void test_canary_checked_at_switch_out(void **state) {
    (void)state;
    char out[2048];
    int status = wt_run_child(canary_child, out, sizeof out);
    assert_true(status != -1 && WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "stack overflow"));
    assert_non_null(strstr(out, "clobberer"));
    assert_non_null(strstr(out, "canary"));
}

/* ---- Idle workers return all-free slabs' pages --------------------------- */

static atomic_long slept, started;
static atomic_int gate;

/* Holds its stack until the gate opens: all of them at once. */
static void *sleep_until_gate(void *arg) {
    (void)arg;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&gate))
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    atomic_fetch_add(&slept, 1);
    return NULL;
}

/* Slabs whose stacks all came back are not trimmed on the fibers' exit
 * path but by a worker about to park: an idle runtime trims them, once
 * they have been free for WEFT_STACK_RETAIN_NS (its parked workers wake
 * up for it). */
static void test_idle_workers_trim_free_slabs(void **state) {
    (void)state;
    weft_runtime *rt;
    weft_config cfg = {.workers = 2, .stack_size = 16 * 1024, .stack_cache = 8};
    assert_int_equal(weft_runtime_create(&rt, &cfg), 0);
    enum { N = 2048 }; /* eight slabs of 16 KiB stacks, all in use at once */
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_spawn(rt, sleep_until_gate, NULL, NULL), 0);
    while (atomic_load(&started) < N)
        usleep(1000);
    atomic_store(&gate, 1);
    struct weft_stack_pool *pool = &rt->sched.pools[rt->sched.default_class];
    size_t trimmed = 0;
    for (int i = 0; i < 1000 && (atomic_load(&slept) < N || !trimmed); i++) {
        usleep(10 * 1000);
        trimmed = weft__stack_pool_trimmed(pool);
    }
    assert_int_equal(atomic_load(&slept), N);
    assert_true(trimmed >= 1);
    assert_int_equal(weft_runtime_destroy(rt), 0);
    assert_int_equal(atomic_load(&failures), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_join_runs_depth_first),
        cmocka_unit_test(test_yield_lets_others_run),
        cmocka_unit_test(test_timer_wakes_run_before_new_fibers),
        cmocka_unit_test(test_woken_fibers_run_oldest_first),
        cmocka_unit_test(test_idle_workers_trim_free_slabs),
        cmocka_unit_test(test_wake_batch_does_not_spill),
        cmocka_unit_test(test_woken_fibers_leave_a_blocked_worker),
        cmocka_unit_test(test_parked_worker_finds_unheard_work),
        cmocka_unit_test(test_parked_worker_takes_a_free_watcher_role),
        cmocka_unit_test(test_parking_worker_takes_over_a_sleeping_watcher),
        cmocka_unit_test(test_take_back_only_near_the_bottom),
        cmocka_unit_test(test_stack_left_is_within_the_stack),
        cmocka_unit_test(test_canary_checked_at_switch_out),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
