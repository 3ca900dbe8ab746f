/*
 * lib/slot.h - a worker's LIFO slot: the one fiber its owner runs next
 * (just spawned or just woken; "Where a worker looks for work", step 3,
 * in sched.c), which a thief may take only once it has sat there a while.
 *
 * The owner fills and empties the slot on nearly every switch of a
 * ping-pong pair or a spawn-and-join; a thief takes from it rarely. So
 * the cost of their race is put on the thief, with an asymmetric fence
 * (fence.h: Linux membarrier, "expedited private" kind):
 *
 *   owner (every operation)          thief (rare)
 *   O1 owner_busy = 1                T1 thief = r, a request number (CAS
 *   O2 compiler barrier only            from 0: one thief at a time)
 *   O3 r = thief; if r != 0:         T2 wait a moment for ack == r; if
 *      ack = r (release), undo O1,      it comes, go to T4
 *      use the locked operations     T3 else membarrier(): every thread of
 *   O4 plain loads and stores of        the process passes a full barrier;
 *      fiber                            then if owner_busy: give up
 *   O5 owner_busy = 0 (release)      T4 CAS fiber -> NULL
 *                                    T5 thief = 0 (release)
 *
 * An ack (T2) is stored by an operation that saw the request: every
 * section before it has closed (the release of ack publishes their
 * stores), and every one after it sees the request too, until T5, and
 * uses the locked operations, which are atomic against T4.
 *
 * Without an ack (the owner runs one long fiber and touches no slot),
 * T3's membarrier splits the owner's instruction stream at one point. If
 * O3 came before it, O1 is visible to the thief after it (the barrier
 * drains the owner's store buffer): either the section is still open and
 * T3 sees owner_busy, or it has closed and T4 sees its stores. If O3 came
 * after it, O3 sees T1, as above. So a plain section never overlaps a
 * thief's CAS.
 *
 * An owner acknowledges at its next slot operation, or outside one
 * (weft__slot_poll, which weft__sched_worker() runs, so at nearly any
 * call into weft), since S4 holds anywhere outside a section.
 *
 * Costs: the owner pays two plain stores and a load instead of a locked
 * exchange. A thief waits for the ack up to 10 us (ACK_WAIT_NS); a
 * membarrier took 0.2 us here when the other CPU was idle but 20-30 us
 * when the owner's thread was running, an interrupt it pays too.
 *
 * Where membarrier is missing (an old kernel, a seccomp filter, a
 * valgrind run), every slot is symmetric: the owner always uses the
 * locked operations.
 *
 * Invariants:
 *   S1  only the owner stores a fiber into `fiber`; anyone may empty it,
 *       thieves only by T4.
 *   S2  `fills` only grows, written by the owner only.
 *   S3  owner_busy is 1 only inside an owner's plain section (O1-O5);
 *       thief is non-zero only between T1 and T5.
 *   S4  ack == thief != 0: no plain section is open or will open until
 *       T5.
 */
#ifndef WEFT_SLOT_H
#define WEFT_SLOT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

struct weft_fiber;

struct weft_slot {
    _Atomic(struct weft_fiber *) fiber;
    /* Fills so far (S2): thieves compare it a round apart, so a fiber
     * that left the slot and came back (a ping-pong pair takes turns in
     * it) does not count as waiting. */
    _Atomic uint64_t fills;
    _Atomic uint32_t owner_busy; /* S3 */
    _Atomic uint32_t thief;      /* S3: 0, or the thief's request number */
    _Atomic uint32_t ack;        /* the last request the owner saw */
    _Atomic uint32_t requests;   /* request numbers handed out so far */
    bool asymmetric;             /* immutable after init */
    /* How long a thief waits for the ack (T2); tests set 0 to go
     * straight to T3. */
    uint32_t ack_wait_ns;
};

/* An empty slot; asymmetric only where available. */
void weft__slot_init(struct weft_slot *s, bool asymmetric);

/* Owner. O1-O3: true if a plain section has begun. */
static inline bool weft__slot_enter(struct weft_slot *s) {
    if (!s->asymmetric)
        return false;
    atomic_store_explicit(&s->owner_busy, 1, memory_order_relaxed);
    /* The compiler must not sink O1 below O3; the CPU may, until a
     * thief's membarrier (T2) drains it. */
    atomic_signal_fence(memory_order_seq_cst);
    /* acquire: pairs with T5, so a steal that ended is seen in O4. */
    uint32_t request = atomic_load_explicit(&s->thief, memory_order_acquire);
    if (WEFT_LIKELY(!request))
        return true;
    /* release: the sections before this one, to the thief (S4). */
    atomic_store_explicit(&s->ack, request, memory_order_release);
    atomic_store_explicit(&s->owner_busy, 0, memory_order_relaxed);
    return false;
}

