/* lib/bias.c - the biased lock's shared path (bias.h). */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdlib.h>

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

WEFT_TLS struct weft_bias_self *weft__bias_me;
/* Records of exited threads, for the next ones (never freed: bias.h). */
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_bias_self *free_selves; /* free_lock */
static pthread_key_t self_key;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;
static bool self_key_made;
/* Set once a fence was refused after all (fence.h): no more grants.
 * relaxed: a flag read under no ordering; a late reader grants once more
 * at worst, and its revoker waits as below. */
static _Atomic bool fence_refused;

void weft__bias_init(struct weft_bias_lock *l) {
    atomic_init(&l->shared.held, 0);
    atomic_init(&l->shared.sleepers, 0);
    atomic_init(&l->owner, NULL);
    l->plain = false;
    l->last = NULL;
    l->run_left = 0;
    l->run_needed = 0; /* BIAS_RUN_FIRST, read as 0 (zeroed memory) */
    l->revocations = 0;
    l->granted_at = 0;
    l->paid_ns = 0;
}

/* At a thread's exit: its record to the free list. Its thread is out of
 * every section (B2: in is NULL); locks biased to it keep the bias, for
 * whichever thread gets the record next. */
static void self_release(void *arg) {
    struct weft_bias_self *me = arg;
    pthread_mutex_lock(&free_lock);
    me->next_free = free_selves;
    free_selves = me;
    pthread_mutex_unlock(&free_lock);
}

static void self_key_make(void) {
    self_key_made = pthread_key_create(&self_key, self_release) == 0;
}

struct weft_bias_self *weft__bias_new_self(void) {
    pthread_once(&self_once, self_key_make);
    if (!self_key_made)
        return NULL; /* no way to give it back: no bias for us */
    pthread_mutex_lock(&free_lock);
    struct weft_bias_self *me = free_selves;
    if (me)
        free_selves = me->next_free;
    pthread_mutex_unlock(&free_lock);
    if (!me) {
        me = aligned_alloc(alignof(struct weft_bias_self), sizeof *me);
        if (!me)
            return NULL;
        atomic_init(&me->in, NULL);
    }
    if (pthread_setspecific(self_key, me) != 0) {
        self_release(me);
        return NULL;
    }
    weft__bias_me = me;
    return me;
}

static uint32_t run_needed(const struct weft_bias_lock *l) {
    return l->run_needed ? l->run_needed : BIAS_RUN_FIRST;
}

void weft__bias_revoke(struct weft_bias_lock *l) {
    /* relaxed: B1, we hold the spinlock. */
    struct weft_bias_self *was = atomic_load_explicit(&l->owner, memory_order_relaxed);
    /* relaxed: the fence orders it for the owner (O3). */
    atomic_store_explicit(&l->owner, NULL, memory_order_relaxed);
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
    /* acquire: pairs with O5 (or a later O1 or bail of the same thread),
     * the last plain section's stores. */
    for (unsigned i = 0; atomic_load_explicit(&was->in, memory_order_acquire) == l; i++) {
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
    l->last = NULL;
    l->revocations++;
}

void weft__bias_new_run(struct weft_bias_lock *l, struct weft_bias_self *me) {
    l->last = me;
    l->run_left = run_needed(l) - 1; /* this lock is the run's first */
}

void weft__bias_grant(struct weft_bias_lock *l, struct weft_bias_self *me) {
    l->last = NULL; /* the next shared-path lock starts a new run */
    if (!me || !weft__fence_available() ||
        atomic_load_explicit(&fence_refused, memory_order_relaxed))
        return;
    l->granted_at = weft_now();
    /* relaxed: B1; we hold the spinlock, and our own plain sections
     * start after this store in program order. */
    atomic_store_explicit(&l->owner, me, memory_order_relaxed);
}
