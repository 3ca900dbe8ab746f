/*
 * lib/context.h - the fcontext binding: the only module that knows how a
 * switch happens (DESIGN 2.1). Boost.Context's make_fcontext/jump_fcontext
 * do the register save/restore; this module adds what the sanitizers need
 * to follow a fiber switch (ASan: fake stacks and stack bounds; TSan: one
 * "fiber" per logical thread of execution).
 *
 * A struct weft_context is the resumable state of one suspended context:
 * a fiber's, or a worker thread's own (the scheduler loop's).
 *
 * Invariants:
 *   C1  fctx is valid only while the context is suspended; it is consumed
 *       by the jump that resumes it and re-saved by the resumed side from
 *       the weft_transfer the next jump away returns (sched.c does this).
 *   C2  stack_lo/stack_size describe the memory the context runs on; they
 *       are what ASan is told when some other context switches to it.
 *   C3  fctx is written by whoever holds the context (C1), but another
 *       worker may read it at any time, for a prefetch only (the woken
 *       ring's next fiber, sched.c): so it is atomic, and every access is
 *       relaxed (a plain move).
 */
#ifndef WEFT_CONTEXT_H
#define WEFT_CONTEXT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same layout as Boost.Context's transfer_t. */
struct weft_transfer {
    void *fctx; /* the context that jumped to us, now suspended */
    void *data; /* what it passed */
};

typedef void (*weft_context_entry)(struct weft_transfer);

struct weft_context {
    _Atomic(void *) fctx; /* C1, C3 */
    void *stack_lo;     /* C2 */
    size_t stack_size;  /* C2 */
#if defined(WEFT_ASAN)
    void *asan_fake_stack; /* ASan's fake-stack handle while suspended */
#endif
#if defined(WEFT_TSAN)
    void *tsan_fiber;      /* TSan's fiber for this context */
    bool tsan_owned;       /* created by weft__context_make (we destroy it) */
#endif
};

/* The saved context (C1), or NULL; or a hint when read from another
 * thread (C3). */
static inline void *weft__context_saved(const struct weft_context *c) {
    /* relaxed: C3. */
    return atomic_load_explicit(&((struct weft_context *)c)->fctx, memory_order_relaxed);
}

/* Save the context a jump away from c left behind (C1). */
static inline void weft__context_save(struct weft_context *c, void *fctx) {
    /* relaxed: C3; the hand-over to whoever resumes c is ordered by the
     * queue or wait word that hands it over. */
    atomic_store_explicit(&c->fctx, fctx, memory_order_relaxed);
}

/* Describe the calling thread's own context (a worker's scheduler loop)
 * so that fibers can switch back to it. Any thread, once. */
void weft__context_init_thread(struct weft_context *c);

/* Prepare c to start at entry(transfer) on [stack_lo, stack_lo+size) when
 * first jumped to. Owner of c only. */
void weft__context_make(struct weft_context *c, void *stack_lo, size_t size,
                        weft_context_entry entry);

/* Make c share another context's stack and sanitizer identity (a child
 * run inline on its parent's stack, see "Inline join" in join.c). */
void weft__context_borrow(struct weft_context *c, const struct weft_context *from);

/* Suspend the running context `from` and resume `to`, passing data.
 * Returns when some context jumps back to `from`, with what it passed.
 * `from` is only told to the sanitizers; the caller saves the returned
 * fctx into the context that jumped here (C1). */
struct weft_transfer weft__context_switch(struct weft_context *from,
                                          struct weft_context *to, void *data);

/* As weft__context_switch, for a `from` that will never run again (its
 * fiber finished): ASan frees its fake stack. Does not return. */
_Noreturn void weft__context_exit(struct weft_context *from,
                                  struct weft_context *to, void *data);

/* The first thing an entry function does, on its new stack. */
void weft__context_started(struct weft_context *self);

/* Release what weft__context_make acquired (TSan fiber). Only once the
 * context will never run again, from another context. */
void weft__context_release(struct weft_context *c);

/* Benchmark floor: `round_trips` raw jump_fcontext round trips between the
 * caller and a context on a private stack, with no bookkeeping at all. */
void weft__context_pingpong(uint64_t round_trips);

#endif /* WEFT_CONTEXT_H */
