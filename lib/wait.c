/*
 * lib/wait.c - the wait protocol and waiters.
 *
 * Wait protocol
 *   A fiber that blocks (join, sleep, lock, channel) does it in two steps,
 *   and only the second makes it visible as parked:
 *     1. prepare: f->wait = (gen+1, WAITING); register a waiter naming
 *        gen+1 wherever the event will come from (release);
 *     2. switch out; the context resumed on the same worker then CASes
 *        (gen, WAITING) -> (gen, PARKED) ("Publish after switch",
 *        sched.c).
 *   A waker claims the wait by CAS on the whole word, naming gen:
 *     (gen, PARKED)  -> (gen, RUNNABLE): the waker queues the fiber;
 *     (gen, WAITING) -> (gen, NOTIFIED): the fiber is still on its stack;
 *        step 2's CAS fails, sees NOTIFIED and queues it instead.
 *   Exactly one CAS wins, so the fiber is queued once, never lost, never
 *   run on two threads. A waker of an older wait names an older gen and
 *   fails: stale wake-ups (a timer that fired late, a task that finished
 *   after a join timed out) cannot end a later wait.
 *
 *   The generation is 32 bits; a stale waker would need the fiber to wait
 *   2^32 times between its read of gen and its CAS.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "park.h"
#include "sched.h"
#include "timer.h"
#include "wait.h"

void weft__wait_abort(struct weft_fiber *f) {
    /* relaxed: after this the word only matters to wakers, who fail on a
     * RUNNING state whatever they read; NOTIFIED becomes RUNNING too. */
    atomic_store_explicit(&f->wait, weft__wait_word(f->wait_gen, WEFT_WAIT_RUNNING),
                          memory_order_relaxed);
}

struct weft_worker *weft__wait_park(struct weft_worker *w, bool *by_timer) {
    w = weft__sched_switch_out(w, WEFT_AFTER_PARK);
    struct weft_fiber *f = w->current;
    if (by_timer) {
        /* relaxed: we run, so the waker's claim (acq_rel) is behind us;
         * the line is ours anyway for the store below. */
        *by_timer = atomic_load_explicit(&f->wait, memory_order_relaxed) & WEFT_WAIT_BY_TIMER;
    }
    /* relaxed: as above. */
    atomic_store_explicit(&f->wait, weft__wait_word(f->wait_gen, WEFT_WAIT_RUNNING),
                          memory_order_relaxed);
    return w;
}

