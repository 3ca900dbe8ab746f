/*
 * lib/common.h - macros and helpers every module uses: assertions, branch
 * hints, cache-line size, container_of, the panic path.
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "weft.h"

#define WEFT_CACHELINE 64

#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
/* Whether p, a pointer a caller handed in, is non-NULL and aligned for
 * type: checked before any member is read (a misaligned access is
 * undefined behaviour, whatever the magic number says). */
#define WEFT_PTR_OK(p, type) ((p) != NULL && (uintptr_t)(p) % _Alignof(type) == 0)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Tagged handles (tasks, channels, groups): an object's address,
 * WEFT_CACHELINE aligned, with the low bits of its incarnation (how many
 * objects its memory has held) in the alignment bits. A handle kept past
 * its object's end names that object, not a newer one in the same memory,
 * so using it is -EINVAL; unless a multiple of WEFT_CACHELINE objects came
 * between (a check, not a guarantee).
 */
#define WEFT_HANDLE_TAG_MASK ((uintptr_t)WEFT_CACHELINE - 1)

static inline void *weft__handle_tag(const void *obj, uint32_t incarnation) {
    return (void *)((uintptr_t)obj | (incarnation & WEFT_HANDLE_TAG_MASK));
}

static inline void *weft__handle_object(const void *handle) {
    return (void *)((uintptr_t)handle & ~WEFT_HANDLE_TAG_MASK);
}

/* Whether handle's tag is incarnation's. */
static inline int weft__handle_names(const void *handle, uint32_t incarnation) {
    return ((uintptr_t)handle & WEFT_HANDLE_TAG_MASK) ==
           (incarnation & WEFT_HANDLE_TAG_MASK);
}

/* Whether handle names the object obj (not NULL) holds now: created (its
 * atomic `magic` field reads magic_value) and of the incarnation the
 * tag names (its atomic `incarnation` field). acquire: pairs with the
 * release store of magic at create, so the incarnation read next is the
 * one that magic belongs to. A macro: the magic fields differ in width. */
#define WEFT_HANDLE_NAMES_LIVE(handle, obj, magic_value)                          \
    (atomic_load_explicit(&(obj)->magic, memory_order_acquire) == (magic_value) && \
     weft__handle_names((handle),                                                  \
                        atomic_load_explicit(&(obj)->incarnation, memory_order_relaxed)))
#define WEFT_NOINLINE __attribute__((noinline))
/* A function whose code starts on a cache line (see weft__spin_lock). */
#define WEFT_ALIGNED_CODE __attribute__((aligned(64)))
/* For a hot path's function whose constant arguments must fold away. */
#define WEFT_ALWAYS_INLINE inline __attribute__((always_inline))
/* Thread-locals the hot paths read: initial-exec, so that the shared
 * library reads them at a fixed offset from the thread pointer instead of
 * calling __tls_get_addr each time. Its few bytes come out of the static
 * TLS block that the dynamic loader reserves, which is also what lets a
 * program dlopen() the library. */
#define WEFT_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#define WEFT_UNUSED __attribute__((unused))

#define weft_container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

/* Print "weft: ..." to stderr and abort(). For broken invariants only:
 * user misuse returns an error code instead. Async-signal-safe enough for
 * the overflow handler (formats into a stack buffer, one write()). */
_Noreturn void weft__panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Stays on in release builds: guards memory safety, costs a branch. */
#define WEFT_ASSERT(cond)                                                    \
    do {                                                                     \
        if (WEFT_UNLIKELY(!(cond)))                                          \
            weft__panic("weft: assertion failed: %s (%s:%d)", #cond,         \
                        __FILE__, __LINE__);                                 \
    } while (0)

/* Expensive checks (walking a queue, re-checking invariants): debug only. */
#ifdef NDEBUG
#define WEFT_DEBUG_ASSERT(cond) ((void)0)
#else
#define WEFT_DEBUG_ASSERT(cond) WEFT_ASSERT(cond)
#endif

/* One step of a spin-wait. On x86 a pause, then an lfence. Measured on
 * a 2-vCPU AMD EPYC (Zen 5) guest: while one vCPU ran a loop of bare
 * pauses, the other's locked instructions took about three times as
 * long (a lock or + store 5 -> 15 ns, an mfence 19 -> 50 ns) in about
 * half of the processes, by no rule of address we could find; loops
 * with an lfence (or an rdtsc) after each pause never did that. In the
 * library it showed as contended cases that hung on code layout: 64
 * fibers on one mutex took 14 ms per million locks in one build and
 * 55-77 ms in builds with functions aligned to 32 or 64 bytes; with the
 * lfence, 13.9-15.3 ms in all three, and no other case slower. A step
 * takes ~36 ns there instead of ~25. */
static inline void weft__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
    __builtin_ia32_lfence();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline size_t weft__page_size(void) { return 4096; }

/* A full (StoreLoad) fence. On x86 a locked RMW on the stack is that
 * fence at about half the cost of MFENCE, which compilers emit for
 * atomic_thread_fence(seq_cst). ThreadSanitizer models no fence (gcc
 * even rejects atomic_thread_fence under -fsanitize=thread): where a
 * fence is all that orders two accesses, they are atomics, so TSan sees
 * no data race, only weaker orders than the hardware gives. */
static inline void weft__fence_seq_cst(void) {
#if defined(__x86_64__)
    __asm__ __volatile__("lock orq $0, (%%rsp)" ::: "memory", "cc");
#elif defined(WEFT_TSAN)
    _Atomic int local = 0;
    __atomic_fetch_add(&local, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#endif /* WEFT_COMMON_H */
