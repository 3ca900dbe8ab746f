/*
 * examples/sleepers.c - N fibers sleep at once, then report how late they
 * woke and what it cost in memory.
 *
 *   sleepers [N] [--ms MILLISECONDS] [--stack BYTES] [--workers W]
 *            [--rounds R]
 *
 * Defaults: 10,000 fibers sleeping 1000 ms, 16 KiB stacks (a sleeper
 * needs little), one round. N may go to 1,000,000. While it waits, a
 * progress line (woken/total) is redrawn about ten times a second when
 * stdout is a terminal. The summary gives the wall time, the wake
 * lateness (p50, p99, max: how long after its deadline each fiber ran
 * again), peak RSS and RSS per fiber, and, on a virtual machine whose
 * kernel reports it, the CPU time the hypervisor took from this machine
 * meanwhile (steal): a wake-up is late by however long its worker's
 * virtual CPU was not running.
 *
 * With --rounds R, the same runtime runs the whole thing R times, one
 * summary each: the first round faults its stacks in fresh, the later
 * ones start on the stacks and pages the earlier ones left (as a server
 * does, past its first burst).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <weft.h>

struct sleeper {
    uint64_t started;  /* when it began to run */
    uint64_t lateness; /* ns after its deadline it ran again */
};

static atomic_long woken;
static atomic_int failures;
static uint64_t sleep_ns;
static weft_wg all_done; /* one count per sleeper of the round */

/* Each fiber sleeps sleep_ns from when it starts, as `go func() {
 * time.Sleep(d) }()` does. */
static void *sleep_once(void *arg) {
    struct sleeper *s = arg;
    s->started = weft_now();
    uint64_t deadline = s->started + sleep_ns;
    if (weft_sleep(sleep_ns) != 0)
        atomic_fetch_add(&failures, 1);
    uint64_t now = weft_now();
    if (now < deadline)
        atomic_fetch_add(&failures, 1); /* early: never allowed */
    s->lateness = now - deadline;
    atomic_fetch_add_explicit(&woken, 1, memory_order_relaxed);
    if (weft_wg_done(&all_done) != 0)
        atomic_fetch_add(&failures, 1);
    return NULL;
}

struct spawner {
    struct sleeper *s;
    long n;
    uint64_t done_at;
};

/* Spawns every sleeper from a fiber (local queues, no cross-thread
 * hand-off), detached: destroy waits for them. */
static void *spawn_all(void *arg) {
    struct spawner *sp = arg;
    for (long i = 0; i < sp->n; i++) {
        int rc = weft_spawn(NULL, sleep_once, &sp->s[i], NULL);
        if (rc != 0) {
            fprintf(stderr, "weft_spawn: %s after %ld fibers\n", weft_strerror(rc), i);
            return (void *)1;
        }
    }
    sp->done_at = weft_now();
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* CPU time stolen from this machine by its hypervisor so far, in ms,
 * summed over its CPUs (the steal column of /proc/stat); -1 where the
 * kernel does not report it. */
static long steal_ms(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8];
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (got != 8 || hz <= 0)
        return -1;
    return (long)(v[7] * 1000ull / (unsigned long long)hz);
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [N] [--ms MILLISECONDS] [--stack BYTES] [--workers W] [--rounds R]\n",
            argv0);
    return 2;
}

/* One round: n sleepers spawned from a fiber, waited for (progress line
 * on a terminal), then the summary. Returns 0, or 1 on a failure. */
