/*
 * lib/fiber.h - the fiber control block (what a weft_task handle points
 * to): its lifecycle, its result, its joiner, its references.
 *
 * Two state words, because they answer different questions:
 *
 *   status (lifecycle; who may run the body):
 *     NEW        spawned, never run, no stack. Owned by the run queue that
 *                holds it. NEW -> STARTED by the worker that dequeues it
 *                (CAS, racing weft_cancel), NEW -> CANCELLED by weft_cancel.
 *     STARTED    the body has begun; the stack belongs to the fiber.
 *     DONE       the body returned; result published (release).
 *     CANCELLED  cancelled before it ran: finished at once, never runs.
 *                The run queue still holds it until a worker drops it.
 *
 *   wait word (scheduling; who may resume the stack): see "Wait protocol"
 *   in wait.c. RUNNING -> WAITING (registered as a waiter, still on its
 *   stack) -> PARKED (switched out: published after the switch) ->
 *   RUNNABLE (a waker won the CAS and queued it). A wake that comes while
 *   WAITING turns it NOTIFIED, and the switch-out path queues it instead.
 *
 * References: one for the run (dropped when the fiber has switched out
 * for the last time, or when a worker drops a CANCELLED one) and one for
 * the handle (dropped when joined or detached). The last one frees.
 *
 * Invariants:
 *   F1  result and exit_err are written once, before joiner is set to
 *       WEFT_JOINER_DONE with release; read only after an acquire of it.
 *   F2  a fiber is in at most one run queue (I5 in deque.h), and only
 *       while its wait state is RUNNABLE or its status NEW/CANCELLED.
 *   F3  stack is NULL until the first run; a fiber run inline on its
 *       joiner's stack (see "Inline join" in join.c) never owns one.
 */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "context.h"
#include "stack.h"

enum weft_fiber_status {
    WEFT_FIBER_NEW,
    WEFT_FIBER_STARTED,
    WEFT_FIBER_DONE,
    WEFT_FIBER_CANCELLED,
};

#define WEFT_FIBER_MAGIC 0x77656674u /* "weft" */
#define WEFT_FIBER_DEAD 0x64656164u  /* "dead" */

/* joiner values besides a struct weft_waiter pointer (always above
 * them): no awaiter yet; finished; being run inline by its joiner ("Inline
 * join" in join.c), which counts as an awaiter for everyone else. */
#define WEFT_JOINER_NONE ((uintptr_t)0)
#define WEFT_JOINER_DONE ((uintptr_t)1)
#define WEFT_JOINER_INLINE ((uintptr_t)2)

struct weft_sched;
struct weft_fiber;

/* The tasks a fiber waits for in join or gather, so that cancelling it
 * forwards the cancel to them (join.c). Lives in the joiner's frame. */
struct weft_forward {
    weft_task *const *tasks; /* handles (H1) */
    size_t n;
};

struct weft_fiber {
    /* -- Owned by whoever runs the fiber or holds it in a queue. -- */
    struct weft_context ctx;
    struct weft_stack *stack;      /* F3 */
    /* stack->canary, copied here: checked at every switch-out, and the
     * descriptor is a cache miss of its own once the fiber has slept. */
    uint64_t *canary;
    struct weft_fiber *qnext;      /* inject queue, yield list, free list */
    int saved_errno;               /* the fiber's errno while switched out */
    uint32_t wait_gen;             /* generation of its latest wait */

    /* -- Immutable after spawn. -- */
    /* WEFT_FIBER_MAGIC while allocated. Atomic, relaxed: a stale handle's
     * validity check may read it while the block is being recycled. */
    _Atomic uint32_t magic;
    /* Tasks this block has held, this one included; its low bits are in
     * the task's handle (H1). Atomic for the same stale-handle checks:
     * stored before magic (release), read after it (acquire). */
    _Atomic uint32_t incarnation;
    weft_fn fn;
    void *arg;
    const char *name;              /* weft_spawn_opts.name, or NULL */
    struct weft_sched *sched;
    struct weft_fiber_pool *pool;  /* where the block returns (P1) */
    uint8_t stack_class;
    bool inlined;                  /* ran on its joiner's stack (F3) */

