/*
 * lib/bias.h - a lock biased to one thread: the channel's lock (chan.c).
 *
 * A channel between two fibers is locked twice per hand-off, nearly
 * always from one worker (the woken fiber runs next on the waker's
 * worker, sched.c), and an uncontended locked instruction is a large
 * part of such a hand-off. So once one thread has taken the lock many
 * times in a row, the lock is biased to it: that thread (the owner)
 * enters with plain stores and loads, and any other thread first takes
 * the bias away (revokes it), paying for an asymmetric fence (fence.h):
 *
 *   owner (me)                         anyone else (the shared path)
 *   O1 me->in = l                      R1 lock the spinlock
 *   O2 compiler barrier only           R2 if owned by another, o: owner =
 *   O3 if owner != me: me->in = NULL      NULL, the fence, then wait
 *      and take the shared path           while o->in == l
 *   O4 the critical section            R3 the critical section
 *   O5 me->in = NULL (release)         R4 unlock the spinlock
 *
 * The fence splits the owner's instruction stream at one point. If O3
 * came before it, O1 is visible to the revoker after it: R2 waits for
 * O5, whose release hands the section's stores over. If O3 came after
 * it, O3 sees owner == NULL and the owner takes the shared path, behind
 * the revoker. So a plain section never overlaps a section of the shared
 * path. (The owner's own shared-path sections exclude its plain ones by
 * program order.)
 *
 * The mark a section leaves (O1) is in the thread's own record, not in
 * the lock: a thread that read owner == me just before a revocation and
 * reaches O1 only after the bias went to another thread would otherwise
 * overwrite that owner's mark, and its O3 bail would clear it while the
 * owner is inside, letting a revoker in. (An earlier version kept one
 * busy word in the lock and had exactly that race; ThreadSanitizer found
 * it, two channel readers inside at once, under load.) A record is the
 * owner's identity too. Records are never freed: at a thread's exit its
 * record goes back to a free list, biases and all, and the next thread
 * to take a biased lock may get it, so an owner field never points at
 * freed memory. A thread has one plain section open at most (in is one
 * lock): inside one, it takes any other biased lock by the shared path.
 *
 * A revocation costs the revoker a fence (0.2 us with the owner's CPU
 * idle, 20-30 us with it running), so biasing must pay for it: a lock is
 * biased to the thread that took it `run_needed` times in a row on the
 * shared path, and a revocation that comes soon after the grant (within
 * BIAS_PAID_NS, bias.c) quadruples run_needed, up to BIAS_RUN_MAX. A
 * lock that two workers share in turns stays on the shared path; a
 * ping-pong pair's channel is biased to their worker, and soon to the
 * other worker when the pair moves there.
 *
 * Where the fence is missing (fence.h) no lock is ever biased.
 *
 * Invariants:
 *   B1  owner is NULL or a thread's record; only a holder of the spinlock
 *       writes it (R2, or a grant).
 *   B2  a record's `in` is written by its thread only; it is l only
 *       between that thread's O1 on l and its O5 (or its O3 bail).
 *   B3  plain is true only inside a plain section: the holder's field.
 *   B4  last, run_left, run_needed, revocations, granted_at: the
 *       spinlock's holder's (anyone's who holds the lock, plain sections
 *       included).
 */
#ifndef WEFT_BIAS_H
#define WEFT_BIAS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "sync.h"

struct weft_bias_lock {
    /* The owner's line: read by every locker, written by the owner's
     * plain sections, and rarely by a grant or a revocation. Apart from
     * the spinlock's, so that sections of the shared path, which read
     * owner, do not write the line the owner's fast path reads. */
    alignas(WEFT_CACHELINE) _Atomic(struct weft_bias_self *) owner; /* B1 */
    bool plain;                  /* B3 */
    /* The shared path's line: its spinlock and what its holder writes. */
    alignas(WEFT_CACHELINE) struct weft_spinlock shared;
    struct weft_bias_self *last; /* B4: the last shared-path taker */
    uint32_t run_left;           /* B4: locks `last` still needs to earn the bias */
    uint32_t run_needed;         /* B4: the run that earns it (0: BIAS_RUN_FIRST) */
    uint32_t revocations;        /* B4: so far (for tests) */
    uint64_t granted_at;         /* B4: when the bias was last granted */
    /* How long a bias must have lasted for its revocation to leave
     * run_needed as it is (0: BIAS_PAID_NS); tests set it. */
    uint64_t paid_ns;
};

