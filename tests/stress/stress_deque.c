/* tests/stress/stress_deque.c - one owner pushing, popping and taking
 * back recent items from the middle (take, as an inline join does),
 * several thieves stealing (and stealing in bursts, as steal-half does);
 * every item must be taken exactly once. Usage: stress_deque THIEVES
 * [ITEMS]. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "deque.h"
#include "fiber.h"

#define TAKE_WINDOW 16

static int nthieves = 3;
static long nitems = 10 * 1000 * 1000;

static struct weft_deque *dq;
static _Atomic uint8_t *seen;      /* per item: times taken */
static atomic_long taken;
static atomic_int thread_failures; /* failures seen off the main thread */
static atomic_int done_pushing;

/* Items are encoded as fake fiber pointers: index + 2 (0 is NULL, 1 is
 * WEFT_DEQUE_ABORT). They are never dereferenced. */
static struct weft_fiber *item(long i) { return (struct weft_fiber *)(uintptr_t)(i + 2); }

static void take(struct weft_fiber *f) {
    long i = (long)(uintptr_t)f - 2;
    if (i < 0 || i >= nitems || atomic_fetch_add(&seen[i], 1) != 0)
        atomic_fetch_add(&thread_failures, 1);
    atomic_fetch_add_explicit(&taken, 1, memory_order_relaxed);
}

static void *thief(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    for (;;) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int burst = 1 + (int)(rng % 8); /* steal-half takes several in a row */
        int got = 0;
        for (int i = 0; i < burst; i++) {
            struct weft_fiber *f = weft__deque_steal(dq);
            if (f == WEFT_DEQUE_ABORT)
                continue;
            if (!f)
                break;
            take(f);
            got++;
        }
        if (!got && atomic_load(&done_pushing) &&
            atomic_load_explicit(&taken, memory_order_relaxed) >= nitems)
            return NULL;
    }
}

static void test_every_item_taken_exactly_once(void **state) {
    (void)state;
    dq = aligned_alloc(WEFT_CACHELINE, sizeof *dq);
    assert_non_null(dq);
    weft__deque_init(dq);
    seen = calloc((size_t)nitems, 1);
    assert_non_null(seen);
    pthread_t t[64];
    for (int i = 0; i < nthieves; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thief, (void *)(uintptr_t)(i + 1)), 0);

    uint64_t rng = 42;
    long takes = 0;
    for (long i = 0; i < nitems; i++) {
        while (weft__deque_push(dq, item(i)) != 0) {
            struct weft_fiber *f = weft__deque_pop(dq); /* full: make room */
            if (f)
                take(f);
        }
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        if (rng % 3 == 0) {
            struct weft_fiber *f = weft__deque_pop(dq);
            if (f)
                take(f);
        } else if (rng % 3 == 1) {
            /* One of the last TAKE_WINDOW items pushed, wherever it is
             * now: still there, popped, or stolen. */
            long j = i - (long)((rng >> 8) % TAKE_WINDOW);
            if (j >= 0 && weft__deque_take(dq, item(j), TAKE_WINDOW)) {
                take(item(j));
                takes++;
            }
        }
    }
    assert_true(takes > 0);
    struct weft_fiber *f;
    while ((f = weft__deque_pop(dq)))
        take(f);
    atomic_store(&done_pushing, 1);
    for (int i = 0; i < nthieves; i++)
        pthread_join(t[i], NULL);

    assert_int_equal(atomic_load(&thread_failures), 0);
    assert_int_equal(atomic_load(&taken), nitems);
    for (long i = 0; i < nitems; i++)
        if (seen[i] != 1)
            fail_msg("item %ld taken %d times", i, seen[i]);
    free(seen);
    free(dq);
}

int main(int argc, char **argv) {
    if (argc > 1)
        nthieves = atoi(argv[1]);
    if (argc > 2)
        nitems = atol(argv[2]);
    if (nthieves < 1 || nthieves > 64 || nitems < 1) {
        fprintf(stderr, "usage: stress_deque THIEVES(1-64) [ITEMS]\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_taken_exactly_once),
    };
    return cmocka_run_group_tests_name("stress_deque", tests, NULL, NULL);
}
