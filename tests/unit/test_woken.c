/* tests/unit/test_woken.c - lib/woken.[ch]: FIFO order, room, index
 * wrap-around, steal-half, and an owner racing thieves (every fiber taken
 * exactly once). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fiber.h"
#include "woken.h"

static struct weft_fiber fibers[WEFT_WOKEN_CAP + 1];

static int setup(void **state) {
    struct weft_woken *r = aligned_alloc(WEFT_CACHELINE, sizeof *r);
    assert_non_null(r);
    weft__woken_init(r);
    *state = r;
    return 0;
}

static int teardown(void **state) {
    free(*state);
    return 0;
}

static void push_one(struct weft_woken *r, struct weft_fiber *f) {
    weft__woken_push(r, &f, 1);
}

/* The owner pops oldest first, and is told which one comes next. */
static void test_pop_is_fifo(void **state) {
    struct weft_woken *r = *state;
    struct weft_fiber *batch[3] = {&fibers[0], &fibers[1], &fibers[2]};
    weft__woken_push(r, batch, 3);
    assert_int_equal(weft__woken_size(r), 3);
    struct weft_fiber *after;
    assert_ptr_equal(weft__woken_pop(r, &after), &fibers[0]);
    assert_ptr_equal(after, &fibers[1]);
    assert_ptr_equal(weft__woken_pop(r, &after), &fibers[1]);
    assert_ptr_equal(after, &fibers[2]);
    assert_ptr_equal(weft__woken_pop(r, &after), &fibers[2]);
    assert_null(after);
    assert_null(weft__woken_pop(r, &after));
    assert_null(after);
    assert_int_equal(weft__woken_size(r), 0);
}

/* Room shrinks with each push and comes back with each take. */
static void test_room_counts_free_slots(void **state) {
    struct weft_woken *r = *state;
    assert_int_equal(weft__woken_room(r), WEFT_WOKEN_CAP);
    for (int i = 0; i < WEFT_WOKEN_CAP; i++)
        push_one(r, &fibers[i]);
    assert_int_equal(weft__woken_room(r), 0);
    struct weft_fiber *got[WEFT_WOKEN_CAP];
    assert_int_equal(weft__woken_steal(r, got, WEFT_WOKEN_CAP), WEFT_WOKEN_CAP / 2);
    assert_int_equal(weft__woken_room(r), WEFT_WOKEN_CAP / 2);
    struct weft_fiber *after;
    assert_ptr_equal(weft__woken_pop(r, &after), &fibers[WEFT_WOKEN_CAP / 2]);
    assert_int_equal(weft__woken_room(r), WEFT_WOKEN_CAP / 2 + 1);
}

/* A thief takes the older half, rounded up, at most max, in order; the
 * owner goes on from there. */
static void test_steal_takes_older_half(void **state) {
    struct weft_woken *r = *state;
    for (int i = 0; i < 5; i++)
        push_one(r, &fibers[i]);
    struct weft_fiber *got[WEFT_WOKEN_CAP];
    assert_int_equal(weft__woken_steal(r, got, WEFT_WOKEN_CAP), 3);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(got[i], &fibers[i]);
    assert_int_equal(weft__woken_steal(r, got, 1), 1);
    assert_ptr_equal(got[0], &fibers[3]);
    struct weft_fiber *after;
    assert_ptr_equal(weft__woken_pop(r, &after), &fibers[4]);
    assert_int_equal(weft__woken_steal(r, got, WEFT_WOKEN_CAP), 0);
}

/* Indices run far past the capacity: the ring wraps (K1). */
static void test_indices_wrap_around(void **state) {
    struct weft_woken *r = *state;
    for (int round = 0; round < 10 * WEFT_WOKEN_CAP; round++) {
        struct weft_fiber *a = &fibers[round % WEFT_WOKEN_CAP];
        struct weft_fiber *b = &fibers[(round + 1) % WEFT_WOKEN_CAP];
        struct weft_fiber *pair[2] = {a, b};
        weft__woken_push(r, pair, 2);
        struct weft_fiber *got, *after;
            assert_int_equal(weft__woken_steal(r, &got, 1), 1);
        assert_ptr_equal(got, a);
        assert_ptr_equal(weft__woken_pop(r, &after), b);
        assert_null(after);
    }
    assert_int_equal(weft__woken_size(r), 0);
}

/* ---- Owner against thieves --------------------------------------------- */

enum { RACE_ITEMS = 200000, RACE_THIEVES = 2 };
static struct weft_fiber *race_items;
static atomic_uchar *race_taken; /* times each item was taken */
static atomic_int race_done;

static void take(struct weft_fiber *f) {
    atomic_fetch_add_explicit(&race_taken[f - race_items], 1, memory_order_relaxed);
}

static void *thief(void *arg) {
    struct weft_woken *r = arg;
    struct weft_fiber *got[WEFT_WOKEN_CAP];
    while (!atomic_load(&race_done) || weft__woken_size(r)) {
        size_t n = weft__woken_steal(r, got, WEFT_WOKEN_CAP);
        for (size_t i = 0; i < n; i++)
            take(got[i]);
    }
    return NULL;
}

/* The owner pushes batches of 1-17 and pops one or two after each, as
 * sched.c does, while thieves steal: every item is taken exactly once,
 * and the owner's pops come out in push order. */
static void test_owner_races_thieves(void **state) {
    struct weft_woken *r = *state;
    race_items = calloc(RACE_ITEMS, sizeof *race_items);
    race_taken = calloc(RACE_ITEMS, sizeof *race_taken);
    assert_non_null(race_items);
    assert_non_null(race_taken);
    atomic_store(&race_done, 0);
    pthread_t th[RACE_THIEVES];
    for (int i = 0; i < RACE_THIEVES; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thief, r), 0);
    uint64_t seed = 12345;
    size_t next = 0;
    ptrdiff_t last_popped = -1;
    bool in_order = true;
    while (next < RACE_ITEMS) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = 1 + (size_t)(seed >> 33) % 17;
        size_t room = weft__woken_room(r);
        if (n > room)
            n = room;
        if (n > RACE_ITEMS - next)
            n = RACE_ITEMS - next;
        struct weft_fiber *batch[17];
        for (size_t i = 0; i < n; i++)
            batch[i] = &race_items[next + i];
        weft__woken_push(r, batch, n);
        next += n;
        for (int k = 0; k < 1 + (int)((seed >> 40) & 1); k++) {
            struct weft_fiber *after;
                    struct weft_fiber *f = weft__woken_pop(r, &after);
            if (!f)
                break;
            in_order = in_order && f - race_items > last_popped;
            last_popped = f - race_items;
            take(f);
        }
    }
    atomic_store(&race_done, 1);
    for (int i = 0; i < RACE_THIEVES; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(in_order);
    size_t wrong = 0;
    for (size_t i = 0; i < RACE_ITEMS; i++)
        wrong += atomic_load(&race_taken[i]) != 1;
    assert_int_equal(wrong, 0);
    free(race_items);
    free(race_taken);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pop_is_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_counts_free_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steal_takes_older_half, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indices_wrap_around, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_races_thieves, setup, teardown),
    };
    return cmocka_run_group_tests_name("woken", tests, NULL, NULL);
}
