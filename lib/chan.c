/*
 * lib/chan.c - channels: a ring buffer of fixed-size values and two FIFO
 * queues of blocked senders and receivers, under one lock (sync.h); and
 * select over several of them.
 *
 * Hand-off, as Go's chan.go does it:
 *   send: a receiver is waiting -> copy the value straight into its
 *         buffer and wake it; else room in the ring -> copy it there;
 *         else queue up with a pointer to the value and wait. A waiting
 *         sender's value is taken by the receiver that dequeues it, so a
 *         send that times out or is cancelled while still queued has
 *         delivered nothing.
 *   recv: the ring has a value -> take it, and if a sender waits, move
 *         its value into the freed slot and wake it (FIFO kept); else a
 *         sender waits (rendezvous) -> copy from it and wake it; else
 *         queue up with a pointer to the destination and wait.
 *   close: wake every sender (-EPIPE) and every receiver; receivers
 *         queued then found nothing, so -EPIPE too. Values already in the
 *         ring are still received afterwards.
 *
 * Select: first each case is tried alone under its own channel's lock,
 * from a random case onwards (fairness). If none is ready, every channel
 * is locked at once (in address order, so two selects cannot deadlock),
 * the cases are tried again, and if still none is ready one node per
 * case is queued on its channel, all sharing one waiter and one claim
 * word (struct weft_select). Whoever dequeues such a node must first win
 * the claim (0 -> its case + 1); a node whose select was already claimed
 * is dead and skipped. The selecting fiber's own timeout or cancel claims
 * the word too (SELECT_ABANDONED), so exactly one case, or none, takes
 * effect. Afterwards it takes its remaining nodes off their queues.
 *
 * Invariants (lock held):
 *   C1  among live nodes: senders is non-empty only while the ring is
 *       full (cap > 0) or no receiver waits (cap == 0); receivers is
 *       non-empty only while the ring is empty. (One select may have a
 *       send and a receive node on the same rendezvous channel.)
 *   C2  after close, both queues stay empty.
 *   C3  a select node stays valid while it is queued: its owner takes
 *       each channel's lock to remove it before returning.
 */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "recycle.h"
#include "sched.h"
#include "sync.h"

#define CHAN_MAGIC 0x6368616eu /* "chan" */
#define CHAN_MAX_ELEM ((size_t)64 * 1024)
#define CHAN_MAX_CAP ((size_t)1 << 24)

struct weft_chan {
    /* CHAN_MAGIC while created, 0 once destroyed. Atomic: a misuse check
     * that may read a channel being destroyed or reused. */
    _Atomic uint32_t magic;
    /* Channels this memory has held (recycle.h): the handle's tag
     * (common.h). Kept across reuse; atomic for the same reason. */
    _Atomic uint32_t incarnation;
    /* On a line of its own: lockers spinning on it do not pull the
     * channel's state away from the holder in mid-section. Biased to the
     * worker that uses the channel alone (bias.h). */
    alignas(WEFT_CACHELINE) struct weft_bias_lock lock;
    alignas(WEFT_CACHELINE) bool closed; /* lock */
    size_t elem_size, cap;           /* immutable */
    size_t head, len;                /* lock: ring of cap slots */
    struct weft_wait_queue senders;  /* lock; node->data: the value */
    struct weft_wait_queue receivers; /* lock; node->data: destination */
    unsigned char *ring;             /* cap * elem_size bytes */
    struct weft_chan *next_free;     /* while destroyed (recycle.h) */
};

/* Destroyed channels are kept for reuse (recycle.h). */
static struct weft_recycler chan_pool = WEFT_RECYCLER_INIT(struct weft_chan, next_free);

/* A zeroed channel, its incarnation one past the memory's last, its
 * magic still 0. */
static struct weft_chan *chan_alloc(void) {
    struct weft_chan *ch = weft__recycler_take(&chan_pool, sizeof *ch, alignof(struct weft_chan),
                                               offsetof(struct weft_chan, lock));
    if (ch)
        atomic_fetch_add_explicit(&ch->incarnation, 1, memory_order_relaxed);
    return ch;
}

static void chan_free(struct weft_chan *ch) { weft__recycler_put(&chan_pool, ch); }

/* struct weft_select's claim (sync.h): open, case + 1, or abandoned. */
#define SELECT_OPEN 0u
#define SELECT_ABANDONED UINT32_MAX