    /* -- Shared; each says who writes it. -- */
    _Atomic uint32_t status;       /* see above; CAS */
    _Atomic uint64_t wait;         /* wait.c "Wait protocol"; CAS */
    _Atomic uint32_t refs;         /* fetch_sub by the two owners */
    _Atomic uint32_t handle_live;  /* 1 until consumed (CAS 1 -> 0) */
    _Atomic uint32_t cancel;       /* sticky; set by weft_cancel */
    _Atomic uintptr_t joiner;      /* NONE, a waiter, or DONE (F1) */
    _Atomic uint32_t fwd_lock;     /* spinlock for forward_to */
    /* Set and cleared by the fiber itself; read by cancellers holding
     * fwd_lock ("Cancellation" in join.c). */
    _Atomic(const struct weft_forward *) forward_to;
    /* The task this fiber runs inline on its stack ("Inline join"); same
     * protocol as forward_to. */
    _Atomic(struct weft_fiber *) inline_child;
    /* While this task runs inline: the fiber whose stack it runs on.
     * Written by that fiber before the run; immutable during it. Atomic
     * (relaxed) for weft__fiber_cancel_requested's late readers. */
    _Atomic(struct weft_fiber *) inline_host;
    void *result;                  /* F1 */
    int exit_err;                  /* F1: 0, or -ECANCELED */
    /* Called (by a worker, with arg) if the task finishes without ever
     * running: no stack could be had for it. Set at spawn (join.c). */
    void (*unrun)(void *arg, int err);
    /* sync.c: this task's mutex owner id, unique for the process's life;
     * 0 until its first lock. Written by the fiber itself. */
    uint64_t lock_id;
    /* The first fiber of a chain in an inject queue: the chain's last
     * fiber and its length (C1 in inject.h). Owned as qnext is. Last:
     * the first line holds what every switch touches. */
    struct weft_fiber *qchain_last;
    size_t qchain_len;
};

/*
 * Control blocks come from a per-runtime pool: chunks that live until the
 * runtime is destroyed. So a stale handle (consumed, or never consumed)
 * still points to readable memory, the dead-handle checks are safe, and
 * destroy frees every block, consumed or not, at once.
 *
 * Chunks are mmap'ed, each twice the size of the one before up to a cap,
 * and carved into blocks only as blocks are needed: a million fibers take
 * a couple of dozen mmaps, and a chunk's pages are touched (faulted in)
 * only as far as it is carved. Blocks from malloc cost a worker thread's
 * arena an mprotect per growth step, each taking the process's mmap lock
 * for writing and stalling every other thread's page faults meanwhile.
 *
 * Free blocks move between a worker's cache and the pool in batches of
 * up to WEFT_FIBER_BATCH, and every move is O(1): nothing walks a list of
 * free blocks, which are cold (a million sleepers free theirs a second
 * after they were last touched; walking 512 of them cost a cache miss
 * each). A worker's cache holds two batches, the one it pushes to and
 * pops from, and a spare, as the magazines of Bonwick's slab allocator: a
 * worker that frees more than it allocates hands the pool a full batch
 * at a time, one that allocates takes one.
 *
 * Invariants:
 *   P1  a free block is in exactly one list: a worker's cache or the pool;
 *       a block never handed out is past `carve` in the newest chunk.
 *   P2  blocks are freed only by weft__fiber_pool_fini().
 *   P3  the pool's free list is a chain of batches linked by qnext: the
 *       first block of each holds the batch's last block and its length
 *       in qchain_last and qchain_len (as an inject queue's chains, C1 in
 *       inject.h), and the last block's qnext is the next batch's first.
 *   P4  a cache batch is a list linked by qnext, with its last block and
 *       its length beside it (struct weft_fiber_batch).
 */
struct weft_fiber_chunk;

struct weft_fiber_pool {
    pthread_mutex_t lock;
    struct weft_fiber *free;  /* lock: P3 */
    size_t nfree;             /* lock */
    struct weft_fiber_chunk *chunks; /* lock; newest first */
    size_t nchunks;           /* lock */
    char *carve;              /* lock: the newest chunk's first unused block */
    size_t carve_left;        /* lock: unused blocks from carve on */
};

