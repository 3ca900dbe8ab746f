/*
 * lib/timer.c - the global timer thread, and weft_sleep / weft_now.
 *
 * Design
 *   One thread per runtime owns every deadline. A fiber that waits with a
 *   deadline arms an entry: it pushes the entry onto a lock-free
 *   submission stack (one CAS) and wakes the timer thread only if its
 *   deadline is earlier than the one the thread sleeps towards. The timer
 *   thread drains the stack into a 4-ary min-heap, readies every expired
 *   fiber, and sleeps on a futex until the earliest deadline (FUTEX_WAIT
 *   with an absolute CLOCK_MONOTONIC time: sub-millisecond precision).
 *
 *   Expired fibers are readied in a batch: their waits are claimed one by
 *   one (wait.c), and all that the timer must queue go to the wake queue
 *   in one chain, with one notify (the spinning protocol in sched.c then
 *   brings in as many workers as there is work).
 *
 * Helpers
 *   The thread is a third runnable thread beside the workers, and on a
 *   machine with no CPU to spare it waits for one: in a burst of 100,000
 *   sleeps ending within ~30 ms on 2 CPUs, it fired its entries up to 2-9
 *   ms late (p99), while the workers it was to feed sat spinning. So a
 *   worker that passes through its scheduler with nothing to run
 *   (weft__timer_help, called from sched.c) and finds sleeping_until
 *   past fires due entries on the thread's behalf, under its lock `own`:
 *   the heap, the runs and the entry batch are only ever touched by
 *   whoever holds it. Every deadline still goes to the thread, which
 *   alone sleeps towards the earliest and wakes for it (also while every
 *   worker is parked). A helper only tries `own` (never waits for it),
 *   drains the submission stacks, fires WEFT_TIMER_HELP_MAX due entries
 *   and goes to run them; the thread lets go of `own` between slices of
 *   as many, so that preempted it keeps helpers out for one slice at
 *   most. An arm that would wake the thread also lowers sleeping_until
 *   to its deadline, so that helpers see it due too. Measured: warm-round
 *   p99 lateness of 100,000 sleepers, 2 workers, 2.25 -> 1.15 ms and
 *   2.48 -> 1.86 ms (medians of 21 and 35 rounds, two A/B runs).
 *
 * Who ends an entry
 *   The timer thread pops a due entry and claims its fiber's wait with
 *   weft__wait_claim_by_timer(), which leaves WEFT_WAIT_BY_TIMER in the
 *   wait word. If the claim wins, the wait is the timer's: the fiber sees
 *   the mark when it resumes and never touches the entry again, so the
 *   timer thread frees it at once. Most sleeps end so, and the woken
 *   fiber then has one cold line (the entry's, last written by the timer
 *   thread) and one locked operation fewer on its way back.
 *
 *   Otherwise the wait ended before its deadline (an event, a cancel)
 *   and the fiber disarms the entry. The two sides settle who frees it
 *   with one CAS each on e->state:
 *     ARMED -> CANCELLED  the fiber's disarm came first: the timer side
 *                         frees it (the timer thread when it pops or
 *                         discards it, or a worker that sweeps it off its
 *                         submission stack);
 *     ARMED -> FIRED      the timer thread popped it and lost its claim:
 *                         it touches the entry no more, the disarm frees.
 *   The timer thread reads an entry's fiber and generation before either
 *   CAS, and the fiber frees the entry only after FIRED, so nobody reads
 *   an entry after it is freed. No reference count: a count cost each
 *   side a locked operation on a line the other had just written. Cancelled entries stay in the heap or their run until their
 *   deadline (lazy invalidation); each time the pending entries double
 *   past their number after the last compaction, heap and runs are
 *   rebuilt without them, so they stay within twice the live entries.
 *   Every WEFT_TIMER_DRAIN_EVERY of its own submissions, a worker sweeps
 *   the cancelled entries out of the submission stack itself: abandoned
 *   timeouts cannot pile up while the timer thread waits for a CPU.
 *
 *   Entries come from a per-runtime pool of chunks (never freed before
 *   destroy): a worker keeps a cache, the timer thread returns what it
 *   frees in batches. No malloc on the arm path. Chunks are mmap'ed and
 *   grow with the pool (an eighth of it each), so a million entries take
 *   tens of mappings, not thousands of malloc arena extensions (each an
 *   mprotect holding the address space lock that page faults wait for).
 *
 * Runs and the heap
 *   Most timeouts of a program have one length (every sleeper of a burst
 *   sleeps 1 s, every request has the same deadline), so one worker's
 *   submissions mostly come in deadline order. Each submission stack has
 *   a run: a FIFO ring of the entries drained from it, in order. An entry
 *   whose deadline is not below its run's tail is appended to the run
 *   (O(1)); any other goes into the heap. The earliest entry is the
 *   earliest of the heap's root and the runs' heads, and taking it from a
 *   run is O(1) too. (A million sleepers popped from the heap alone spent
 *   the timer thread's time in sift_down: a quarter of a CPU while the
 *   workers, on the other three quarters, ran their wake-ups late.)
 *
 *   The heap is a 4-ary min-heap of (deadline, entry) pairs: a sift
 *   compares deadlines held in the array, not behind the entries'
 *   pointers (a million pending entries are a cache miss each). The array
 *   is offset so that each node's four children share one cache line.
 *   The drained submission stack is reversed first: it comes newest
 *   first. Expired fibers are queued every WEFT_TIMER_WAKE_CHUNK, so
 *   workers start on the first ones while the thread pops the rest.
 *
 *   The heap and the rings are mappings that double when full and halve
 *   (or more) once they hold less than a quarter of their size, checked
 *   each time the thread is about to sleep a millisecond or more: a
 *   burst of a million sleepers maps ~16 MB of nodes, which go back to
 *   the system once it has fired.
 *
 * Rejected designs
 *   - A mutex-protected heap shared with the fibers: every sleep and
 *     every timed wait would contend on one lock.
 *   - A hierarchical timing wheel: O(1) insert, but ticks cost a wake-up
 *     per tick and its precision is its tick; the heap's O(log n) insert
 *     runs on the timer thread, off the fibers' path, and measured under
 *     a second for a million entries (bench/bench_timer.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "park.h"
#include "sched.h"
#include "timer.h"
#include "wait.h"

#define WEFT_TIMER_DRAIN_EVERY 4096u
/* Fibers the timer thread readies before it hands them to the workers:
 * about one take's worth (WEFT_WOKEN_TAKE_MAX in sched.c), which a worker
 * then takes from the wake queue as one chain, without walking it under
 * the queue's lock (inject.h). */