static_assert(alignof(struct weft_chan) >= WEFT_CACHELINE, "a tagged handle needs the bits");

/* The channel a handle names (checked already, by chan_ok). */
static struct weft_chan *chan_of(weft_chan *h) { return weft__handle_object(h); }

/* The channel, if h names a live one; NULL if h is NULL, destroyed, or
 * names an earlier channel of the same memory. */
static struct weft_chan *chan_ok(weft_chan *h) {
    struct weft_chan *ch = chan_of(h);
    return ch && WEFT_HANDLE_NAMES_LIVE(h, ch, CHAN_MAGIC) ? ch : NULL;
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t capacity) {
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (elem_size == 0 || elem_size > CHAN_MAX_ELEM || capacity > CHAN_MAX_CAP)
        return -EINVAL;
    struct weft_chan *ch = chan_alloc();
    if (!ch)
        return -ENOMEM;
    if (capacity) {
        ch->ring = malloc(capacity * elem_size);
        if (!ch->ring) {
            chan_free(ch);
            return -ENOMEM;
        }
    }
    ch->elem_size = elem_size;
    ch->cap = capacity;
    /* release: pairs with WEFT_HANDLE_NAMES_LIVE (common.h). */
    atomic_store_explicit(&ch->magic, CHAN_MAGIC, memory_order_release);
    *out = weft__handle_tag(ch, atomic_load_explicit(&ch->incarnation, memory_order_relaxed));
    return 0;
}

/* Copy one value. Word-sized values (most channels carry a pointer or
 * an integer) are copied inline, not by a call into memcpy. */
static inline void copy_elem(struct weft_chan *ch, void *dst, const void *src) {
    switch (ch->elem_size) {
    case 4:
        memcpy(dst, src, 4);
        break;
    case 8:
        memcpy(dst, src, 8);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, ch->elem_size);
    }
}

/* Ring slot i after head (i <= len <= cap, head < cap): wrapped by a
 * subtraction, not by `%`, a 64-bit division on every buffered op. */
static unsigned char *slot(struct weft_chan *ch, size_t i) {
    size_t k = ch->head + i;
    if (k >= ch->cap)
        k -= ch->cap;
    return ch->ring + k * ch->elem_size;
}

/* ---- Nodes: claiming and waking ----------------------------------------- */

/* Lock held, n just dequeued. Whether n may be completed: a plain node
 * always; a select node if this wins its select. */
