/*
 * lib/sync.c - mutex, condition, semaphore and wait group: value types
 * usable from fibers and plain threads at once. The shared machinery (a
 * spinlock and a FIFO wait queue) and its invariants are in sync.h.
 *
 * Mutex
 *   One state word, laid out as Go's sync.Mutex: LOCKED, WOKEN (a waiter
 *   is awake and about to try: unlock need wake no other), STARVING
 *   (hand-off mode) and, above them, the number of queued waiters. The
 *   queue itself is under the object lock; a locker adds itself to the
 *   count and to the queue in one critical section of that lock, so an
 *   unlocker that took a count off and then pops under the lock finds a
 *   node.
 *   Lock: fetch_or(LOCKED), a test-and-set whatever else the word
 *   holds; if it was set, spin a while with backoff (a spinner sets
 *   WOKEN if waiters are queued, so unlocks do not wake one of them
 *   meanwhile), then count and queue itself and wait.
 *   Unlock: one CAS clears LOCKED and, if waiters are counted and none
 *   is awake yet, takes one off the count and sets WOKEN; that one is
 *   then popped and woken. While a woken waiter is on its way, unlocks
 *   stay one atomic operation. The woken waiter competes with running
 *   lockers; if it loses it queues again at the head. One that has
 *   waited more than WEFT_MUTEX_STARVING_NS sets STARVING: from then on
 *   the lock is not released but handed to the oldest waiter, and
 *   newcomers queue at the tail, until a waiter that is handed the lock
 *   has waited less than that or is the last one (bounded unfairness,
 *   as Go's starvation mode).
 *   Why: a contended lock stays with the worker that runs it, instead of
 *   its line moving between workers on every operation, and the others
 *   run other fibers.
 *   Not a cancellation point.
 *
 * Condition
 *   A FIFO of waiters. wait queues itself, then unlocks the mutex (so no
 *   signal can fall between), waits, and locks the mutex again whatever
 *   happened. signal pops the oldest waiter, broadcast all of them.
 *
 * Semaphore, wait group
 *   A count and a FIFO of waiters under one lock. release gives its unit
 *   to the oldest waiter directly; the wait group wakes every waiter when
 *   its count reaches zero.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <string.h>

#include "park.h"
#include "sched.h"
#include "sync.h"

/* Handed the lock directly after waiting this long. */
#define WEFT_MUTEX_STARVING_NS WEFT_MSEC
/* Pauses a locker spins, at most, before it queues up (6-18 us: a pause
 * took 12-25 ns on the machines measured, ~36 ns with the lfence that
 * now follows it on the AMD guest); between two looks at the
 * lock it pauses twice as long as before, up to MAX_PAUSE. Long enough
 * to outlast a holder running on another core; short, because a holder
 * whose thread the OS has descheduled will not come back within any
 * spin: with 2048 pauses (~25 us) 64 fibers on an oversubscribed machine
 * took 0.1-22 us per lock instead of ~0.08.
 * The first look comes only after FIRST_PAUSE pauses (3-9 us), not at
 * once: a holder that locks again and again leaves the lock free most of
 * the time, so an early look would often win it, and each time the lock
 * changes hands between cores both sides pay for it; waiting first lets
 * each core keep it for a long run of operations. Measured on 2 workers
 * (2-vCPU AMD EPYC guest, a pause 25 ns): 64 fibers hammering one lock
 * took 38-67 ns per lock with a first pause of 32, 72 with 128, and
 * 15-16 ns with 256 (the same with 1024 pauses of spinning); two fibers
 * whose sections take ~0.3 us with as long between them, 222-254
 * against 152-187 ns per lock; two fibers with ~30 ns sections and ~300
 * ns between them, the one case where 32 did better, 68-74 (once 116)
 * against 68-84 ns. Earlier, on an Intel guest: 26 ms per million
 * operations with 32, 29 with 16, 46-60 with 1. (Figures with a bare
 * pause per step.) With bare pauses these held for the release build's
 * code layout only: built with functions aligned to 32 or 64 bytes, the
 * 64-fiber case took 43-77 ms per million. There the holder itself ran
 * slow: traced lock by lock, its plain lock/unlock pairs took 10-170 ns
 * instead of 10-20 while the other core sat in this pause loop, with
 * nothing else of ours touching the lock's line. The lfence after each
 * pause (weft__cpu_relax) ended that: 13.9-15.3 ms in all three
 * layouts. */