#define WEFT_TIMER_WAKE_CHUNK 16u
/* Due entries a helping worker fires at most before it runs some of
 * their fibers itself (weft__timer_help). */
#define WEFT_TIMER_HELP_MAX (4 * WEFT_TIMER_WAKE_CHUNK)

enum { ENTRY_ARMED, ENTRY_FIRED, ENTRY_CANCELLED };

struct weft_timer_entry {
    uint64_t deadline;             /* immutable */
    struct weft_fiber *fiber;      /* immutable */
    uint32_t gen;                  /* immutable */
    _Atomic uint32_t state;        /* see "Who ends an entry" */
    struct weft_timer_entry *next; /* submission stack link */
};

/* Entries in the entry pool's first chunk, and its least growth. */
#define ENTRY_CHUNK 256u
/* Entries a worker keeps before giving half back to the pool. */
#define ENTRY_CACHE_MAX 1024u
/* Entries the timer thread frees before handing them back in one batch. */
#define ENTRY_RETURN_BATCH 256u

/* A heap node: the deadline copied inline, so sifts do not chase e. */
struct heap_node {
    uint64_t deadline;
    struct weft_timer_entry *e;
};
/* Nodes before heap[0] in the mapping: puts heap[4i+1 .. 4i+4] (the
 * children of i) in one 64-byte line. */
#define HEAP_PAD 3u
/* Nodes in the heap's first mapping. */
#define HEAP_FIRST_CAP 1024u

/* A run (see "Runs and the heap"): a ring of (deadline, entry) nodes,
 * deadlines ascending from ring[head]. An array, not a list through the
 * entries: popping a list chases one cold entry after another (in warm
 * rounds the pool hands entries out in no order of address, so each pop
 * was a cache miss the next could not overlap), while the ring is read
 * in address order. head_deadline copies the head's deadline, so that
 * finding the earliest entry reads the runs array only.
 * Invariants: cap is 0 or a power of two; len <= cap; ring[(head + k) &
 * (cap - 1)] for k < len are the run's entries, in deadline order. */
struct timer_run {
    struct heap_node *ring; /* cap nodes, mapped */
    size_t head, len, cap;
    uint64_t head_deadline; /* ring[head].deadline when len > 0 */
};
/* Nodes in a run's first ring. */
#define RUN_FIRST_CAP 1024u

struct chunk {
    void *base;
    size_t len; /* bytes mapped */
};

/* A Treiber stack of submitted entries: its worker pushes (CAS), the
 * timer thread takes it whole (exchange). One per worker, each on a line
 * of its own: with one shared stack, the workers' CASes fought over its
 * line, 14% of the CPU time of a million sleepers' start. */
struct submit_stack {
    alignas(WEFT_CACHELINE) _Atomic(struct weft_timer_entry *) head;
};

struct weft_timer {
    /* -- Shared. -- */
    struct submit_stack *submitted;  /* one per worker; immutable array */
    unsigned nsubmitted;
    _Atomic uint64_t sleeping_until; /* timer thread writes; submitters read */
    _Atomic uint32_t wake_word;      /* futex word: 1 = there is news */
    _Atomic uint32_t stop;
    _Atomic uint64_t helped;         /* entries workers fired (a test hook) */
    _Atomic uint64_t lag_ns;         /* how late the thread fires (a test hook) */

    /* -- The entry pool; pool_lock. Chunks live until destroy, so a
     *    late reader never touches freed memory. -- */
    pthread_mutex_t pool_lock;
    struct weft_timer_entry *pool_free;
    struct chunk *chunks;
    size_t nchunks, chunks_cap;
    size_t nentries;                 /* in all chunks */