static bool node_claim(struct weft_wait_node *n) {
    if (!n->select)
        return true;
    uint32_t open = SELECT_OPEN;
    /* relaxed: the CAS only decides who completes the select; the data
     * reaches the selecting fiber through its waiter's signal (acq_rel). */
    return atomic_compare_exchange_strong_explicit(&n->select->claim, &open,
                                                   (uint32_t)n->case_index + 1,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* Lock held. The first node of q that can be completed, dequeued; dead
 * select nodes before it are dropped (their owners find them unqueued). */
static struct weft_wait_node *pop_live(struct weft_wait_queue *q) {
    struct weft_wait_node *n;
    while ((n = weft__queue_pop(q)) && !node_claim(n)) {
    }
    return n;
}

/* Lock held. Take every live node of q as a chain linked by next. */
static struct weft_wait_node *take_live(struct weft_wait_queue *q) {
    struct weft_wait_node *live = NULL, **tail = &live;
    for (struct weft_wait_node *n = weft__queue_take_all(q), *next; n; n = next) {
        next = n->next;
        if (node_claim(n)) {
            *tail = n;
            tail = &n->next;
        }
    }
    *tail = NULL;
    return live;
}


/* ---- One operation, lock held -------------------------------------------- */

/* Each returns 0, -EPIPE or -EAGAIN (would block) and sets *done to a
 * claimed node to complete after unlocking, or NULL. */

static int send_locked(struct weft_chan *ch, const void *elem, struct weft_wait_node **done) {
    *done = NULL;
    if (ch->closed)
        return -EPIPE;
    struct weft_wait_node *r = pop_live(&ch->receivers);
    if (r) {
        copy_elem(ch, r->data, elem);
        *done = r;
        return 0;
    }
    if (ch->len < ch->cap) {
        copy_elem(ch, slot(ch, ch->len++), elem);
        return 0;
    }
    return -EAGAIN;
}

static int recv_locked(struct weft_chan *ch, void *elem, struct weft_wait_node **done) {
    *done = NULL;
    if (ch->len > 0) {
        copy_elem(ch, elem, slot(ch, 0));
        if (++ch->head == ch->cap)
            ch->head = 0;
        ch->len--;
        /* A waiting sender's value takes the freed slot (C1). */
        struct weft_wait_node *s = pop_live(&ch->senders);
        if (s)
            copy_elem(ch, slot(ch, ch->len++), s->data);
        *done = s;
        return 0;
    }
    struct weft_wait_node *s = pop_live(&ch->senders);
    if (s) {
        copy_elem(ch, elem, s->data); /* rendezvous */
        *done = s;
        return 0;
    }
    return ch->closed ? -EPIPE : -EAGAIN;
}

static int op_locked(struct weft_chan *ch, weft_chan_op op, void *elem,
                     struct weft_wait_node **done) {
    return op == WEFT_CHAN_SEND ? send_locked(ch, elem, done) : recv_locked(ch, elem, done);
}

/* The queue an operation waits in. */
static struct weft_wait_queue *queue_of(struct weft_chan *ch, weft_chan_op op) {
    return op == WEFT_CHAN_SEND ? &ch->senders : &ch->receivers;
}

/* ---- send / recv ------------------------------------------------------- */

/* weft__node_wait (sync.h) under the channel's own lock. */
static int node_wait(struct weft_chan *ch, struct weft_wait_queue *q, struct weft_wait_node *n,
                     uint64_t deadline) {
    weft__bias_unlock(&ch->lock);
    int rc = weft__waiter_block(&n->waiter, deadline);
    if (WEFT_LIKELY(rc == 0))
        return 0;
    weft__bias_lock(&ch->lock);
    bool unqueued = weft__node_unqueue(q, n);
    weft__bias_unlock(&ch->lock);
    return weft__node_withdrawn(n, unqueued, rc);
}

/* Lock held, op would block and may wait: queue up and wait (or answer
 * at once if the deadline has passed or the caller is cancelled). Returns
 * as op_until. Out of line: op_until's inlined body stays small. */
static WEFT_NOINLINE int op_wait(struct weft_chan *ch, weft_chan_op op, void *elem,
                                 uint64_t deadline) {
    struct weft_fiber *self = weft__sched_current();
    int rc = 0;
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        rc = -ETIMEDOUT;
    else if (weft__self_cancelled(self))
        rc = -ECANCELED; /* it would block */
    if (rc) {
        weft__bias_unlock(&ch->lock);
        return rc;
    }
    struct weft_wait_node n;
    weft__node_init(&n, self, true);
    n.data = elem;
    weft__queue_push(queue_of(ch, op), &n);
    rc = node_wait(ch, queue_of(ch, op), &n, deadline);
    return rc ? rc : n.result;
}

/* may_wait false: never wait (-EAGAIN). Returns 0, -EPIPE, -EAGAIN,
 * -ETIMEDOUT or -ECANCELED. Inlined into each caller, so that op and
 * may_wait are constants there. */
static WEFT_ALWAYS_INLINE int op_until(weft_chan *chan, weft_chan_op op, void *elem,
                                       uint64_t deadline, bool may_wait) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch || !elem)
        return -EINVAL;
    struct weft_wait_node *done;
    weft__bias_lock(&ch->lock);
    int rc = op_locked(ch, op, elem, &done);
    if (rc == -EAGAIN && may_wait)
        return op_wait(ch, op, elem, deadline);
    weft__bias_unlock(&ch->lock);
    if (done)
        weft__node_wake(done, 0);
    return rc;
}

int weft_chan_send(weft_chan *ch, const void *elem) {
    return op_until(ch, WEFT_CHAN_SEND, (void *)(uintptr_t)elem, WEFT_FOREVER, true);
}

int weft_chan_recv(weft_chan *ch, void *elem) {
    return op_until(ch, WEFT_CHAN_RECV, elem, WEFT_FOREVER, true);
}

int weft_chan_send_for(weft_chan *ch, const void *elem, uint64_t timeout_ns) {
    return op_until(ch, WEFT_CHAN_SEND, (void *)(uintptr_t)elem,
                    weft__deadline_after(timeout_ns), true);
}

