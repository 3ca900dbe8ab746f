/*
 * lib/runtime.h - the runtime object: a scheduler, a timer thread, and
 * the module init/fini order (runtime.c).
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <stdatomic.h>

#include "sched.h"

#define WEFT_RUNTIME_MAGIC 0x7765667472756eull /* "weftrun" */

struct weft_runtime {
    /* WEFT_RUNTIME_MAGIC while usable. Atomic: a call on a runtime being
     * destroyed reads it while destroy clears it; relaxed, a misuse check
     * (closing, in sched, orders the real hand-over). */
    _Atomic uint64_t magic;
    _Atomic uint32_t destroying;   /* set once by weft_runtime_destroy */
    struct weft_sched sched;
    struct weft_runtime *retired_next; /* runtime.c, retired_lock */
    /* Which create this is: unique for the process's life (the object is
     * reused after destroy, its incarnation is not). Immutable while live. */
    uint64_t incarnation;
};

/* rt's scheduler, or NULL if rt is not a live runtime. */
struct weft_sched *weft__runtime_sched(weft_runtime *rt);

/* Whether rt is still the live runtime of that incarnation (not destroyed
 * since, nor destroyed and created again). rt must have been a runtime. */
bool weft__runtime_is(const weft_runtime *rt, uint64_t incarnation);

#endif /* WEFT_RUNTIME_H */
