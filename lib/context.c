/*
 * lib/context.c - the fcontext binding and the sanitizer hooks.
 *
 * Boost.Context's assembly is linked from libboost_context (never copied);
 * this file is the only one that declares its symbols. Sanitizer builds
 * (WEFT_ASAN, WEFT_TSAN) tell the sanitizer about every switch:
 *   ASan: __sanitizer_start_switch_fiber() before the jump, naming the
 *         destination stack; __sanitizer_finish_switch_fiber() right after
 *         control arrives (in the resumed context or a new entry).
 *   TSan: __tsan_switch_to_fiber() right before the jump; one TSan fiber
 *         per context, created with the context and destroyed after it
 *         finished, from another context.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "common.h"
#include "context.h"

/* ---- Boost.Context (C linkage, exported by libboost_context) ------------ */
typedef void *fcontext_t;
extern struct weft_transfer jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size,
                                void (*fn)(struct weft_transfer));

#if defined(WEFT_ASAN)
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

void weft__context_init_thread(struct weft_context *c) {
    c->fctx = NULL;
    c->stack_lo = NULL;
    c->stack_size = 0;
#if defined(WEFT_ASAN)
    c->asan_fake_stack = NULL;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &c->stack_lo, &c->stack_size);
        pthread_attr_destroy(&attr);
    }
#endif
#if defined(WEFT_TSAN)
    c->tsan_fiber = __tsan_get_current_fiber();
    c->tsan_owned = false;
#endif
}

void weft__context_make(struct weft_context *c, void *stack_lo, size_t size,
                        weft_context_entry entry) {
    c->stack_lo = stack_lo;
    c->stack_size = size;
    c->fctx = make_fcontext((char *)stack_lo + size, size, entry);
#if defined(WEFT_ASAN)
    c->asan_fake_stack = NULL;
#endif
#if defined(WEFT_TSAN)
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_owned = true;
#endif
}

void weft__context_borrow(struct weft_context *c, const struct weft_context *from) {
    c->fctx = NULL;
    c->stack_lo = from->stack_lo;
    c->stack_size = from->stack_size;
#if defined(WEFT_ASAN)
    c->asan_fake_stack = NULL;
#endif
#if defined(WEFT_TSAN)
    c->tsan_fiber = from->tsan_fiber;
    c->tsan_owned = false;
#endif
}

static inline void before_jump(struct weft_context *from, struct weft_context *to,
                               bool from_exits) {
#if defined(WEFT_ASAN)
    __sanitizer_start_switch_fiber(from_exits ? NULL : &from->asan_fake_stack,
                                   to->stack_lo, to->stack_size);
#else
    (void)from;
    (void)from_exits;
#endif
#if defined(WEFT_TSAN)
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
    (void)to;
#endif
}

static inline void after_jump(struct weft_context *self) {
#if defined(WEFT_ASAN)
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, NULL, NULL);
#else
    (void)self;
#endif
}

struct weft_transfer weft__context_switch(struct weft_context *from,
                                          struct weft_context *to, void *data) {
    WEFT_ASSERT(to->fctx != NULL);
    before_jump(from, to, false);
    struct weft_transfer t = jump_fcontext(to->fctx, data);
    after_jump(from);
    return t;
}

void weft__context_exit(struct weft_context *from, struct weft_context *to,
                        void *data) {
    WEFT_ASSERT(to->fctx != NULL);
    before_jump(from, to, true);
    jump_fcontext(to->fctx, data);
    weft__panic("weft: a finished fiber was resumed");
}

void weft__context_started(struct weft_context *self) {
#if defined(WEFT_ASAN)
    self->asan_fake_stack = NULL;
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#else
    (void)self;
#endif
}

void weft__context_release(struct weft_context *c) {
#if defined(WEFT_TSAN)
    if (c->tsan_owned && c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
    c->tsan_owned = false;
#else
    (void)c;
#endif
}

/* ---- The benchmark floor ------------------------------------------------ */

static void pingpong_entry(struct weft_transfer t) {
    struct weft_context *caller = t.data;
    caller->fctx = t.fctx;
    struct weft_context *self = (struct weft_context *)caller + 1;
    weft__context_started(self);
    for (;;) {
        struct weft_transfer back = weft__context_switch(self, caller, caller);
        caller->fctx = back.fctx;
    }
}

void weft__context_pingpong(uint64_t round_trips) {
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED)
        weft__panic("weft: pingpong: cannot map a stack");
    /* ctx[0]: the caller's context, ctx[1]: the ping-pong partner. */
    struct weft_context ctx[2];
    weft__context_init_thread(&ctx[0]);
    weft__context_make(&ctx[1], stack, size, pingpong_entry);
    for (uint64_t i = 0; i < round_trips; i++) {
        struct weft_transfer t = weft__context_switch(&ctx[0], &ctx[1], &ctx[0]);
        ctx[1].fctx = t.fctx;
    }
    weft__context_release(&ctx[1]);
    munmap(stack, size);
}
