/*
 * examples/mergesort.c - parallel merge sort of N ints against qsort.
 *
 * The sort is fork-join: sort the two halves in parallel (weft_spawn the
 * left half, sort the right one here, weft_join), then merge them, in
 * parallel too: split the larger run at its middle, binary-search that
 * value in the other run, and merge the two pairs of pieces in parallel.
 * Below a cutoff, pieces are sorted and merged sequentially. The input
 * is generated with weft_parallel_for; the result is checked against
 * qsort's, element by element.
 *
 * Usage: mergesort [N [WORKERS]]   (defaults: 10,000,000 ints, one worker
 *                                   per CPU)
 * Prints both times and the speed-up; exits 0 if the result is right.
 * The speed-up can exceed the worker count: sorting cache-sized pieces
 * and merging them touches memory less than one qsort over everything.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

/* Below these sizes, work sequentially: a task costs about 50 ns, a
 * sequential sort of 8K ints about 0.5 ms. */
#define SORT_CUTOFF 8192
#define MERGE_CUTOFF 8192

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* First index in a[0..n) whose value is >= v. */
static size_t lower_bound(const int *a, size_t n, int v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void merge_seq(const int *a, size_t na, const int *b, size_t nb, int *out) {
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb)
        out[k++] = b[j] < a[i] ? b[j++] : a[i++];
    memcpy(out + k, a + i, (na - i) * sizeof *a);
    memcpy(out + k + (na - i), b + j, (nb - j) * sizeof *b);
}

/* One parallel step: a task's arguments. */
struct job {
    const int *a, *b;  /* merge: the two runs; sort: a is the input */
    size_t na, nb;     /* sort: na is the length */
    int *out, *tmp;    /* sort: out is where the sorted run goes */
    int err;
};

static int merge_par(const int *a, size_t na, const int *b, size_t nb, int *out);

static void *merge_task(void *arg) {
    struct job *j = arg;
    j->err = merge_par(j->a, j->na, j->b, j->nb, j->out);
    return NULL;
}

/* Merge sorted a and b into out, in parallel above MERGE_CUTOFF. */
static int merge_par(const int *a, size_t na, const int *b, size_t nb, int *out) {
    if (na < nb) { /* split the larger run */
        const int *t = a;
        a = b;
        b = t;
        size_t n = na;
        na = nb;
        nb = n;
    }
    if (na + nb <= MERGE_CUTOFF || nb == 0) {
        merge_seq(a, na, b, nb, out);
        return 0;
    }
    size_t ma = na / 2;
    size_t mb = lower_bound(b, nb, a[ma]);
    struct job left = {.a = a, .na = ma, .b = b, .nb = mb, .out = out};
    weft_task *t;
    int rc = weft_spawn(NULL, merge_task, &left, &t);
    if (rc)
        return rc;
    int err = merge_par(a + ma, na - ma, b + mb, nb - mb, out + ma + mb);
    rc = weft_join(t, NULL);
    return rc ? rc : err ? err : left.err;
}

static int sort_par(int *a, size_t n, int *tmp);

static void *sort_task(void *arg) {
    struct job *j = arg;
    j->err = sort_par(j->out, j->na, j->tmp);
    return NULL;
}

/* Sort a[0..n) in place, with tmp[0..n) as scratch. */
static int sort_par(int *a, size_t n, int *tmp) {
    if (n <= SORT_CUTOFF) {
        qsort(a, n, sizeof *a, cmp_int);
        return 0;
    }
    size_t h = n / 2;
    struct job left = {.out = a, .na = h, .tmp = tmp};
    weft_task *t;
    int rc = weft_spawn(NULL, sort_task, &left, &t);
    if (rc)
        return rc;
    int err = sort_par(a + h, n - h, tmp + h);
    rc = weft_join(t, NULL);
    if (rc || err || left.err)
        return rc ? rc : err ? err : left.err;
    /* Merge the halves into tmp, then copy back (in parallel too). */
    rc = merge_par(a, h, a + h, n - h, tmp);
    if (rc)
        return rc;
    memcpy(a, tmp, n * sizeof *a);
    return 0;
}

struct sort_args {
    int *a, *tmp;
    size_t n;
    int err;
};

static void *sort_root(void *arg) {
    struct sort_args *s = arg;
    s->err = sort_par(s->a, s->n, s->tmp);
    return NULL;
}

/* Input: a fixed pseudo-random sequence (splitmix64 of the index). */
static void fill(size_t lo, size_t hi, void *ctx) {
    int *a = ctx;
    for (size_t i = lo; i < hi; i++) {
        uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x1234567ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        a[i] = (int)(uint32_t)(z ^ (z >> 31));
    }
}

static double seconds(uint64_t ns) { return (double)ns / 1e9; }

static int fail(const char *what, int rc) {
    fprintf(stderr, "mergesort: %s: %s\n", what, weft_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    unsigned workers = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
    if (n == 0) {
        fprintf(stderr, "usage: mergesort [N [WORKERS]]\n");
        return 2;
    }
    int *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *tmp = malloc(n * sizeof *tmp);
    if (!a || !b || !tmp)
        return fail("malloc", -ENOMEM);
    weft_runtime *rt;
    weft_config cfg = {.workers = workers};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc)
        return fail("weft_runtime_create", rc);
    if ((rc = weft_parallel_for(rt, 0, n, 0, fill, a)))
        return fail("weft_parallel_for", rc);
    memcpy(b, a, n * sizeof *a);

    uint64_t t0 = weft_now();
    qsort(b, n, sizeof *b, cmp_int);
    uint64_t t_qsort = weft_now() - t0;

    struct sort_args s = {a, tmp, n, 0};
    t0 = weft_now();
    rc = weft_run(rt, sort_root, &s, NULL);
    uint64_t t_weft = weft_now() - t0;
    if (rc || s.err)
        return fail("sort", rc ? rc : s.err);
    int wrong = memcmp(a, b, n * sizeof *a) != 0;

    printf("%zu ints, %d workers\n", n, weft_runtime_workers(rt));
    printf("qsort           %8.3f s\n", seconds(t_qsort));
    printf("weft merge sort %8.3f s  (speed-up %.2fx)\n", seconds(t_weft),
           (double)t_qsort / (double)t_weft);
    printf("result %s\n", wrong ? "WRONG" : "matches qsort");
    if ((rc = weft_runtime_destroy(rt)))
        return fail("weft_runtime_destroy", rc);
    free(a);
    free(b);
    free(tmp);
    return wrong;
}
