/*
 * lib/sync.c - mutex, condition, semaphore and wait group: value types
 * usable from fibers and plain threads at once. The shared machinery (a
 * spinlock and a FIFO wait queue) and its invariants are in sync.h.
 *
 * Mutex
 *   Two words. The lock word is 1 while the mutex is held. The state
 *   word is laid out as Go's sync.Mutex without its LOCKED bit: WOKEN (a
 *   waiter is awake and about to try: unlock need wake no other),
 *   STARVING (hand-off mode), FAST (unlocks need not look for waiters)
 *   and, above them, the number of queued waiters. The queue itself is
 *   under the object lock; the count changes with the queue, in one
 *   critical section of that lock (M1).
 *   Lock: an exchange of the lock word; if it was held, spin a while
 *   with backoff (a spinner sets WOKEN if waiters are queued, so unlocks
 *   do not wake one of them meanwhile), then count and queue itself and
 *   wait.
 *   Unlock: a store of 0 to the lock word, then a look at the state
 *   word: if waiters are counted and none is awake yet, take one off the
 *   count, set WOKEN, pop it and wake it. The waiters' half of that
 *   handshake (M4) lets the look go without a barrier while the mutex is
 *   in FAST mode, the first waiter to queue paying for it with an
 *   asymmetric fence: an uncontended lock and unlock cost one locked
 *   instruction, not two (12.5 -> 8.0 ns a pair on one worker; 64
 *   fibers on 2 workers 13.3-13.5 -> 9.8-11.6 ms per million). The woken
 *   waiter competes with running lockers; if it loses it queues again at
 *   the head. One that has waited more than WEFT_MUTEX_STARVING_NS sets
 *   STARVING: from then on the lock is not released but handed to the
 *   oldest waiter, and newcomers queue at the tail, until a waiter that
 *   is handed the lock has waited less than that or is the last one
 *   (bounded unfairness, as Go's starvation mode).
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
#include <sched.h>
#include <stdalign.h>
#include <string.h>

#include "fence.h"
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
    /* 1 while held, and across a hand-off (M0): the lock itself, in a
     * word of its own, so that an unlock can be a plain store. */
    _Atomic uint32_t locked;
    _Atomic uint32_t state;     /* M_* bits, then the waiter count */
    /* The holder's (M5): unlocks since the fast mode was granted, or
     * quiet unlocks in a row since it was lost; how many quiet ones a
     * grant needs (FAST_RUN_FIRST << 2 * level); whether the holder
     * granted it and has not yet seen it revoked. */
    uint16_t streak;
    uint8_t level;
    bool granted;
    struct weft_spinlock lock;  /* protects q and the count (M1) */
    _Atomic uintptr_t owner;    /* holder's self_id(); written by it */
    struct weft_wait_queue q;
};
static_assert(sizeof(struct mutex_impl) <= sizeof(weft_mutex),
              "grow weft_mutex._private (an ABI change)");
static_assert(alignof(struct mutex_impl) <= alignof(weft_mutex),
              "weft_mutex storage is under-aligned");

