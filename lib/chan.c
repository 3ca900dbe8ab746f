/*
 * lib/chan.c - channels: a ring buffer of fixed-size values and two FIFO
 * queues of blocked senders and receivers, under one spinlock (sync.h).
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
 * Invariants (lock held):
 *   C1  senders is non-empty only while the ring is full (cap > 0) or no
 *       receiver waits (cap == 0); receivers is non-empty only while the
 *       ring is empty. Never both non-empty.
 *   C2  after close, both queues stay empty.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

#define CHAN_MAGIC 0x6368616eu /* "chan" */
#define CHAN_MAX_ELEM ((size_t)64 * 1024)
#define CHAN_MAX_CAP ((size_t)1 << 24)

struct weft_chan {
    uint32_t magic;
    struct weft_spinlock lock;
    bool closed;                     /* lock */
    size_t elem_size, cap;           /* immutable */
    size_t head, len;                /* lock: ring of cap slots */
    struct weft_wait_queue senders;  /* lock; node->data: the value */
    struct weft_wait_queue receivers; /* lock; node->data: destination */
    unsigned char *ring;             /* cap * elem_size bytes */
};

static struct weft_chan *chan_ok(weft_chan *ch) {
    return ch && ch->magic == CHAN_MAGIC ? ch : NULL;
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t capacity) {
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (elem_size == 0 || elem_size > CHAN_MAX_ELEM || capacity > CHAN_MAX_CAP)
        return -EINVAL;
    struct weft_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    if (capacity) {
        ch->ring = malloc(capacity * elem_size);
        if (!ch->ring) {
            free(ch);
            return -ENOMEM;
        }
    }
    ch->elem_size = elem_size;
    ch->cap = capacity;
    ch->magic = CHAN_MAGIC;
    *out = ch;
    return 0;
}

static unsigned char *slot(struct weft_chan *ch, size_t i) {
    return ch->ring + ((ch->head + i) % ch->cap) * ch->elem_size;
}

/* try_only: never wait (-EAGAIN). Returns 0, -EPIPE, -EAGAIN, -ETIMEDOUT
 * or -ECANCELED. */
static int send_until(weft_chan *chan, const void *elem, uint64_t deadline, bool try_only) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch || !elem)
        return -EINVAL;
    struct weft_wait_node n;
    bool prepared = false;
    for (;;) {
        weft__spin_lock(&ch->lock);
        struct weft_wait_node *r = NULL;
        int rc = -EAGAIN;
        if (ch->closed) {
            rc = -EPIPE;
        } else if ((r = weft__queue_pop(&ch->receivers))) {
            memcpy(r->data, elem, ch->elem_size);
            rc = 0;
        } else if (ch->len < ch->cap) {
            memcpy(slot(ch, ch->len++), elem, ch->elem_size);
            rc = 0;
        } else if (!try_only && deadline > weft_now() && prepared) {
            n.data = (void *)(uintptr_t)elem;
            weft__queue_push(&ch->senders, &n);
            rc = weft__node_wait(&ch->lock, &ch->senders, &n, deadline);
            return rc ? rc : n.result;
        } else if (!try_only && deadline > weft_now()) {
            weft__spin_unlock(&ch->lock);
            if (weft__self_cancelled())
                return -ECANCELED; /* it would block */
            weft__node_init(&n, true);
            prepared = true;
            continue; /* look again, now ready to wait */
        } else if (!try_only) {
            rc = -ETIMEDOUT;
        }
        weft__spin_unlock(&ch->lock);
        if (prepared && n.waiter.fiber)
            weft__wait_abort(n.waiter.fiber);
        if (r)
            weft__node_wake(r, 0);
        return rc;
    }
}

static int recv_until(weft_chan *chan, void *elem, uint64_t deadline, bool try_only) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch || !elem)
        return -EINVAL;
    struct weft_wait_node n;
    bool prepared = false;
    for (;;) {
        weft__spin_lock(&ch->lock);
        struct weft_wait_node *s = NULL;
        int rc = -EAGAIN;
        if (ch->len > 0) {
            memcpy(elem, slot(ch, 0), ch->elem_size);
            ch->head = (ch->head + 1) % ch->cap;
            ch->len--;
            /* A waiting sender's value takes the freed slot (C1). */
            if ((s = weft__queue_pop(&ch->senders)))
                memcpy(slot(ch, ch->len++), s->data, ch->elem_size);
            rc = 0;
        } else if ((s = weft__queue_pop(&ch->senders))) {
            memcpy(elem, s->data, ch->elem_size); /* rendezvous */
            rc = 0;
        } else if (ch->closed) {
            rc = -EPIPE;
        } else if (!try_only && deadline > weft_now() && prepared) {
            n.data = elem;
            weft__queue_push(&ch->receivers, &n);
            rc = weft__node_wait(&ch->lock, &ch->receivers, &n, deadline);
            return rc ? rc : n.result;
        } else if (!try_only && deadline > weft_now()) {
            weft__spin_unlock(&ch->lock);
            if (weft__self_cancelled())
                return -ECANCELED;
            weft__node_init(&n, true);
            prepared = true;
            continue;
        } else if (!try_only) {
            rc = -ETIMEDOUT;
        }
        weft__spin_unlock(&ch->lock);
        if (prepared && n.waiter.fiber)
            weft__wait_abort(n.waiter.fiber);
        if (s)
            weft__node_wake(s, 0);
        return rc;
    }
}

int weft_chan_send(weft_chan *ch, const void *elem) {
    return send_until(ch, elem, WEFT_FOREVER, false);
}

int weft_chan_recv(weft_chan *ch, void *elem) {
    return recv_until(ch, elem, WEFT_FOREVER, false);
}

int weft_chan_send_for(weft_chan *ch, const void *elem, uint64_t timeout_ns) {
    return send_until(ch, elem, weft__deadline_after(timeout_ns), false);
}

int weft_chan_recv_for(weft_chan *ch, void *elem, uint64_t timeout_ns) {
    return recv_until(ch, elem, weft__deadline_after(timeout_ns), false);
}

int weft_chan_try_send(weft_chan *ch, const void *elem) {
    return send_until(ch, elem, 0, true);
}

int weft_chan_try_recv(weft_chan *ch, void *elem) {
    return recv_until(ch, elem, 0, true);
}

int weft_chan_close(weft_chan *chan) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch)
        return -EINVAL;
    weft__spin_lock(&ch->lock);
    if (ch->closed) {
        weft__spin_unlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = true;
    /* C2: take both queues; wake after unlocking. */
    struct weft_wait_node *senders = weft__queue_take_all(&ch->senders);
    struct weft_wait_node *receivers = weft__queue_take_all(&ch->receivers);
    weft__spin_unlock(&ch->lock);
    weft__node_wake_chain(senders, -EPIPE);
    weft__node_wake_chain(receivers, -EPIPE);
    return 0;
}

int weft_chan_destroy(weft_chan *chan) {
    struct weft_chan *ch = chan_ok(chan);
    if (!ch)
        return -EINVAL;
    weft__spin_lock(&ch->lock);
    bool busy = !weft__queue_empty(&ch->senders) || !weft__queue_empty(&ch->receivers);
    if (!busy)
        ch->magic = 0;
    weft__spin_unlock(&ch->lock);
    if (busy)
        return -EBUSY;
    free(ch->ring);
    free(ch);
    return 0;
}
