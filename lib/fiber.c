/* lib/fiber.c - control block allocation and reference counting. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fiber.h"

/* Blocks in the first chunk: 64 KiB. Each next chunk holds twice as
 * many, up to CHUNK_BLOCKS_MAX (16 MiB). */
#define CHUNK_BLOCKS 256u
#define CHUNK_BLOCKS_MAX 65536u

/* At the start of every chunk, one cache line: blocks stay aligned. */
struct weft_fiber_chunk {
    struct weft_fiber_chunk *next;
    size_t len;               /* bytes mapped, header included */
};
#define CHUNK_HEADER ((size_t)WEFT_CACHELINE)

static size_t block_size(void) {
    return (sizeof(struct weft_fiber) + WEFT_CACHELINE - 1) & ~(size_t)(WEFT_CACHELINE - 1);
}

void weft__fiber_pool_init(struct weft_fiber_pool *pool) {
    pthread_mutex_init(&pool->lock, NULL);
    pool->free = NULL;
    pool->nfree = 0;
    pool->chunks = NULL;
    pool->nchunks = 0;
    pool->carve = NULL;
    pool->carve_left = 0;
}

/* Chunks of finished pools (destroyed runtimes), kept mapped with their
 * pages given back (read as zeros) and handed to the next pool that grows
 * by one of the same length. So a task handle that outlives its runtime
 * names a block whose magic is gone (-EINVAL), or a later task of the
 * same memory (the handle's tag tells them apart, as for any reused
 * block), never an unmapped page. Their address space stays bounded by
 * the most that runtimes alive at one time have mapped. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_fiber_chunk *spare_chunks; /* spare_lock */

/* A mapping of len bytes for a chunk: a spare one, or a new one. */
static void *chunk_map(size_t len) {
    pthread_mutex_lock(&spare_lock);
    for (struct weft_fiber_chunk **p = &spare_chunks; *p; p = &(*p)->next) {
        struct weft_fiber_chunk *c = *p;
        if (c->len == len) {
            *p = c->next;
            pthread_mutex_unlock(&spare_lock);
            return c;
        }
    }
    pthread_mutex_unlock(&spare_lock);
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return base == MAP_FAILED ? NULL : base;
}

/* Give c's pages back and keep its mapping for a later pool. */
static void chunk_unmap(struct weft_fiber_chunk *c) {
    size_t len = c->len;
    if (madvise(c, len, MADV_DONTNEED) != 0) {
        munmap(c, len); /* cannot happen on a private anonymous mapping */
        return;
    }
    c->len = len; /* the header's page is zero now */
    pthread_mutex_lock(&spare_lock);
    c->next = spare_chunks;
    spare_chunks = c;
    pthread_mutex_unlock(&spare_lock);
}

void weft__fiber_pool_fini(struct weft_fiber_pool *pool) {
    while (pool->chunks) {
        struct weft_fiber_chunk *c = pool->chunks;
        pool->chunks = c->next;
        chunk_unmap(c);
    }
    pool->nchunks = 0;
    pool->carve = NULL;
    pool->carve_left = 0;
    pool->free = NULL;
    pool->nfree = 0;
    pthread_mutex_destroy(&pool->lock);
}

/* Caller holds pool->lock, and the newest chunk is used up: map the next
 * one. Its blocks are carved later (P1). */
static bool grow_locked(struct weft_fiber_pool *pool) {
    size_t blocks = CHUNK_BLOCKS_MAX;
    if (pool->nchunks < 16 && ((size_t)CHUNK_BLOCKS << pool->nchunks) < blocks)
        blocks = (size_t)CHUNK_BLOCKS << pool->nchunks;
    size_t len = CHUNK_HEADER + blocks * block_size();
    void *base = chunk_map(len);
    if (!base)
        return false;
    struct weft_fiber_chunk *c = base;
    c->next = pool->chunks;
    c->len = len;
    pool->chunks = c;
    pool->nchunks++;
    pool->carve = (char *)base + CHUNK_HEADER;
    pool->carve_left = blocks;
    return true;
}

/* Caller holds pool->lock and the free list is empty: reserve up to n
 * never-used blocks (at least one; none when out of memory). */
static size_t carve_locked(struct weft_fiber_pool *pool, size_t n, char **first) {
    if (!pool->carve_left && !grow_locked(pool))
        return 0;
    size_t k = n < pool->carve_left ? n : pool->carve_left;
    *first = pool->carve;
    pool->carve += k * block_size();
    pool->carve_left -= k;
    return k;
}