    /* -- The holder of `own`: the timer thread, or a worker helping it
     *    (weft__timer_help). -- */
    pthread_mutex_t own;
    struct heap_node *heap;          /* HEAP_PAD nodes into its mapping */
    size_t heap_len, heap_cap;
    struct timer_run *runs;          /* one per submission stack */
    size_t run_len;                  /* entries in all runs */
    size_t compact_at;               /* pending entries that trigger compact() */
    struct weft_timer_entry *freed;  /* entries to hand back in a batch */
    unsigned nfreed;

    /* -- Immutable. -- */
    struct weft_sched *sched;
    pthread_t thread;
};

/* Submissions, and cancels, by the calling thread since it last swept
 * (per thread: no shared counter on the arm path). */
static WEFT_TLS uint32_t submissions;
static WEFT_TLS uint32_t cancels;

uint64_t weft_now(void) { return weft__clock_ns(CLOCK_MONOTONIC); }

/* ---- The entry pool ----------------------------------------------------- */

/* Caller holds pool_lock. */
static bool pool_grow_locked(struct weft_timer *t) {
    if (t->nchunks == t->chunks_cap) {
        size_t cap = t->chunks_cap ? 2 * t->chunks_cap : 16;
        struct chunk *chunks = realloc(t->chunks, cap * sizeof *chunks);
        if (!chunks)
            return false;
        t->chunks = chunks;
        t->chunks_cap = cap;
    }
    /* An eighth of what the pool holds: geometric, so few mappings, yet
     * never more than an eighth unused (the abandoned-timeouts test
     * bounds the high-water mark). */
    size_t n = t->nentries / 8 > ENTRY_CHUNK ? t->nentries / 8 : ENTRY_CHUNK;
    size_t len = n * sizeof(struct weft_timer_entry);
    len = (len + weft__page_size() - 1) & ~(weft__page_size() - 1);
    n = len / sizeof(struct weft_timer_entry);
    struct weft_timer_entry *chunk = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED)
        return false;
    t->chunks[t->nchunks++] = (struct chunk){chunk, len};
    t->nentries += n;
    for (size_t i = n; i-- > 0;) {
        chunk[i].next = t->pool_free;
        t->pool_free = &chunk[i];
    }
    return true;
}

static void pool_give(struct weft_timer *t, struct weft_timer_entry *first,
                      struct weft_timer_entry *last) {
    pthread_mutex_lock(&t->pool_lock);
    last->next = t->pool_free;
    t->pool_free = first;
    pthread_mutex_unlock(&t->pool_lock);
}

/* An entry for the calling worker: from its cache, else a batch from the
 * pool. NULL when out of memory. */
static struct weft_timer_entry *entry_alloc(struct weft_timer *t, struct weft_worker *w) {
    struct weft_timer_entry *e = w->timer_entries;
    if (WEFT_LIKELY(e != NULL)) {
        w->timer_entries = e->next;
        w->ntimer_entries--;
        return e;
    }
    pthread_mutex_lock(&t->pool_lock);
    if (!t->pool_free && !pool_grow_locked(t)) {
        pthread_mutex_unlock(&t->pool_lock);
        return NULL;
    }
    e = t->pool_free;
    t->pool_free = e->next;
    for (unsigned i = 0; i < ENTRY_CACHE_MAX / 4 && t->pool_free; i++) {
        struct weft_timer_entry *g = t->pool_free;
        t->pool_free = g->next;
        g->next = w->timer_entries;
        w->timer_entries = g;
        w->ntimer_entries++;
    }
    pthread_mutex_unlock(&t->pool_lock);
    return e;
}

/* Timer thread: hand its freed entries back to the pool. */
static void return_freed(struct weft_timer *t) {
    if (!t->freed)
        return;
    struct weft_timer_entry *last = t->freed;
    while (last->next)
        last = last->next;
    pool_give(t, t->freed, last);
    t->freed = NULL;
    t->nfreed = 0;
}

/* The last reference is gone: back to the worker's cache, or (on the
 * timer thread) to its batch for the pool. */
static void entry_free(struct weft_timer *t, struct weft_timer_entry *e) {
    struct weft_worker *w = weft__sched_worker();
    if (!w) {
        e->next = t->freed;
        t->freed = e;
        if (++t->nfreed >= ENTRY_RETURN_BATCH)
            return_freed(t);
        return;
    }
    e->next = w->timer_entries;
    w->timer_entries = e;
    if (++w->ntimer_entries <= ENTRY_CACHE_MAX)
        return;
    /* A worker that only frees (its fibers' timers fire) would hoard. */
    struct weft_timer_entry *cut = w->timer_entries;
    for (unsigned i = 1; i < ENTRY_CACHE_MAX / 2; i++)
        cut = cut->next;
    struct weft_timer_entry *first = cut->next, *last = first;
    unsigned n = 1;
    while (last->next) {
        last = last->next;
        n++;
    }
    cut->next = NULL;
    w->ntimer_entries -= n;
    pool_give(t, first, last);
}

/* acquire: pairs with disarm's CAS to CANCELLED: whoever then frees the
 * entry sees the disarming fiber's last touch of it first. */
