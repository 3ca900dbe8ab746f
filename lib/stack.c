/*
 * lib/stack.c - slabs of fiber stacks, per-worker caches, guard budget.
 * Layout and invariants: stack.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "stack.h"

#if defined(WEFT_ASAN)
#include <sanitizer/asan_interface.h>
#endif

/* A slab's header heads its memory, before the pad page: a malloc'ed
 * one would grow a worker's malloc arena, an mprotect taking the address
 * space lock for writing, which every page fault of the other workers
 * then waits for. */
struct weft_stack_slab {
    struct weft_stack_slab *next;
    void *base;       /* the pad page: where the stacks' part begins */
    size_t map_len;   /* bytes from base to the end of the slab */
    size_t hdr_len;   /* bytes of header pages, just below base */
    unsigned nslots;
    unsigned nfree;   /* S3; pool lock */
    bool guarded;
    bool regions;     /* guards are guard regions (no budget spent) */
    bool trimmed;     /* pages returned since the last hand-out; pool lock */
    bool trim_queued; /* on the pool's to_trim list; pool lock */
    bool trimming;    /* a trim is under way, outside the lock; pool lock */
    uint64_t free_since; /* when nfree last reached nslots; pool lock */
    struct weft_stack_slab *trim_next; /* to_trim link; pool lock */
    struct weft_stack *aside;          /* its stacks a refill met while
                                        * trimming; pool lock */
    unsigned naside;
    struct weft_stack stacks[];
};

/* Bytes of stack reservation per slab: big slabs keep the mapping count
 * low (a million 256 KiB stacks in 64 MiB slabs is ~4,000 mappings). */
#define SLAB_BYTES ((size_t)64 << 20)
#define SLAB_MAX_SLOTS 256u
/* Guarded slabs are smaller, so the guard budget is spent in small steps. */
#define GUARDED_SLAB_MAX_SLOTS 32u
/* Regions ("Regions" in stack.h): slabs in the first, and the most. */
#define REGION_FIRST_SLABS 2u
#define REGION_MAX_SLABS 256u
#define REGION_MAX_BYTES ((size_t)1 << 30)

/* A reservation slabs are carved from; unmapped at pool_fini. */
struct weft_stack_region {
    struct weft_stack_region *next;
    void *base;
    size_t len;
    unsigned nslabs; /* slabs it was sized for */
};

/* ---- Guard budget (process-wide) --------------------------------------- */

static pthread_once_t guard_budget_once = PTHREAD_ONCE_INIT;
/* Guarded slots this process may still create. Relaxed is enough: it is a
 * counter of a resource, not a publication of memory. */
static _Atomic long guard_budget;

static void guard_budget_init(void) {
    long max_maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 65530;
        fclose(f);
    }
    /* Each guarded slot splits its slab into two more mappings. Spend at
     * most half of the process's mapping budget on guards. */
    atomic_store_explicit(&guard_budget, max_maps / 4, memory_order_relaxed);
}

