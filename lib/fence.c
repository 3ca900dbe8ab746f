/* lib/fence.c - the asymmetric fence (fence.h) on Linux membarrier. */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fence.h"

static pthread_once_t registered_once = PTHREAD_ONCE_INIT;
static bool available; /* written once, under registered_once */

static long membarrier(int cmd) {
    return syscall(__NR_membarrier, cmd, 0, 0);
}

static void register_process(void) {
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        return;
    available = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool weft__fence_available(void) {
    int saved_errno = errno; /* weft's calls leave errno unchanged */
    pthread_once(&registered_once, register_process);
    errno = saved_errno;
    return available;
}

bool weft__fence_all(void) {
    int saved_errno = errno;
    /* Registered, so it should not fail (a fork keeps the registration;
     * an exec starts afresh); a filter installed later could refuse it. */
    long rc = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    errno = saved_errno;
    return rc == 0;
}
