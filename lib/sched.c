/*
 * lib/sched.c - workers, run queues, stealing, parking.
 *
 * Concepts
 *   F  fiber: the execution of a weft_task (fiber.h). Its status says
 *      whether its body may run; its wait word (wait.c) who may resume it.
 *   W  worker: one OS thread with one deque, one `next` slot, a woken
 *      ring, a yield list and stack/control-block caches. N workers per
 *      runtime, fixed at weft_runtime_create().
 *   I  inject queue (inject.h): how non-workers (plain pthreads) submit
 *      new fibers, and where full deques spill.
 *   R  wake queue (an inject.h queue too): fibers woken off the workers
 *      (the timer thread, plain pthreads). They hold a stack already.
 *
 * Switching
 *   A fiber that blocks, yields or finishes picks its successor itself,
 *   on its own stack, and jumps straight to it: fiber-to-fiber, one jump.
 *   Only when the worker has nothing local to run does it jump to the
 *   worker's own context (the thread's stack), which runs the search loop
 *   below: wake and inject queues, stealing, parking.
 *
 * Publish after switch
 *   A fiber may not be made visible as runnable or parked while it still
 *   runs on its stack: a thief or a waker on another thread would resume
 *   the same stack twice. So the context that switches away only records
 *   what must happen to it (w->prev, w->after) and the context resumed on
 *   the same worker does it, first thing, in after_switch(): save prev's
 *   context, then push it to the yield list (YIELD), publish it as parked
 *   (PARK, wait.c), or free its stack and drop its reference (EXIT).
 *
 * Where a worker looks for work, in order
 *   1. every WEFT_FAIR_EVERY picks: the oldest fiber of the inject queue,
 *      the yield list or its own deque (fairness: nothing queued waits
 *      more than a bounded number of picks, whatever the LIFO side does);
 *      and if workers are idle, the yield list moves to the deque, where
 *      they can steal from it;
 *   2. its woken ring, then the wake queue, a batch at a time, whenever
 *      it is not empty (one relaxed load per pick). A batch goes to the
 *      woken ring (woken.h), a FIFO run oldest first (on the LIFO deque,
 *      batch after batch ran newest first and the oldest starved at its
 *      bottom), or to the deque when workers are idle, for them to
 *      steal. A ring is stolen from only once it stands still: its owner
 *      is held (step 5, and "Held work"). A woken fiber has a stack and
 *      usually finishes or blocks
 *      soon, giving its stack back; a NEW fiber in front of it would
 *      take another one. A burst of a million spawns in the FIFO inject
 *      queue would otherwise delay every timer wake behind it by up to a
 *      second (and keep a million stacks in use);
 *   3. its `next` slot (the fiber just spawned or woken: cache-hot, a
 *      producer/consumer pair stays on one core, and a join finds its
 *      task there to run inline), then its own deque,
 *      newest first (fork-join runs depth-first, so live stacks stay
 *      proportional to depth x workers), then its yield list;
 *   4. the inject queue, a batch at a time;
 *   5. due timers the timer thread has not fired yet, a few (timer.c,
 *      "Helpers"); then half of a random victim's woken ring if its head
 *      has not moved for a round (~2 us), else half of its deque, and
 *      the due timers again after each round; only while fewer than
 *      half of the busy workers are already searching ("Spinning");
 *   6. return one all-free stack slab's pages to the OS, if one waits
 *      (stack.h), and look again; else park ("Parking protocol").
 *   Steps 1-3 run in whichever context switches away; 4-6 only in the
 *   worker's own loop. Step 2 cannot starve the rest: step 1 comes
 *   first, and the wake queue only holds fibers that blocked, each woken
 *   once per wait.
 *
 * Spinning
 *   nspinning counts workers searching for work (step 5). A worker that
 *   finds work while spinning stops spinning and, if it was the last
 *   spinner and workers are parked, wakes one: the work it found may be
 *   the first of a burst (Go's resetspinning()). Waking is only done
 *   when nobody spins: a spinner will find the work anyway.
 *
 * Parking protocol
 *   A worker out of work:         A submitter (fiber queued for others):
 *   P1 park_word = IDLE;          S1 push f (deque, wake or inject q.)
 *      nidle++                    S2 seq_cst fence
 *   P2 seq_cst fence              S3 if nspinning == 0 and nidle > 0:
 *   P3 re-check both queues,          nspinning++ and CAS one IDLE worker
 *      every deque, stop flag;        to NOTIFIED, futex-wake it
 *      found: leave idle, search
 *   P4 else futex-wait while park_word == IDLE
 *   Either P3 sees S1's fiber or S3 sees P1's announcement: the two fences
 *   forbid both loads missing both stores (store-buffering). The woken
 *   worker starts as a spinner, counted by its waker.
 *
 * Held work
 *   A worker that blocks in a system call, or runs one long fiber that
 *   never calls weft, still holds its woken ring, and maybe fibers whose
 *   notification a parking worker missed ("Local pushes"). So while any
 *   worker runs, one parked worker (the watcher: the first to park while
 *   the role is free or asleep) wakes every WEFT_STALL_CHECK_NS and
 *   looks: for a victim's ring whose head has not moved since its last
 *   look, or for work in a deque or a slot; if there is some, it
 *   searches as a spinner (step 5), else parks again. Go's sysmon does
 *   this job. The others only look, every WEFT_ROLE_CHECK_NS, whether
 *   the role fell free or asleep (every parked worker watching cost
 *   O(workers^2) loads per period: 256 workers under TSan never got
 *   through a test). When every worker is idle nothing can be held,
 *   and all of them sleep until notified, the watcher too, which marks
 *   the role asleep: a worker that parks after one of them was woken
 *   takes it over (the old holder, once it looks again, parks as a
 *   non-watcher). The role falls free when the watcher leaves the park;
 *   the next worker to park takes it, or else, within
 *   WEFT_ROLE_CHECK_NS, one of those that parked under the old watcher.
 *   So whenever work may be held without a notification (a worker
 *   parked while another pushed), the parked worker that missed it
 *   watches, or another does.
 *
 * Local pushes
 *   A worker that queues on its own deque (a spawn, a fiber kicked out of
 *   the `next` slot) checks nidle and nspinning with relaxed loads and no
 *   S2 fence: a fence per spawn costs more than the spawn. The race it
 *   leaves is benign for liveness: the fiber is on a running worker's own
 *   deque and that worker runs it; only parallelism can be delayed, until
 *   the next push sees the parked worker (Go's runqput + wakep() make the
 *   same trade). Pushes from outside the workers (wake, inject queues)
 *   keep the fence: no running worker owns those.
 *
 * Rejected designs
 *   - A `next` slot that thieves cannot touch: a task spawned there could
 *     not be stolen until its parent blocked, so two tasks spawned and
 *     joined by one fiber ran one after the other on one worker. Thieves
 *     now take it too, but only when the same fiber has sat there for a
 *     whole round of their search (~2 us; Go's runqgrab waits ~3 us for
 *     runnext), so a task about to be joined inline stays with its
 *     parent. The owner fills and empties it without a locked
 *     instruction; a thief asks the owner to acknowledge first, or
 *     interrupts it with a membarrier (slot.h).
 *   - The slot's owner racing thieves with exchange and CAS: a locked
 *     instruction at each fill and take, two per hand-off of a channel
 *     ping-pong (about 7 ns each here).
 *   - An owner-only woken list: a worker blocked in a system call, or
 *     running one long fiber, held the fibers woken with the one it ran,
 *     while the other workers idled (and a plain thread waiting for
 *     those fibers, joined by the blocked one, deadlocked). The ring
 *     costs its owner one uncontended CAS per woken fiber.
 *   - A ring stolen from as soon as it is seen, always used (also when
 *     workers are idle) and counted as visible work at the park
 *     re-check, so that idle workers stayed up beside it: 100k and 1M
 *     sleep/wake cycles 8-26% slower in seven A/B pairs (a spinning
 *     worker took CPU time from the timer thread, and stolen fibers ran
 *     on a core that had not prefetched them).
 *   - One global run queue: every spawn and wake contends on one line.
 *   - Always switching through the worker's own context: two jumps per
 *     switch instead of one.
 *   - Waking a parked worker on every queued fiber: a thundering herd;
 *     most find nothing and park again.
 *   - Putting a yielding fiber on its own deque: LIFO pops would run it
 *     again at once and starve the others.
 *   - Steal-half as one CAS over a range of the Chase-Lev deque: the
 *     owner's pop takes the bottom element without a CAS when more than
 *     one is left, so a range claim can overlap it. Thieves take half of
 *     the victim's fibers one CAS at a time instead.
 *
 * Shutdown
 *   1. weft_runtime_destroy registers a waiter in quiesce_waiter, then
 *      checks quiescence itself (tasks spawned == tasks finished);
 *   2. otherwise the worker that next runs out of work (P2) sees the
 *      waiter and the quiescence, and signals it;
 *   3. stop: set `stopping`, wake every worker; each finds no work, leaves
 *      its loop, returns its caches, and is joined.
 *   Counting: each worker counts spawns and finishes in its own line
 *   (relaxed stores, release for finishes); quiescent() reads every
 *   finished count (acquire) before every spawned count, so a task whose
 *   finish it sees has all its children's spawns seen too.
 *
 * Module order: context < stack < fiber < sched, wait < timer < join,
 * sync, chan < runtime. Nothing here includes a later module's header except timer.h
 * (its entry points only).
 *
 * References: Lê et al., PPoPP 2013; Go src/runtime/proc.go ("Worker
 * thread parking/unparking"); Tokio scheduler/multi_thread/worker.rs.
 */