#define WEFT_MUTEX_SPINS 512u
#define WEFT_MUTEX_FIRST_PAUSE 256u
#define WEFT_MUTEX_MAX_PAUSE 256u

#define MUTEX_MAGIC 0x6d757478u /* "mutx" */
#define COND_MAGIC 0x636f6e64u  /* "cond" */
#define SEM_MAGIC 0x73656d61u   /* "sema" */
#define WG_MAGIC 0x77616967u    /* "waig" */

/* ---- Spinlock and queue ------------------------------------------------- */

/* Pauses the object lock spins, at most, before it sleeps on its futex;
 * between two looks it pauses twice as long as before, up to MAX_PAUSE. */
#define SPIN_LOCK_PAUSES 1024u
#define SPIN_LOCK_MAX_PAUSE 256u
/* The longest a locker sleeps on a held lock before it looks again: the
 * bound on a wake-up that unlock missed (sync.h). */
#define SPIN_LOCK_NAP_NS (200 * WEFT_USEC)

/* Spin until *word goes from 0 to 1 by our CAS (true), for at most
 * `budget` pauses. Exponential backoff, up to max_pause pauses between
 * looks: each look pulls the line away from the holder, so the longer it
 * holds it the less often we look. acquire: pairs with the holder's
 * release of the word. */
