/*
 * lib/timer.h - the global timer thread: it owns every deadline (sleeps
 * and the timeout of every `_for` wait). Design comment in timer.c.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

struct weft_sched;
struct weft_fiber;
struct weft_timer;
struct weft_timer_entry;

/* Clock id's time in nanoseconds (weft_now() reads CLOCK_MONOTONIC). */
static inline uint64_t weft__clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * WEFT_SEC + (uint64_t)ts.tv_nsec;
}

int weft__timer_create(struct weft_timer **out, struct weft_sched *s);
/* Stop the thread and free every entry. Only once no fiber waits. */
void weft__timer_destroy(struct weft_timer *t);

/* Fiber context. At `deadline`, end wait `gen` of f
 * (weft__wait_claim_by_timer). NULL when out of memory. Once the wait is
 * over, the caller calls weft__timer_disarm() exactly once, unless the
 * timer's claim ended the wait (weft__wait_park's by_timer): the entry is
 * then the timer's, and the caller must not touch it. */
struct weft_timer_entry *weft__timer_arm(struct weft_timer *t, uint64_t deadline,
                                         struct weft_fiber *f, uint32_t gen);

/* The wait is over, ended by something else than this timer: give the
 * entry back. Returns true if the timer thread had popped it meanwhile
 * (its claim lost). */
bool weft__timer_disarm(struct weft_timer_entry *e);

/* Worker context, no fiber running; `now` recent, or 0 for "read the
 * clock if anything is pending". If entries are due
 * that the timer thread has not fired yet (it may be waiting for a CPU
 * the workers hold), fire a few of them here. Returns whether it fired
 * any (their fibers are on the wake queue). */
bool weft__timer_help(struct weft_timer *t, uint64_t now);

/* Entries ever allocated (the high-water mark of live plus lazily
 * cancelled ones): a test hook for "memory does not grow with abandoned
 * timeouts". */
uint64_t weft__timer_pending(struct weft_timer *t);

/* Test hooks: how many entries workers fired (weft__timer_help); make
 * the timer thread fire every entry `ns` late, as a thread that waits
 * that long for a CPU would (0: on time). */
uint64_t weft__timer_helped(struct weft_timer *t);
void weft__timer_set_lag(struct weft_timer *t, uint64_t ns);

/* Bytes mapped for the heap and the runs (a test hook: they shrink once
 * a burst has fired). */
size_t weft__timer_mapped(struct weft_timer *t);

/* Chunks the entry pool is made of (a test hook: they grow with it). */
size_t weft__timer_chunks(struct weft_timer *t);

#endif /* WEFT_TIMER_H */
