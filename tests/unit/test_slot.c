/* tests/unit/test_slot.c - lib/slot.[ch]: the LIFO slot's owner
 * operations, alone and racing thieves, with the asymmetric protocol
 * (where this kernel offers membarrier) and without it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fence.h"
#include "slot.h"

/* Items are fake fiber pointers, never dereferenced: index + 1. */
static struct weft_fiber *item(long i) { return (struct weft_fiber *)(uintptr_t)(i + 1); }

static void check_owner_operations(bool asymmetric) {
    struct weft_slot s;
    weft__slot_init(&s, asymmetric);
    assert_null(weft__slot_take(&s));
    assert_null(weft__slot_put(&s, item(1)));
    assert_ptr_equal(weft__slot_peek(&s), item(1));
    assert_ptr_equal(weft__slot_put(&s, item(2)), item(1)); /* displaced */
    assert_false(weft__slot_take_if(&s, item(1)));
    assert_true(weft__slot_take_if(&s, item(2)));
    assert_null(weft__slot_peek(&s));
    assert_null(weft__slot_put(&s, item(3)));
    assert_false(weft__slot_steal(&s, item(4))); /* not there */
    assert_true(weft__slot_steal(&s, item(3)));
    assert_null(weft__slot_take(&s));
    assert_null(weft__slot_put(&s, item(5)));
    assert_ptr_equal(weft__slot_take(&s), item(5));
    assert_int_equal(atomic_load(&s.fills), 4);
    assert_int_equal(atomic_load(&s.owner_busy), 0);
    assert_int_equal(atomic_load(&s.thief), 0);
}

static void test_owner_operations_symmetric(void **state) {
    (void)state;
    check_owner_operations(false);
}

static void test_owner_operations_asymmetric(void **state) {
    (void)state;
    if (!weft__fence_available())
        skip(); /* the symmetric test above covers this kernel */
    check_owner_operations(true);
}

/* ---- Owner against thieves ---------------------------------------------- */

#ifdef WEFT_TSAN
#define RACE_ITEMS 20000L
#else
#define RACE_ITEMS 300000L
#endif
#define THIEVES 2

static struct weft_slot race_slot;
static _Atomic uint8_t seen[RACE_ITEMS];
static atomic_int duplicates, strays;
static atomic_long stolen;
static atomic_bool owner_done;

static void count(struct weft_fiber *f) {
    long i = (long)(uintptr_t)f - 1;
    if (i < 0 || i >= RACE_ITEMS)
        atomic_fetch_add(&strays, 1);
    else if (atomic_fetch_add(&seen[i], 1) != 0)
        atomic_fetch_add(&duplicates, 1);
}

static void *thief(void *arg) {
    (void)arg;
    while (!atomic_load(&owner_done)) {
        struct weft_fiber *f = weft__slot_peek(&race_slot);
        if (f && weft__slot_steal(&race_slot, f)) {
            count(f);
            atomic_fetch_add(&stolen, 1);
        }
    }
    return NULL;
}

/* Every item leaves the slot exactly once: displaced by a put, taken by
 * the owner, or stolen. */
static void race(bool asymmetric, bool ack) {
    weft__slot_init(&race_slot, asymmetric);
    if (!ack)
        race_slot.ack_wait_ns = 0;
    for (long i = 0; i < RACE_ITEMS; i++)
        atomic_store(&seen[i], 0);
    atomic_store(&duplicates, 0);
    atomic_store(&strays, 0);
    atomic_store(&stolen, 0);
    atomic_store(&owner_done, false);
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thief, NULL), 0);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (long i = 0; i < RACE_ITEMS; i++) {
        struct weft_fiber *old = weft__slot_put(&race_slot, item(i));
        if (old)
            count(old);
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        switch (rng % 4) {
        case 0: { /* a pick */
            struct weft_fiber *f = weft__slot_take(&race_slot);
            if (f)
                count(f);
            break;
        }
        case 1: /* an inline join */
            if (weft__slot_take_if(&race_slot, item(i)))
                count(item(i));
            break;
        default: /* left there a while, for the next put or a thief */
            /* Mostly a moment; one in eight as long as a thief's
             * membarrier takes, so that steals succeed too. */
            for (unsigned k = (unsigned)(rng >> 40) % ((rng >> 20) % 8 ? 64 : 512); k > 0; k--)
                weft__cpu_relax();
            break;
        }
    }
    atomic_store(&owner_done, true);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(t[i], NULL);
    struct weft_fiber *last = weft__slot_take(&race_slot);
    if (last)
        count(last);
    assert_int_equal(atomic_load(&duplicates), 0);
    assert_int_equal(atomic_load(&strays), 0);
    for (long i = 0; i < RACE_ITEMS; i++)
        assert_int_equal(atomic_load(&seen[i]), 1);
    print_message("  %ld of %ld items stolen\n", atomic_load(&stolen), RACE_ITEMS);
}

static void test_race_symmetric(void **state) {
    (void)state;
    race(false, false);
}

/* The thief's usual way: the owner acknowledges its request. */
static void test_race_asymmetric_acknowledged(void **state) {
    (void)state;
    if (!weft__fence_available())
        skip();
    race(true, true);
}

/* The way for an owner that never acknowledges: the membarrier. */
static void test_race_asymmetric_membarrier(void **state) {
    (void)state;
    if (!weft__fence_available())
        skip();
    race(true, false);
}

/* An owner that never touches its slot again but polls (as every call
 * into weft does) acknowledges a thief's request: the steal succeeds
 * long before the thief would give up waiting and use the membarrier. */
static struct weft_slot poll_slot;
static atomic_bool poll_stop;

static void *polling_owner(void *arg) {
    (void)arg;
    while (!atomic_load(&poll_stop))
        weft__slot_poll(&poll_slot);
    return NULL;
}

static void test_polling_owner_acknowledges(void **state) {
    (void)state;
    if (!weft__fence_available())
        skip();
    weft__slot_init(&poll_slot, true);
    poll_slot.ack_wait_ns = 4000000000u; /* 4 s, near the field's most */
    assert_null(weft__slot_put(&poll_slot, item(7)));
    atomic_store(&poll_stop, false);
    pthread_t owner;
    assert_int_equal(pthread_create(&owner, NULL, polling_owner, NULL), 0);
    uint64_t start = weft_now();
    bool stolen_ = weft__slot_steal(&poll_slot, item(7));
    uint64_t took = weft_now() - start;
    atomic_store(&poll_stop, true);
    pthread_join(owner, NULL);
    assert_true(stolen_);
    assert_null(weft__slot_peek(&poll_slot));
    assert_true(took < 2 * WEFT_SEC); /* well short of the 4 s wait */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_operations_symmetric),
        cmocka_unit_test(test_owner_operations_asymmetric),
        cmocka_unit_test(test_race_symmetric),
        cmocka_unit_test(test_race_asymmetric_acknowledged),
        cmocka_unit_test(test_race_asymmetric_membarrier),
        cmocka_unit_test(test_polling_owner_acknowledges),
    };
    return cmocka_run_group_tests_name("slot", tests, NULL, NULL);
}