#include <dlfcn.h>
#include <sched.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "park.h"
#include "sched.h"
#include "timer.h"
#include "wait.h"

/* Picks between fairness picks (step 1). Prime, as Go's 61, so it does not
 * beat in step with a periodic workload. */
#define WEFT_FAIR_EVERY 61
/* Most fibers moved from the inject or wake queue in one take: as many
 * as a pop hands out (inject.h), which sizes take_batch's array. */
#define WEFT_INJECT_BATCH WEFT_INJECT_POP_MAX
/* Most fibers one take from the wake queue keeps when no worker is idle
 * (one runs, the rest go to the woken ring): a worker that stalls right
 * after the take holds them until a thief sees its ring stand still. */
#define WEFT_WOKEN_TAKE_MAX 16
_Static_assert(WEFT_WOKEN_TAKE_MAX - 1 <= WEFT_WOKEN_CAP, "a take fits an empty ring");
/* How long a spinning worker searches before it parks: long enough that
 * a stream of spawns does not pay a futex wake each (a wake costs about
 * a microsecond on each side); short enough to be noise on an idle CPU.
 * Picked, not measured to be optimal. */
#define WEFT_SPIN_NS (50 * WEFT_USEC)
/* Pauses between rounds (~2 us at the ~12 ns a PAUSE took here): the
 * delay after which a victim's lone fiber counts as waiting, not about
 * to be joined. Polling a victim more often costs its owner a cache miss
 * on nearly every push and pop (measured: spawn+join 52 -> 104 ns). */
#define WEFT_SPIN_PAUSES 160
/* How late a parked worker may wake to trim a slab (stack.h,
 * "Retention"): the slabs that fell due meanwhile go in the same wake. */
#define WEFT_TRIM_SLACK_NS (10 * WEFT_MSEC)

enum { PARK_RUNNING = 0, PARK_IDLE = 1, PARK_NOTIFIED = 2 };

/* The worker of the calling thread. Set once when a worker thread starts
 * and never changed: a thread's value is always right. Read through
 * weft__sched_worker() (see sched.h), or directly by a function of this
 * file that does not switch between its read and its last use. */
static WEFT_TLS struct weft_worker *tls_worker;

WEFT_NOINLINE struct weft_worker *weft__sched_worker(void) {
    /* Keep the compiler from treating this as a pure function and
     * reusing one call's result after a switch to another thread. */
    __asm__ __volatile__("" ::: "memory");
    struct weft_worker *w = tls_worker;
    if (w)
        weft__slot_poll(&w->next);
    return w;
}

struct weft_fiber *weft__sched_current(void) {
    struct weft_worker *w = weft__sched_worker();
    return w ? w->current : NULL;
}

/* ---- Local queues (owner only) ------------------------------------------ */

static void list_push(struct weft_fiber_list *l, struct weft_fiber *f) {
    f->qnext = NULL;
    if (l->tail)
        l->tail->qnext = f;
    else
        l->head = f;
    l->tail = f;
}

static struct weft_fiber *list_pop(struct weft_fiber_list *l) {
    struct weft_fiber *f = l->head;
    if (f) {
        l->head = f->qnext;
        if (!l->head)
            l->tail = NULL;
        f->qnext = NULL;
    }
    return f;
}