int weft_chan_recv_for(weft_chan *ch, void *elem, uint64_t timeout_ns) {
    return op_until(ch, WEFT_CHAN_RECV, elem, weft__deadline_after(timeout_ns), true);
}

int weft_chan_try_send(weft_chan *ch, const void *elem) {
    return op_until(ch, WEFT_CHAN_SEND, (void *)(uintptr_t)elem, 0, false);
}

int weft_chan_try_recv(weft_chan *ch, void *elem) {
    return op_until(ch, WEFT_CHAN_RECV, elem, 0, false);
}

/* ---- select -------------------------------------------------------------- */

/* A select's scratch: its nodes, and its distinct channels in lock order. */
struct select_scratch {
    struct weft_wait_node *nodes;
    struct weft_chan **locks;
    size_t nlocks;
};

#define SELECT_ON_STACK 8

static int check_cases(const weft_chan_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!chan_ok(cases[i].chan) || !cases[i].elem ||
            (cases[i].op != WEFT_CHAN_SEND && cases[i].op != WEFT_CHAN_RECV))
            return -EINVAL;
    }
    return 0;
}

/* Where the cases are first tried from: per-thread xorshift, seeded from
 * the thread's own address (no two threads share a start sequence). */
static size_t random_start(size_t n) {
    static WEFT_TLS uint32_t state;
    uint32_t x = state ? state : (uint32_t)(uintptr_t)&state | 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state = x;
    return x % n;
}

/* Pass 1: each case alone under its own lock, from `start` on. Returns
 * the case that completed, or n. */
static size_t try_each(const weft_chan_case *cases, size_t n, size_t start, int *rc) {
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        struct weft_chan *ch = chan_of(cases[i].chan);
        struct weft_wait_node *done;
        weft__bias_lock(&ch->lock);
        *rc = op_locked(ch, cases[i].op, cases[i].elem, &done);
        weft__bias_unlock(&ch->lock);
        if (done)
            weft__node_wake(done, 0);
        if (*rc != -EAGAIN)
            return i;
    }
    return n;
}

static int by_address(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (struct weft_chan *const *)a;
    uintptr_t y = (uintptr_t) * (struct weft_chan *const *)b;
    return (x > y) - (x < y);
}

/* The distinct channels of cases, sorted by address (the lock order). */
static void lock_order(const weft_chan_case *cases, size_t n, struct select_scratch *s) {
    for (size_t i = 0; i < n; i++)
        s->locks[i] = chan_of(cases[i].chan);
    qsort(s->locks, n, sizeof *s->locks, by_address);
    s->nlocks = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->nlocks == 0 || s->locks[s->nlocks - 1] != s->locks[i])
            s->locks[s->nlocks++] = s->locks[i];
    }
}

static void lock_all(struct select_scratch *s) {
    for (size_t i = 0; i < s->nlocks; i++)
        weft__bias_lock(&s->locks[i]->lock);
}

static void unlock_all(struct select_scratch *s) {
    for (size_t i = s->nlocks; i-- > 0;)
        weft__bias_unlock(&s->locks[i]->lock);
}

/* Every lock held, nothing ready: queue one node per case. */
static void queue_cases(const weft_chan_case *cases, size_t n, struct weft_select *sel,
                        struct weft_wait_node *nodes) {
    for (size_t i = 0; i < n; i++) {
        struct weft_wait_node *node = &nodes[i];
        memset(node, 0, sizeof *node);
        node->data = cases[i].elem;
        node->select = sel;
        node->case_index = i;
        weft__queue_push(queue_of(chan_of(cases[i].chan), cases[i].op), node);
    }
}

/* After the wait: take the nodes that are still queued off their queues
 * (C3). */
static void unqueue_cases(const weft_chan_case *cases, size_t n,
                          struct weft_wait_node *nodes) {
    for (size_t i = 0; i < n; i++) {
        struct weft_chan *ch = chan_of(cases[i].chan);
        weft__bias_lock(&ch->lock);
        weft__node_unqueue(queue_of(ch, cases[i].op), &nodes[i]);
        weft__bias_unlock(&ch->lock);
    }
}

/* Pass 2: all locks at once; queue and wait if still nothing is ready.
 * Returns the completed case (its result in *rc) or n with *rc an error. */
