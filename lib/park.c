/* lib/park.c - futex-based thread parking (park.h). */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "park.h"

int weft__park_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline) {
    int saved_errno = errno; /* weft's calls leave errno unchanged */
    struct timespec ts, *tsp = NULL;
    if (deadline != WEFT_FOREVER) {
        ts.tv_sec = (time_t)(deadline / WEFT_SEC);
        ts.tv_nsec = (long)(deadline % WEFT_SEC);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    long rc = syscall(SYS_futex, (uint32_t *)word,
                      FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp,
                      NULL, FUTEX_BITSET_MATCH_ANY);
    int err = rc == 0 ? 0 : errno;
    errno = saved_errno;
    if (err == ETIMEDOUT)
        return -ETIMEDOUT;
    if (err == EINTR)
        return -EINTR;
    return 0; /* woken, or EAGAIN: the word already differed */
}

void weft__park_wake(_Atomic uint32_t *word, int n) {
    int saved_errno = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n,
            NULL, NULL, 0);
    errno = saved_errno;
}