/* A thread's record (see above). */
struct weft_bias_self {
    /* The lock of this thread's open plain section, or NULL (B2). On a
     * line of its own: revokers read it, and only its thread writes. */
    alignas(WEFT_CACHELINE) _Atomic(struct weft_bias_lock *) in;
    struct weft_bias_self *next_free; /* on the free list */
};

/* This thread's record (NULL until its first lock). */
extern WEFT_TLS struct weft_bias_self *weft__bias_me;

/* An unbiased, unlocked lock (also what zeroed memory holds). */
void weft__bias_init(struct weft_bias_lock *l);

/* Out of line, rare. This thread's record, from the free list or new;
 * NULL if out of memory (the thread then always takes the shared path). */
struct weft_bias_self *weft__bias_new_self(void);
/* The spinlock held, owner another thread: R2. */
void weft__bias_revoke(struct weft_bias_lock *l);
/* The spinlock held, unbiased: a new run by me, or the end of its run
 * (the grant). */
void weft__bias_new_run(struct weft_bias_lock *l, struct weft_bias_self *me);
void weft__bias_grant(struct weft_bias_lock *l, struct weft_bias_self *me);

/* The shared path, once its spinlock is taken: R2, or the run. Inline
 * and short: under contention every instruction here lengthens the
 * section that the other lockers wait for. */
static inline void weft__bias_shared_taken(struct weft_bias_lock *l,
                                           struct weft_bias_self *me) {
    /* relaxed: B1, written only under the spinlock we hold. */
    struct weft_bias_self *owner = atomic_load_explicit(&l->owner, memory_order_relaxed);
    if (WEFT_LIKELY(owner == NULL)) {
        if (l->last != me)
            weft__bias_new_run(l, me);
        else if (WEFT_UNLIKELY(--l->run_left == 0))
            weft__bias_grant(l, me);
    } else if (owner != me) {
        weft__bias_revoke(l);
    }
}

static inline void weft__bias_lock(struct weft_bias_lock *l) {
    struct weft_bias_self *me = weft__bias_me;
    /* relaxed: a hint (the load after O1 decides); and our own field,
     * which only we write: no plain section open already. */
    if (me && atomic_load_explicit(&l->owner, memory_order_relaxed) == me &&
        !atomic_load_explicit(&me->in, memory_order_relaxed)) {
        /* O1. release: free on x86; a revoker that reads this value
         * instead of our last O5 on l then still gets that section's
         * stores (the fence of R2 orders O1 itself). */
        atomic_store_explicit(&me->in, l, memory_order_release);
        /* O2: the compiler must not sink O1 below O3; the CPU may, until
         * a revoker's fence drains it. */
        atomic_signal_fence(memory_order_seq_cst);
        /* O3. relaxed: B1, and the owner is only ever granted to the
         * spinlock's holder, itself: we saw its own store, or R2's. */
        if (WEFT_LIKELY(atomic_load_explicit(&l->owner, memory_order_relaxed) == me)) {
            l->plain = true;
            return;
        }
        /* release: as O1. */
        atomic_store_explicit(&me->in, NULL, memory_order_release);
    }
    if (WEFT_UNLIKELY(!me))
        me = weft__bias_new_self(); /* outside the section */
    weft__spin_lock(&l->shared);
    weft__bias_shared_taken(l, me);
}

static inline void weft__bias_unlock(struct weft_bias_lock *l) {
    if (l->plain) {
        l->plain = false;
        /* O5. release: the section's stores, to a revoker reading NULL.
         * A plain section never blocks, so this is the thread of O1. */
        atomic_store_explicit(&weft__bias_me->in, NULL, memory_order_release);
        return;
    }
    weft__spin_unlock(&l->shared);
}

#endif /* WEFT_BIAS_H */