static size_t wait_cases(const weft_chan_case *cases, size_t n, size_t start,
                         uint64_t deadline, struct select_scratch *s, int *rc) {
    struct weft_select sel;
    atomic_init(&sel.claim, SELECT_OPEN);
    weft__waiter_init(&sel.waiter, weft__sched_current(), 1, true);
    sel.waiter.exclusive = true; /* only the claim's winner signals */
    lock_all(s);
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        struct weft_wait_node *done;
        *rc = op_locked(chan_of(cases[i].chan), cases[i].op, cases[i].elem, &done);
        if (*rc != -EAGAIN) {
            unlock_all(s);
            if (sel.waiter.fiber)
                weft__wait_abort(sel.waiter.fiber);
            if (done)
                weft__node_wake(done, 0);
            return i;
        }
    }
    queue_cases(cases, n, &sel, s->nodes);
    unlock_all(s);
    int wrc = weft__waiter_block(&sel.waiter, deadline);
    uint32_t open = SELECT_OPEN;
    /* relaxed: as in node_claim. */
    if (wrc != 0 && atomic_compare_exchange_strong_explicit(&sel.claim, &open, SELECT_ABANDONED,
                                                            memory_order_relaxed,
                                                            memory_order_relaxed)) {
        if (sel.waiter.fiber)
            weft__wait_abort(sel.waiter.fiber);
        unqueue_cases(cases, n, s->nodes);
        *rc = wrc;
        return n;
    }
    if (wrc != 0)
        weft__waiter_drain(&sel.waiter, 0); /* claimed: the signal is coming */
    unqueue_cases(cases, n, s->nodes);
    size_t won = atomic_load_explicit(&sel.claim, memory_order_relaxed) - 1;
    *rc = s->nodes[won].result;
    return won;
}

int weft_chan_select(const weft_chan_case *cases, size_t n, uint64_t timeout_ns,
                     size_t *index) {
    if (!cases || !index || n == 0 || n > WEFT_CHAN_SELECT_MAX || check_cases(cases, n))
        return -EINVAL;
    uint64_t deadline = weft__deadline_after(timeout_ns);
    size_t start = random_start(n);
    int rc;
    size_t won = try_each(cases, n, start, &rc);
    if (won == n) {
        if (deadline != WEFT_FOREVER && deadline <= weft_now())
            return -ETIMEDOUT;
        if (weft__self_cancelled(weft__sched_current()))
            return -ECANCELED; /* it would block */
        struct weft_wait_node nodes[SELECT_ON_STACK];
        struct weft_chan *locks[SELECT_ON_STACK];
        struct select_scratch s = {nodes, locks, 0};
        if (n > SELECT_ON_STACK) {
            s.nodes = malloc(n * sizeof *s.nodes);
            s.locks = malloc(n * sizeof *s.locks);
            if (!s.nodes || !s.locks) {
                free(s.nodes);
                free(s.locks);
                return -ENOMEM;
            }
        }
        lock_order(cases, n, &s);
        won = wait_cases(cases, n, start, deadline, &s, &rc);
        if (n > SELECT_ON_STACK) {
            free(s.nodes);
            free(s.locks);
        }
    }
    if (won < n)
        *index = won;
    return rc;
}

/* ---- close / destroy ----------------------------------------------------- */

int weft_chan_close(weft_chan *chan) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch)
        return -EINVAL;
    weft__bias_lock(&ch->lock);
    if (ch->closed) {
        weft__bias_unlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = true;
    /* C2: take both queues' live nodes; complete them after unlocking. */
    struct weft_wait_node *senders = take_live(&ch->senders);
    struct weft_wait_node *receivers = take_live(&ch->receivers);
    weft__bias_unlock(&ch->lock);
    weft__node_wake_chain(senders, -EPIPE);
    weft__node_wake_chain(receivers, -EPIPE);
    return 0;
}

int weft_chan_destroy(weft_chan *chan) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch)
        return -EINVAL;
    weft__bias_lock(&ch->lock);
    bool busy = !weft__queue_empty(&ch->senders) || !weft__queue_empty(&ch->receivers);
    if (!busy)
        atomic_store_explicit(&ch->magic, 0, memory_order_relaxed);
    weft__bias_unlock(&ch->lock);
    if (busy)
        return -EBUSY;
    free(ch->ring);
    ch->ring = NULL;
    chan_free(ch);
    return 0;
}
