/* lib/slot.c - the LIFO slot's thief side (slot.h). */
#include "fence.h"
#include "slot.h"

/* How long a thief waits for the owner's ack (T2) before it interrupts
 * it (T3): longer than an owner that spawns or wakes fibers takes to
 * touch its slot again, well short of the membarrier's 20 us. Picked. */
#define ACK_WAIT_NS (10 * WEFT_USEC)

void weft__slot_init(struct weft_slot *s, bool asymmetric) {
    atomic_init(&s->fiber, NULL);
    atomic_init(&s->fills, 0);
    atomic_init(&s->owner_busy, 0);
    atomic_init(&s->thief, 0);
    atomic_init(&s->ack, 0);
    atomic_init(&s->requests, 0);
    s->asymmetric = asymmetric && weft__fence_available();
    s->ack_wait_ns = ACK_WAIT_NS;
}

/* T2. */
static bool awaited_ack(struct weft_slot *s, uint32_t request) {
    if (!s->ack_wait_ns)
        return false;
    uint64_t give_up = 0;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            /* acquire: pairs with O3's release (S4). */
            if (atomic_load_explicit(&s->ack, memory_order_acquire) == request)
                return true;
            weft__cpu_relax();
        }
        uint64_t now = weft_now();
        if (!give_up)
            give_up = now + s->ack_wait_ns;
        else if (now >= give_up)
            return false;
    }
}

/* T3: whether no plain section is open, nor can open until T5. */
static bool owner_outside_section(struct weft_slot *s) {
    /* If a filter forbids the fence now, no barrier means no steal: the
     * owner's next acknowledgement still lets a thief in. */
    if (!weft__fence_all())
        return false;
    /* acquire: pairs with O5 (the closed section's stores). */
    return !atomic_load_explicit(&s->owner_busy, memory_order_acquire);
}

bool weft__slot_steal(struct weft_slot *s, struct weft_fiber *f) {
    if (!s->asymmetric)
        /* acquire: pairs with the owner's release store of f. */
        return atomic_compare_exchange_strong_explicit(&s->fiber, &f, NULL,
                                                       memory_order_acquire,
                                                       memory_order_relaxed);
    /* relaxed: a number, unique among this slot's pending requests. */
    uint32_t request = atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed) + 1;
    if (!request)
        request = 1;
    uint32_t free_ = 0;
    /* T1. relaxed: T2's ack or T3's membarrier orders it for the owner. */
    if (!atomic_compare_exchange_strong_explicit(&s->thief, &free_, request,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false; /* another thief is at it */
    bool taken = false;
    if (awaited_ack(s, request) || owner_outside_section(s))
        /* T4. acquire: pairs with the owner's release store of f. */
        taken = atomic_compare_exchange_strong_explicit(&s->fiber, &f, NULL,
                                                        memory_order_acquire,
                                                        memory_order_relaxed);
    /* T5. release: an owner that reads 0 in O3 sees T4's result. */
    atomic_store_explicit(&s->thief, 0, memory_order_release);
    return taken;
}
