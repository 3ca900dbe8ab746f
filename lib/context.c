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

/* ---- A return-balanced call of jump_fcontext (x86-64) --------------------
 *
 * jump_fcontext leaves through `jmp *%r8`, not `ret`: the `call` that
 * entered it pushed an entry on the CPU's return stack buffer that no
 * `ret` pops. The resumed side then returns up its own call chain with
 * the buffer one entry off, so every return it makes before it is back in
 * user code is mispredicted: five or so per switch (a profile of the
 * channel ping-pong put a fifth of its time on those returns).
 *
 * weft__jump_balanced pushes its own resume address once more before it
 * calls jump_fcontext (which saves the pushed copy as this side's resume
 * point). Resumed there, it runs `ret` twice: the first pops the extra
 * copy, and is predicted by the entry the resumer's own `call` pushed
 * (the same address); the second returns to our caller, predicted by the
 * resumer's call of this function. Both sides switch from the same call
 * sites, so the rest of the chain is predicted too. The switch itself is
 * still jump_fcontext's; this only calls it. Elsewhere: a plain call. */
#if defined(__x86_64__) && defined(__ELF__)
struct weft_transfer weft__jump_balanced(fcontext_t const to, void *vp);
__asm__(".text\n"
        ".p2align 4\n"
        ".hidden weft__jump_balanced\n"
        ".type weft__jump_balanced, @function\n"
        "weft__jump_balanced:\n"
        "    .cfi_startproc\n"
        "    leaq 1f(%rip), %r11\n" /* r11: scratch in the ABI and in jump_fcontext */
        "    pushq %r11\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    call jump_fcontext@PLT\n"
        "1:  ret\n" /* resumed here: twice (see above) */
        "    .cfi_endproc\n"
        ".size weft__jump_balanced, .-weft__jump_balanced\n");
#define JUMP weft__jump_balanced
#else
#define JUMP jump_fcontext
#endif

#if defined(WEFT_ASAN)
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

void weft__context_init_thread(struct weft_context *c) {
    weft__context_save(c, NULL);
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
    weft__context_save(c, make_fcontext((char *)stack_lo + size, size, entry));
#if defined(WEFT_ASAN)
    c->asan_fake_stack = NULL;
#endif
#if defined(WEFT_TSAN)
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_owned = true;
#endif
}

void weft__context_borrow(struct weft_context *c, const struct weft_context *from) {
    weft__context_save(c, NULL);
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
    WEFT_ASSERT(weft__context_saved(to) != NULL);
    before_jump(from, to, false);
    struct weft_transfer t = JUMP(weft__context_saved(to), data);
    after_jump(from);
    return t;
}

/* The same through a plain call of jump_fcontext: the benchmark floor's
 * switch (both of its sides loop right at the call, so they return
 * through nothing and the balancing above would only add its returns). */
static struct weft_transfer raw_switch(struct weft_context *from, struct weft_context *to,
                                       void *data) {
    before_jump(from, to, false);
    struct weft_transfer t = jump_fcontext(weft__context_saved(to), data);
    after_jump(from);
    return t;
}

void weft__context_exit(struct weft_context *from, struct weft_context *to,
                        void *data) {
    WEFT_ASSERT(weft__context_saved(to) != NULL);
    before_jump(from, to, true);
    jump_fcontext(weft__context_saved(to), data);
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
    weft__context_save(caller, t.fctx);
    struct weft_context *self = (struct weft_context *)caller + 1;
    weft__context_started(self);
    for (;;) {
        struct weft_transfer back = raw_switch(self, caller, caller);
        weft__context_save(caller, back.fctx);
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
        struct weft_transfer t = raw_switch(&ctx[0], &ctx[1], &ctx[0]);
        weft__context_save(&ctx[1], t.fctx);
    }
    weft__context_release(&ctx[1]);
    munmap(stack, size);
}