/* The lock word and the state word. Invariants:
 *   M0  locked is 1 from a take (an exchange that read 0) to the
 *       holder's release, and stays 1 across a hand-off.
 *   M1  the waiter count equals q's length whenever the object lock is
 *       free: it grows with a push and shrinks with a pop, in one
 *       critical section of that lock.
 *   M2  WOKEN is set by at most one fiber or thread at a time: a
 *       spinner (mutex_spin) or whoever pops a waiter to wake it, for
 *       that waiter. Its owner clears it when it takes the lock or
 *       queues again.
 *   M3  STARVING implies a counted waiter. While it is set, an unlock
 *       that sees it hands the lock to the oldest waiter (locked stays
 *       1) instead of releasing it. Set by a waiter that queues again
 *       after waiting more than WEFT_MUTEX_STARVING_NS; cleared by the
 *       hand-off when the waiter handed it waited briefly or was the
 *       last, and by the pop of the last waiter.
 *   M4  the wake-up handshake. An unlock stores locked = 0, then reads
 *       the state word; a locker that queues counts itself in, then
 *       reads locked. A barrier between the two steps on both sides
 *       makes one see the other: the unlocker sees the count and wakes
 *       the oldest waiter (unless one is WOKEN already), or the locker
 *       sees the lock free and does that itself (mutex_wake_one).
 *       In FAST mode the unlocker's barrier is a compiler barrier only,
 *       and an unlock that still reads FAST after its store returns
 *       without looking at the count. FAST implies no waiter is
 *       counted: the locker that queues first clears it in the same CAS
 *       that counts it in, and then runs the asymmetric fence (fence.h)
 *       for every unlocker at once. An unlocker that read FAST did so
 *       before the fence split its instruction stream, so its store of
 *       locked, before that read, is visible to the locker after the
 *       fence; any later unlock reads FAST cleared and takes the full
 *       barrier. (The channel's biased lock, bias.h, is the same trade:
 *       the frequent side drops its locked instruction, the rare side
 *       pays a fence.)
 *   M5  streak, level and granted are the holder's, read and written
 *       only while it holds the lock (before its release store). The
 *       mode is granted again by the holder, by a CAS that needs no
 *       waiter counted, after FAST_RUN_FIRST << 2 * level quiet unlocks
 *       in a row; a grant revoked within FAST_PAID unlocks raises the
 *       level (the fence cost more than the mode saved), one that
 *       lasted longer resets it. */
#define M_LOCKED WEFT_MUTEX_LOCKED
#define M_WOKEN WEFT_MUTEX_WOKEN
#define M_STARVING WEFT_MUTEX_STARVING
#define M_FAST WEFT_MUTEX_FAST
#define M_WAITER WEFT_MUTEX_WAITER

/* Quiet unlocks that earn the fast mode back at level 0, and the level's
 * cap (FAST_RUN_FIRST << 2 * FAST_LEVEL_MAX must fit streak). A grant
 * that served fewer unlocks than FAST_PAID before its revocation did not
 * pay for its fence: 20-30 us with the other CPU busy, against ~5 ns
 * saved per unlock. */
#define FAST_RUN_FIRST 256u
#define FAST_LEVEL_MAX 3u
#define FAST_PAID 16384u
static_assert(FAST_RUN_FIRST << 2 * FAST_LEVEL_MAX <= UINT16_MAX, "streak too narrow");

enum { MUTEX_RETRY = 0, MUTEX_HANDED = 1 };

/* Set once the fence was refused after all (fence.h): no more grants.
 * relaxed: a flag; a late reader grants once more at worst, and the
 * revoker of that grant waits as mutex_revoked() does. */
static _Atomic bool mutex_fence_refused;

static bool fast_mode_allowed(void) {
    return weft__fence_available() &&
           !atomic_load_explicit(&mutex_fence_refused, memory_order_relaxed);
}

static struct mutex_impl *mutex_of(weft_mutex *m) {
    struct mutex_impl *mi = (struct mutex_impl *)(void *)m;
    return WEFT_PTR_OK(m, weft_mutex) && mi->magic == MUTEX_MAGIC ? mi : NULL;
}

int weft_mutex_init(weft_mutex *m) {
    if (!WEFT_PTR_OK(m, weft_mutex))
        return -EINVAL;
    memset(m, 0, sizeof *m);
    struct mutex_impl *mi = (struct mutex_impl *)(void *)m;
    if (fast_mode_allowed()) {
        atomic_init(&mi->state, M_FAST);
        mi->granted = true;
    }
    mi->magic = MUTEX_MAGIC;
    return 0;
}

static void take(struct mutex_impl *mi, uintptr_t id) {
    /* relaxed: only its holder writes owner; others read it to detect
     * misuse, which the lock word's acquire/release orders anyway. */
    atomic_store_explicit(&mi->owner, id, memory_order_relaxed);
}

