/* lib/inject.c - the injection queue (inject.h). */
#include "fiber.h"
#include "inject.h"

void weft__inject_init(struct weft_inject *q) {
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
}

void weft__inject_fini(struct weft_inject *q) { pthread_mutex_destroy(&q->lock); }

void weft__inject_push_chain(struct weft_inject *q, struct weft_fiber *first,
                             struct weft_fiber *last, size_t n) {
    last->qnext = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->qnext = first;
    else
        q->head = first;
    q->tail = last;
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);
    /* relaxed: the mutex orders the list; len is only a hint (Q1). */
    atomic_store_explicit(&q->len, len + n, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
}

void weft__inject_push(struct weft_inject *q, struct weft_fiber *f) {
    weft__inject_push_chain(q, f, f, 1);
}

size_t weft__inject_pop_batch(struct weft_inject *q, struct weft_fiber **out,
                              size_t max) {
    if (weft__inject_len(q) == 0)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    while (n < max && q->head) {
        struct weft_fiber *f = q->head;
        q->head = f->qnext;
        f->qnext = NULL;
        out[n++] = f;
    }
    if (!q->head)
        q->tail = NULL;
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);
    atomic_store_explicit(&q->len, len - n, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    return n;
}
