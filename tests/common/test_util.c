/* tests/common/test_util.c - see test_util.h. Uses no weft symbols, so it
 * links with either the public library or the weft_internal objects. */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

atomic_int wt_failures;

void wt_fail(const char *file, int line, const char *what, bool has_values,
             long long a, long long b) {
    /* errno is the caller's state under test; keep it. */
    int saved = errno;
    atomic_fetch_add(&wt_failures, 1);
    if (has_values)
        fprintf(stderr, "%s:%d: check failed: %s (%lld vs %lld)\n", file,
                line, what, a, b);
    else
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    errno = saved;
}

/* noinline, and in their own translation unit: each call computes &errno
 * on the thread that runs it (see test_util.h). */
__attribute__((noinline)) int wt_errno(void) {
    return errno;
}

__attribute__((noinline)) void wt_set_errno(int value) {
    errno = value;
}

void wt_reset(void) {
    atomic_store(&wt_failures, 0);
}

long wt_arg(int argc, char **argv, int i, long dflt) {
    if (i >= argc)
        return dflt;
    char *end = NULL;
    long v = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || v <= 0) {
        fprintf(stderr, "%s: argument %d must be a positive number, not '%s'\n",
                argv[0], i, argv[i]);
        exit(2);
    }
    return v;
}

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void) {
    const char *env = getenv("WEFT_TEST_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 0);
    else
        seed = wt_clock_ns() ^ 0x5eedf00dull;
    fprintf(stderr, "WEFT_TEST_SEED=%" PRIu64 "\n", seed);
}

uint64_t wt_seed(void) {
    pthread_once(&seed_once, seed_init);
    return seed;
}

uint64_t wt_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void wt_thread_sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

bool wt_wait_atomic_ge(atomic_int *v, int target, uint64_t timeout_ns) {
    uint64_t deadline = wt_clock_ns() + timeout_ns;
    while (atomic_load(v) < target) {
        if (wt_clock_ns() > deadline)
            return false;
        wt_thread_sleep_ns(100000);
    }
    return true;
}

void wt_init(void) {
    const char *filter = getenv("WEFT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
}

int wt_run_child(void (*child)(void), char *out, size_t len) {
    int pipefd[2];
    if (len == 0 || pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        child();
        _exit(0);
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && (n = read(pipefd[0], out + got, len - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(pipefd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}