/* Take the lock if it is free. acquire: pairs with the release store of
 * the last unlock (M0). */
static bool try_take(struct mutex_impl *mi) {
    return atomic_exchange_explicit(&mi->locked, 1, memory_order_acquire) == 0;
}

/* One spinning step of a locker that found the lock held: claim WOKEN
 * if waiters are queued and nobody is awake (M2), then pause. */
static void mutex_spin(struct mutex_impl *mi, uint32_t old, bool *awoke, unsigned pause) {
    if (!*awoke && !(old & M_WOKEN) && old >= M_WAITER &&
        /* relaxed: a hint to unlock, which orders nothing by it. */
        atomic_compare_exchange_weak_explicit(&mi->state, &old, old | M_WOKEN,
                                              memory_order_relaxed, memory_order_relaxed))
        *awoke = true;
    for (unsigned k = 0; k < pause; k++)
        weft__cpu_relax();
}

/* Pop the oldest waiter and wake it to retry, unless none is queued or
 * one is awake already (M2). Anyone: an unlocker, or a locker that
 * queued and found the lock free (M4). */
static void mutex_wake_one(struct mutex_impl *mi) {
    struct weft_wait_node *n = NULL;
    weft__spin_lock(&mi->lock);
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    while (old >= M_WAITER && !(old & M_WOKEN)) {
        uint32_t new = (old - M_WAITER) | M_WOKEN;
        if (new < M_WAITER)
            new &= ~M_STARVING; /* M3: no waiter left to hand to */
        /* relaxed: the object lock orders the count with the pop (M1);
         * the lock's memory goes by the lock word. */
        if (atomic_compare_exchange_weak_explicit(&mi->state, &old, new, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            n = weft__queue_pop(&mi->q);
            break;
        }
    }
    weft__spin_unlock(&mi->lock);
    if (n)
        weft__node_wake(n, MUTEX_RETRY);
}

/* A locker that cleared FAST (M4): the fence, for every unlocker that
 * may still act on the FAST it read. */
static void mutex_revoked(void) {
    if (weft__fence_all())
        return;
    atomic_store_explicit(&mutex_fence_refused, true, memory_order_relaxed);
    /* Only a filter installed since the fence was found available refuses
     * it. Without it an unlocker's store may still sit in its store
     * buffer: wait far longer than a store takes to drain (a preempted
     * unlocker's store is visible: a switch drains it). */
    for (unsigned i = 0; i < 4096; i++)
        sched_yield();
}

/* Take n off the queue if it is still there, with its count (M1): the
 * lock came free while it queued. False if a waker popped it already
 * (its signal is coming). */
static bool mutex_withdraw(struct mutex_impl *mi, struct weft_wait_node *n) {
    weft__spin_lock(&mi->lock);
    bool queued = weft__node_unqueue(&mi->q, n);
    if (queued) {
        uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed), new;
        do {
            new = old - M_WAITER;
            if (new < M_WAITER)
                new &= ~M_STARVING; /* M3 */
            /* relaxed: the object lock orders the count with the queue. */
        } while (!atomic_compare_exchange_weak_explicit(&mi->state, &old, new,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed));
    }
    weft__spin_unlock(&mi->lock);
    return queued;
}

/* Count ourselves in and queue up (M1), then the locker's half of the
 * handshake (M4). again: n was queued before, and lost the lock after it
 * was woken. Returns true if n is queued and the caller must wait for
 * its signal; false if the lock is free (nothing queued: try again). */