void weft__wait_publish(struct weft_fiber *f) {
    uint64_t cur = atomic_load_explicit(&f->wait, memory_order_relaxed);
    for (;;) {
        uint32_t state = (uint32_t)cur & WEFT_WAIT_STATE_MASK;
        if (state == WEFT_WAIT_NOTIFIED) {
            /* Woken before we were off its stack: queue it ourselves.
             * The other bits stay (WEFT_WAIT_BY_TIMER). */
            atomic_store_explicit(&f->wait,
                                  (cur & ~(uint64_t)WEFT_WAIT_STATE_MASK) | WEFT_WAIT_RUNNABLE,
                                  memory_order_relaxed);
            weft__sched_ready(f);
            return;
        }
        WEFT_ASSERT(state == WEFT_WAIT_WAITING);
        uint64_t parked = (cur & ~(uint64_t)WEFT_WAIT_STATE_MASK) | WEFT_WAIT_PARKED;
        /* seq_cst: release, so the context we just saved (f->ctx) is
         * visible to whoever resumes it (the waker's acquire CAS); and the
         * first half of the cancel check below. */
        if (atomic_compare_exchange_weak_explicit(&f->wait, &cur, parked,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    /* Cancel check. weft_cancel stores f->cancel, then loads f->wait (both
     * seq_cst); we CAS f->wait, then load f->cancel (seq_cst, walking
     * inline hosts). One of the two sees the other: either the canceller
     * saw WAITING or PARKED and ended the wait itself, or we see the flag
     * here and end it, naming this wait's generation. By then f may run
     * elsewhere and even have finished: a newer wait or a newer task in
     * its block has another generation (fiber.c keeps counting), so the
     * claim is stale and does nothing; what is read meanwhile is a control
     * block, never freed before the runtime. */
    if ((cur & WEFT_WAIT_CANCELLABLE) && weft__fiber_cancel_requested(f))
        weft__wait_wake(f, (uint32_t)(cur >> 32));
}

static enum weft_wake_result claim(struct weft_fiber *f, uint32_t gen, uint32_t mark) {
    /* acquire: pairs with the release CAS in publish (f->ctx). */
    uint64_t cur = atomic_load_explicit(&f->wait, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(cur >> 32) != gen)
            return WEFT_WAKE_STALE;
        uint32_t state = (uint32_t)cur & WEFT_WAIT_STATE_MASK;
        uint32_t to;
        if (state == WEFT_WAIT_PARKED)
            to = WEFT_WAIT_RUNNABLE;
        else if (state == WEFT_WAIT_WAITING)
            to = WEFT_WAIT_NOTIFIED;
        else
            return WEFT_WAKE_STALE;
        uint64_t next = (cur & ~(uint64_t)WEFT_WAIT_STATE_MASK) | to | mark;
        /* acq_rel: acquire the parked context (see above); release what
         * the waker wrote before waking (the event's data). */
        if (atomic_compare_exchange_weak_explicit(&f->wait, &cur, next,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return to == WEFT_WAIT_RUNNABLE ? WEFT_WAKE_CLAIMED : WEFT_WAKE_NOTIFIED;
    }
}

enum weft_wake_result weft__wait_claim(struct weft_fiber *f, uint32_t gen) {
    return claim(f, gen, 0);
}

enum weft_wake_result weft__wait_claim_by_timer(struct weft_fiber *f, uint32_t gen) {
    return claim(f, gen, WEFT_WAIT_BY_TIMER);
}

bool weft__wait_wake(struct weft_fiber *f, uint32_t gen) {
    enum weft_wake_result r = weft__wait_claim(f, gen);
    if (r == WEFT_WAKE_CLAIMED)
        weft__sched_ready(f);
    return r != WEFT_WAKE_STALE;
}

void weft__wait_cancel(struct weft_fiber *f) {
    /* seq_cst: the second half of the canceller's side of the cancel
     * check (weft__wait_publish). */
    uint64_t cur = atomic_load_explicit(&f->wait, memory_order_seq_cst);
    if (!(cur & WEFT_WAIT_CANCELLABLE))
        return;
    weft__wait_wake(f, (uint32_t)(cur >> 32));
}

/* ---- Waiters ------------------------------------------------------------- */

/* ---- Parkers (plain threads) -------------------------------------------- */

static pthread_mutex_t parkers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_parker *free_parkers; /* parkers_lock */
static pthread_key_t parker_key;
static pthread_once_t parker_once = PTHREAD_ONCE_INIT;
/* The calling thread's parker. Plain threads only: a thread never
 * migrates, so a thread-local is safe here. */
static WEFT_TLS struct weft_parker *tls_parker;

static void parker_release(void *p) {
    struct weft_parker *pk = p;
    pthread_mutex_lock(&parkers_lock);
    pk->next_free = free_parkers;
    free_parkers = pk;
    pthread_mutex_unlock(&parkers_lock);
}

/* Whether parker_key exists. Without it (the process ran out of keys) a
 * thread's parker is not recycled at its exit: it stays allocated, a few
 * bytes per such thread, instead of failing the thread's waits. */
static bool parker_key_made;

static void parker_key_init(void) {
    parker_key_made = pthread_key_create(&parker_key, parker_release) == 0;
}

struct weft_parker *weft__self_parker(void) {
    if (WEFT_LIKELY(tls_parker != NULL))
        return tls_parker;
    pthread_once(&parker_once, parker_key_init);
    pthread_mutex_lock(&parkers_lock);
    struct weft_parker *pk = free_parkers;
    if (pk)
        free_parkers = pk->next_free;
    pthread_mutex_unlock(&parkers_lock);
    if (!pk) {
        pk = calloc(1, sizeof *pk);
        if (!pk)
            weft__panic("weft: out of memory for a thread parker");
    }
    tls_parker = pk;
    /* A refusal (ENOMEM) costs the recycling only, as a missing key does. */
    if (parker_key_made)
        (void)pthread_setspecific(parker_key, pk);
    return pk;
}

static bool signalled(struct weft_waiter *wt) {
    /* acquire: pairs with the release decrement in signal: the event's
     * data (a result) is visible once pending reads 0. */
    return atomic_load_explicit(&wt->pending, memory_order_acquire) <= 0;
}

/* A plain thread polls this long before it sleeps in the kernel: a join
 * of a short task usually ends within it, and a futex sleep and wake
 * cost tens of microseconds of scheduling latency on a loaded machine.
 * Picked, like WEFT_SPIN_NS in sched.c. */
#define THREAD_SPIN_NS (20 * WEFT_USEC)

int weft__thread_block(struct weft_waiter *wt, uint64_t deadline) {
    uint64_t spin_until = weft_now() + THREAD_SPIN_NS;
    if (spin_until > deadline)
        spin_until = deadline;
    do {
        for (int i = 0; i < 64; i++) {
            if (signalled(wt))
                return 0;
            weft__cpu_relax();
        }
    } while (weft_now() < spin_until);
    struct weft_parker *pk = wt->parker;
    for (;;) {
        /* acquire: pairs with the signaller's release increment (W2). */
        uint32_t seq = atomic_load_explicit(&pk->seq, memory_order_acquire);
        if (signalled(wt))
            return 0;
        if (deadline != WEFT_FOREVER && weft_now() >= deadline)
            return -ETIMEDOUT;
        weft__park_wait(&pk->seq, seq, deadline);
    }
}

/* Deadlines closer than this to the coarse clock are checked with the
 * precise one. The coarse clock lags the precise one by at most a tick
 * (1-10 ms), or more on a CPU whose tick stopped. */
#define COARSE_MARGIN_NS (50 * WEFT_MSEC)

/* Whether a wait about to start has its deadline behind it already. Most
 * such deadlines are far (a sleep, a timeout), and the coarse clock says
 * so for ~5 ns where the precise one costs ~20 here. A wrong "not yet"
 * (the coarse clock far behind) only arms a timer that fires at once:
 * never early. */
static bool deadline_passed(uint64_t deadline) {
    if (deadline == WEFT_FOREVER)
        return false;
    if (deadline > weft__clock_ns(CLOCK_MONOTONIC_COARSE) + COARSE_MARGIN_NS)
        return false;
    return weft_now() >= deadline;
}

int weft__fiber_block(struct weft_waiter *wt, uint64_t deadline) {
    struct weft_fiber *f = wt->fiber;
    bool cancellable = atomic_load_explicit(&f->wait, memory_order_relaxed) &
                       WEFT_WAIT_CANCELLABLE;
    if (signalled(wt) || (cancellable && weft__fiber_cancel_requested(f)) ||
        deadline_passed(deadline)) {
        weft__wait_abort(f);
        goto out;
    }
    struct weft_timer_entry *timer = NULL;
    if (deadline != WEFT_FOREVER) {
        timer = weft__timer_arm(f->sched->timer, deadline, f, wt->gen);
        if (!timer) {
            weft__wait_abort(f);
            return -ENOMEM;
        }
    }
    bool by_timer;
    weft__wait_park(weft__sched_worker(), &by_timer);
    /* A wait the timer ended left its entry to the timer (timer.c):
     * untouched here, a cold line less for every sleep. */
    if (timer && !by_timer)
        weft__timer_disarm(timer);
out:
    if (signalled(wt))
        return 0;
    if (cancellable && weft__fiber_cancel_requested(f))
        return -ECANCELED;
    return -ETIMEDOUT;
}

void weft__parker_wake(struct weft_parker *pk) {
    /* release: pairs with the sleeper's acquire load of seq (W2). */
    atomic_fetch_add_explicit(&pk->seq, 1, memory_order_release);
    weft__park_wake(&pk->seq, 1);
}

/* ---- Task completion ---------------------------------------------------- */

void weft__task_publish(struct weft_fiber *f, void *result, int err,
                        uint32_t status) {
    f->result = result;
    f->exit_err = err;
    /* release: pairs with the acquire in weft__fiber_status() (F1). */
    atomic_store_explicit(&f->status, status, memory_order_release);
    /* acq_rel: release publishes result to the joiner that reads DONE;
     * acquire makes the waiter a joiner registered visible to us. */
    uintptr_t j = atomic_exchange_explicit(&f->joiner, WEFT_JOINER_DONE,
                                           memory_order_acq_rel);
    if (j > WEFT_JOINER_INLINE)
        weft__waiter_signal((struct weft_waiter *)j);
}

void weft__waiter_drain(struct weft_waiter *wt, int64_t target) {
    /* acquire: pairs with the release decrement in signal. */
    while (atomic_load_explicit(&wt->pending, memory_order_acquire) > target) {
        if (wt->fiber)
            weft__sched_yield(weft__sched_worker());
        else
            sched_yield();
    }
}
