/*
 * lib/parallel.c - weft_parallel_for and weft_parallel_reduce: fork-join
 * over an index range, split lazily by work stealing.
 *
 * Lazy binary splitting
 *   A piece of the range runs `grain` indices at a time. Before each
 *   grain it asks whether a thief is hungry: its worker has nothing
 *   stealable (deque and LIFO slot empty) and some worker of the runtime
 *   is idle or searching (nidle + nspinning, "Spinning" and "Parking" in
 *   sched.c). If so, and more than a grain is left, it spawns the upper
 *   half of what is left as a new piece and goes on with the lower half.
 *   The spawned piece is the only stealable thing on this worker, so the
 *   next hungry thief takes it (half of the remaining work, the way a
 *   steal-half scheduler wants), and this worker does not split again
 *   until it has been taken. On busy workers the check is a few relaxed
 *   loads per grain and nothing is spawned; with one worker nothing is
 *   ever split. (Tzannes, Caragea, Barua, Vishkin: "Lazy binary
 *   splitting", PPoPP 2010; oneTBB's auto_partitioner splits on steals
 *   for the same reason.)
 *
 * Rejected designs
 *   - Eager binary splitting down to the grain: n / grain tasks whatever
 *     the load, and a grain that is right for a balanced loop is too
 *     coarse for an imbalanced one (or the reverse).
 *   - Static blocks per worker (OpenMP's schedule(static)): no help for an
 *     imbalanced body, and a worker busy elsewhere stalls the loop.
 *   - A shared atomic counter handing out chunks (schedule(dynamic)): one
 *     contended cache line per chunk.
 *
 * Joining and combining
 *   A piece joins the pieces it split off in reverse order: the newest is
 *   the one just above its own indices and, if nobody stole it, still at
 *   the bottom of its deque, where weft_join runs it inline. For a reduce
 *   that order also makes each combine(left, right) fold the indices just
 *   above left's, so a combine that is only associative is enough.
 *
 * Cancellation: a piece checks its fiber's cancel flag before each grain
 *   and stops; joins forward a cancel to the pieces split off (join.c).
 *   A piece whose stack could not be allocated (its join returns -ENOMEM)
 *   is run by its parent instead: every index is visited once.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "wait.h"

/* Pieces one piece may split off; past it, the piece runs on without
 * splitting (its split-off pieces still split). Each split halves what is
 * left, so 32 covers 2^32 grains. */
#define MAX_SPLITS 32
/* Accumulators up to this size live inside the piece, no malloc. */
#define INLINE_ACC 64
/* The largest accumulator (as a channel's element). */
#define MAX_ACC ((size_t)64 * 1024)
/* Automatic grain: about 256 grains per worker, at most this many
 * indices each. Picked: enough grains to balance a body whose cost grows
 * with the index, few enough that the per-grain check (about 10 ns) is
 * noise. A piece splits only at a grain boundary, so the cap also bounds
 * how long a hungry worker waits. Measured on pfor_imbalanced (1M
 * indices, 2 workers, medians of 5): cap 1024 38.2 ms, 256 35.7 ms. */
#define AUTO_GRAINS_PER_WORKER 256
#define AUTO_GRAIN_MAX 256

/* What every piece of one loop shares. Immutable while the loop runs. */
struct pfor_job {
    weft_range_fn for_body;     /* parallel_for, or NULL */
    weft_reduce_fn reduce_body; /* parallel_reduce, or NULL */
    weft_combine_fn combine;
    void *ctx;
    const void *identity;       /* acc_size bytes (reduce) */
    size_t acc_size;            /* 0 for parallel_for */
    size_t grain;
};

/* A piece split off as a task. Lives in the splitting piece's frame,
 * which outlives it (the splitter joins it). lo, hi and acc are written
 * before the spawn; err and *acc by the task, read after its join. */
struct piece {
    const struct pfor_job *job;
    size_t lo, hi;
    weft_task *task;
    int err;
    void *acc;
    alignas(max_align_t) unsigned char small[INLINE_ACC];
};

/* Whether splitting now would feed a hungry worker. Fiber context. */
static bool thief_hungry(void) {
    struct weft_worker *w = weft__sched_worker();
    struct weft_sched *s = w->sched;
    /* relaxed, all: a heuristic. A stale answer costs one split too many
     * or a steal a grain late; the spawn and the steal synchronise. */
    if (s->nworkers < 2 || weft__deque_size(&w->deque) != 0 ||
        weft__slot_peek(&w->next) != NULL)
        return false;
    return atomic_load_explicit(&s->nspinning, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&s->nidle, memory_order_relaxed) != 0;
}

static void run_grain(const struct pfor_job *job, size_t lo, size_t hi, void *acc) {
    if (job->for_body)
        job->for_body(lo, hi, job->ctx);
    else
        job->reduce_body(lo, hi, acc, job->ctx);
}

static int run_range(const struct pfor_job *job, size_t lo, size_t hi, void *acc);