static bool mutex_queue(struct mutex_impl *mi, struct weft_wait_node *n, bool *awoke, bool again) {
    bool starving = again && weft_now() - n->since > WEFT_MUTEX_STARVING_NS;
    weft__spin_lock(&mi->lock);
    /* relaxed: a first look, saving a queueing (and a revocation) when
     * the lock came free meanwhile; the handshake below decides. */
    if (!atomic_load_explicit(&mi->locked, memory_order_relaxed)) {
        weft__spin_unlock(&mi->lock);
        return false;
    }
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed), new;
    do {
        new = (old + M_WAITER) & ~M_FAST;
        if (*awoke)
            new &= ~M_WOKEN; /* M2: queueing again, we give it up */
        if (starving)
            new |= M_STARVING;
        /* seq_cst: the locker's side of the handshake (M4) with the
         * unlockers' full barrier; the object lock orders the count with
         * the push (M1). */
    } while (!atomic_compare_exchange_weak_explicit(&mi->state, &old, new, memory_order_seq_cst,
                                                    memory_order_relaxed));
    *awoke = false;
    /* A woken waiter that lost keeps its place at the head. */
    if (again)
        weft__queue_push_front(&mi->q, n);
    else
        weft__queue_push(&mi->q, n);
    weft__spin_unlock(&mi->lock);
    if (old & M_FAST)
        mutex_revoked();
    else
        atomic_thread_fence(memory_order_seq_cst); /* M4, with the CAS above */
    /* relaxed: the handshake's read; the lock's memory goes by the
     * exchange that takes it. */
    if (atomic_load_explicit(&mi->locked, memory_order_relaxed))
        return true;
    /* Free after all: the unlock may have missed us (M4). Leave the queue
     * and try again ourselves, rather than wake the oldest and sleep:
     * that made a convoy of every lock (two million queueings in four
     * million locks). Waiters counted before us stay counted, so the next
     * unlock, ours or another's, sees them. */
    if (mutex_withdraw(mi, n))
        return false;
    return true; /* popped meanwhile: our signal is coming */
}

static int mutex_lock_slow(struct mutex_impl *mi, uintptr_t id) {
    struct weft_wait_node n;
    uint64_t since = 0;         /* when first queued */
    bool queued_before = false; /* and woken, but lost the lock */
    bool awoke = false;         /* we own WOKEN (M2) */
    unsigned spun = 0, pause = WEFT_MUTEX_FIRST_PAUSE;
    for (;;) {
        uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed);
        if (!atomic_load_explicit(&mi->locked, memory_order_relaxed)) {
            if (!try_take(mi))
                continue;
            if (awoke) /* M2. relaxed: a hint to unlock. */
                atomic_fetch_and_explicit(&mi->state, ~M_WOKEN, memory_order_relaxed);
            break;
        }
        /* No spinning in starving mode: the lock goes to the queue. */
        if (!(old & M_STARVING) && spun < WEFT_MUTEX_SPINS) {
            mutex_spin(mi, old, &awoke, pause);
            spun += pause;
            if (pause < WEFT_MUTEX_MAX_PAUSE)
                pause *= 2;
            continue;
        }
        weft__node_init(&n, weft__sched_current(), false);
        if (!queued_before)
            since = weft_now();
        n.since = since;
        if (!mutex_queue(mi, &n, &awoke, queued_before)) {
            if (n.waiter.fiber)
                weft__wait_abort(n.waiter.fiber);
            /* The holder is cycling fast: spin again rather than queue
             * and leave at once, round after round. */
            spun = 0;
            pause = WEFT_MUTEX_FIRST_PAUSE;
            continue;
        }
        queued_before = true;
        /* Not cancellable, no deadline: returns once n is signalled. */
        weft__waiter_block(&n.waiter, WEFT_FOREVER);
        if (n.result == MUTEX_HANDED)
            break; /* the lock never came free (M0, M3) */
        awoke = true; /* whoever popped us set WOKEN for us */
        spun = 0;
        pause = WEFT_MUTEX_FIRST_PAUSE;
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
    if (WEFT_LIKELY(try_take(mi))) {
        take(mi, id);
        return 0;
    }
    return mutex_lock_slow(mi, id);
}

int weft_mutex_trylock(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    if (!try_take(mi))
        return -EBUSY;
    take(mi, self_id());
    return 0;
}

/* Starving mode (M3): pass the lock to the oldest waiter, locked staying
 * 1. False if no waiter is queued after all (then the caller releases).
 * The holder's. */