static uint64_t rng_next(struct weft_worker *w) {
    /* xorshift64*: victim choice only. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Push onto the own deque; a full deque spills its older half to the
 * inject queue first (Go's runqputslow). */
static void push_deque(struct weft_worker *w, struct weft_fiber *f) {
    if (WEFT_LIKELY(weft__deque_push(&w->deque, f) == 0))
        return;
    struct weft_fiber *first = NULL, *last = NULL;
    size_t n = 0;
    for (int i = 0; i < WEFT_DEQUE_CAP / 2; i++) {
        struct weft_fiber *g = weft__deque_steal(&w->deque);
        if (g == WEFT_DEQUE_ABORT)
            continue;
        if (!g)
            break;
        g->qnext = NULL;
        if (last)
            last->qnext = g;
        else
            first = g;
        last = g;
        n++;
    }
    if (n)
        weft__inject_push_chain(&w->sched->inject, first, last, n);
    /* Thieves may have emptied it meanwhile; either way there is room. */
    int rc = weft__deque_push(&w->deque, f);
    WEFT_ASSERT(rc == 0);
}

void weft__sched_notify(struct weft_sched *s) {
    /* S2: pairs with P2 in park() (store-buffering; see "Parking
     * protocol"). */
    weft__fence_seq_cst();
    if (atomic_load_explicit(&s->nspinning, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&s->nidle, memory_order_relaxed) == 0)
        return;
    uint32_t zero = 0;
    /* The right to wake a spinner: only one submitter at a time. relaxed:
     * a counter, ordered by the fences of both protocols. */
    if (!atomic_compare_exchange_strong_explicit(&s->nspinning, &zero, 1,
                                                 memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    /* Where the search for a parked worker starts: round robin per
     * thread (a clock read here cost a vDSO call per notify). */
    static WEFT_TLS unsigned rotor;
    unsigned n = s->nworkers;
    unsigned start = rotor++ % n;
    for (unsigned i = 0; i < n; i++) {
        struct weft_worker *v = &s->workers[(start + i) % n];
        uint32_t idle = PARK_IDLE;
        /* acq_rel: the woken worker's P4 load of park_word (acquire)
         * sees NOTIFIED; we see its announcement. */
        if (atomic_compare_exchange_strong_explicit(&v->park_word, &idle, PARK_NOTIFIED,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            weft__park_wake(&v->park_word, 1);
            return;
        }
    }
    atomic_fetch_sub_explicit(&s->nspinning, 1, memory_order_relaxed);
}

static void count_finished(struct weft_worker *w) {
    uint64_t n = atomic_load_explicit(&w->finished, memory_order_relaxed);
    /* release: pairs with the acquire in quiescent() ("Shutdown"). */
    atomic_store_explicit(&w->finished, n + 1, memory_order_release);
}

/* After a worker queued work on its own deque. The check is relaxed, with
 * no S2 fence: a worker announcing idleness at the same instant may miss
 * this push and park ("Local pushes" in the design comment). */
static void notify_local(struct weft_sched *s) {
    if (atomic_load_explicit(&s->nidle, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&s->nspinning, memory_order_relaxed) != 0)
        return;
    weft__sched_notify(s);
}

/* Put f where this worker runs it next; what was there goes to the deque.
 * Either way the work can be stolen: notify. */
static void push_next(struct weft_worker *w, struct weft_fiber *f) {
    struct weft_fiber *old = weft__slot_put(&w->next, f);
    if (old)
        push_deque(w, old);
    notify_local(w->sched);
}

/* Owner. Take the LIFO slot's fiber, unless a thief took it first. */
static inline struct weft_fiber *take_next(struct weft_worker *w) {
    return weft__slot_take(&w->next);
}

int weft__sched_admit(struct weft_sched *s, struct weft_worker *w) {
    if (w && w->sched == s) {
        /* relaxed: owner-only counter; ordered for quiescent() by the
         * release of the spawning task's own finish ("Shutdown"). */
        uint64_t n = atomic_load_explicit(&w->spawned, memory_order_relaxed);
        atomic_store_explicit(&w->spawned, n + 1, memory_order_relaxed);
        return 0;
    }
    /* seq_cst, both: pairs with weft__sched_close()'s store and its
     * quiescence check: either we see closing, or destroy sees our count
     * and waits for this task (store-buffering). */
    atomic_fetch_add_explicit(&s->spawned_outside, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&s->closing, memory_order_seq_cst))
        return 0;
    weft__sched_unadmit(s, w);
    return -EINVAL;
}

void weft__sched_unadmit(struct weft_sched *s, struct weft_worker *w) {
    if (w && w->sched == s) {
        count_finished(w);
        return;
    }
    /* release: pairs with the acquire loads in quiescent(). */
    atomic_fetch_add_explicit(&s->finished_outside, 1, memory_order_release);
    /* A destroy may be waiting on this count: a parked worker re-checks
     * quiescence when woken (P2). */
    weft__sched_notify(s);
}

void weft__sched_close(struct weft_sched *s) {
    atomic_store_explicit(&s->closing, 1, memory_order_seq_cst);
}

void weft__sched_submit(struct weft_sched *s, struct weft_worker *w,
                        struct weft_fiber *f) {
    if (w && w->sched == s) {
        push_next(w, f);
        return;
    }
    weft__inject_push(&s->inject, f);
    weft__sched_notify(s);
}

void weft__sched_ready(struct weft_fiber *f) {
    struct weft_sched *s = f->sched;
    /* Direct: no switch below. (push_next's slot operation answers a
     * thief's request, weft__sched_worker's poll is not needed.) */
    struct weft_worker *w = tls_worker;
    if (w && w->sched == s) {
        push_next(w, f);
        return;
    }
    weft__sched_ready_chain(s, f, f, 1);
}

void weft__sched_ready_chain(struct weft_sched *s, struct weft_fiber *first,
                             struct weft_fiber *last, size_t n) {
    weft__inject_push_chain(&s->woken, first, last, n);
    weft__sched_notify(s);
}

/* ---- Starting and ending fibers ---------------------------------------- */


static void fiber_entry(struct weft_transfer t);

static bool claim_new(struct weft_worker *w, struct weft_fiber *f);

/* A fiber just taken from a run queue: may it run? NEW fibers are claimed
 * against weft_cancel and given a stack; a cancelled one, or one no stack
 * could be found for, is finished and dropped here. A started fiber (a
 * woken or yielding one) is the common case, tested inline. */
static inline bool claim(struct weft_worker *w, struct weft_fiber *f) {
    if (atomic_load_explicit(&f->status, memory_order_relaxed) == WEFT_FIBER_STARTED)
        return true;
    return claim_new(w, f);
}

/* claim() of a fiber that has not started: NEW, or finished by a cancel. */
static WEFT_NOINLINE bool claim_new(struct weft_worker *w, struct weft_fiber *f) {
    uint32_t expect = WEFT_FIBER_NEW;
    /* acquire: pairs with the release of the spawner's push, for fn/arg
     * (already ordered by the queue) and with weft_cancel's CAS. */
    if (atomic_compare_exchange_strong_explicit(&f->status, &expect, WEFT_FIBER_STARTED,
                                                memory_order_acquire,
                                                memory_order_acquire)) {
        int k = f->stack_class;
        struct weft_stack *st = weft__stack_get(&w->sched->pools[k], &w->stacks[k],
                                                w->sched->stack_high_water);
        if (WEFT_LIKELY(st != NULL)) {
            f->stack = st;
            f->canary = st->canary;
            weft__context_make(&f->ctx, st->lo, st->size, fiber_entry);
            return true;
        }
        /* Out of memory: the task ends with -ENOMEM for its joiner, and
         * whoever counts on its body running hears of it. */
        weft__task_publish(f, NULL, -ENOMEM, WEFT_FIBER_DONE);
        if (f->unrun)
            f->unrun(f->arg, -ENOMEM);
    }
    /* Cancelled before it ran (or just failed): the queue's reference. */
    count_finished(w);
    weft__fiber_unref(f, &w->fibers);
    return false;
}

/* The fairness pick (step 1), and step 2. */
static struct weft_fiber *take_batch(struct weft_worker *w, struct weft_inject *q,
                                     size_t max, bool in_order);
static struct weft_fiber *take_inject(struct weft_worker *w);
static struct weft_fiber *take_woken(struct weft_worker *w);

/* Yielded fibers wait in an owner-only list, which thieves cannot reach.
 * When workers are idle, move them to the deque, oldest at the bottom
 * (LIFO pops keep their FIFO order), where they can be stolen. */
static void share_list(struct weft_worker *w, struct weft_fiber_list *l) {
    if (!l->head || atomic_load_explicit(&w->sched->nidle, memory_order_relaxed) == 0)
        return;
    struct weft_fiber *chain[WEFT_DEQUE_CAP / 2];
    int n = 0;
    while (n < WEFT_DEQUE_CAP / 2 && l->head)
        chain[n++] = list_pop(l);
    while (n > 0)
        push_deque(w, chain[--n]);
    notify_local(w->sched);
}

static struct weft_fiber *fair_pick(struct weft_worker *w) {
    share_list(w, &w->yielded);
    /* One fiber only, as Go's globrunqget(pp, 1): a batch would go on top
     * of the deque, in front of what was there, and a worker fed by a
     * long inject queue would bury its own work (fibers the wake queue
     * gave it, among others) under batch after batch. */
    struct weft_fiber *f = take_batch(w, &w->sched->inject, 1, false);
    if (f)
        return f;
    if ((f = list_pop(&w->yielded)))
        return f;
    f = weft__deque_steal(&w->deque);
    return f == WEFT_DEQUE_ABORT ? NULL : f;
}

/* Lines of a woken fiber's stack loaded ahead of its resumption, from
 * its saved registers up: about the frames it returns through on its way
 * back to its own code (a sleeper's are 7-9 lines). Those lines went cold
 * while it slept, and the resumed side reads them one after the other,
 * each return waiting for the load of its address. */
#define WEFT_RESUME_PREFETCH_LINES 10

/* Load a woken fiber that runs next but one: its stack and its control
 * block (for writing: its wait word, status and result are written on
 * its way out), while the fiber before it runs. f may be a thief's by
 * now (woken.h): its saved stack pointer is read as a hint only (C3 in
 * context.h), and stale or NULL (NEW, running) costs nothing. */
static void prefetch_resume(struct weft_fiber *f) {
    for (size_t off = 0; off < sizeof *f; off += WEFT_CACHELINE)
        __builtin_prefetch((const char *)f + off, 1);
    const char *sp = weft__context_saved(&f->ctx);
    if (!sp)
        return; /* NEW: nothing saved yet */
    /* A prefetch past the stack's top touches nothing: it cannot fault. */
    for (int i = 0; i < WEFT_RESUME_PREFETCH_LINES; i++)
        __builtin_prefetch(sp + i * WEFT_CACHELINE);
}

/* Queue fibers[0..n) (ours, n <= the ring's room) in our woken ring, the
 * first loaded meanwhile, as pop_woken() does for the next: before the
 * push, after which a thief may take them. */
static void keep_woken(struct weft_worker *w, struct weft_fiber *const *fibers, size_t n) {
    prefetch_resume(fibers[0]);
    weft__woken_push(&w->woken, fibers, n);
    w->woken_bound += n;
}

/* Step 2's local half: the woken ring's oldest fiber; the one after it
 * is loaded meanwhile. */
static WEFT_NOINLINE struct weft_fiber *pop_woken_ring(struct weft_worker *w);

static inline struct weft_fiber *pop_woken(struct weft_worker *w) {
    /* One owner-only load on most picks, inline: a yield or a channel
     * hand-off finds the ring empty. */
    return w->woken_bound ? pop_woken_ring(w) : NULL;
}

static WEFT_NOINLINE struct weft_fiber *pop_woken_ring(struct weft_worker *w) {
    struct weft_fiber *after;
    struct weft_fiber *f = weft__woken_pop(&w->woken, &after);
    if (!f) {
        w->woken_bound = 0; /* thieves took the rest */
        return NULL;
    }
    w->woken_bound--;
    if (after)
        prefetch_resume(after);
    return f;
}

/* Steps 1-3: the next fiber that may run, claimed; NULL if none. */
static inline __attribute__((always_inline)) struct weft_fiber *
pick_local(struct weft_worker *w) {
    for (;;) {
        struct weft_fiber *f = NULL;
        if (WEFT_UNLIKELY(--w->fair_countdown == 0)) {
            w->fair_countdown = WEFT_FAIR_EVERY;
            f = fair_pick(w);
        }
        if (!f)
            f = pop_woken(w);
        if (!f && weft__inject_len(&w->sched->woken))
            f = take_woken(w);
        if (!f)
            f = take_next(w);
        if (!f && weft__deque_size(&w->deque))
            f = weft__deque_pop(&w->deque);
        if (!f)
            f = list_pop(&w->yielded);
        if (!f)
            return NULL;
        if (claim(w, f))
            return f;
    }
}

/* ---- Switching ---------------------------------------------------------- */

/* Describe f for a panic message: its name, its entry function (when the
 * dynamic symbol table has it), and its address. */
static void describe(struct weft_fiber *f, char *buf, size_t len) {
    Dl_info info;
    void *fn = (void *)(uintptr_t)f->fn;
    bool found = dladdr(fn, &info) != 0;
    const char *entry = found && info.dli_sname ? info.dli_sname : "?";
    /* Where no dynamic symbol names it (a static function, or a program
     * linked without -rdynamic), the object and offset still let
     * addr2line name it. */
    if (found && !info.dli_sname && info.dli_fname)
        snprintf(buf, len, "fiber %p \"%s\" (entry %s at %p, %s+%#tx)", (void *)f,
                 f->name ? f->name : "", entry, fn, info.dli_fname,
                 (char *)fn - (char *)info.dli_fbase);
    else
        snprintf(buf, len, "fiber %p \"%s\" (entry %s at %p)", (void *)f,
                 f->name ? f->name : "", entry, fn);
}

static void check_canary(struct weft_fiber *f) {
    if (WEFT_UNLIKELY(*f->canary != weft__canary_value_at(f->canary))) {
        char who[256];
        describe(f, who, sizeof who);
        weft__panic("weft: stack overflow in %s: the canary below its %zu-byte "
                    "stack was overwritten (raise weft_config.stack_size or "
                    "weft_spawn_opts.stack_size)",
                    who, f->stack->size);
    }
}

/* The resumed side of every switch ("Publish after switch"). Runs on the
 * new context's stack, on the worker that made the jump: it takes that
 * worker from the jump's data, never from a thread-local. */
static inline struct weft_worker *after_switch(struct weft_transfer t) {
    struct weft_worker *w = t.data;
    struct weft_fiber *prev = w->prev;
    if (!prev) {
        weft__context_save(&w->loop_ctx, t.fctx);
    } else {
        weft__context_save(&prev->ctx, t.fctx);
        w->prev = NULL;
        switch (w->after) {
        case WEFT_AFTER_YIELD:
            list_push(&w->yielded, prev);
            break;
        case WEFT_AFTER_PARK:
            weft__wait_publish(prev);
            break;
        case WEFT_AFTER_EXIT: {
            int k = prev->stack_class;
            weft__context_release(&prev->ctx);
            weft__stack_put(&w->sched->pools[k], &w->stacks[k],
                            w->sched->stack_high_water, prev->stack);
            prev->stack = NULL;
            weft__fiber_unref(prev, &w->fibers);
            break;
        }
        case WEFT_AFTER_NONE:
            break;
        }
    }
    if (w->current) {
        *w->errno_addr = w->current->saved_errno;
        /* Its next switch-out reads the canary, a line the fiber does
         * not otherwise touch: a cold miss after a long sleep. */
        __builtin_prefetch(w->current->canary);
    }
    return w;
}

/* Jump from the running context `from` to fiber `to` (claimed), or to the
 * worker's loop when `to` is NULL. */
static struct weft_worker *jump_to(struct weft_worker *w, struct weft_context *from,
                                   struct weft_fiber *to) {
    struct weft_context *dest = &w->loop_ctx;
    w->current = to;
    if (to)
        dest = &to->ctx;
    return after_switch(weft__context_switch(from, dest, w));
}

struct weft_worker *weft__sched_switch_out(struct weft_worker *w, enum weft_after after) {
    struct weft_fiber *self = w->current;
    check_canary(self);
    self->saved_errno = *w->errno_addr;
    struct weft_fiber *to = pick_local(w);
    w->prev = self;
    w->after = after;
    return jump_to(w, &self->ctx, to);
}

void weft__sched_yield(struct weft_worker *w) {
    struct weft_fiber *self = w->current;
    struct weft_fiber *to = pick_local(w);
    while (!to && weft__inject_len(&w->sched->inject)) {
        to = take_inject(w);
        if (to && !claim(w, to))
            to = NULL;
    }
    if (!to)
        return; /* nothing else is ready here: keep running */
    check_canary(self);
    self->saved_errno = *w->errno_addr;
    w->prev = self;
    w->after = WEFT_AFTER_YIELD;
    jump_to(w, &self->ctx, to);
}

void weft_yield(void) {
    struct weft_worker *w = weft__sched_worker();
    if (w && w->current)
        weft__sched_yield(w);
    else
        sched_yield();
}

void weft__sched_exit(struct weft_worker *w, void *result) {
    struct weft_fiber *self = w->current;
    check_canary(self);
    weft__task_publish(self, result, 0, WEFT_FIBER_DONE);
    count_finished(w);
    struct weft_fiber *to = pick_local(w);
    w->prev = self;
    w->after = WEFT_AFTER_EXIT;
    w->current = to;
    weft__context_exit(&self->ctx, to ? &to->ctx : &w->loop_ctx, w);
}

static void fiber_entry(struct weft_transfer t) {
    struct weft_worker *w = t.data;
    weft__context_started(&w->current->ctx);
    w = after_switch(t);
    struct weft_fiber *self = w->current;
    *w->errno_addr = 0;
    void *result = self->fn(self->arg);
    weft__sched_exit(weft__sched_worker(), result);
}

/* ---- Inline join support ------------------------------------------------ */

/* How deep take_back looks into the bottom of the deque: a joiner
 * usually joins one of the last tasks it spawned; 16 covers a 10-ary
 * fan-out (skynet) joined oldest first. */
#define WEFT_TAKE_BACK_DEPTH 16

bool weft__sched_take_back(struct weft_worker *w, struct weft_fiber *f) {
    /* take_if looks before it takes: a miss costs one load. */
    return weft__slot_take_if(&w->next, f) ||
           weft__deque_take(&w->deque, f, WEFT_TAKE_BACK_DEPTH);
}

void weft__sched_count_finished(struct weft_worker *w) { count_finished(w); }

size_t weft__sched_stack_left(struct weft_worker *w) {
    struct weft_stack *st = w->current->stack;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = (uintptr_t)st->lo;
    return sp > lo ? (size_t)(sp - lo) : 0;
}

/* ---- The worker loop: wake and inject queues, steal, park --------------- */

/* A fair share of q, as Go's globrunqget: len / workers + 1, at most max.
 * Returns the oldest to run. The rest go to our deque, where LIFO pops
 * take them next and idle workers may steal them; or, in_order and with
 * no worker idle, to our woken ring, run oldest first. (Batch after
 * batch of woken fibers pushed onto the deque ran newest first: while
 * the timer kept them coming, the oldest waited at the bottom, and the
 * last of 100k sleepers woke up to 30 ms late.) */
static struct weft_fiber *take_batch(struct weft_worker *w, struct weft_inject *q,
                                     size_t max, bool in_order) {
    struct weft_sched *s = w->sched;
    /* relaxed: a hint. */
    in_order = in_order && atomic_load_explicit(&s->nidle, memory_order_relaxed) == 0;
    size_t len = weft__inject_len(q);
    if (len == 0)
        return NULL;
    size_t want = len / s->nworkers + 1;
    if (want > max)
        want = max;
    /* No more than fit in our deque: a spill would send its oldest half,
     * maybe fibers just woken, to the back of the inject queue. Thieves
     * only make room, so what fits now still fits after the pop. */
    size_t room = in_order ? weft__woken_room(&w->woken)
                           : (size_t)(WEFT_DEQUE_CAP - weft__deque_size(&w->deque));
    if (want > room + 1)
        want = room + 1;
    /* The ring is stolen from only once its owner stalls (steal_woken):
     * keep what a stalled worker holds short. */
    if (in_order && want > WEFT_WOKEN_TAKE_MAX)
        want = WEFT_WOKEN_TAKE_MAX;
    struct weft_fiber *batch[WEFT_INJECT_BATCH];
    size_t n = weft__inject_pop_batch(q, batch, want);
    /* A woken fiber resumes by popping its registers off the stack where
     * it stopped, a line that went cold while it slept: load it now, so
     * the batch's misses overlap (a NEW fiber has NULL here). */
    for (size_t i = 1; i < n; i++) {
        void *sp = weft__context_saved(&batch[i]->ctx);
        if (sp)
            __builtin_prefetch(sp);
    }
    if (in_order && n > 1)
        keep_woken(w, batch + 1, n - 1);
    if (!in_order) {
        for (size_t i = n; i-- > 1;)
            push_deque(w, batch[i]);
        if (n > 1)
            weft__sched_notify(s);
    }
    return n ? batch[0] : NULL;
}

static struct weft_fiber *take_inject(struct weft_worker *w) {
    return take_batch(w, &w->sched->inject, WEFT_INJECT_BATCH, false);
}

static struct weft_fiber *take_woken(struct weft_worker *w) {
    return take_batch(w, &w->sched->woken, WEFT_INJECT_BATCH, true);
}

/* Take half of victim's fibers, one CAS each (see "Rejected designs").
 * Returns one to run; the rest go to our deque. */
static struct weft_fiber *steal_half(struct weft_worker *w, struct weft_worker *victim) {
    int64_t n = (weft__deque_size(&victim->deque) + 1) / 2;
    if (n > WEFT_DEQUE_CAP / 2)
        n = WEFT_DEQUE_CAP / 2;
    struct weft_fiber *first = NULL;
    for (int64_t i = 0, aborts = 0; i < n && aborts < 4;) {
        struct weft_fiber *f = weft__deque_steal(&victim->deque);
        if (f == WEFT_DEQUE_ABORT) {
            aborts++;
            continue;
        }
        if (!f)
            break;
        i++;
        if (!first)
            first = f;
        else
            push_deque(w, f);
    }
    return first;
}

/* Whether victim's woken ring holds fibers and its head has not moved
 * since our last look (steal_work's previous round, or the watcher's
 * previous check): its owner is held. Records this look. */
static bool ring_stood_still(struct weft_worker *w, struct weft_worker *victim) {
    uint64_t *seen = &w->woken_seen[victim->index];
    if (!weft__woken_size(&victim->woken)) {
        *seen = 0;
        return false;
    }
    /* relaxed: compared with itself a look later; a steal's own CAS
     * decides. */
    uint64_t head = atomic_load_explicit(&victim->woken.head, memory_order_relaxed);
    bool still = *seen == head + 1;
    *seen = head + 1;
    return still;
}

/* Half of victim's woken ring, once its head has stood still for a
 * whole round of our search (~2 us): its owner is held (a long fiber, a
 * system call, preemption). An owner that is working through its ring
 * keeps it: it has prefetched those fibers' stacks, and a thief would
 * run them cold (measured: stealing from rings as soon as they were
 * seen made 1M sleep/wake cycles 11-15% slower). Returns one to run;
 * the rest go to our ring, in their order. */
static struct weft_fiber *steal_woken(struct weft_worker *w, struct weft_worker *victim) {
    if (!ring_stood_still(w, victim))
        return NULL;
    w->woken_seen[victim->index] = 0; /* the next look starts afresh */
    struct weft_fiber *got[WEFT_WOKEN_CAP / 2];
    size_t max = weft__woken_room(&w->woken) + 1;
    if (max > WEFT_WOKEN_CAP / 2)
        max = WEFT_WOKEN_CAP / 2;
    size_t n = weft__woken_steal(&victim->woken, got, max);
    if (n == 0)
        return NULL;
    if (n > 1)
        keep_woken(w, got + 1, n - 1);
    return got[0];
}

static void stop_spinning(struct weft_worker *w) {
    w->spinning = false;
    /* acq_rel: a counter; the notify below has its own fence. */
    uint32_t was = atomic_fetch_sub_explicit(&w->sched->nspinning, 1, memory_order_acq_rel);
    if (was == 1)
        weft__sched_notify(w->sched);
}

/* A victim's LIFO slot, once the same fiber has sat there for a whole
 * round (Go's runqgrab takes runnext after a pause too): a spawned task
 * its owner is about to join is left to it. */
static struct weft_fiber *steal_next(struct weft_worker *w, struct weft_worker *v) {
    /* relaxed: the count before the slot; a fill between two looks
     * changes the count either way, and the steal itself decides. */
    uint64_t fills = atomic_load_explicit(&v->next.fills, memory_order_relaxed);
    struct weft_fiber *f = weft__slot_peek(&v->next);
    if (!f)
        return NULL;
    if (f != w->seen_next || fills != w->seen_next_fills) {
        w->seen_next = f;
        w->seen_next_fills = fills;
        return NULL;
    }
    w->seen_next = NULL;
    return weft__slot_steal(&v->next, f) ? f : NULL;
}

static void start_spinning(struct weft_worker *w) {
    w->spinning = true;
    /* relaxed: a counter; see "Spinning". */
    atomic_fetch_add_explicit(&w->sched->nspinning, 1, memory_order_relaxed);
}

/* Whether the wake or the inject queue holds fibers (a hint). */
static bool shared_queues_nonempty(struct weft_sched *s) {
    return weft__inject_len(&s->woken) || weft__inject_len(&s->inject);
}

/* Step 5 ("Spinning"). A victim's lone fiber is taken only if it is still
 * there a pause later: it may be the task its owner is about to join and
 * run inline, which a thief would turn into a park and a wake-up. */
static struct weft_fiber *steal_work(struct weft_worker *w) {
    struct weft_sched *s = w->sched;
    unsigned n = s->nworkers;
    if (!w->spinning) {
        uint32_t spinning = atomic_load_explicit(&s->nspinning, memory_order_relaxed);
        uint32_t idle = atomic_load_explicit(&s->nidle, memory_order_relaxed);
        /* Go's rule: at most half of the busy workers search at once (a
         * lone worker may: it watches the inject queue). */
        if (n > 1 && 2 * spinning >= n - idle)
            return NULL;
        start_spinning(w);
    }
    uint64_t now = weft_now(), give_up = now + WEFT_SPIN_NS;
    struct weft_worker *lone = NULL; /* victim with one fiber, last round */
    int64_t lone_top = -1;
    do {
        unsigned start = (unsigned)(rng_next(w) % n);
        struct weft_worker *next_lone = NULL;
        int64_t next_top = -1;
        for (unsigned i = 0; i < n; i++) {
            struct weft_worker *v = &s->workers[(start + i) % n];
            if (v == w)
                continue;
            struct weft_fiber *f = steal_woken(w, v);
            if (f)
                return f;
            int64_t size = weft__deque_size(&v->deque);
            /* relaxed: only compared with itself a round later; the steal
             * itself is ordered by the deque's own protocol. */
            int64_t top = atomic_load_explicit(&v->deque.top, memory_order_relaxed);
            if (size == 1 && !(v == lone && top == lone_top)) {
                next_lone = v;
                next_top = top;
                continue;
            }
            f = size ? steal_half(w, v) : NULL;
            if (f)
                return f;
            if (size == 0 && (f = steal_next(w, v)))
                return f;
        }
        if (shared_queues_nonempty(s))
            return NULL; /* take it from the queue instead */
        lone = next_lone;
        lone_top = next_top;
        for (int i = 0; i < WEFT_SPIN_PAUSES; i++)
            weft__cpu_relax();
        now = weft_now();
        /* Due timers the timer thread has not fired (it may be waiting
         * for the CPU we spin on): fire some, then take them. */
        if (weft__timer_help(s->timer, now))
            return NULL;
    } while (now < give_up);
    return NULL;
}

/* Whether work others can take is queued (the park re-check, P3). A
 * woken ring does not count: its owner is running through it, and a
 * worker that stayed up for it would spin beside it, taking CPU time
 * the timer thread needs (measured: 1M sleep/wake cycles 15% slower).
 * Rings whose owner is held are found by stalled_rings(). */
static bool work_visible(struct weft_sched *s) {
    if (shared_queues_nonempty(s))
        return true;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (weft__deque_size(&s->workers[i].deque) ||
            weft__slot_peek(&s->workers[i].next))
            return true;
    return false;
}

static void check_quiescence(struct weft_sched *s) {
    if (!atomic_load_explicit(&s->quiesce_waiter, memory_order_seq_cst))
        return;
    if (!weft__sched_quiescent(s))
        return;
    struct weft_waiter *wt = atomic_exchange_explicit(&s->quiesce_waiter, NULL,
                                                      memory_order_acq_rel);
    if (wt)
        weft__waiter_signal(wt);
}

/* Whether some other worker's woken ring has not moved since our last
 * look (its owner is held by a long fiber or a system call, or was
 * preempted): then we should steal from it (steal_woken). Records what
 * it saw for the next look. */
static bool stalled_rings(struct weft_worker *w) {
    struct weft_sched *s = w->sched;
    bool stalled = false;
    for (unsigned i = 0; i < s->nworkers; i++) {
        /* Every ring looked at, to record each look. */
        if (&s->workers[i] != w && ring_stood_still(w, &s->workers[i]))
            stalled = true;
    }
    return stalled;
}

/* How often a parked worker looks for held work while another worker
 * runs: a woken ring whose owner stalls, or a push whose notification
 * it missed ("Local pushes"), waits at most about this long. Go's
 * sysmon polls every 20 us to 10 ms for the same purpose; a look costs a
 * futex wake-up and a few loads. Picked, not tuned. */
#define WEFT_STALL_CHECK_NS (2 * WEFT_MSEC)

/* How often a parked worker that is not the watcher looks whether the
 * role is free while another worker runs: it is free from when its
 * holder leaves the park until a worker parks again, and the workers
 * that parked under that holder take it over within this. Rarely
 * needed, so rarely. */
#define WEFT_ROLE_CHECK_NS (25 * WEFT_MSEC)

/* The watcher role, s->watcher (sched.h): free, or its holder's
 * role_of(), marked WEFT_ROLE_ASLEEP while the holder sleeps until
 * notified (all were idle when it last looked): it watches nothing then,
 * so a worker that parks takes the role over, and the old holder, when
 * it looks again, finds the role gone and parks as a non-watcher. So one
 * worker watches at a time. Every access is relaxed: a role, not a
 * hand-over of data. */
static uint32_t role_of(const struct weft_worker *w) { return WEFT_ROLE_OF(w->index); }

/* The park's wake-up time: `due`, or within `period` while another
 * worker runs. */
static uint64_t park_until(struct weft_sched *s, uint64_t due, uint64_t period) {
    /* relaxed: a hint; a late look only delays one check. */
    if (atomic_load_explicit(&s->nidle, memory_order_relaxed) >= s->nworkers)
        return due; /* all idle: nothing can be held */
    uint64_t check = weft_now() + period;
    return check < due ? check : due;
}

/* Take the watcher role if it is free or its holder sleeps. */
static bool take_watcher_role(struct weft_worker *w) {
    struct weft_sched *s = w->sched;
    if (s->nworkers < 2)
        return false;
    uint32_t role = atomic_load_explicit(&s->watcher, memory_order_relaxed);
    return (role == WEFT_ROLE_FREE || (role & WEFT_ROLE_ASLEEP)) &&
           atomic_compare_exchange_strong_explicit(&s->watcher, &role, role_of(w),
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* We held the role: mark it asleep or watching. False if another worker
 * took it over meanwhile (we then park as a non-watcher). */
static bool keep_watcher_role(struct weft_worker *w, bool asleep) {
    struct weft_sched *s = w->sched;
    uint32_t role = atomic_load_explicit(&s->watcher, memory_order_relaxed);
    uint32_t want = role_of(w) | (asleep ? WEFT_ROLE_ASLEEP : 0);
    return (role & ~WEFT_ROLE_ASLEEP) == role_of(w) &&
           (role == want ||
            atomic_compare_exchange_strong_explicit(&s->watcher, &role, want,
                                                    memory_order_relaxed, memory_order_relaxed));
}

/* Leave the role free, unless another worker took it over. */
static void drop_watcher_role(struct weft_worker *w) {
    struct weft_sched *s = w->sched;
    uint32_t role = atomic_load_explicit(&s->watcher, memory_order_relaxed);
    if ((role & ~WEFT_ROLE_ASLEEP) == role_of(w))
        atomic_compare_exchange_strong_explicit(&s->watcher, &role, WEFT_ROLE_FREE,
                                                memory_order_relaxed, memory_order_relaxed);
}

static bool watch_parked(struct weft_worker *w, uint64_t due, bool *watching);

/* Steps P1-P4, until woken or until `due` (a slab to trim: then the
 * worker leaves idleness by itself, not as a spinner). Returns false
 * when the worker should exit. */
static bool park(struct weft_worker *w, uint64_t due) {
    struct weft_sched *s = w->sched;
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub_explicit(&s->nspinning, 1, memory_order_seq_cst);
    }
    atomic_store_explicit(&w->park_word, PARK_IDLE, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->nidle, 1, memory_order_seq_cst); /* P1 */
    weft__fence_seq_cst();                                          /* P2 */
    check_quiescence(s);
    bool stopping = atomic_load_explicit(&s->stopping, memory_order_acquire);
    if (work_visible(s) || stopping) {                              /* P3 */
        uint32_t idle = PARK_IDLE;
        if (!atomic_compare_exchange_strong_explicit(&w->park_word, &idle, PARK_RUNNING,
                                                     memory_order_acquire,
                                                     memory_order_acquire))
            w->spinning = true; /* a waker counted us as a spinner */
        else
            start_spinning(w);  /* search for it, whatever the limit (Go) */
        atomic_fetch_sub_explicit(&s->nidle, 1, memory_order_seq_cst);
        return !stopping || work_visible(s);
    }
    /* P4. One parked worker at a time watches for held work ("Held
     * work"). */
    bool watching = take_watcher_role(w);
    bool woken = watch_parked(w, due, &watching);
    if (watching)
        drop_watcher_role(w);
    return woken;
}

/* P4 proper: wait until notified, `due`, or (watching) held work is
 * found; *watching: whether we hold the watcher role, which we take over
 * here if it falls free. Returns true as park() does. */
static bool watch_parked(struct weft_worker *w, uint64_t due, bool *watching) {
    struct weft_sched *s = w->sched;
    /* acquire: pairs with the waker's CAS to NOTIFIED. */
    while (atomic_load_explicit(&w->park_word, memory_order_acquire) == PARK_IDLE) {
        uint64_t until = park_until(s, due, *watching ? WEFT_STALL_CHECK_NS
                                                      : WEFT_ROLE_CHECK_NS);
        if (*watching && !(*watching = keep_watcher_role(w, until >= due)))
            continue; /* taken over: look again as a non-watcher */
        if (weft__park_wait(&w->park_word, PARK_IDLE, until) != -ETIMEDOUT)
            continue;
        /* A look for held work (park_until), not the trim: stay parked
         * unless we watch (or the role was free or asleep, and is ours
         * now) and there is some. */
        if (until < due && ((!*watching && !(*watching = take_watcher_role(w))) ||
                            (!work_visible(s) && !stalled_rings(w))))
            continue;
        uint32_t idle = PARK_IDLE;
        /* acquire: on failure a waker got here first (as above); on
         * success it costs nothing more on x86, and keeps the two the
         * same order. */
        if (atomic_compare_exchange_strong_explicit(&w->park_word, &idle, PARK_RUNNING,
                                                    memory_order_acquire,
                                                    memory_order_acquire)) {
            atomic_fetch_sub_explicit(&s->nidle, 1, memory_order_seq_cst);
            /* Time to trim (nobody counted us as a spinner), or held
             * work to take: search for it as a spinner, whatever the
             * limit (as at P3). */
            if (until < due)
                start_spinning(w);
            return true;
        }
    }
    atomic_store_explicit(&w->park_word, PARK_RUNNING, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->nidle, 1, memory_order_seq_cst);
    w->spinning = true;
    return true;
}

/* Before parking: return one slab's pages to the OS if it has been all
 * free long enough (stack.h, "Retention"), off the fibers' exit path and
 * outside the pool lock. One at a time, so work that arrives meanwhile
 * waits for one madvise at most. Else sets *due to when the next one
 * will be (WEFT_FOREVER: none waits). Not while stopping: the pools'
 * mappings are about to go whole. */
static bool trim_stacks(struct weft_worker *w, uint64_t *due) {
    *due = WEFT_FOREVER;
    /* relaxed: a late look only trims one slab more. */
    if (atomic_load_explicit(&w->sched->stopping, memory_order_relaxed))
        return false;
    uint64_t now = 0;
    for (int k = 0; k < WEFT_STACK_CLASSES; k++) {
        struct weft_stack_pool *p = &w->sched->pools[k];
        /* relaxed: a hint, as in the pool; spares idle workers a clock
         * read and 17 locks. */
        if (atomic_load_explicit(&p->ntrim, memory_order_relaxed) == 0)
            continue;
        if (!now)
            now = weft_now();
        if (weft__stack_pool_trim_one(p, now, due))
            return true;
    }
    return false;
}

/* Steps 1-6, in the worker's own context. NULL: time to exit. */
static struct weft_fiber *find_work(struct weft_worker *w) {
    for (;;) {
        struct weft_fiber *f = pick_local(w);
        if (!f && (f = take_inject(w)) && !claim(w, f))
            continue;
        if (!f && weft__timer_help(w->sched->timer, 0))
            continue; /* its fibers are on the wake queue */
        if (!f && (f = steal_work(w)) && !claim(w, f))
            continue;
        if (f) {
            if (w->spinning)
                stop_spinning(w);
            return f;
        }
        uint64_t due;
        if (trim_stacks(w, &due))
            continue; /* it took a while: look for work again */
        /* Slabs freed a little apart are trimmed in one wake-up. */
        if (due != WEFT_FOREVER)
            due += WEFT_TRIM_SLACK_NS;
        if (!park(w, due))
            return NULL;
    }
}

/* ---- Stack overflow reporting ------------------------------------------ */

static struct sigaction previous_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static void on_segv(int sig, siginfo_t *si, void *uctx) {
    struct weft_worker *w = tls_worker;
    struct weft_fiber *f = w ? w->current : NULL;
    if (f && f->stack) {
        uintptr_t sp = 0;
#if defined(__x86_64__)
        sp = (uintptr_t)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
        sp = (uintptr_t)((ucontext_t *)uctx)->uc_mcontext.sp;
#endif
        if (weft__stack_fault_is_overflow(f->stack, (uintptr_t)si->si_addr, sp)) {
            char who[256];
            describe(f, who, sizeof who);
            weft__panic("weft: stack overflow in %s on worker %u: fault at %p, "
                        "stack [%p, %p) (raise weft_config.stack_size or "
                        "weft_spawn_opts.stack_size)",
                        who, w->index, si->si_addr, f->stack->lo,
                        (void *)((char *)f->stack->lo + f->stack->size));
        }
    }
    /* Not ours: hand it to whoever handled SIGSEGV before us. */
    if (previous_segv.sa_flags & SA_SIGINFO) {
        if (previous_segv.sa_sigaction) {
            previous_segv.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
        previous_segv.sa_handler(sig);
        return;
    }
    /* Default action: restore it and return; the fault repeats and kills. */
    signal(SIGSEGV, SIG_DFL);
}

static void install_segv_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
}

#define ALTSTACK_SIZE (64 * 1024)

static void altstack_on(struct weft_worker *w) {
    w->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->altstack == MAP_FAILED) {
        w->altstack = NULL;
        return; /* overflow then shows as a plain SIGSEGV; canaries stay */
    }
    stack_t ss = {.ss_sp = w->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    sigaltstack(&ss, NULL);
}

static void altstack_off(struct weft_worker *w) {
    if (!w->altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(w->altstack, ALTSTACK_SIZE);
    w->altstack = NULL;
}

/* ---- Worker threads ----------------------------------------------------- */

static void *worker_main(void *arg) {
    struct weft_worker *w = arg;
    tls_worker = w;
    w->errno_addr = &errno;
    /* Named for top, perf and debuggers (at most 15 characters). */
    char name[16];
    snprintf(name, sizeof name, "weft-worker-%u", w->index % 1000u);
    pthread_setname_np(pthread_self(), name);
    altstack_on(w);
    weft__context_init_thread(&w->loop_ctx);
    struct weft_fiber *f;
    while ((f = find_work(w))) {
        w->prev = NULL;
        w->after = WEFT_AFTER_NONE;
        jump_to(w, &w->loop_ctx, f);
    }
    struct weft_sched *s = w->sched;
    for (int k = 0; k < WEFT_STACK_CLASSES; k++)
        weft__stack_cache_drain(&s->pools[k], &w->stacks[k]);
    weft__fiber_cache_drain(&w->fibers, &s->fibers);
    altstack_off(w);
    tls_worker = NULL;
    return NULL;
}

int weft__sched_init(struct weft_sched *s, unsigned nworkers, int default_class,
                     unsigned stack_high_water) {
    memset(s, 0, sizeof *s);
    s->workers = aligned_alloc(WEFT_CACHELINE, nworkers * sizeof *s->workers);
    if (!s->workers)
        return -ENOMEM;
    memset(s->workers, 0, nworkers * sizeof *s->workers);
    size_t row = (nworkers + 7) / 8 * 8; /* whole cache lines */
    s->woken_seen_rows = aligned_alloc(WEFT_CACHELINE, nworkers * row * sizeof(uint64_t));
    if (!s->woken_seen_rows) {
        free(s->workers);
        return -ENOMEM;
    }
    memset(s->woken_seen_rows, 0, nworkers * row * sizeof(uint64_t));
    s->nworkers = nworkers;
    s->default_class = default_class;
    s->stack_high_water = stack_high_water;
    weft__inject_init(&s->inject);
    weft__inject_init(&s->woken);
    atomic_init(&s->nspinning, 0);
    atomic_init(&s->nidle, 0);
    atomic_init(&s->watcher, WEFT_ROLE_FREE);
    atomic_init(&s->stopping, 0);
    atomic_init(&s->spawned_outside, 0);
    atomic_init(&s->finished_outside, 0);
    atomic_init(&s->closing, 0);
    atomic_init(&s->quiesce_waiter, NULL);
    for (int k = 0; k < WEFT_STACK_CLASSES; k++) {
        weft__stack_pool_init(&s->pools[k], k);
        s->pools[k].retain_ns = WEFT_STACK_RETAIN_NS;
    }
    weft__fiber_pool_init(&s->fibers);
    uint64_t seed = weft_now() | 1;
    for (unsigned i = 0; i < nworkers; i++) {
        struct weft_worker *w = &s->workers[i];
        weft__deque_init(&w->deque);
        atomic_init(&w->park_word, PARK_RUNNING);
        weft__slot_init(&w->next, true);
        weft__woken_init(&w->woken);
        atomic_init(&w->spawned, 0);
        atomic_init(&w->finished, 0);
        w->fair_countdown = WEFT_FAIR_EVERY;
        w->rng = (seed += 0x9E3779B97F4A7C15ull) | 1;
        w->sched = s;
        w->index = i;
        w->woken_seen = s->woken_seen_rows + i * row;
    }
    return 0;
}

int weft__sched_start(struct weft_sched *s) {
    pthread_once(&segv_once, install_segv_handler);
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            /* Stop those already started (no task exists yet). */
            atomic_store_explicit(&s->stopping, 1, memory_order_seq_cst);
            for (unsigned j = 0; j < i; j++) {
                atomic_store_explicit(&s->workers[j].park_word, PARK_NOTIFIED,
                                      memory_order_release);
                weft__park_wake(&s->workers[j].park_word, 1);
            }
            for (unsigned j = 0; j < i; j++)
                pthread_join(s->workers[j].thread, NULL);
            return -EAGAIN;
        }
    }
    return 0;
}

void weft__sched_stop(struct weft_sched *s) {
    atomic_store_explicit(&s->stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < s->nworkers; i++) {
        /* release: pairs with the parked worker's acquire load (P4). */
        atomic_store_explicit(&s->workers[i].park_word, PARK_NOTIFIED, memory_order_release);
        weft__park_wake(&s->workers[i].park_word, 1);
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
}

void weft__sched_fini(struct weft_sched *s) {
    for (int k = 0; k < WEFT_STACK_CLASSES; k++)
        weft__stack_pool_fini(&s->pools[k]);
    weft__fiber_pool_fini(&s->fibers);
    weft__inject_fini(&s->inject);
    weft__inject_fini(&s->woken);
    free(s->woken_seen_rows);
    s->woken_seen_rows = NULL;
    free(s->workers);
    s->workers = NULL;
}

bool weft__sched_quiescent(struct weft_sched *s) {
    uint64_t finished = 0, spawned = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        finished += atomic_load_explicit(&s->workers[i].finished, memory_order_acquire);
    finished += atomic_load_explicit(&s->finished_outside, memory_order_acquire);
    spawned = atomic_load_explicit(&s->spawned_outside, memory_order_acquire);
    for (unsigned i = 0; i < s->nworkers; i++)
        spawned += atomic_load_explicit(&s->workers[i].spawned, memory_order_acquire);
    return spawned == finished;
}
