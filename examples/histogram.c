/*
 * examples/histogram.c - a histogram of generated data with
 * weft_parallel_reduce.
 *
 * Sample i is the sum of four uniform values derived from i (a rough bell
 * curve), computed on the fly, so the data set needs no memory. Each
 * piece of the range counts its samples into its own 64-bucket
 * accumulator (512 bytes, copied from the zeroed identity), and the
 * combine adds two histograms bucket by bucket. The result is checked
 * against a sequential loop and drawn as bars.
 *
 * Usage: histogram [N [WORKERS]]   (defaults: 50,000,000 samples, one
 *                                   worker per CPU)
 * Exits 0 if the parallel histogram equals the sequential one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#define BUCKETS 64

struct histogram {
    uint64_t count[BUCKETS];
};

static uint64_t splitmix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Bucket of sample i: four 16-bit uniforms summed, scaled to BUCKETS. */
static unsigned bucket_of(size_t i) {
    uint64_t r = splitmix(i * 0x9e3779b97f4a7c15ull);
    uint64_t sum = (r & 0xffff) + (r >> 16 & 0xffff) + (r >> 32 & 0xffff) + (r >> 48);
    return (unsigned)(sum * BUCKETS / (4 * 0x10000));
}

/* Fold samples [lo, hi) into acc. */
static void count_samples(size_t lo, size_t hi, void *acc, void *ctx) {
    (void)ctx;
    struct histogram *h = acc;
    for (size_t i = lo; i < hi; i++)
        h->count[bucket_of(i)]++;
}

/* left += right, bucket by bucket. */
static void add_histograms(void *left, const void *right, void *ctx) {
    (void)ctx;
    struct histogram *l = left;
    const struct histogram *r = right;
    for (int b = 0; b < BUCKETS; b++)
        l->count[b] += r->count[b];
}

static void draw(const struct histogram *h) {
    uint64_t max = 1;
    for (int b = 0; b < BUCKETS; b++)
        if (h->count[b] > max)
            max = h->count[b];
    for (int b = 0; b < BUCKETS; b += 2) {
        uint64_t c = h->count[b] + h->count[b + 1];
        int len = (int)(c * 60 / (2 * max));
        printf("%2d %12llu %.*s\n", b, (unsigned long long)c, len,
               "############################################################");
    }
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 50000000;
    unsigned workers = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
    weft_runtime *rt;
    weft_config cfg = {.workers = workers};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc) {
        fprintf(stderr, "histogram: weft_runtime_create: %s\n", weft_strerror(rc));
        return 1;
    }
    static const struct histogram zero;
    struct histogram par, seq;

    uint64_t t0 = weft_now();
    rc = weft_parallel_reduce(rt, 0, n, 0, &zero, sizeof zero, count_samples,
                              add_histograms, NULL, &par);
    uint64_t t_par = weft_now() - t0;
    if (rc) {
        fprintf(stderr, "histogram: weft_parallel_reduce: %s\n", weft_strerror(rc));
        return 1;
    }
    seq = zero;
    t0 = weft_now();
    count_samples(0, n, &seq, NULL);
    uint64_t t_seq = weft_now() - t0;

    draw(&par);
    int wrong = memcmp(&par, &seq, sizeof par) != 0;
    printf("%zu samples, %d workers: sequential %.3f s, parallel_reduce %.3f s "
           "(speed-up %.2fx); %s\n",
           n, weft_runtime_workers(rt), (double)t_seq / 1e9, (double)t_par / 1e9,
           t_par ? (double)t_seq / (double)t_par : 0.0,
           wrong ? "WRONG" : "equals the sequential histogram");
    rc = weft_runtime_destroy(rt);
    if (rc) {
        fprintf(stderr, "histogram: weft_runtime_destroy: %s\n", weft_strerror(rc));
        return 1;
    }
    return wrong;
}