static bool mutex_hand_off(struct mutex_impl *mi) {
    struct weft_wait_node *n = NULL;
    weft__spin_lock(&mi->lock);
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed), new;
    do {
        n = NULL;
        new = old & ~M_STARVING;
        if (old >= M_WAITER) {
            n = mi->q.head; /* popped below, with the count (M1) */
            new = old - M_WAITER;
            /* Starving mode ends with a waiter that waited briefly, or
             * with the last one. */
            if (new >= M_WAITER && weft_now() - n->since > WEFT_MUTEX_STARVING_NS)
                new |= M_STARVING;
        }
        /* relaxed: the object lock orders the count with the pop (M1);
         * the lock's memory goes by the waiter's signal (acq_rel). */
    } while (!atomic_compare_exchange_weak_explicit(&mi->state, &old, new, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (n)
        weft__queue_pop(&mi->q);
    weft__spin_unlock(&mi->lock);
    if (!n)
        return false;
    weft__node_wake(n, MUTEX_HANDED);
    return true;
}

/* M5, before the release: count this unlock, and say whether to try a
 * grant after it. old: the state word read before the release. */
static bool fast_mode_bookkeeping(struct mutex_impl *mi, uint32_t old) {
    if (old & M_FAST) {
        if (mi->streak < UINT16_MAX)
            mi->streak++;
        return false;
    }
    if (mi->granted) { /* revoked since our grant: did it pay? */
        mi->granted = false;
        if (mi->streak >= FAST_PAID)
            mi->level = 0;
        else if (mi->level < FAST_LEVEL_MAX)
            mi->level++;
        mi->streak = 0;
    }
    if (old >= M_WAITER || (old & (M_WOKEN | M_STARVING))) {
        mi->streak = 0;
        return false;
    }
    if (++mi->streak < FAST_RUN_FIRST << (2 * mi->level) || !fast_mode_allowed())
        return false;
    mi->granted = true; /* if the grant's CAS fails, a revocation is counted */
    mi->streak = 0;
    return true;
}

int weft_mutex_unlock(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    if (atomic_load_explicit(&mi->owner, memory_order_relaxed) != self_id())
        return -EPERM;
    atomic_store_explicit(&mi->owner, 0, memory_order_relaxed);
    uint32_t old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    if (WEFT_UNLIKELY(old & M_STARVING) && mutex_hand_off(mi))
        return 0;
    bool grant = fast_mode_bookkeeping(mi, old);
    /* release: what the critical section wrote, to the next holder. */
    atomic_store_explicit(&mi->locked, 0, memory_order_release);
    /* M4, the unlocker's side: in FAST mode a compiler barrier is all it
     * takes (a queueing locker fences for us). */
    atomic_signal_fence(memory_order_seq_cst);
    old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    if (WEFT_LIKELY(old & M_FAST))
        return 0;
    atomic_thread_fence(memory_order_seq_cst);
    old = atomic_load_explicit(&mi->state, memory_order_relaxed);
    if (old >= M_WAITER && !(old & M_WOKEN)) {
        mutex_wake_one(mi);
    } else if (grant && old == 0) {
        /* relaxed: a mode bit; the handshake orders what matters (M4). */
        atomic_compare_exchange_strong_explicit(&mi->state, &old, M_FAST, memory_order_relaxed,
                                                memory_order_relaxed);
    }
    return 0;
}

uint32_t weft__mutex_state(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return 0;
    uint32_t s = atomic_load_explicit(&mi->state, memory_order_relaxed) & ~M_FAST;
    return atomic_load_explicit(&mi->locked, memory_order_relaxed) ? s | M_LOCKED : s;
}

int weft_mutex_destroy(weft_mutex *m) {
    struct mutex_impl *mi = mutex_of(m);
    if (!mi)
        return -EINVAL;
    weft__spin_lock(&mi->lock);
    bool busy = weft__mutex_state(m) != 0 || !weft__queue_empty(&mi->q);
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
