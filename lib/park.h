/*
 * lib/park.h - sleeping and waking OS threads on a 32-bit word (Linux
 * futex). Idle workers, plain threads blocked in weft calls and the timer
 * thread sleep here; nothing else in lib/ calls the OS to block.
 */
#ifndef WEFT_PARK_H
#define WEFT_PARK_H

#include <stdatomic.h>
#include <stdint.h>

/* Sleep while *word == expected, until woken or until the absolute
 * CLOCK_MONOTONIC deadline (WEFT_FOREVER: none). Returns 0 when woken (or
 * the word differed), -ETIMEDOUT, or -EINTR. May wake spuriously: callers
 * loop on their condition. */
int weft__park_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline);

/* Wake up to n threads sleeping on word. */
void weft__park_wake(_Atomic uint32_t *word, int n);

#endif /* WEFT_PARK_H */