static void *piece_main(void *arg) {
    struct piece *p = arg;
    p->err = run_range(p->job, p->lo, p->hi, p->acc);
    return NULL;
}

/* Split [mid, hi) off into p and spawn it. 0, or -ENOMEM (not split). */
static int split(const struct pfor_job *job, struct piece *p, size_t mid, size_t hi) {
    p->job = job;
    p->lo = mid;
    p->hi = hi;
    p->err = 0;
    p->acc = NULL;
    if (job->acc_size) {
        p->acc = job->acc_size <= INLINE_ACC ? p->small : malloc(job->acc_size);
        if (!p->acc)
            return -ENOMEM;
        memcpy(p->acc, job->identity, job->acc_size);
    }
    int rc = weft_spawn(NULL, piece_main, p, &p->task);
    if (rc && p->acc != p->small)
        free(p->acc);
    return rc;
}

/* Join p and fold its accumulator into acc. Returns p's error. */
static int join_piece(const struct pfor_job *job, struct piece *p, void *acc) {
    int rc = weft_join(p->task, NULL);
    if (rc == -ENOMEM) /* no stack for it: it never ran; run it here */
        rc = run_range(job, p->lo, p->hi, p->acc);
    else if (rc == 0)
        rc = p->err;
    if (rc == 0 && job->acc_size)
        job->combine(acc, p->acc, job->ctx);
    if (p->acc && p->acc != p->small)
        free(p->acc);
    return rc;
}

/* Run [lo, hi) into acc, splitting lazily. Fiber context. */
static int run_range(const struct pfor_job *job, size_t lo, size_t hi, void *acc) {
    struct piece kids[MAX_SPLITS];
    int nkids = 0, err = 0;
    while (lo < hi) {
        if (hi - lo > job->grain && nkids < MAX_SPLITS && thief_hungry()) {
            size_t mid = lo + (hi - lo) / 2;
            if (split(job, &kids[nkids], mid, hi) == 0) {
                nkids++;
                hi = mid;
                continue;
            }
        }
        if (WEFT_UNLIKELY(weft__fiber_cancel_requested(weft__sched_current()))) {
            err = -ECANCELED;
            break;
        }
        size_t step = hi - lo < job->grain ? hi - lo : job->grain;
        run_grain(job, lo, lo + step, acc);
        lo += step;
    }
    while (nkids > 0) {
        int rc = join_piece(job, &kids[--nkids], acc);
        if (rc && !err)
            err = rc;
    }
    return err;
}

static size_t auto_grain(size_t n, unsigned workers) {
    size_t g = n / ((size_t)AUTO_GRAINS_PER_WORKER * workers);
    if (g < 1)
        g = 1;
    return g > AUTO_GRAIN_MAX ? AUTO_GRAIN_MAX : g;
}

/* Run the loop: on the calling fiber when it belongs to rt, else as a
 * root piece spawned into rt and joined. acc: the accumulator (reduce),
 * already a copy of the identity. */
static int launch(weft_runtime *rt, struct pfor_job *job, size_t begin, size_t end,
                  size_t grain, void *acc) {
    struct weft_fiber *self = weft__sched_current();
    struct weft_sched *s = rt ? weft__runtime_sched(rt) : self ? self->sched : NULL;
    if (!s)
        return -EINVAL;
    if (begin == end)
        return 0;
    job->grain = grain ? grain : auto_grain(end - begin, s->nworkers);
    if (self && self->sched == s)
        return run_range(job, begin, end, acc);
    struct piece root = {.job = job, .lo = begin, .hi = end, .acc = acc};
    int rc = weft_spawn(rt, piece_main, &root, &root.task);
    if (rc)
        return rc;
    rc = weft_join(root.task, NULL);
    return rc ? rc : root.err;
}

int weft_parallel_for(weft_runtime *rt, size_t begin, size_t end, size_t grain,
                      weft_range_fn body, void *ctx) {
    if (!body || begin > end)
        return -EINVAL;
    struct pfor_job job = {.for_body = body, .ctx = ctx};
    return launch(rt, &job, begin, end, grain, NULL);
}

int weft_parallel_reduce(weft_runtime *rt, size_t begin, size_t end, size_t grain,
                         const void *identity, size_t acc_size, weft_reduce_fn body,
                         weft_combine_fn combine, void *ctx, void *result) {
    if (!body || !combine || !identity || !result || begin > end || acc_size == 0 ||
        acc_size > MAX_ACC)
        return -EINVAL;
    struct pfor_job job = {.reduce_body = body, .combine = combine, .ctx = ctx,
                           .identity = identity, .acc_size = acc_size};
    alignas(max_align_t) unsigned char small[INLINE_ACC];
    void *acc = acc_size <= INLINE_ACC ? small : malloc(acc_size);
    if (!acc)
        return -ENOMEM;
    memcpy(acc, identity, acc_size); /* identity and result may alias */
    int rc = launch(rt, &job, begin, end, grain, acc);
    if (rc == 0)
        memcpy(result, acc, acc_size);
    if (acc != small)
        free(acc);
    return rc;
}
