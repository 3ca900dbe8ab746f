/*
 * lib/fence.h - the asymmetric fence: a full memory barrier run on every
 * thread of the process at once, on behalf of one caller (Linux
 * membarrier, "private expedited" kind).
 *
 * It lets a fast side that runs often replace a locked instruction by a
 * plain store and load (a Dekker handshake with a compiler barrier in
 * between), while the rare side that races with it pays for the barrier
 * the fast side skipped. The LIFO slot's thief (slot.h) and the biased
 * lock's revoker (bias.h) are such rare sides.
 *
 * The fence orders the instruction stream of each running thread at one
 * point: whatever a thread stored before that point is visible to the
 * caller once weft__fence_all() returns, and whatever it loads after
 * that point sees what the caller stored before the call. A thread that
 * is not running passed a barrier when it was switched out.
 */
#ifndef WEFT_FENCE_H
#define WEFT_FENCE_H

#include <stdbool.h>

/* Whether the fence can be had in this process (the process registers
 * for it on the first call). Any thread. Where it cannot (an old kernel,
 * a seccomp filter, a valgrind run), callers keep to locked operations. */
bool weft__fence_available(void);

/* Run the fence. Only after weft__fence_available() said yes. Returns
 * false if the kernel refused it after all (a filter installed since):
 * then no barrier ran. Leaves errno unchanged. */
bool weft__fence_all(void);

#endif /* WEFT_FENCE_H */