/* Owner. O5. */
static inline void weft__slot_leave(struct weft_slot *s) {
    /* release: a thief that reads 0 at T3 then sees the section's
     * stores at T4. */
    atomic_store_explicit(&s->owner_busy, 0, memory_order_release);
}

/* Owner, outside its slot operations: acknowledge a thief's request
 * now (S4 holds anywhere outside a section), so that a worker running
 * one long fiber which calls into weft still lets its slot be taken
 * without a membarrier. */
static inline void weft__slot_poll(struct weft_slot *s) {
    /* relaxed: a hint; O3 is what the protocol rests on. */
    uint32_t request = atomic_load_explicit(&s->thief, memory_order_relaxed);
    if (WEFT_UNLIKELY(request != 0) &&
        atomic_load_explicit(&s->ack, memory_order_relaxed) != request)
        /* release: as in O3. */
        atomic_store_explicit(&s->ack, request, memory_order_release);
}

/* Any thread: the fiber there now (a hint, relaxed). */
static inline struct weft_fiber *weft__slot_peek(struct weft_slot *s) {
    return atomic_load_explicit(&s->fiber, memory_order_relaxed);
}

/* Owner. Put f in the slot; returns the fiber it displaced, or NULL. */
static inline struct weft_fiber *weft__slot_put(struct weft_slot *s, struct weft_fiber *f) {
    /* relaxed: S2, only we write it. */
    uint64_t fills = atomic_load_explicit(&s->fills, memory_order_relaxed);
    atomic_store_explicit(&s->fills, fills + 1, memory_order_relaxed);
    if (WEFT_LIKELY(weft__slot_enter(s))) {
        struct weft_fiber *old = atomic_load_explicit(&s->fiber, memory_order_relaxed);
        /* release: pairs with a thief's acquire CAS (f's fields). */
        atomic_store_explicit(&s->fiber, f, memory_order_release);
        weft__slot_leave(s);
        return old;
    }
    /* relaxed: thieves only empty it (S1), so an empty slot stays empty
     * until we fill it. */
    if (!atomic_load_explicit(&s->fiber, memory_order_relaxed)) {
        atomic_store_explicit(&s->fiber, f, memory_order_release); /* as above */
        return NULL;
    }
    /* acq_rel: may race a thief's CAS for the old one; who wins owns it. */
    return atomic_exchange_explicit(&s->fiber, f, memory_order_acq_rel);
}

/* Owner. Empty the slot; returns its fiber, or NULL. */
static inline struct weft_fiber *weft__slot_take(struct weft_slot *s) {
    if (!atomic_load_explicit(&s->fiber, memory_order_relaxed))
        return NULL;
    if (WEFT_LIKELY(weft__slot_enter(s))) {
        /* relaxed: we stored it ourselves (S1). */
        struct weft_fiber *f = atomic_load_explicit(&s->fiber, memory_order_relaxed);
        atomic_store_explicit(&s->fiber, NULL, memory_order_relaxed);
        weft__slot_leave(s);
        return f;
    }
    /* acquire: as in put; races a thief's CAS. */
    return atomic_exchange_explicit(&s->fiber, NULL, memory_order_acquire);
}

/* Owner. Empty the slot if it holds f; true if it did. */
static inline bool weft__slot_take_if(struct weft_slot *s, struct weft_fiber *f) {
    if (atomic_load_explicit(&s->fiber, memory_order_relaxed) != f)
        return false;
    if (WEFT_LIKELY(weft__slot_enter(s))) {
        bool ours = atomic_load_explicit(&s->fiber, memory_order_relaxed) == f;
        if (ours)
            atomic_store_explicit(&s->fiber, NULL, memory_order_relaxed);
        weft__slot_leave(s);
        return ours;
    }
    /* acquire: as in take; fails only if a thief took f. */
    return atomic_compare_exchange_strong_explicit(&s->fiber, &f, NULL, memory_order_acquire,
                                                   memory_order_relaxed);
}

/* Any thread but the owner. Take f, if the slot still holds it and the
 * owner is not in a plain section (T1-T5); true if taken. */
bool weft__slot_steal(struct weft_slot *s, struct weft_fiber *f);

#endif /* WEFT_SLOT_H */