static bool take_with_backoff(_Atomic uint32_t *word, unsigned budget, unsigned max_pause) {
    for (unsigned spun = 0, pause = 1; spun < budget; spun += pause) {
        uint32_t expect = 0;
        if (atomic_load_explicit(word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(word, &expect, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
        for (unsigned k = 0; k < pause; k++)
            weft__cpu_relax();
        if (pause < max_pause)
            pause *= 2;
    }
    return false;
}

/* Aligned to a cache line: where its code starts moves its spin loop's
 * timing under contention. Measured: 4 producers and 4 consumers on one
 * channel (the chan_buffered_4x4 peer workload, 2 workers) took 59-62 ms
 * in every run with this function at 16 bytes into a 64-byte line, 22 ms
 * with it at 0, 32 or 48, and 22 ms aligned so (three builds of each). */
WEFT_ALIGNED_CODE void weft__spin_lock(struct weft_spinlock *l) {
    uint32_t c = 0;
    /* acquire: pairs with the release store in weft__spin_unlock. */
    if (WEFT_LIKELY(atomic_compare_exchange_strong_explicit(&l->held, &c, 1,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)))
        return;
    if (take_with_backoff(&l->held, SPIN_LOCK_PAUSES, SPIN_LOCK_MAX_PAUSE))
        return;
    /* Contended: announce ourselves (L2), then nap until it is free. */
    atomic_fetch_add_explicit(&l->sleepers, 1, memory_order_seq_cst);
    for (;;) {
        c = 0;
        if (atomic_compare_exchange_strong_explicit(&l->held, &c, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            break;
        weft__park_wait(&l->held, 1, weft_now() + SPIN_LOCK_NAP_NS);
    }
    /* relaxed: only unlock's hint reads it. */
    atomic_fetch_sub_explicit(&l->sleepers, 1, memory_order_relaxed);
}

void weft__spin_unlock_contended(struct weft_spinlock *l) {
    weft__park_wake(&l->held, 1);
}

int weft__node_withdrawn(struct weft_wait_node *n, bool unqueued, int rc) {
    if (unqueued) {
        if (n->waiter.fiber)
            weft__wait_abort(n->waiter.fiber);
        return rc;
    }
    /* Dequeued by someone who will signal: the event happened after all. */
    weft__waiter_drain(&n->waiter, 0);
    return 0;
}

int weft__node_withdraw(struct weft_spinlock *lock, struct weft_wait_queue *q,
                        struct weft_wait_node *n, int rc) {
    weft__spin_lock(lock);
    bool unqueued = weft__node_unqueue(q, n);
    weft__spin_unlock(lock);
    return weft__node_withdrawn(n, unqueued, rc);
}

uint64_t weft__deadline_after(uint64_t timeout_ns) {
    if (timeout_ns == WEFT_FOREVER)
        return WEFT_FOREVER;
    uint64_t now = weft_now();
    return timeout_ns > WEFT_FOREVER - 1 - now ? WEFT_FOREVER - 1 : now + timeout_ns;
}

/* Fibers' mutex owner ids: never reused, even (a plain thread's id is its
 * pthread_t | 1, odd), so a task that ends holding a mutex cannot have
 * it unlocked by a later task whose control block sits at the same
 * address. Handed out in blocks per thread: the shared counter is touched
 * once per LOCK_ID_BLOCK tasks. */
#define LOCK_ID_BLOCK 4096u
static _Atomic uint64_t lock_id_blocks;
/* Thread-locals read and written with no switch in between. */
static WEFT_TLS uint64_t lock_id_next, lock_id_end;

static uint64_t new_lock_id(void) {
    if (lock_id_next == lock_id_end) {
        /* relaxed: a counter; only its uniqueness matters. */
        uint64_t block = atomic_fetch_add_explicit(&lock_id_blocks, 1, memory_order_relaxed);
        lock_id_next = (block + 1) * LOCK_ID_BLOCK;
        lock_id_end = lock_id_next + LOCK_ID_BLOCK;
    }
    return lock_id_next++ << 1;
}

/* Who holds a mutex: the task (fiber) or the plain thread. */
static uintptr_t self_id(void) {
    struct weft_fiber *f = weft__sched_current();
    if (!f)
        return (uintptr_t)pthread_self() | 1;
    if (!f->lock_id)
        f->lock_id = new_lock_id();
    return (uintptr_t)f->lock_id;
}

/* ---- Mutex -------------------------------------------------------------- */

struct mutex_impl {
    uint32_t magic;
    _Atomic uint32_t state;     /* M_* bits, then the waiter count */
    struct weft_spinlock lock;  /* protects q */
    _Atomic uintptr_t owner;    /* holder's self_id(); written by it */
    struct weft_wait_queue q;
};
static_assert(sizeof(struct mutex_impl) <= sizeof(weft_mutex),
              "grow weft_mutex._private (an ABI change)");
static_assert(alignof(struct mutex_impl) <= alignof(weft_mutex),
              "weft_mutex storage is under-aligned");

/* The state word. Invariants:
 *   M1  the waiter count is changed only with the object lock held when
 *       it grows (together with the push), and by the unlocker that then
 *       pops (normal mode) or by the waiter handed the lock (hand-off).
 *   M2  WOKEN is set by at most one fiber or thread at a time (the one
 *       woken, or a spinner that set it), which clears it when it takes
 *       the lock or queues again.
 *   M3  STARVING implies LOCKED and a counted waiter: in starving mode
 *       the lock never comes free, each unlock passes it on to the
 *       oldest waiter. Only the waiter handed the lock clears STARVING,
 *       so a holder that sees it set may rely on it; one that does not
 *       releases by a CAS that fails if it was set meanwhile. */
#define M_LOCKED WEFT_MUTEX_LOCKED
#define M_WOKEN WEFT_MUTEX_WOKEN
#define M_STARVING WEFT_MUTEX_STARVING
#define M_WAITER WEFT_MUTEX_WAITER

enum { MUTEX_RETRY = 0, MUTEX_HANDED = 1 };

static struct mutex_impl *mutex_of(weft_mutex *m) {
    struct mutex_impl *mi = (struct mutex_impl *)(void *)m;
    return WEFT_PTR_OK(m, weft_mutex) && mi->magic == MUTEX_MAGIC ? mi : NULL;
}

int weft_mutex_init(weft_mutex *m) {
    if (!WEFT_PTR_OK(m, weft_mutex))
        return -EINVAL;
    memset(m, 0, sizeof *m);
    struct mutex_impl *mi = (struct mutex_impl *)(void *)m;
    mi->magic = MUTEX_MAGIC;
    return 0;
}

static void take(struct mutex_impl *mi, uintptr_t id) {
    /* relaxed: only its holder writes owner; others read it to detect
     * misuse, which the state word's acquire/release orders anyway. */
    atomic_store_explicit(&mi->owner, id, memory_order_relaxed);
}

/* One spinning step of a locker that found the lock held: claim WOKEN
 * if waiters are queued and nobody is awake (M2), then pause. Returns
 * the state seen afterwards. */
static uint32_t mutex_spin(struct mutex_impl *mi, uint32_t old, bool *awoke, unsigned pause) {
    if (!*awoke && !(old & M_WOKEN) && old >= M_WAITER &&
        /* relaxed: a hint to unlock, which orders nothing by it. */
        atomic_compare_exchange_weak_explicit(&mi->state, &old, old | M_WOKEN,
                                              memory_order_relaxed, memory_order_relaxed))
        *awoke = true;
    for (unsigned k = 0; k < pause; k++)
        weft__cpu_relax();
    return atomic_load_explicit(&mi->state, memory_order_relaxed);
}

/* Object lock held. Count ourselves in and queue up, unless the lock is
 * free after all (false: old is the state seen). again: n was queued
 * before, and lost the lock after it was woken. */
static bool mutex_enqueue(struct mutex_impl *mi, struct weft_wait_node *n, bool awoke,
                          bool again, uint32_t *old) {
    bool starving = again && weft_now() - n->since > WEFT_MUTEX_STARVING_NS;
    *old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    for (;;) {
        if (!(*old & M_LOCKED))
            return false;
        uint32_t new = *old + M_WAITER;
        if (awoke)
            new &= ~M_WOKEN;
        if (starving)
            new |= M_STARVING;
        /* relaxed: the object lock orders the count with the node (M1). */
        if (atomic_compare_exchange_weak_explicit(&mi->state, old, new, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    /* A woken waiter that lost keeps its place at the head. */
    if (again)
        weft__queue_push_front(&mi->q, n);
    else
        weft__queue_push(&mi->q, n);
    return true;
}

/* Handed the lock in starving mode (LOCKED stays set, M3): take our
 * count off, and leave starving mode if we waited briefly or are the
 * last waiter. */
static void mutex_take_handed(struct mutex_impl *mi, uint64_t since) {
    bool brief = weft_now() - since <= WEFT_MUTEX_STARVING_NS;
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed), new;
    do {
        assert((old & (M_LOCKED | M_STARVING)) == (M_LOCKED | M_STARVING));
        new = old - M_WAITER;
        if (brief || new < M_WAITER)
            new &= ~M_STARVING;
        /* relaxed: the lock's memory reached us through the unlocker's
         * signal to our waiter (acq_rel). */
    } while (!atomic_compare_exchange_weak_explicit(&mi->state, &old, new, memory_order_relaxed,
                                                    memory_order_relaxed));
}

static int mutex_lock_slow(struct mutex_impl *mi, uintptr_t id) {
    struct weft_wait_node n;
    uint64_t since = 0;         /* when first queued */
    bool queued_before = false; /* and woken, but lost the lock */
    bool awoke = false;         /* we own WOKEN (M2) */
    unsigned spun = 0, pause = WEFT_MUTEX_FIRST_PAUSE;
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    for (;;) {
        /* No spinning in starving mode: the lock goes to the queue. */
        if ((old & (M_LOCKED | M_STARVING)) == M_LOCKED && spun < WEFT_MUTEX_SPINS) {
            old = mutex_spin(mi, old, &awoke, pause);
            spun += pause;
            if (pause < WEFT_MUTEX_MAX_PAUSE)
                pause *= 2;
            continue;
        }
        if (!(old & M_LOCKED)) {
            uint32_t new = old | M_LOCKED;
            if (awoke)
                new &= ~M_WOKEN;
            /* acquire: pairs with the release in unlock. */
            if (atomic_compare_exchange_weak_explicit(&mi->state, &old, new,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                break;
            continue;
        }
        weft__node_init(&n, weft__sched_current(), false);
        if (!queued_before)
            since = weft_now();
        n.since = since;
        weft__spin_lock(&mi->lock);
        if (!mutex_enqueue(mi, &n, awoke, queued_before, &old)) {
            weft__spin_unlock(&mi->lock);
            if (n.waiter.fiber)
                weft__wait_abort(n.waiter.fiber);
            continue;
        }
        queued_before = true;
        weft__node_wait(&mi->lock, &mi->q, &n, WEFT_FOREVER);
        if (n.result == MUTEX_HANDED) {
            mutex_take_handed(mi, since);
            break;
        }
        awoke = true; /* the unlocker set WOKEN for us */
        spun = 0;
        pause = WEFT_MUTEX_FIRST_PAUSE;
        old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    }
    take(mi, id);
    return 0;
}

int weft_mutex_lock(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    uintptr_t id = self_id();
    if (atomic_load_explicit(&mi->owner, memory_order_relaxed) == id)
        return -EDEADLK;
    /* acquire: pairs with the release in unlock. Setting LOCKED where it
     * is set already changes nothing, so this is a test-and-set that
     * works whatever else the word holds. */
    if (WEFT_LIKELY(!(atomic_fetch_or_explicit(&mi->state, M_LOCKED, memory_order_acquire) &
                      M_LOCKED))) {
        take(mi, id);
        return 0;
    }
    return mutex_lock_slow(mi, id);
}

int weft_mutex_trylock(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    /* acquire: pairs with the release in unlock. */
    if (atomic_fetch_or_explicit(&mi->state, M_LOCKED, memory_order_acquire) & M_LOCKED)
        return -EBUSY;
    take(mi, self_id());
    return 0;
}

/* Pop the oldest waiter and wake it: `how` it gets the lock. There is
 * one (M1, M3). */
static void mutex_wake_oldest(struct mutex_impl *mi, int how) {
    weft__spin_lock(&mi->lock);
    struct weft_wait_node *n = weft__queue_pop(&mi->q);
    weft__spin_unlock(&mi->lock);
    assert(n);
    weft__node_wake(n, how);
}

int weft_mutex_unlock(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    if (atomic_load_explicit(&mi->owner, memory_order_relaxed) != self_id())
        return -EPERM;
    atomic_store_explicit(&mi->owner, 0, memory_order_relaxed);
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed), new;
    bool wake;
    do {
        if (old & M_STARVING) {
            /* Hand-off: the lock stays taken (M3). */
            mutex_wake_oldest(mi, MUTEX_HANDED);
            return 0;
        }
        /* Wake the oldest waiter unless one is awake already (M2). */
        new = old & ~M_LOCKED;
        wake = new >= M_WAITER && !(new & M_WOKEN);
        if (wake)
            new = (new - M_WAITER) | M_WOKEN;
        /* release: what the critical section wrote, to the next holder. */
    } while (!atomic_compare_exchange_weak_explicit(&mi->state, &old, new, memory_order_release,
                                                    memory_order_relaxed));
    if (WEFT_UNLIKELY(wake))
        mutex_wake_oldest(mi, MUTEX_RETRY);
    return 0;
}

uint32_t weft__mutex_state(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    return mi ? atomic_load_explicit(&mi->state, memory_order_relaxed) : 0;
}

int weft_mutex_destroy(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    weft__spin_lock(&mi->lock);
    bool busy = atomic_load_explicit(&mi->state, memory_order_relaxed) != 0 ||
                !weft__queue_empty(&mi->q);
    if (!busy)
        mi->magic = 0;
    weft__spin_unlock(&mi->lock);
    return busy ? -EBUSY : 0;
}

/* Whether the caller holds m (for the condition's -EPERM). */
static bool mutex_held_by_self(struct mutex_impl *mi) {
    return atomic_load_explicit(&mi->owner, memory_order_relaxed) == self_id();
}

/* ---- Condition ---------------------------------------------------------- */

struct cond_impl {
    uint32_t magic;
    struct weft_spinlock lock;
    struct weft_wait_queue q;
};
static_assert(sizeof(struct cond_impl) <= sizeof(weft_cond),
              "grow weft_cond._private (an ABI change)");
static_assert(alignof(struct cond_impl) <= alignof(weft_cond),
              "weft_cond storage is under-aligned");

static struct cond_impl *cond_of(weft_cond *c) {
    struct cond_impl *ci = (struct cond_impl *)(void *)c;
    return WEFT_PTR_OK(c, weft_cond) && ci->magic == COND_MAGIC ? ci : NULL;
}

int weft_cond_init(weft_cond *c) {
    if (!WEFT_PTR_OK(c, weft_cond))
        return -EINVAL;
    memset(c, 0, sizeof *c);
    ((struct cond_impl *)(void *)c)->magic = COND_MAGIC;
    return 0;
}

static int cond_wait_until(weft_cond *c, weft_mutex *m, uint64_t deadline) {
    struct cond_impl *ci = cond_of(c);
    struct mutex_impl *mi = mutex_of(m);
    if (!ci || !mi)
        return -EINVAL;
    if (!mutex_held_by_self(mi))
        return -EPERM;
    /* A timeout that has passed already (0): no wait, so no cancel
     * either, as every timed wait; the mutex stays held. */
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return -ETIMEDOUT;
    struct weft_fiber *self = weft__sched_current();
    if (weft__self_cancelled(self))
        return -ECANCELED; /* would block: sticky cancel answers at once */
    struct weft_wait_node n;
    weft__node_init(&n, self, true);
    weft__spin_lock(&ci->lock);
    weft__queue_push(&ci->q, &n);
    /* Queued before the mutex goes: a signal after the unlock finds us. */
    weft_mutex_unlock(m);
    int rc = weft__node_wait(&ci->lock, &ci->q, &n, deadline);
    weft_mutex_lock(m); /* not a cancellation point: always relocked */
    return rc;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m) {
    return cond_wait_until(c, m, WEFT_FOREVER);
}

int weft_cond_wait_for(weft_cond *c, weft_mutex *m, uint64_t timeout_ns) {
    return cond_wait_until(c, m, weft__deadline_after(timeout_ns));
}

int weft_cond_signal(weft_cond *c) {
    struct cond_impl *ci = cond_of(c);
    if (!ci)
        return -EINVAL;
    weft__spin_lock(&ci->lock);
    struct weft_wait_node *n = weft__queue_pop(&ci->q);
    weft__spin_unlock(&ci->lock);
    if (n)
        weft__node_wake(n, 0);
    return 0;
}

void weft__node_wake_chain(struct weft_wait_node *n, int result) {
    while (n) {
        struct weft_wait_node *next = n->next; /* n may vanish once woken */
        weft__node_wake(n, result);
        n = next;
    }
}

struct weft_wait_node *weft__queue_take_all(struct weft_wait_queue *q) {
    struct weft_wait_node *first = q->head;
    for (struct weft_wait_node *n = first; n; n = n->next)
        n->queued = false;
    q->head = q->tail = NULL;
    return first;
}

int weft_cond_broadcast(weft_cond *c) {
    struct cond_impl *ci = cond_of(c);
    if (!ci)
        return -EINVAL;
    weft__spin_lock(&ci->lock);
    struct weft_wait_node *all = weft__queue_take_all(&ci->q);
    weft__spin_unlock(&ci->lock);
    weft__node_wake_chain(all, 0);
    return 0;
}

int weft_cond_destroy(weft_cond *c) {
    struct cond_impl *ci = cond_of(c);
    if (!ci)
        return -EINVAL;
    weft__spin_lock(&ci->lock);
    bool busy = !weft__queue_empty(&ci->q);
    if (!busy)
        ci->magic = 0;
    weft__spin_unlock(&ci->lock);
    return busy ? -EBUSY : 0;
}

/* ---- Semaphore ---------------------------------------------------------- */

struct sem_impl {
    uint32_t magic;
    struct weft_spinlock lock;
    uint32_t count;             /* lock */
    struct weft_wait_queue q;   /* lock; non-empty only while count == 0 */
};
static_assert(sizeof(struct sem_impl) <= sizeof(weft_sem),
              "grow weft_sem._private (an ABI change)");
static_assert(alignof(struct sem_impl) <= alignof(weft_sem),
              "weft_sem storage is under-aligned");

static struct sem_impl *sem_of(weft_sem *s) {
    struct sem_impl *si = (struct sem_impl *)(void *)s;
    return WEFT_PTR_OK(s, weft_sem) && si->magic == SEM_MAGIC ? si : NULL;
}

int weft_sem_init(weft_sem *s, unsigned count) {
    if (!WEFT_PTR_OK(s, weft_sem))
        return -EINVAL;
    memset(s, 0, sizeof *s);
    struct sem_impl *si = (struct sem_impl *)(void *)s;
    si->magic = SEM_MAGIC;
    si->count = count;
    return 0;
}

static int sem_acquire_until(weft_sem *s, uint64_t deadline, bool try_only) {
    struct sem_impl *si = sem_of(s);
    if (!si)
        return -EINVAL;
    struct weft_wait_node n;
    weft__spin_lock(&si->lock);
    if (si->count > 0) {
        si->count--;
        weft__spin_unlock(&si->lock);
        return 0;
    }
    if (try_only || deadline <= weft_now()) {
        weft__spin_unlock(&si->lock);
        return try_only ? -EAGAIN : -ETIMEDOUT;
    }
    weft__spin_unlock(&si->lock);
    weft__node_init(&n, weft__sched_current(), true);
    weft__spin_lock(&si->lock);
    if (si->count > 0) { /* released while we prepared */
        si->count--;
        weft__spin_unlock(&si->lock);
        if (n.waiter.fiber)
            weft__wait_abort(n.waiter.fiber);
        return 0;
    }
    weft__queue_push(&si->q, &n);
    return weft__node_wait(&si->lock, &si->q, &n, deadline);
}

int weft_sem_acquire(weft_sem *s) { return sem_acquire_until(s, WEFT_FOREVER, false); }

int weft_sem_acquire_for(weft_sem *s, uint64_t timeout_ns) {
    return sem_acquire_until(s, weft__deadline_after(timeout_ns), false);
}

int weft_sem_try_acquire(weft_sem *s) { return sem_acquire_until(s, 0, true); }

int weft_sem_release(weft_sem *s) {
    struct sem_impl *si = sem_of(s);
    if (!si)
        return -EINVAL;
    weft__spin_lock(&si->lock);
    struct weft_wait_node *n = weft__queue_pop(&si->q);
    if (!n) {
        if (si->count == UINT32_MAX) {
            weft__spin_unlock(&si->lock);
            return -EOVERFLOW;
        }
        si->count++;
    }
    weft__spin_unlock(&si->lock);
    if (n)
        weft__node_wake(n, 0); /* the unit goes straight to n */
    return 0;
}

int weft_sem_destroy(weft_sem *s) {
    struct sem_impl *si = sem_of(s);
    if (!si)
        return -EINVAL;
    weft__spin_lock(&si->lock);
    bool busy = !weft__queue_empty(&si->q);
    if (!busy)
        si->magic = 0;
    weft__spin_unlock(&si->lock);
    return busy ? -EBUSY : 0;
}

/* ---- Wait group --------------------------------------------------------- */

/* The count changes by CAS, without the lock: a burst of fibers ending
 * at once (each calling done) must not queue on a lock whose holder the
 * kernel may preempt. Only the add that brings the count to zero takes
 * the lock, to wake the queue.
 *
 * G1  a waiter queues itself only after seeing count > 0 under the lock;
 *     an add that makes count zero locks after its CAS and wakes every
 *     queued waiter. So a waiter either is in the queue by then or, locking
 *     after it, sees the zero (or a later count). */
struct wg_impl {
    uint32_t magic;
    struct weft_spinlock lock;
    _Atomic int64_t count;      /* never below zero; CAS (G1) */
    struct weft_wait_queue q;   /* lock; non-empty only while count > 0 */
};
static_assert(sizeof(struct wg_impl) <= sizeof(weft_wg),
              "grow weft_wg._private (an ABI change)");
static_assert(alignof(struct wg_impl) <= alignof(weft_wg),
              "weft_wg storage is under-aligned");

static struct wg_impl *wg_of(weft_wg *wg) {
    struct wg_impl *wi = (struct wg_impl *)(void *)wg;
    return WEFT_PTR_OK(wg, weft_wg) && wi->magic == WG_MAGIC ? wi : NULL;
}

int weft_wg_init(weft_wg *wg) {
    if (!WEFT_PTR_OK(wg, weft_wg))
        return -EINVAL;
    memset(wg, 0, sizeof *wg);
    ((struct wg_impl *)(void *)wg)->magic = WG_MAGIC;
    return 0;
}

int weft_wg_add(weft_wg *wg, int n) {
    struct wg_impl *wi = wg_of(wg);
    if (!wi)
        return -EINVAL;
    int64_t c = atomic_load_explicit(&wi->count, memory_order_relaxed);
    do {
        if (c + n < 0)
            return -EINVAL;
        /* acq_rel: release what this task did before its done to the
         * waiter, which acquires the count (a chain of RMWs carries each
         * adder's release to it). */
    } while (!atomic_compare_exchange_weak_explicit(&wi->count, &c, c + n, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (c + n != 0 || n == 0)
        return 0;
    weft__spin_lock(&wi->lock); /* G1 */
    struct weft_wait_node *all = weft__queue_take_all(&wi->q);
    weft__spin_unlock(&wi->lock);
    weft__node_wake_chain(all, 0);
    return 0;
}

int weft_wg_done(weft_wg *wg) { return weft_wg_add(wg, -1); }

int weft_wg_wait(weft_wg *wg) {
    struct wg_impl *wi = wg_of(wg);
    if (!wi)
        return -EINVAL;
    /* acquire: pairs with the adders' releases (see weft_wg_add). */
    if (atomic_load_explicit(&wi->count, memory_order_acquire) == 0)
        return 0;
    struct weft_wait_node n;
    weft__node_init(&n, weft__sched_current(), true);
    weft__spin_lock(&wi->lock);
    /* acquire: as above; the lock orders it after a zeroing add (G1). */
    if (atomic_load_explicit(&wi->count, memory_order_acquire) == 0) {
        weft__spin_unlock(&wi->lock);
        if (n.waiter.fiber)
            weft__wait_abort(n.waiter.fiber);
        return 0;
    }
    weft__queue_push(&wi->q, &n);
    return weft__node_wait(&wi->lock, &wi->q, &n, WEFT_FOREVER);
}

int weft_wg_destroy(weft_wg *wg) {
    struct wg_impl *wi = wg_of(wg);
    if (!wi)
        return -EINVAL;
    weft__spin_lock(&wi->lock);
    bool busy = !weft__queue_empty(&wi->q);
    if (!busy)
        wi->magic = 0;
    weft__spin_unlock(&wi->lock);
    return busy ? -EBUSY : 0;
}
