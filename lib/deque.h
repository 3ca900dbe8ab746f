/*
 * lib/deque.h - Chase-Lev work-stealing deque of runnable fibers (Lê, Pop,
 * Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak
 * Memory Models", PPoPP 2013), fixed capacity. Owned by one worker; see
 * "Where a worker looks for work" in sched.c.
 *
 * Who may run concurrently with whom (X: never, -: safe):
 *
 *            push  pop   take  steal
 *   push      X     X     X     -
 *   pop       X     X     X     -
 *   take      X     X     X     -
 *   steal     -     -     -     -
 *
 * push/pop/take: owner worker only. steal: any thread.
 *
 * Invariants:
 *   I1  top <= bottom, except transiently inside pop() and take(), while
 *       the owner hides slots (H1) and thieves may be ahead of it.
 *   I2  bottom - top <= WEFT_DEQUE_CAP; slots[i & MASK] for i in [top,
 *       bottom) hold valid fibers. Indices are int64_t: they never wrap.
 *   I3  top only increases, and only by CAS (a steal, or the owner's pop
 *       of the last element).
 *   I4  bottom is written only by the owner.
 *   I5  a fiber is in at most one run queue (deque, next slot, inject
 *       queue, yield list).
 *
 * Thieves and the owner's hiding stores (pop, take):
 *   H1  the owner hides the slots at and above index i by storing bottom
 *       = i, then a seq_cst fence, then loading top. A thief loads top,
 *       fences, loads bottom, and reads a slot only below the bottom it
 *       saw. If the owner's top load saw t < i, a thief that later finds
 *       top == i saw the owner's bottom store (the two fences order the
 *       loads): such a thief finds the deque empty, so [i, old bottom)
 *       is the owner's alone until it stores bottom again. If it saw t ==
 *       i, the slot at i is raced for by CAS on top.
 */
#ifndef WEFT_DEQUE_H
#define WEFT_DEQUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#ifndef WEFT_DEQUE_CAP
#define WEFT_DEQUE_CAP 256 /* power of two; the smallq preset uses 4 */
#endif
#define WEFT_DEQUE_MASK (WEFT_DEQUE_CAP - 1)
_Static_assert((WEFT_DEQUE_CAP & WEFT_DEQUE_MASK) == 0 && WEFT_DEQUE_CAP >= 2,
               "WEFT_DEQUE_CAP must be a power of two >= 2");

struct weft_fiber;

/* Returned by steal when it lost a race: try again or elsewhere. */
#define WEFT_DEQUE_ABORT ((struct weft_fiber *)1)

struct weft_deque {
    /* CAS by thieves and by the owner's last-element pop (I3). Own cache
     * line: thieves hammer it while the owner works at the bottom. */
    alignas(WEFT_CACHELINE) _Atomic int64_t top;
    /* Written by the owner only (I4); thieves read it with acquire. */
    alignas(WEFT_CACHELINE) _Atomic int64_t bottom;
    /* Written by the owner in push; read by anyone (I2). Atomic because a
     * thief may read a slot the owner is overwriting after a lost race. */
    _Atomic(struct weft_fiber *) slots[WEFT_DEQUE_CAP];
};

void weft__deque_init(struct weft_deque *dq);

/* Owner only. 0, or -EAGAIN when full (the caller spills to the inject
 * queue, as Go's runqputslow does). */
int weft__deque_push(struct weft_deque *dq, struct weft_fiber *f);

/* Owner only. Newest first; NULL when empty. */
struct weft_fiber *weft__deque_pop(struct weft_deque *dq);

/* Owner only. Take f out if it is among the max_depth newest fibers,
 * keeping the others in their order; true if we took it, false if it is
 * not there (never was, or a thief has it). One fence, however deep f
 * lies (a join of the first of ten spawned tasks finds it ninth). */
bool weft__deque_take(struct weft_deque *dq, struct weft_fiber *f, int max_depth);

/* Any thread (the owner too, for a FIFO pick). Oldest first; NULL when
 * empty, WEFT_DEQUE_ABORT on a lost race. */
struct weft_fiber *weft__deque_steal(struct weft_deque *dq);

/* Any thread. An estimate of the number of fibers (may be stale). */
static inline int64_t weft__deque_size(struct weft_deque *dq) {
    /* relaxed: a hint for victim choice and the park re-check, which is
     * ordered by its own fence (see "Parking protocol" in sched.c). */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}

#endif /* WEFT_DEQUE_H */
