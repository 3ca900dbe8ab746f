/*
 * examples/fanout.c - fan out 10,000 fibers, fan their results back in.
 *
 * A root fiber (weft_run, like asyncio.run) spawns one fiber per number
 * 1..N; each counts the steps of that number's Collatz sequence, a small
 * piece of CPU work. The root joins them all in order and returns the sum,
 * which main checks against a plain loop.
 *
 * Usage: fanout [N [WORKERS]]   (defaults: 10000 fibers, one worker per CPU)
 * Exits 0 if the sum is right, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

/* Steps for n to reach 1 under n -> n/2 (even), 3n+1 (odd). */
static uint64_t collatz_steps(uint64_t n) {
    uint64_t steps = 0;
    while (n != 1) {
        n = (n % 2) ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

static void *work(void *arg) {
    return (void *)(uintptr_t)collatz_steps((uint64_t)(uintptr_t)arg);
}

struct fanout {
    unsigned n;
    uint64_t sum;
    int rc;
};

static void *root(void *arg) {
    struct fanout *f = arg;
    weft_task **tasks = calloc(f->n, sizeof *tasks);
    if (!tasks) {
        f->rc = -1;
        return NULL;
    }
    unsigned spawned = 0;
    for (; spawned < f->n; spawned++) {
        f->rc = weft_spawn(NULL, work, (void *)(uintptr_t)(spawned + 1),
                           &tasks[spawned]);
        if (f->rc != 0)
            break;
    }
    for (unsigned i = 0; i < spawned; i++) {
        void *steps = NULL;
        int rc = weft_join(tasks[i], &steps);
        if (rc != 0 && f->rc == 0)
            f->rc = rc;
        f->sum += (uint64_t)(uintptr_t)steps;
    }
    free(tasks);
    return NULL;
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 10000;
    weft_config cfg = {.workers = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10)
                                           : 0};
    if (n == 0) {
        fprintf(stderr, "usage: %s [N [WORKERS]]\n", argv[0]);
        return 2;
    }

    weft_runtime *rt = NULL;
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc != 0) {
        fprintf(stderr, "weft_runtime_create: %s\n", weft_strerror(rc));
        return 1;
    }

    int workers = weft_runtime_workers(rt);
    struct fanout f = {.n = n};
    uint64_t t0 = weft_now();
    rc = weft_run(rt, root, &f, NULL);
    uint64_t elapsed = weft_now() - t0;
    if (rc == 0)
        rc = f.rc;
    int drc = weft_runtime_destroy(rt);
    if (rc != 0 || drc != 0) {
        fprintf(stderr, "fanout: %s\n", weft_strerror(rc != 0 ? rc : drc));
        return 1;
    }

    uint64_t expect = 0;
    for (unsigned i = 1; i <= n; i++)
        expect += collatz_steps(i);

    printf("%u fibers on %d workers: sum %llu in %.3f ms\n", n, workers,
           (unsigned long long)f.sum, (double)elapsed / 1e6);
    if (f.sum != expect) {
        fprintf(stderr, "fanout: wrong sum %llu, expected %llu\n",
                (unsigned long long)f.sum, (unsigned long long)expect);
        return 1;
    }
    return 0;
}
