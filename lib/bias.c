/* lib/bias.c - the biased lock's shared path (bias.h). */
#include <sched.h>

#include "bias.h"
#include "fence.h"

/* The run of shared-path locks by one thread that first earns the bias,
 * and the most a lock that was revoked again and again ever needs: with
 * a revocation at 20-30 us, at most a few ns per lock spread over it. */
#define BIAS_RUN_FIRST 16u
#define BIAS_RUN_MAX (16u * 1024)
/* A bias that lasted this long paid for its revocation (a fence of
 * 20-30 us at worst, 3% of it): the next run needed is the first again. */
#define BIAS_PAID_NS WEFT_MSEC
/* Spins on a busy owner before yielding the CPU to it. */
#define BIAS_SPINS 1024u

WEFT_TLS uint32_t weft__bias_token;
/* Tokens handed out so far; a thread's is never reused (B1). */
static _Atomic uint32_t tokens;
/* Set once a fence was refused after all (fence.h): no more grants.
 * relaxed: a flag read under no ordering; a late reader grants once more
 * at worst, and its revoker waits as below. */
static _Atomic bool fence_refused;

void weft__bias_init(struct weft_bias_lock *l) {
    atomic_init(&l->shared.held, 0);
    atomic_init(&l->shared.sleepers, 0);
    atomic_init(&l->owner, 0);
    atomic_init(&l->busy, 0);
    l->plain = false;
    l->last = l->run_left = 0;
    l->run_needed = 0; /* BIAS_RUN_FIRST, read as 0 (zeroed memory) */
    l->revocations = 0;
    l->granted_at = 0;
    l->paid_ns = 0;
}

uint32_t weft__bias_new_token(void) {
    /* relaxed: only uniqueness matters. After 2^32 threads the count
     * wraps; a thread that draws 0 is simply never an owner. */
    weft__bias_token = atomic_fetch_add_explicit(&tokens, 1, memory_order_relaxed) + 1;
    return weft__bias_token;
}

static uint32_t run_needed(const struct weft_bias_lock *l) {
    return l->run_needed ? l->run_needed : BIAS_RUN_FIRST;
}

void weft__bias_revoke(struct weft_bias_lock *l) {
    /* relaxed: the fence orders it for the owner (O3). */
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
    if (!weft__fence_all()) {
        atomic_store_explicit(&fence_refused, true, memory_order_relaxed);
        /* Only a filter installed since the fence was found available
         * refuses it. Without it the owner's O1 may still sit in its
         * store buffer: wait far longer than a store takes to drain (a
         * preempted owner's O1 is visible: a switch drains it). No bias
         * is granted again (weft__bias_grant). */
        for (unsigned i = 0; i < 16 * BIAS_SPINS; i++)
            sched_yield();
    }
    /* acquire: pairs with O5, the last plain section's stores. */
    for (unsigned i = 0; atomic_load_explicit(&l->busy, memory_order_acquire); i++) {
        if (i < BIAS_SPINS)
            weft__cpu_relax();
        else
            sched_yield(); /* the owner was preempted inside a section */
    }
    uint64_t paid = l->paid_ns ? l->paid_ns : BIAS_PAID_NS;
    uint32_t need = run_needed(l);
    if (weft_now() - l->granted_at >= paid)
        l->run_needed = BIAS_RUN_FIRST;
    else
        l->run_needed = need >= BIAS_RUN_MAX / 4 ? BIAS_RUN_MAX : need * 4;
    l->last = 0;
    l->revocations++;
}

void weft__bias_new_run(struct weft_bias_lock *l, uint32_t me) {
    l->last = me;
    l->run_left = run_needed(l) - 1; /* this lock is the run's first */
}

void weft__bias_grant(struct weft_bias_lock *l, uint32_t me) {
    l->last = 0; /* the next shared-path lock starts a new run */
    if (!me || !weft__fence_available() ||
        atomic_load_explicit(&fence_refused, memory_order_relaxed))
        return;
    l->granted_at = weft_now();
    /* relaxed: B1; we hold the spinlock, and our own plain sections
     * start after this store in program order. */
    atomic_store_explicit(&l->owner, me, memory_order_relaxed);
}