/* ---- Batches (P3, P4) ----------------------------------------------------- */

static void batch_push(struct weft_fiber_batch *b, struct weft_fiber *f) {
    f->qnext = b->head;
    b->head = f;
    if (!b->last)
        b->last = f;
    b->count++;
}

static struct weft_fiber *batch_pop(struct weft_fiber_batch *b) {
    struct weft_fiber *f = b->head;
    b->head = f->qnext;
    if (--b->count == 0)
        b->last = NULL;
    return f;
}

/* Caller holds pool->lock. Put batch b (non-empty) at the front (P3). */
static void pool_put_locked(struct weft_fiber_pool *pool, struct weft_fiber_batch b) {
    b.head->qchain_last = b.last;
    b.head->qchain_len = b.count;
    b.last->qnext = pool->free;
    pool->free = b.head;
    pool->nfree += b.count;
}

/* Caller holds pool->lock, the free list is not empty. Take whole batches
 * from the front until they hold at least `want` blocks (one batch when
 * the pool's batches are full ones; more when plain threads gave single
 * blocks back). */
static struct weft_fiber_batch pool_take_locked(struct weft_fiber_pool *pool, size_t want) {
    struct weft_fiber_batch b = {pool->free, NULL, 0};
    struct weft_fiber *next = pool->free;
    do {
        b.last = next->qchain_last;
        b.count += (unsigned)next->qchain_len;
        next = b.last->qnext;
    } while (next && b.count < want);
    b.last->qnext = NULL;
    pool->free = next;
    pool->nfree -= b.count;
    return b;
}

/* Caller holds pool->lock, the free list is not empty. One block off the
 * front batch; the rest of that batch stays a batch. */
static struct weft_fiber *pool_take_one_locked(struct weft_fiber_pool *pool) {
    struct weft_fiber *f = pool->free;
    struct weft_fiber *rest = f->qnext;
    if (f->qchain_len > 1) {
        rest->qchain_last = f->qchain_last;
        rest->qchain_len = f->qchain_len - 1;
    }
    pool->free = rest;
    pool->nfree--;
    return f;
}

/* Blocks reserved by carve_locked: the first is returned, the rest go to
 * cache's loaded batch (empty). Outside the lock: this is what faults
 * their pages in. */
static struct weft_fiber *init_carved(struct weft_fiber_pool *pool,
                                      struct weft_fiber_cache *cache, char *first,
                                      size_t k) {
    for (size_t i = k; i-- > 0;) {
        struct weft_fiber *f = (struct weft_fiber *)(void *)(first + i * block_size());
        atomic_init(&f->magic, WEFT_FIBER_DEAD);
        f->pool = pool;
        if (i == 0)
            return f;
        batch_push(&cache->loaded, f);
    }
    return NULL;
}

/* One block for a caller whose cache's batches are both empty (or who
 * has no cache): with a cache, a batch comes along into cache->loaded.
 * NULL when out of memory. */
static struct weft_fiber *take_from_pool(struct weft_fiber_pool *pool,
                                         struct weft_fiber_cache *cache) {
    pthread_mutex_lock(&pool->lock);
    if (!pool->free) {
        char *first = NULL;
        size_t k = carve_locked(pool, cache ? WEFT_FIBER_BATCH : 1, &first);
        pthread_mutex_unlock(&pool->lock);
        return k ? init_carved(pool, cache, first, k) : NULL;
    }
    struct weft_fiber *f;
    if (cache) {
        cache->loaded = pool_take_locked(pool, WEFT_FIBER_BATCH);
        f = batch_pop(&cache->loaded);
    } else {
        f = pool_take_one_locked(pool);
    }
    pthread_mutex_unlock(&pool->lock);
    return f;
}

static void give_to_pool(struct weft_fiber_pool *pool, struct weft_fiber_batch b) {
    pthread_mutex_lock(&pool->lock);
    pool_put_locked(pool, b);
    pthread_mutex_unlock(&pool->lock);
}