static int run_round(weft_runtime *rt, struct sleeper *s, long n, long rss_before) {
    memset(s, 0, (size_t)n * sizeof *s);
    atomic_store(&woken, 0);
    if (weft_wg_add(&all_done, (int)n) != 0)
        return 1;
    bool tty = isatty(STDOUT_FILENO);
    long steal_before = steal_ms();
    uint64_t start = weft_now();
    struct spawner sp = {.s = s, .n = n};
    void *spawn_failed;
    int rc = weft_run(rt, spawn_all, &sp, &spawn_failed);
    if (rc != 0 || spawn_failed)
        return 1;
    uint64_t spawned = sp.done_at;
    while (tty && atomic_load(&woken) < n) {
        printf("\r%ld/%ld woken", atomic_load(&woken), n);
        fflush(stdout);
        weft_sleep(100 * WEFT_MSEC);
    }
    rc = weft_wg_wait(&all_done); /* every sleeper of the round is done */
    uint64_t end = weft_now();
    long steal_after = steal_ms();
    if (tty)
        printf("\r%ld/%ld woken\n", atomic_load(&woken), n);
    if (rc != 0)
        return 1;

    uint64_t *late = malloc((size_t)n * sizeof *late);
    if (!late)
        return 1;
    uint64_t last_start = start;
    for (long i = 0; i < n; i++) {
        late[i] = s[i].lateness;
        last_start = s[i].started > last_start ? s[i].started : last_start;
    }
    qsort(late, (size_t)n, sizeof *late, cmp_u64);
    long rss = peak_rss_kib();
    double per_fiber = (double)(rss - rss_before) * 1024.0 / (double)n;
    printf("spawned in     %.3f s (all running by %.3f s)\n", (double)(spawned - start) / 1e9,
           (double)(last_start - start) / 1e9);
    printf("wall time      %.3f s\n", (double)(end - start) / 1e9);
    printf("lateness       p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
           (double)late[n / 2] / 1e6, (double)late[(n * 99) / 100] / 1e6,
           (double)late[n - 1] / 1e6);
    printf("peak RSS       %.1f MiB (%.2f KiB per fiber)\n", (double)rss / 1024.0,
           per_fiber / 1024.0);
    if (steal_before >= 0 && steal_after >= steal_before)
        printf("host steal     %ld ms of CPU time taken by the hypervisor (counted in %ld ms ticks)\n",
               steal_after - steal_before, 1000 / sysconf(_SC_CLK_TCK));
    free(late);
    return 0;
}

int main(int argc, char **argv) {
    long n = 10000, ms = 1000, rounds = 1;
    size_t stack = 16 * 1024;
    unsigned workers = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = atol(argv[++i]);
        else if (strcmp(argv[i], "--stack") == 0 && i + 1 < argc)
            stack = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atol(argv[++i]);
        else if (argv[i][0] != '-')
            n = atol(argv[i]);
        else
            return usage(argv[0]);
    }
    if (n < 1 || n > 10 * 1000 * 1000 || ms < 0 || rounds < 1 || rounds > 1000)
        return usage(argv[0]);

    long rss_before = peak_rss_kib();
    struct sleeper *s = calloc((size_t)n, sizeof *s);
    if (!s) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    weft_runtime *rt;
    weft_config cfg = {.workers = workers, .stack_size = stack};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc != 0) {
        fprintf(stderr, "weft_runtime_create: %s\n", weft_strerror(rc));
        return 1;
    }
    if (weft_wg_init(&all_done) != 0)
        return 1;
    sleep_ns = (uint64_t)ms * WEFT_MSEC;
    printf("%ld sleepers x %ld ms on %d workers, %zu KiB stacks\n", n, ms,
           workers ? (int)workers : (int)sysconf(_SC_NPROCESSORS_ONLN), stack / 1024);
    int failed = 0;
    for (long r = 1; r <= rounds && !failed; r++) {
        if (rounds > 1)
            printf("round %ld of %ld\n", r, rounds);
        failed = run_round(rt, s, n, rss_before);
    }
    rc = weft_runtime_destroy(rt);
    int bad = atomic_load(&failures);
    if (failed || bad || rc != 0 || atomic_load(&woken) != n ||
        weft_wg_destroy(&all_done) != 0) {
        printf("FAILED: %d early or failed sleeps, %ld/%ld woken in the last round\n", bad,
               atomic_load(&woken), n);
        return 1;
    }
    free(s);
    return 0;
}