static bool is_cancelled(struct weft_timer_entry *e) {
    return atomic_load_explicit(&e->state, memory_order_acquire) == ENTRY_CANCELLED;
}

static void wake_timer(struct weft_timer *t) {
    /* release: pairs with the timer thread's acquire exchange. */
    atomic_store_explicit(&t->wake_word, 1, memory_order_release);
    weft__park_wake(&t->wake_word, 1);
}

/* Worker: take its submission stack, free its cancelled entries, and put
 * the rest back. The timer thread does the same in drain(); a worker
 * helps every WEFT_TIMER_DRAIN_EVERY of its own submissions, so abandoned
 * timeouts cannot pile up while the timer thread waits for a CPU. */
static void sweep_cancelled(struct weft_timer *t, struct submit_stack *st) {
    /* acquire: pairs with the submitters' CAS, for the entries' fields. */
    struct weft_timer_entry *e = atomic_exchange_explicit(&st->head, NULL,
                                                          memory_order_acquire);
    struct weft_timer_entry *first = NULL, *last = NULL;
    while (e) {
        struct weft_timer_entry *next = e->next;
        if (is_cancelled(e)) {
            entry_free(t, e); /* cancelled: the timer side's to free */
        } else {
            e->next = first;
            first = e;
            if (!last)
                last = e;
        }
        e = next;
    }
    if (!first)
        return;
    struct weft_timer_entry *head = atomic_load_explicit(&st->head, memory_order_relaxed);
    do {
        last->next = head;
        /* seq_cst: as the push in weft__timer_arm. */
    } while (!atomic_compare_exchange_weak_explicit(&st->head, &head, first,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
}

/* The entry's owning timer: reached through the fiber's runtime. */
static struct weft_timer *timer_of(struct weft_timer_entry *e) {
    return e->fiber->sched->timer;
}

struct weft_timer_entry *weft__timer_arm(struct weft_timer *t, uint64_t deadline,
                                         struct weft_fiber *f, uint32_t gen) {
    struct weft_worker *w = weft__sched_worker();
    /* Only fibers arm, on their own runtime's workers (fiber_block). */
    WEFT_ASSERT(w && w->sched == t->sched);
    struct weft_timer_entry *e = entry_alloc(t, w);
    if (!e)
        return NULL;
    struct submit_stack *st = &t->submitted[w->index];
    e->deadline = deadline;
    e->fiber = f;
    e->gen = gen;
    atomic_init(&e->state, ENTRY_ARMED);
    struct weft_timer_entry *head = atomic_load_explicit(&st->head, memory_order_relaxed);
    do {
        e->next = head;
        /* seq_cst: the push, then the load of sleeping_until below, pair
         * with the timer thread's store of sleeping_until, then loads of
         * the stacks (store-buffering: one side sees the other). */
    } while (!atomic_compare_exchange_weak_explicit(&st->head, &head, e,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (WEFT_UNLIKELY(++submissions % WEFT_TIMER_DRAIN_EVERY == 0)) {
        /* Sweep only if this thread abandoned timeouts meanwhile: walking
         * thousands of live entries for nothing costs their cache misses. */
        if (cancels >= WEFT_TIMER_DRAIN_EVERY / 4)
            sweep_cancelled(t, st);
        cancels = 0;
        wake_timer(t);
    } else {
        uint64_t until = atomic_load_explicit(&t->sleeping_until, memory_order_seq_cst);
        if (deadline < until) {
            /* Lower it to ours too, so that a helping worker sees this
             * entry due if the thread we wake waits for a CPU. seq_cst:
             * as the load. */
            while (deadline < until &&
                   !atomic_compare_exchange_weak_explicit(&t->sleeping_until, &until, deadline,
                                                          memory_order_seq_cst,
                                                          memory_order_seq_cst))
                ;
            wake_timer(t);
        }
    }
    return e;
}

bool weft__timer_disarm(struct weft_timer_entry *e) {
    uint32_t s = ENTRY_ARMED;
    /* release on success: our last touch of the entry, to whoever frees
     * it (is_cancelled's acquire). acquire on failure: pairs with the
     * timer thread's release CAS to FIRED. */
    if (atomic_compare_exchange_strong_explicit(&e->state, &s, ENTRY_CANCELLED,
                                                memory_order_release,
                                                memory_order_acquire)) {
        cancels++;
        return false; /* the timer side frees it ("Who ends an entry") */
    }
    WEFT_ASSERT(s == ENTRY_FIRED);
    entry_free(timer_of(e), e); /* the timer thread is done with it */
    return true;
}

uint64_t weft__timer_helped(struct weft_timer *t) {
    /* relaxed: a statistic, read once the test's fibers are done. */
    return atomic_load_explicit(&t->helped, memory_order_relaxed);
}

void weft__timer_set_lag(struct weft_timer *t, uint64_t ns) {
    /* relaxed: the thread reads it at its next round; the test waits far
     * longer than one. */
    atomic_store_explicit(&t->lag_ns, ns, memory_order_relaxed);
    wake_timer(t);
}

uint64_t weft__timer_pending(struct weft_timer *t) {
    pthread_mutex_lock(&t->pool_lock);
    uint64_t n = t->nentries;
    pthread_mutex_unlock(&t->pool_lock);
    return n;
}

size_t weft__timer_chunks(struct weft_timer *t) {
    pthread_mutex_lock(&t->pool_lock);
    size_t n = t->nchunks;
    pthread_mutex_unlock(&t->pool_lock);
    return n;
}

/* ---- The heap (timer thread only) --------------------------------------- */

/* A mapping of len bytes holding old's first min(old_len, len) bytes
 * (old NULL: a new one), page-aligned; NULL if out of memory, old then
 * unchanged. mremap moves the pages instead of copying them, and shrinks
 * in place. */
static void *mapping_resize(void *old, size_t old_len, size_t len) {
    void *m = old ? mremap(old, old_len, len, MREMAP_MAYMOVE)
                  : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static bool heap_grow(struct weft_timer *t) {
    size_t cap = t->heap_cap ? t->heap_cap * 2 : HEAP_FIRST_CAP;
    size_t old_len = (t->heap_cap + HEAP_PAD) * sizeof(struct heap_node);
    size_t len = (cap + HEAP_PAD) * sizeof(struct heap_node);
    /* Page-aligned, so the padding keeps children in a line. */
    void *m = mapping_resize(t->heap ? t->heap - HEAP_PAD : NULL, old_len, len);
    if (!m)
        return false;
    t->heap = (struct heap_node *)m + HEAP_PAD;
    t->heap_cap = cap;
    return true;
}

static void sift_up(struct heap_node *h, size_t i) {
    struct heap_node x = h[i];
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (h[parent].deadline <= x.deadline)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static void sift_down(struct heap_node *h, size_t len, size_t i) {
    struct heap_node x = h[i];
    for (;;) {
        size_t child = 4 * i + 1, best = i;
        uint64_t best_deadline = x.deadline;
        size_t end = child + 4 < len ? child + 4 : len;
        for (size_t c = child; c < end; c++) {
            if (h[c].deadline < best_deadline) {
                best = c;
                best_deadline = h[c].deadline;
            }
        }
        if (best == i)
            break;
        h[i] = h[best];
        i = best;
    }
    h[i] = x;
}

/* Entries in the heap and the runs, cancelled ones included. */
static size_t pending(const struct weft_timer *t) { return t->heap_len + t->run_len; }

/* Double r's ring (false: out of memory, r unchanged). The nodes at
 * [0, cap) stay where they were; those that had wrapped round to its
 * start move to just past the old end, where the ring now continues. */
static bool run_grow(struct timer_run *r) {
    size_t cap = r->cap ? 2 * r->cap : RUN_FIRST_CAP;
    void *m = mapping_resize(r->ring, r->cap * sizeof *r->ring, cap * sizeof *r->ring);
    if (!m)
        return false;
    r->ring = m;
    if (r->head + r->len > r->cap) {
        size_t wrapped = r->head + r->len - r->cap;
        memcpy(r->ring + r->cap, r->ring, wrapped * sizeof *r->ring);
    }
    r->cap = cap;
    return true;
}

/* The deadline of r's latest entry; r is not empty. */
static uint64_t run_tail_deadline(const struct timer_run *r) {
    return r->ring[(r->head + r->len - 1) & (r->cap - 1)].deadline;
}

/* Append e to r (false: out of memory for a larger ring). */
static bool run_append(struct weft_timer *t, struct timer_run *r, struct weft_timer_entry *e) {
    if (r->len == r->cap && !run_grow(r))
        return false;
    r->ring[(r->head + r->len) & (r->cap - 1)] = (struct heap_node){e->deadline, e};
    if (r->len++ == 0)
        r->head_deadline = e->deadline;
    t->run_len++;
    return true;
}

/* Take r's head; r is not empty. */
static struct weft_timer_entry *run_pop(struct weft_timer *t, struct timer_run *r) {
    struct weft_timer_entry *e = r->ring[r->head].e;
    r->head = (r->head + 1) & (r->cap - 1);
    if (--r->len)
        r->head_deadline = r->ring[r->head].deadline;
    t->run_len--;
    return e;
}

/* The capacity a structure holding len nodes shrinks to, if it should:
 * only once it is over four times as large as what it holds, and then to
 * twice that (a power of two, at least first); cap itself otherwise. So
 * a burst's memory goes back to the system once the burst has fired,
 * and a load that swings by less than 4x is not remapped back and forth:
 * O(1) amortised per node, as the growth. */
static size_t shrunk_cap(size_t len, size_t cap, size_t first) {
    if (cap <= first || len >= cap / 4)
        return cap;
    size_t to = first;
    while (to < 2 * len)
        to *= 2;
    return to;
}

/* Give back what the heap and the runs no longer need (shrunk_cap).
 * Timer thread, holder of `own`, with a millisecond or more before the
 * next deadline: a helper fires and goes, and a remap in its slice would
 * keep fibers waiting. Out of memory for a smaller ring
 * leaves a run as it was. */
static void shrink(struct weft_timer *t) {
    size_t cap = shrunk_cap(t->heap_len, t->heap_cap, HEAP_FIRST_CAP);
    if (cap < t->heap_cap) {
        /* Nodes [0, heap_len) stay: they are below the new end. */
        size_t node = sizeof *t->heap;
        void *m = mapping_resize(t->heap - HEAP_PAD, (t->heap_cap + HEAP_PAD) * node,
                                 (cap + HEAP_PAD) * node);
        if (m) {
            t->heap = (struct heap_node *)m + HEAP_PAD;
            t->heap_cap = cap;
        }
    }
    for (unsigned i = 0; i < t->nsubmitted; i++) {
        struct timer_run *r = &t->runs[i];
        cap = shrunk_cap(r->len, r->cap, RUN_FIRST_CAP);
        if (cap == r->cap)
            continue;
        struct heap_node *ring = mapping_resize(NULL, 0, cap * sizeof *ring);
        if (!ring)
            continue;
        for (size_t k = 0; k < r->len; k++)
            ring[k] = r->ring[(r->head + k) & (r->cap - 1)];
        munmap(r->ring, r->cap * sizeof *r->ring);
        r->ring = ring;
        r->head = 0;
        r->cap = cap;
    }
}

size_t weft__timer_mapped(struct weft_timer *t) {
    pthread_mutex_lock(&t->own);
    size_t nodes = t->heap ? t->heap_cap + HEAP_PAD : 0;
    for (unsigned i = 0; i < t->nsubmitted; i++)
        nodes += t->runs[i].cap;
    pthread_mutex_unlock(&t->own);
    return nodes * sizeof(struct heap_node);
}

/* Rebuild the heap and the runs without their cancelled entries. */
static void compact(struct weft_timer *t) {
    size_t n = 0;
    for (size_t i = 0; i < t->heap_len; i++) {
        if (is_cancelled(t->heap[i].e))
            entry_free(t, t->heap[i].e);
        else
            t->heap[n++] = t->heap[i];
    }
    t->heap_len = n;
    for (size_t i = n / 4 + 1; i-- > 0;)
        if (i < n)
            sift_down(t->heap, n, i);
    t->run_len = 0;
    for (unsigned i = 0; i < t->nsubmitted; i++) {
        struct timer_run *r = &t->runs[i];
        size_t mask = r->cap - 1, kept = 0;
        for (size_t k = 0; k < r->len; k++) {
            struct heap_node node = r->ring[(r->head + k) & mask];
            if (is_cancelled(node.e))
                entry_free(t, node.e);
            else
                r->ring[(r->head + kept++) & mask] = node;
        }
        r->len = kept;
        if (kept)
            r->head_deadline = r->ring[r->head].deadline;
        t->run_len += kept;
    }
}

/* Move the entries submitted to st into its run or the heap. */
static void drain_one(struct weft_timer *t, struct submit_stack *st, struct timer_run *run) {
    /* acquire: pairs with the submitters' CAS, for the entries' fields. */
    struct weft_timer_entry *newest = atomic_exchange_explicit(&st->head, NULL,
                                                               memory_order_acquire);
    /* Oldest first: sleeps of one length then go to the run, in order. */
    struct weft_timer_entry *e = NULL;
    while (newest) {
        struct weft_timer_entry *next = newest->next;
        newest->next = e;
        e = newest;
        newest = next;
    }
    while (e) {
        struct weft_timer_entry *next = e->next;
        /* Cancelled ones go in too: the earliest deadline the thread
         * sleeps towards then covers the abandoned timeouts, so arming
         * another far timeout does not wake it (a syscall per arm). */
        if (is_cancelled(e) && pending(t) >= t->compact_at) {
            entry_free(t, e);
        } else if ((!run->len || e->deadline >= run_tail_deadline(run)) &&
                   run_append(t, run, e)) {
            /* appended in order */
        } else {
            if (t->heap_len == t->heap_cap && !heap_grow(t)) {
                /* Out of memory: keep it for the next round. */
                e->next = atomic_load_explicit(&st->head, memory_order_relaxed);
                while (!atomic_compare_exchange_weak_explicit(&st->head, &e->next, e,
                                                              memory_order_release,
                                                              memory_order_relaxed))
                    ;
            } else {
                t->heap[t->heap_len] = (struct heap_node){e->deadline, e};
                sift_up(t->heap, t->heap_len++);
            }
        }
        e = next;
    }
}

/* Move every submitted entry into the runs or the heap. */
static void drain(struct weft_timer *t, bool may_compact) {
    for (unsigned i = 0; i < t->nsubmitted; i++)
        drain_one(t, &t->submitted[i], &t->runs[i]);
    /* Cancelled entries wait for their deadline (lazy). Each time the
     * pending entries double past their number after the last
     * compaction, drop them: O(1) amortised per insert, and the heap and
     * runs stay within twice their live entries. Not on a helping
     * worker: a compaction walks every pending entry, and its fibers
     * would wait for it. */
    if (may_compact && pending(t) > t->compact_at) {
        compact(t);
        t->compact_at = 2 * pending(t) + 1024;
    }
}

/* The earliest pending deadline (WEFT_FOREVER if none), and, if src is
 * not NULL, where its entry is: run *src, or the heap (*src < 0). */
static uint64_t earliest(const struct weft_timer *t, int *src) {
    uint64_t d = t->heap_len ? t->heap[0].deadline : WEFT_FOREVER;
    int from = -1;
    for (unsigned i = 0; i < t->nsubmitted; i++) {
        if (t->runs[i].len && t->runs[i].head_deadline < d) {
            d = t->runs[i].head_deadline;
            from = (int)i;
        }
    }
    if (src)
        *src = from;
    return d;
}

/* Entries expire() pops before it touches any: their lines, then their
 * fibers' wait words, are loaded ahead (prefetched) a batch at a time,
 * so their cache misses overlap instead of following one another. */
#define EXPIRE_BATCH 32u

/* Pop up to EXPIRE_BATCH entries due by now into out[], prefetching each. */
static unsigned pop_due(struct weft_timer *t, uint64_t now, struct weft_timer_entry **out) {
    unsigned n = 0;
    int src;
    while (n < EXPIRE_BATCH && earliest(t, &src) <= now) {
        struct weft_timer_entry *e;
        if (src >= 0) {
            e = run_pop(t, &t->runs[src]);
        } else {
            e = t->heap[0].e;
            t->heap[0] = t->heap[--t->heap_len];
            if (t->heap_len)
                sift_down(t->heap, t->heap_len, 0);
        }
        __builtin_prefetch(e, 1);
        out[n++] = e;
    }
    return n;
}

/* Fire the entries due by now, about `budget` of them at most (a whole
 * batch more), oldest first; queue the fibers we claimed in batches of
 * WEFT_TIMER_WAKE_CHUNK. Holder of `own`. Returns how many it fired. */
static size_t expire(struct weft_timer *t, uint64_t now, size_t budget) {
    struct weft_fiber *first = NULL, *last = NULL;
    size_t n = 0, fired = 0;
    struct weft_timer_entry *due[EXPIRE_BATCH];
    unsigned ndue;
    while (fired < budget && (ndue = pop_due(t, now, due)) > 0) {
        fired += ndue;
        /* Start loading their fibers' wait words. */
        for (unsigned i = 0; i < ndue; i++)
            __builtin_prefetch(&due[i]->fiber->wait, 1);
        for (unsigned i = 0; i < ndue; i++) {
            struct weft_timer_entry *e = due[i];
            struct weft_fiber *f = e->fiber;
            enum weft_wake_result r = weft__wait_claim_by_timer(f, e->gen);
            if (r == WEFT_WAKE_CLAIMED) {
                f->qnext = NULL;
                if (last)
                    last->qnext = f;
                else
                    first = f;
                last = f;
                n++;
            }
            if (r != WEFT_WAKE_STALE) {
                entry_free(t, e); /* the fiber will not touch it ("Who ends") */
            } else {
                uint32_t s = ENTRY_ARMED;
                /* release on success: pairs with disarm's acquire; after
                 * it we touch the entry no more (disarm frees it).
                 * acquire on failure: as is_cancelled(). */
                if (!atomic_compare_exchange_strong_explicit(&e->state, &s, ENTRY_FIRED,
                                                             memory_order_release,
                                                             memory_order_acquire))
                    entry_free(t, e); /* cancelled first: ours to free */
            }
            if (n == WEFT_TIMER_WAKE_CHUNK) {
                weft__sched_ready_chain(t->sched, first, last, n);
                first = last = NULL;
                n = 0;
            }
        }
    }
    if (n)
        weft__sched_ready_chain(t->sched, first, last, n);
    return fired;
}

/* Whether any submission stack holds an entry. */
static bool any_submitted(struct weft_timer *t) {
    for (unsigned i = 0; i < t->nsubmitted; i++)
        /* seq_cst: see weft__timer_arm. */
        if (atomic_load_explicit(&t->submitted[i].head, memory_order_seq_cst))
            return true;
    return false;
}

static void *timer_main(void *arg) {
    struct weft_timer *t = arg;
    pthread_setname_np(pthread_self(), "weft-timer"); /* for top and perf */
    for (;;) {
        /* relaxed: a test's setting, read afresh each round. */
        uint64_t lag = atomic_load_explicit(&t->lag_ns, memory_order_relaxed);
        pthread_mutex_lock(&t->own);
        drain(t, true);
        /* A slice at a time, letting go of `own` in between: preempted
         * while it holds it, the thread would keep the helpers out. */
        uint64_t now;
        while (expire(t, (now = weft_now()) > lag ? now - lag : 0, WEFT_TIMER_HELP_MAX) >=
               WEFT_TIMER_HELP_MAX) {
            pthread_mutex_unlock(&t->own);
            pthread_mutex_lock(&t->own);
        }
        return_freed(t);
        uint64_t until = earliest(t, NULL);
        /* Not while deadlines come thick and fast (a burst firing): a
         * shrink copies what a ring still holds. */
        if (until == WEFT_FOREVER || until > weft_now() + WEFT_MSEC)
            shrink(t);
        /* seq_cst: see weft__timer_arm. */
        atomic_store_explicit(&t->sleeping_until, until, memory_order_seq_cst);
        pthread_mutex_unlock(&t->own);
        if (atomic_load_explicit(&t->stop, memory_order_acquire))
            break;
        if (any_submitted(t))
            continue;
        if (until != WEFT_FOREVER)
            until += lag;
        if (until <= weft_now())
            continue;
        weft__park_wait(&t->wake_word, 0, until);
        /* acquire: pairs with wake_timer's release. */
        atomic_exchange_explicit(&t->wake_word, 0, memory_order_acquire);
    }
    return NULL;
}

bool weft__timer_help(struct weft_timer *t, uint64_t now) {
    /* relaxed: a hint. A stale value costs a look for nothing, or leaves
     * a due entry to the timer thread, which owns it anyway. */
    uint64_t until = atomic_load_explicit(&t->sleeping_until, memory_order_relaxed);
    if (until == WEFT_FOREVER)
        return false; /* nothing pending: no clock read */
    if (!now)
        now = weft_now();
    if (until > now)
        return false;
    if (pthread_mutex_trylock(&t->own) != 0)
        return false; /* the timer thread, or another helper, is at it */
    drain(t, false); /* what was submitted since the thread last ran */
    size_t fired = expire(t, now, WEFT_TIMER_HELP_MAX);
    /* relaxed: a statistic. */
    atomic_fetch_add_explicit(&t->helped, fired, memory_order_relaxed);
    /* seq_cst: as the timer thread's store (weft__timer_arm). Fired
     * entries only leave the heap and the runs, so this is never earlier
     * than what the timer thread sleeps towards: a submitter that
     * compares with it wakes the thread when it did before, or for an
     * entry the thread's own wake-up would have found. */
    atomic_store_explicit(&t->sleeping_until, earliest(t, NULL), memory_order_seq_cst);
    pthread_mutex_unlock(&t->own);
    return fired > 0;
}

int weft__timer_create(struct weft_timer **out, struct weft_sched *s) {
    struct weft_timer *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->sched = s;
    t->nsubmitted = s->nworkers;
    t->submitted = aligned_alloc(alignof(struct submit_stack),
                                 t->nsubmitted * sizeof *t->submitted);
    if (!t->submitted) {
        free(t);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < t->nsubmitted; i++)
        atomic_init(&t->submitted[i].head, NULL);
    t->runs = calloc(t->nsubmitted, sizeof *t->runs);
    if (!t->runs) {
        free(t->submitted);
        free(t);
        return -ENOMEM;
    }
    atomic_init(&t->sleeping_until, WEFT_FOREVER);
    atomic_init(&t->wake_word, 0);
    atomic_init(&t->stop, 0);
    atomic_init(&t->helped, 0);
    atomic_init(&t->lag_ns, 0);
    pthread_mutex_init(&t->pool_lock, NULL);
    pthread_mutex_init(&t->own, NULL);
    t->compact_at = 1024;
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        free(t->runs);
        free(t->submitted);
        free(t);
        return -EAGAIN;
    }
    *out = t;
    return 0;
}

void weft__timer_destroy(struct weft_timer *t) {
    atomic_store_explicit(&t->stop, 1, memory_order_release);
    wake_timer(t);
    pthread_join(t->thread, NULL);
    /* No fiber waits any more: every entry left is cancelled or fired. */
    /* Entries live in the pool's chunks: free those, and all is gone. */
    for (size_t i = 0; i < t->nchunks; i++)
        munmap(t->chunks[i].base, t->chunks[i].len);
    free(t->chunks);
    pthread_mutex_destroy(&t->pool_lock);
    pthread_mutex_destroy(&t->own);
    for (unsigned i = 0; i < t->nsubmitted; i++)
        if (t->runs[i].ring)
            munmap(t->runs[i].ring, t->runs[i].cap * sizeof *t->runs[i].ring);
    free(t->runs);
    free(t->submitted);
    if (t->heap)
        munmap(t->heap - HEAP_PAD, (t->heap_cap + HEAP_PAD) * sizeof *t->heap);
    free(t);
}

/* ---- weft_sleep --------------------------------------------------------- */

static int thread_sleep_until(uint64_t deadline) {
    int saved_errno = errno;
    struct timespec ts = {.tv_sec = (time_t)(deadline / WEFT_SEC),
                          .tv_nsec = (long)(deadline % WEFT_SEC)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    errno = saved_errno;
    return 0;
}

int weft_sleep_until(uint64_t deadline) {
    struct weft_fiber *f = weft__sched_current();
    if (!f)
        return thread_sleep_until(deadline);
    struct weft_waiter wt; /* never signalled: only the deadline or a cancel end it */
    for (;;) {
        weft__waiter_init(&wt, f, 1, true);
        int rc = weft__waiter_block(&wt, deadline);
        if (rc == -ETIMEDOUT)
            return 0;
        if (rc == -ECANCELED)
            return weft_now() >= deadline ? 0 : -ECANCELED;
        if (rc == -ENOMEM)
            return -ENOMEM;
    }
}

int weft_sleep(uint64_t ns) {
    uint64_t now = weft_now();
    uint64_t deadline = ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
    return weft_sleep_until(deadline);
}