struct weft_fiber *weft__fiber_new(struct weft_fiber_pool *pool,
                                   struct weft_fiber_cache *cache,
                                   struct weft_sched *s, weft_fn fn, void *arg,
                                   int stack_class, bool has_handle) {
    struct weft_fiber *f;
    if (cache && !cache->loaded.head && cache->spare.head) {
        cache->loaded = cache->spare;
        cache->spare = (struct weft_fiber_batch){0};
    }
    if (cache && cache->loaded.head) {
        f = batch_pop(&cache->loaded);
        /* Recycled blocks are cold (a million sleepers free theirs a
         * second before they are reused): start loading the next one's
         * link now, so the next spawn does not wait for it. */
        if (cache->loaded.head)
            __builtin_prefetch(&cache->loaded.head->qnext, 1);
    } else {
        f = take_from_pool(pool, cache);
        if (!f)
            return NULL;
    }
    f->stack = NULL;
    f->canary = NULL;
    f->qnext = NULL;
    f->saved_errno = 0;
    /* wait_gen is not reset: it carries on from the block's last task,
     * so a waiter that names an old generation (weft__wait_publish's
     * cancel check, a late timer) cannot match a wait of the new one.
     * H1: a new task, a new incarnation (relaxed: ordered by magic). */
    atomic_store_explicit(&f->incarnation,
                          atomic_load_explicit(&f->incarnation, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* release: a stale-handle check that sees MAGIC sees the incarnation
     * above (weft__handle_current). */
    atomic_store_explicit(&f->magic, WEFT_FIBER_MAGIC, memory_order_release);
    f->fn = fn;
    f->arg = arg;
    f->name = NULL;
    f->sched = s;
    f->pool = pool;
    f->stack_class = (uint8_t)stack_class;
    f->inlined = false;
    /* relaxed: the block is private until published by a run-queue push
     * (release) or by the spawner handing out the handle. */
    atomic_store_explicit(&f->status, WEFT_FIBER_NEW, memory_order_relaxed);
    atomic_store_explicit(&f->wait, (uint64_t)f->wait_gen << 32, memory_order_relaxed);
    atomic_store_explicit(&f->refs, has_handle ? 2u : 1u, memory_order_relaxed);
    atomic_store_explicit(&f->handle_live, has_handle ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&f->cancel, 0, memory_order_relaxed);
    atomic_store_explicit(&f->joiner, WEFT_JOINER_NONE, memory_order_relaxed);
    atomic_store_explicit(&f->fwd_lock, 0, memory_order_relaxed);
    atomic_store_explicit(&f->forward_to, NULL, memory_order_relaxed);
    atomic_store_explicit(&f->inline_child, NULL, memory_order_relaxed);
    atomic_store_explicit(&f->inline_host, NULL, memory_order_relaxed);
    f->result = NULL;
    f->exit_err = 0;
    f->lock_id = 0;
    f->unrun = NULL;
    return f;
}

static void recycle(struct weft_fiber *f, struct weft_fiber_cache *cache) {
    atomic_store_explicit(&f->magic, WEFT_FIBER_DEAD, memory_order_relaxed);
    if (!cache) {
        give_to_pool(f->pool, (struct weft_fiber_batch){f, f, 1});
        return;
    }
    if (cache->loaded.count == WEFT_FIBER_BATCH) {
        /* Full: it becomes the spare, and a full spare goes to the pool
         * (a worker that only joins would otherwise hoard what another
         * allocates). */
        if (cache->spare.head)
            give_to_pool(f->pool, cache->spare);
        cache->spare = cache->loaded;
        cache->loaded = (struct weft_fiber_batch){0};
    }
    batch_push(&cache->loaded, f);
}

void weft__fiber_unref_n(struct weft_fiber *f, uint32_t n, struct weft_fiber_cache *cache) {
    /* Holding every reference left, we are the last owner: the count
     * only ever falls, so nobody can take one meanwhile, and no locked
     * operation is needed (a detached task's end, a joiner's consume
     * after the task's own unref). acquire: pairs with the other owner's
     * release in its fetch_sub below. */
    if (atomic_load_explicit(&f->refs, memory_order_acquire) == n) {
        recycle(f, cache);
        return;
    }
    /* acq_rel: the last owner must see every write the other made before
     * its own unref (release), before it recycles the block (acquire). */
    if (atomic_fetch_sub_explicit(&f->refs, n, memory_order_acq_rel) == n)
        recycle(f, cache);
}

void weft__fiber_release_owned(struct weft_fiber *f, struct weft_fiber_cache *cache) {
    WEFT_DEBUG_ASSERT(atomic_load_explicit(&f->refs, memory_order_relaxed) == 2);
    recycle(f, cache);
}

void weft__fiber_cache_drain(struct weft_fiber_cache *cache, struct weft_fiber_pool *pool) {
    if (cache->loaded.head)
        give_to_pool(pool, cache->loaded);
    if (cache->spare.head)
        give_to_pool(pool, cache->spare);
    cache->loaded = cache->spare = (struct weft_fiber_batch){0};
}