/* Blocks a cache batch holds at most, and what a worker takes from the
 * pool at a time. */
#define WEFT_FIBER_BATCH 512u

/* P4. */
struct weft_fiber_batch {
    struct weft_fiber *head, *last;
    unsigned count;
};

/* Per-worker cache of free control blocks: `loaded` is pushed to and
 * popped from; `spare` is full or empty. Owner worker only. */
struct weft_fiber_cache {
    struct weft_fiber_batch loaded, spare;
};

void weft__fiber_pool_init(struct weft_fiber_pool *pool);
void weft__fiber_pool_fini(struct weft_fiber_pool *pool);

/* A zeroed, initialised control block with refs = 1 + has_handle, from
 * cache (a worker's; NULL on plain threads), else from the pool. NULL
 * when out of memory. */
struct weft_fiber *weft__fiber_new(struct weft_fiber_pool *pool,
                                   struct weft_fiber_cache *cache,
                                   struct weft_sched *s, weft_fn fn, void *arg,
                                   int stack_class, bool has_handle);

/* Drop n references; the last returns the block to cache, or to its pool
 * when cache is NULL. */
void weft__fiber_unref_n(struct weft_fiber *f, uint32_t n, struct weft_fiber_cache *cache);
static inline void weft__fiber_unref(struct weft_fiber *f, struct weft_fiber_cache *cache) {
    weft__fiber_unref_n(f, 1, cache);
}

/* Give a cache's blocks back to the pool (worker exit). */
void weft__fiber_cache_drain(struct weft_fiber_cache *cache, struct weft_fiber_pool *pool);

/* Whether p looks like a control block weft handed out and not freed. */
static inline bool weft__fiber_valid(const struct weft_fiber *f) {
    return f && atomic_load_explicit(&((struct weft_fiber *)f)->magic,
                                     memory_order_relaxed) == WEFT_FIBER_MAGIC;
}

/*
 * H1: a task handle is a tagged handle (common.h) of its control block:
 * a handle kept past its task's end names that task, not a newer one the
 * block holds by the time it is used, so using it is -EINVAL, not a join
 * of somebody else's task.
 */
static inline weft_task *weft__fiber_handle(struct weft_fiber *f) {
    return weft__handle_tag(f, atomic_load_explicit(&f->incarnation, memory_order_relaxed));
}

static inline struct weft_fiber *weft__task_fiber(const weft_task *t) {
    return weft__handle_object(t);
}

/* Whether t names the task its block holds now (allocated, and the same
 * incarnation). Safe on any handle weft gave out, however stale. */
static inline bool weft__handle_current(const weft_task *t) {
    struct weft_fiber *f = weft__task_fiber(t);
    return f && WEFT_HANDLE_NAMES_LIVE(t, f, WEFT_FIBER_MAGIC);
}

/* Whether f, or a fiber it runs inline on, was asked to cancel: a task
 * run inline inherits its joiner's cancellation (the joiner would have
 * forwarded it). seq_cst: pairs with weft_cancel's exchange of the flag
 * (see the cancel check in weft__wait_publish, and "Cancellation" in
 * join.c). */
static inline bool weft__fiber_cancel_requested(const struct weft_fiber *f) {
    /* relaxed: inline_host is written once, before the task's body runs,
     * and read here by the fiber itself or by weft__wait_publish, which
     * may read a recycled block's (wait.c): atomic, so that is no data
     * race, and a stale answer is discarded there. */
    for (; f; f = atomic_load_explicit(&((struct weft_fiber *)f)->inline_host,
                                        memory_order_relaxed))
        if (atomic_load_explicit(&((struct weft_fiber *)f)->cancel, memory_order_seq_cst))
            return true;
    return false;
}

/* Free a block whose two references (run and handle) are both the
 * caller's: nobody else can reach it, so no atomic is needed. */
void weft__fiber_release_owned(struct weft_fiber *f, struct weft_fiber_cache *cache);

static inline uint32_t weft__fiber_status(struct weft_fiber *f) {
    /* acquire: pairs with the release that set DONE/CANCELLED, so result
     * and exit_err are visible (F1). */
    return atomic_load_explicit(&f->status, memory_order_acquire);
}

#endif /* WEFT_FIBER_H */