static bool guard_budget_take(long n) {
    pthread_once(&guard_budget_once, guard_budget_init);
    long left = atomic_load_explicit(&guard_budget, memory_order_relaxed);
    while (left >= n) {
        if (atomic_compare_exchange_weak_explicit(&guard_budget, &left, left - n,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

static void guard_budget_return(long n) {
    atomic_fetch_add_explicit(&guard_budget, n, memory_order_relaxed);
}

long weft__stack_guard_budget(void) {
    pthread_once(&guard_budget_once, guard_budget_init);
    return atomic_load_explicit(&guard_budget, memory_order_relaxed);
}

/* ---- Classes ------------------------------------------------------------ */

int weft__stack_class(size_t size) {
    if (size == 0 || size > WEFT_STACK_MAX)
        return -1;
    int k = 0;
    while (weft__stack_class_size(k) < size)
        k++;
    return k;
}

size_t weft__stack_class_size(int klass) { return WEFT_STACK_MIN << klass; }

/* ---- Guard regions (Linux 6.13+) ---------------------------------------- */

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Whether madvise(MADV_GUARD_INSTALL) works here: a guard page marked in
 * the page tables, without splitting the mapping. Then every stack gets a
 * guard, at about a tenth of mprotect's cost, with no budget to spend.
 * -1 unknown, 0 no, 1 yes; relaxed: every thread computes the same. */
static _Atomic int guard_regions = -1;

static bool install_guard(void *page_addr) {
    int known = atomic_load_explicit(&guard_regions, memory_order_relaxed);
    if (known == 0)
        return false;
    bool ok = madvise(page_addr, weft__page_size(), MADV_GUARD_INSTALL) == 0;
    if (known < 0)
        atomic_store_explicit(&guard_regions, ok ? 1 : 0, memory_order_relaxed);
    return ok;
}

/* ---- Many pages in one system call ---------------------------------------
 *
 * A slab's guards and its stacks' first pages are one page per slot,
 * strided: process_madvise() on ourselves (PIDFD_SELF, Linux 6.15+) takes
 * them all in one call. Where it is missing, guards fall back to one
 * madvise each and pre-faulting is skipped. */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define WEFT_PIDFD_SELF_PROCESS (-10001) /* PIDFD_SELF_THREAD_GROUP */
/* Pages a slab advises at once: its slots, and its pad page. */
#define SLAB_IOV_MAX (SLAB_MAX_SLOTS + 1)

/* -1 unknown, 0 no, 1 yes; relaxed: every thread computes the same. */
static _Atomic int batch_madvise = -1;

/* madvise(advice) on every page of iov. False if not all were advised. */
static bool advise_pages(struct iovec *iov, size_t n, int advice) {
#ifdef SYS_process_madvise
    if (n == 0)
        return true;
    if (atomic_load_explicit(&batch_madvise, memory_order_relaxed) == 0)
        return false;
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += iov[i].iov_len;
    long done = syscall(SYS_process_madvise, WEFT_PIDFD_SELF_PROCESS, iov, n, advice, 0u);
    if (done < 0 && atomic_load_explicit(&batch_madvise, memory_order_relaxed) < 0 &&
        (errno == EBADF || errno == ENOSYS || errno == EINVAL || errno == EPERM))
        atomic_store_explicit(&batch_madvise, 0, memory_order_relaxed);
    else if (done >= 0)
        atomic_store_explicit(&batch_madvise, 1, memory_order_relaxed);
    return done >= 0 && (size_t)done == want;
#else
    (void)iov, (void)n, (void)advice;
    return false;
#endif
}

/* Fault in, in one call, the page each stack starts on (its top, which
 * also holds the next slot's canary) and the pad page (slot 0's canary):
 * a fiber's first page costs a trap and a fault otherwise, the largest
 * cost of starting a million fibers. Best effort: a page left out is
 * faulted in when touched. */
static void prefault_tops(struct weft_stack_slab *slab) {
    const size_t page = weft__page_size();
    struct iovec iov[SLAB_IOV_MAX];
    size_t n = 0;
    iov[n++] = (struct iovec){slab->base, page};
    for (unsigned i = 0; i < slab->nslots; i++) {
        struct weft_stack *s = &slab->stacks[i];
        char *top = (char *)s->lo + s->size + WEFT_STACK_TOP_RESERVE;
        iov[n++] = (struct iovec){top - page, page};
    }
    (void)advise_pages(iov, n, MADV_POPULATE_WRITE);
}

/* Guard pages for slots [0, nslots) in one call; false: none or only
 * some were installed (the caller installs them one by one). */
static bool install_guards(char *first_slot, size_t slot_size, unsigned nslots) {
    if (atomic_load_explicit(&guard_regions, memory_order_relaxed) != 1)
        return false; /* learn first with one madvise */
    struct iovec iov[SLAB_IOV_MAX];
    for (unsigned i = 0; i < nslots; i++)
        iov[i] = (struct iovec){first_slot + (size_t)i * slot_size, weft__page_size()};
    return advise_pages(iov, nslots, MADV_GUARD_INSTALL);
}

/* ---- Slabs -------------------------------------------------------------- */

/* len bytes (a slab's) of reserved address space for p. Regions double
 * in size, so a million stacks take a dozen mappings. NULL when out of
 * address space. */
static char *reserve_slab(struct weft_stack_pool *p, size_t len) {
    pthread_mutex_lock(&p->lock);
    if (p->reserve_left < len) {
        unsigned nslabs = p->regions ? 2 * p->regions->nslabs : REGION_FIRST_SLABS;
        if (nslabs > REGION_MAX_SLABS)
            nslabs = REGION_MAX_SLABS;
        while (nslabs > 1 && (size_t)nslabs * len > REGION_MAX_BYTES)
            nslabs /= 2;
        struct weft_stack_region *r = malloc(sizeof *r);
        void *base = r ? mmap(NULL, (size_t)nslabs * len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                       : MAP_FAILED;
        if (base == MAP_FAILED) {
            pthread_mutex_unlock(&p->lock);
            free(r);
            return NULL;
        }
        /* What was left of the last region stays reserved, untouched. */
        *r = (struct weft_stack_region){p->regions, base, (size_t)nslabs * len, nslabs};
        p->regions = r;
        p->reserve = base;
        p->reserve_left = r->len;
    }
    char *m = p->reserve;
    p->reserve += len;
    p->reserve_left -= len;
    pthread_mutex_unlock(&p->lock);
    return m;
}

static struct weft_stack_slab *slab_create(struct weft_stack_pool *p, size_t slot_size,
                                           int klass) {
    const size_t page = weft__page_size();
    unsigned nslots = (unsigned)(SLAB_BYTES / slot_size);
    if (nslots == 0)
        nslots = 1;
    if (nslots > SLAB_MAX_SLOTS)
        nslots = SLAB_MAX_SLOTS;
    /* Guard regions need no budget; mprotect guards spend it. */
    bool regions = atomic_load_explicit(&guard_regions, memory_order_relaxed) != 0;
    bool guarded = regions;
    unsigned gslots = nslots < GUARDED_SLAB_MAX_SLOTS ? nslots : GUARDED_SLAB_MAX_SLOTS;
    if (!regions && guard_budget_take(gslots)) {
        guarded = true;
        nslots = gslots;
    }

    size_t hdr_len = sizeof(struct weft_stack_slab) + nslots * sizeof(struct weft_stack);
    hdr_len = (hdr_len + page - 1) & ~(page - 1);
    size_t map_len = page + (size_t)nslots * slot_size;
    char *map = reserve_slab(p, hdr_len + map_len);
    if (!map)
        goto fail_map;
    struct weft_stack_slab *slab = (struct weft_stack_slab *)(void *)map;
    slab->hdr_len = hdr_len;
    slab->map_len = map_len;
    slab->base = map + hdr_len;
    slab->nslots = nslots;
    slab->nfree = nslots;
    slab->guarded = guarded;
    slab->regions = regions;
    slab->trimmed = false;
    slab->trim_queued = false;
    slab->trimming = false;
    slab->trim_next = NULL;
    slab->aside = NULL;
    slab->naside = 0;
    slab->next = NULL;

    char *first_slot = (char *)slab->base + page;
    bool batched = guarded && regions && install_guards(first_slot, slot_size, nslots);
    for (unsigned i = 0; i < nslots; i++) {
        char *slot = first_slot + (size_t)i * slot_size;
        struct weft_stack *s = &slab->stacks[i];
        if (guarded && regions && !batched && !install_guard(slot)) {
            /* No guard regions after all (an older kernel): this slab
             * goes unguarded, canary-checked; the next ones budget. */
            slab->guarded = slab->regions = guarded = regions = false;
        } else if (guarded && !regions && mprotect(slot, page, PROT_NONE) != 0) {
            /* Out of mappings after all: the rest of the slab goes
             * unguarded, still canary-checked. */
            guard_budget_return(nslots - i);
            slab->guarded = guarded = false;
        }
        s->lo = slot + (guarded ? page : 0);
        s->size = slot_size - (guarded ? page : 0) - WEFT_STACK_TOP_RESERVE;
        s->canary = (uint64_t *)(void *)slot - 1;
        s->next = i + 1 < nslots ? &slab->stacks[i + 1] : NULL;
        s->slab = slab;
        s->klass = (uint8_t)klass;
        s->guarded = guarded;
        s->canary_set = false;
    }
    prefault_tops(slab);
    return slab;

fail_map:
    if (guarded && !regions)
        guard_budget_return(gslots);
    return NULL;
}

static void slab_destroy(struct weft_stack_slab *slab) {
    long guarded = 0;
    for (unsigned i = 0; i < slab->nslots; i++)
        guarded += slab->stacks[i].guarded;
    if (!slab->regions)
        guard_budget_return(guarded);
}

/* ---- Pool --------------------------------------------------------------- */

void weft__stack_pool_init(struct weft_stack_pool *p, int klass) {
    pthread_mutex_init(&p->lock, NULL);
    p->slot_size = weft__stack_class_size(klass);
    p->free = NULL;
    p->nfree = 0;
    p->slabs = NULL;
    p->regions = NULL;
    p->reserve = NULL;
    p->reserve_left = 0;
    p->to_trim = NULL;
    p->to_trim_tail = NULL;
    p->retain_ns = 0;
    atomic_init(&p->ntrim, 0);
}

void weft__stack_pool_fini(struct weft_stack_pool *p) {
    while (p->slabs) {
        struct weft_stack_slab *next = p->slabs->next;
        slab_destroy(p->slabs);
        p->slabs = next;
    }
    while (p->regions) {
        struct weft_stack_region *next = p->regions->next;
        munmap(p->regions->base, p->regions->len);
        free(p->regions);
        p->regions = next;
    }
    p->reserve = NULL;
    p->reserve_left = 0;
    p->free = NULL;
    p->nfree = 0;
    pthread_mutex_destroy(&p->lock);
}

/* Caller holds p->lock and the free list is empty: make a slab and put
 * its stacks there. A new slab is hundreds of system calls (guards,
 * pre-faulting): made outside the lock, so other workers' refills and
 * returns do not queue up behind it. */
static void add_slab_locked(struct weft_stack_pool *p) {
    pthread_mutex_unlock(&p->lock);
    struct weft_stack_slab *slab = slab_create(p, p->slot_size,
                                               weft__stack_class(p->slot_size));
    pthread_mutex_lock(&p->lock);
    if (slab) {
        slab->next = p->slabs;
        p->slabs = slab;
        slab->stacks[slab->nslots - 1].next = p->free;
        p->free = &slab->stacks[0];
        p->nfree += slab->nslots;
    }
}

/* Move up to n stacks from the pool (or a new slab) into the cache.
 * Returns how many moved. */
static unsigned refill(struct weft_stack_pool *p, struct weft_stack_cache *c,
                       unsigned n) {
    unsigned moved = 0;
    bool made = false;
    struct weft_stack_slab *refault = NULL; /* a trimmed slab back in use */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (!p->free) {
            if (made || moved)
                break;
            add_slab_locked(p);
            made = true;
            continue;
        }
        if (moved == n)
            break;
        struct weft_stack *s = p->free;
        p->free = s->next;
        p->nfree--;
        if (WEFT_UNLIKELY(s->slab->trimming)) {
            /* Its pages are going; the trimmer puts it back after. */
            s->next = s->slab->aside;
            s->slab->aside = s;
            s->slab->naside++;
            continue;
        }
        s->slab->nfree--;
        if (s->slab->trimmed) {
            s->slab->trimmed = false;
            refault = s->slab;
        }
        s->next = c->head;
        c->head = s;
        c->count++;
        moved++;
    }
    pthread_mutex_unlock(&p->lock);
    /* Outside the lock: it only faults pages in. The slab cannot be
     * trimmed meanwhile (S3: some of its stacks are in our cache now). */
    if (refault)
        prefault_tops(refault);
    return moved;
}

static void arm(struct weft_stack *s) {
    if (!s->canary_set) {
        *s->canary = weft__stack_canary_value(s);
        s->canary_set = true;
    }
}

struct weft_stack *weft__stack_get(struct weft_stack_pool *p,
                                   struct weft_stack_cache *c,
                                   unsigned high_water) {
    if (WEFT_UNLIKELY(!c->head)) {
        unsigned batch = high_water / 2 ? high_water / 2 : 1;
        if (refill(p, c, batch) == 0)
            return NULL;
    }
    struct weft_stack *s = c->head;
    c->head = s->next;
    c->count--;
    /* The next descriptor is likely cold: load it ahead of the next get
     * (as weft__fiber_new does for control blocks). */
    if (c->head)
        __builtin_prefetch(&c->head->next, 1);
    s->next = NULL;
    arm(s);
    return s;
}

/* Every stack of the slab is in the pool (S3): queue it, oldest first,
 * for a trim by a worker about to park once it has stayed free for
 * p->retain_ns. Caller holds p->lock. */
static void queue_trim_locked(struct weft_stack_pool *p, struct weft_stack_slab *slab) {
    slab->trim_queued = true;
    slab->trim_next = NULL;
    if (p->to_trim_tail)
        p->to_trim_tail->trim_next = slab;
    else
        p->to_trim = slab;
    p->to_trim_tail = slab;
    /* relaxed: a hint for weft__stack_pool_trim_one; the lock decides. */
    atomic_store_explicit(&p->ntrim, atomic_load_explicit(&p->ntrim, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

bool weft__stack_pool_trim_one(struct weft_stack_pool *p, uint64_t now, uint64_t *due) {
    /* relaxed: see queue_trim_locked. */
    if (atomic_load_explicit(&p->ntrim, memory_order_relaxed) == 0)
        return false;
    pthread_mutex_lock(&p->lock);
    struct weft_stack_slab *slab;
    while ((slab = p->to_trim)) {
        /* A refill may have taken some of its stacks since (S3). */
        bool trimmable = slab->nfree == slab->nslots && !slab->trimmed;
        if (trimmable && slab->free_since + p->retain_ns > now) {
            /* Not yet; nor is any behind it, but for slabs whose stacks
             * came and went again (their free_since moved): they wait
             * for this one. */
            if (slab->free_since + p->retain_ns < *due)
                *due = slab->free_since + p->retain_ns;
            slab = NULL;
            break;
        }
        p->to_trim = slab->trim_next;
        if (!p->to_trim)
            p->to_trim_tail = NULL;
        atomic_store_explicit(&p->ntrim, atomic_load_explicit(&p->ntrim, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        slab->trim_queued = false;
        if (trimmable)
            break;
    }
    if (!slab) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    slab->trimming = true;
    pthread_mutex_unlock(&p->lock);
    /* Outside the lock: refills set this slab's stacks aside meanwhile,
     * and no one holds any of them, so no one touches its pages. One call
     * for the whole slab but its header: MADV_DONTNEED drops the usable
     * ranges' pages and leaves the guard pages as they are. */
    madvise(slab->base, slab->map_len, MADV_DONTNEED);
    /* Its canaries went with the pages; each is re-armed at its next get
     * (the lock below orders these stores before that). */
    for (unsigned i = 0; i < slab->nslots; i++)
        slab->stacks[i].canary_set = false;
    pthread_mutex_lock(&p->lock);
    slab->trimming = false;
    slab->trimmed = true;
    if (slab->aside) {
        struct weft_stack *last = slab->aside;
        while (last->next)
            last = last->next;
        last->next = p->free;
        p->free = slab->aside;
        p->nfree += slab->naside;
        slab->aside = NULL;
        slab->naside = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return true;
}

static void give_back(struct weft_stack_pool *p, struct weft_stack *first,
                      struct weft_stack *last, unsigned n) {
    uint64_t now = 0;
    pthread_mutex_lock(&p->lock);
    for (struct weft_stack *s = first;; s = s->next) {
        struct weft_stack_slab *slab = s->slab;
        if (++slab->nfree == slab->nslots && !slab->trimmed) {
            /* Once per slab of stacks: a clock read is cheap enough. */
            slab->free_since = now ? now : (now = weft_now());
            if (!slab->trim_queued)
                queue_trim_locked(p, slab);
        }
        if (s == last)
            break;
    }
    last->next = p->free;
    p->free = first;
    p->nfree += n;
    pthread_mutex_unlock(&p->lock);
}

void weft__stack_put(struct weft_stack_pool *p, struct weft_stack_cache *c,
                     unsigned high_water, struct weft_stack *s) {
#if defined(WEFT_ASAN)
    /* A fiber that finished by switching away leaves its frames' poison. */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    s->next = c->head;
    c->head = s;
    c->count++;
    if (WEFT_LIKELY(c->count <= high_water))
        return;
    /* Overflow: the coldest half (the list tail) goes back to the pool. */
    unsigned keep = high_water / 2;
    struct weft_stack *cut = c->head;
    for (unsigned i = 1; i < keep; i++)
        cut = cut->next;
    struct weft_stack *first = keep ? cut->next : c->head;
    if (keep)
        cut->next = NULL;
    else
        c->head = NULL;
    unsigned n = 0;
    struct weft_stack *last = first;
    for (struct weft_stack *it = first; it; it = it->next) {
        last = it;
        n++;
    }
    c->count -= n;
    if (n)
        give_back(p, first, last, n);
}

void weft__stack_cache_drain(struct weft_stack_pool *p, struct weft_stack_cache *c) {
    if (!c->head)
        return;
    struct weft_stack *last = c->head;
    unsigned n = 1;
    while (last->next) {
        last = last->next;
        n++;
    }
    give_back(p, c->head, last, n);
    c->head = NULL;
    c->count = 0;
}

size_t weft__stack_pool_trimmed(struct weft_stack_pool *p) {
    size_t n = 0;
    pthread_mutex_lock(&p->lock);
    for (struct weft_stack_slab *slab = p->slabs; slab; slab = slab->next)
        n += slab->trimmed;
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t weft__stack_pool_mappings(struct weft_stack_pool *p) {
    size_t n = 0;
    pthread_mutex_lock(&p->lock);
    for (struct weft_stack_region *r = p->regions; r; r = r->next)
        n++;
    pthread_mutex_unlock(&p->lock);
    return n;
}

bool weft__stack_fault_is_overflow(const struct weft_stack *s, uintptr_t addr,
                                   uintptr_t sp) {
    const uintptr_t page = weft__page_size();
    uintptr_t lo = (uintptr_t)s->lo;
    bool in_guard = s->guarded && addr >= lo - page && addr < lo;
    bool sp_below = sp < lo && sp + 64 * 1024 >= lo;
    bool just_below = addr < lo && addr + 64 * 1024 >= lo;
    return in_guard || sp_below || just_below;
}
