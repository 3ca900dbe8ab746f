/*
 * lib/recycle.h - a free list for objects whose handles are checked by a
 * magic number (channels, groups).
 *
 * Such an object is never given back to malloc: destroy clears its magic
 * and puts it here, and create takes from here first. A call on a
 * destroyed handle then reads a cleared magic and returns -EINVAL,
 * instead of reading freed memory (undefined behaviour, which ASan
 * reports). The list is as long as the most objects alive at once. Only
 * create and destroy take its lock; the objects' operations never do.
 *
 * Invariant: an object on the list has its magic cleared, and its link
 * (at link_offset) is written only under the lock.
 */
#ifndef WEFT_RECYCLE_H
#define WEFT_RECYCLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct weft_recycler {
    pthread_mutex_t lock;
    void *head;         /* lock */
    size_t link_offset; /* where each object keeps its next pointer */
};

#define WEFT_RECYCLER_INIT(type, link_member)                                \
    {PTHREAD_MUTEX_INITIALIZER, NULL, offsetof(type, link_member)}

static inline void **weft__recycler_link(struct weft_recycler *r, void *obj) {
    return (void **)(void *)((char *)obj + r->link_offset);
}

/* A destroyed object to reuse, or NULL (then the caller allocates). */
static inline void *weft__recycler_get(struct weft_recycler *r) {
    pthread_mutex_lock(&r->lock);
    void *obj = r->head;
    if (obj)
        r->head = *weft__recycler_link(r, obj);
    pthread_mutex_unlock(&r->lock);
    return obj;
}

/* An object for a create: a destroyed one, or new memory of size bytes
 * aligned to align. Zeroed past its first `keep` bytes; those hold what
 * calls on dead handles read (magic, incarnation), and stay as destroy
 * left them: another thread may read them right now, so no plain store
 * touches them (new memory is zeroed whole). NULL when out of memory. */
static inline void *weft__recycler_take(struct weft_recycler *r, size_t size, size_t align,
                                        size_t keep) {
    char *obj = weft__recycler_get(r);
    if (obj) {
        memset(obj + keep, 0, size - keep);
    } else if ((obj = aligned_alloc(align, size))) {
        memset(obj, 0, size);
    }
    return obj;
}

/* Keep a destroyed object (magic already cleared) for reuse. */
static inline void weft__recycler_put(struct weft_recycler *r, void *obj) {
    pthread_mutex_lock(&r->lock);
    *weft__recycler_link(r, obj) = r->head;
    r->head = obj;
    pthread_mutex_unlock(&r->lock);
}

#endif /* WEFT_RECYCLE_H */
