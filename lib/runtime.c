/*
 * lib/runtime.c - create/destroy and configuration. Owns the module
 * init/fini order: sched (workers, pools) < timer < start; fini in
 * reverse. See "Shutdown" in sched.c for how destroy waits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "timer.h"
#include "wait.h"

#define DEFAULT_STACK_CACHE 64u

/*
 * Runtime objects are never returned to the allocator: a destroyed one is
 * kept, its magic cleared, and reused by the next weft_runtime_create. So
 * a call on a destroyed runtime reads valid memory and returns -EINVAL
 * instead of touching freed memory. The lock is taken only by create and
 * destroy.
 */
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_runtime *retired; /* linked through retired_next */

static struct weft_runtime *runtime_alloc(void) {
    pthread_mutex_lock(&retired_lock);
    struct weft_runtime *rt = retired;
    if (rt)
        retired = rt->retired_next;
    pthread_mutex_unlock(&retired_lock);
    if (!rt)
        rt = aligned_alloc(WEFT_CACHELINE,
                           (sizeof *rt + WEFT_CACHELINE - 1) & ~(size_t)(WEFT_CACHELINE - 1));
    return rt;
}

/* Runtimes created so far (weft__runtime_is). */
static _Atomic uint64_t incarnations;

bool weft__runtime_is(const weft_runtime *rt, uint64_t incarnation) {
    return atomic_load_explicit(&((struct weft_runtime *)rt)->magic, memory_order_relaxed) ==
               WEFT_RUNTIME_MAGIC &&
           rt->incarnation == incarnation;
}

static void runtime_retire(struct weft_runtime *rt) {
    atomic_store_explicit(&rt->magic, 0, memory_order_relaxed);
    pthread_mutex_lock(&retired_lock);
    rt->retired_next = retired;
    retired = rt;
    pthread_mutex_unlock(&retired_lock);
}

struct weft_sched *weft__runtime_sched(weft_runtime *rt) {
    if (!WEFT_PTR_OK(rt, struct weft_runtime) ||
        atomic_load_explicit(&rt->magic, memory_order_relaxed) != WEFT_RUNTIME_MAGIC)
        return NULL;
    return &rt->sched;
}

static int check_config(const weft_config *cfg, unsigned *workers, int *klass,
                        unsigned *cache) {
    weft_config zero;
    memset(&zero, 0, sizeof zero);
    if (!cfg)
        cfg = &zero;
    for (size_t i = 0; i < sizeof cfg->_reserved / sizeof cfg->_reserved[0]; i++)
        if (cfg->_reserved[i])
            return -EINVAL;
    *workers = cfg->workers;
    if (*workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        *workers = n > 0 ? (unsigned)n : 1;
        if (*workers > WEFT_MAX_WORKERS)
            *workers = WEFT_MAX_WORKERS;
    }
    if (*workers > WEFT_MAX_WORKERS)
        return -EINVAL;
    size_t stack = cfg->stack_size ? cfg->stack_size : WEFT_STACK_DEFAULT;
    if (stack > WEFT_STACK_MAX || stack < WEFT_STACK_MIN)
        return -EINVAL;
    *klass = weft__stack_class(stack);
    *cache = cfg->stack_cache ? cfg->stack_cache : DEFAULT_STACK_CACHE;
    if (*cache > 1u << 20)
        return -EINVAL;
    return 0;
}

int weft_runtime_create(weft_runtime **out, const weft_config *cfg) {
    if (!out)
        return -EINVAL;
    *out = NULL;
    int saved_errno = errno;
    unsigned workers, cache;
    int klass;
    int rc = check_config(cfg, &workers, &klass, &cache);
    if (rc)
        return rc;
    struct weft_runtime *rt = runtime_alloc();
    if (!rt) {
        rc = -ENOMEM;
        goto fail_alloc;
    }
    memset(rt, 0, sizeof *rt);
    atomic_init(&rt->destroying, 0);
    rc = weft__sched_init(&rt->sched, workers, klass, cache);
    if (rc)
        goto fail_sched;
    rc = weft__timer_create(&rt->sched.timer, &rt->sched);
    if (rc)
        goto fail_timer;
    rc = weft__sched_start(&rt->sched);
    if (rc)
        goto fail_start;
    /* relaxed: a counter; only its uniqueness matters. */
    rt->incarnation = atomic_fetch_add_explicit(&incarnations, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&rt->magic, WEFT_RUNTIME_MAGIC, memory_order_relaxed);
    *out = rt;
    errno = saved_errno;
    return 0;

fail_start:
    weft__timer_destroy(rt->sched.timer);
fail_timer:
    weft__sched_fini(&rt->sched);
fail_sched:
    runtime_retire(rt);
fail_alloc:
    errno = saved_errno;
    return rc;
}

/* Block (thread) or suspend (fiber of another runtime) until no task of
 * rt is left ("Shutdown" in sched.c, steps 1-2). */
static void wait_quiescent(struct weft_sched *s) {
    struct weft_waiter wt;
    weft__waiter_init(&wt, weft__sched_current(), 1, false);
    /* seq_cst: pairs with the workers' P2 fence before they read it. */
    atomic_store_explicit(&s->quiesce_waiter, &wt, memory_order_seq_cst);
    if (weft__sched_quiescent(s) &&
        atomic_exchange_explicit(&s->quiesce_waiter, NULL, memory_order_acq_rel) == &wt) {
        if (wt.fiber)
            weft__wait_abort(wt.fiber);
        return;
    }
    /* Either a worker took the waiter and signals it, or one will. */
    weft__waiter_block(&wt, WEFT_FOREVER);
}

int weft_runtime_destroy(weft_runtime *rt) {
    struct weft_sched *s = weft__runtime_sched(rt);
    if (!s)
        return -EINVAL;
    struct weft_worker *w = weft__sched_worker();
    if (w && w->sched == s)
        return -EDEADLK;
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&rt->destroying, &expect, 1,
                                                 memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -EINVAL; /* another thread is destroying it */
    int saved_errno = errno;
    weft__sched_close(s);
    wait_quiescent(s);
    atomic_store_explicit(&rt->magic, 0, memory_order_relaxed);
    weft__sched_stop(s);
    weft__timer_destroy(s->timer);
    weft__sched_fini(s);
    runtime_retire(rt);
    errno = saved_errno;
    return 0;
}

int weft_runtime_workers(const weft_runtime *rt) {
    if (!WEFT_PTR_OK(rt, struct weft_runtime) ||
        atomic_load_explicit(&((struct weft_runtime *)rt)->magic, memory_order_relaxed) !=
            WEFT_RUNTIME_MAGIC)
        return -EINVAL;
    return (int)rt->sched.nworkers;
}

weft_runtime *weft_runtime_current(void) {
    struct weft_worker *w = weft__sched_worker();
    if (!w || !w->current)
        return NULL;
    return weft_container_of(w->sched, struct weft_runtime, sched);
}
