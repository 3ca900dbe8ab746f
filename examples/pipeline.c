/*
 * examples/pipeline.c - a producer, N transform fibers and a consumer,
 * connected by channels: Go's classic fan-out / fan-in.
 *
 *   pipeline [ITEMS] [--stages N] [--cap C]
 *
 * The producer sends 0..ITEMS-1 on `in`; each of N transform fibers
 * receives a number, squares it (mod 2^64) and sends it on `out`; the
 * consumer adds up what arrives. The producer closes `in` when done; the
 * last transform to finish closes `out` (a wait group counts them). The
 * sum is checked against the closed form, and the throughput printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

struct pipe {
    weft_chan *in, *out;
    uint64_t items;
    unsigned stages;
    size_t cap;
    weft_wg transforms;
};

static void *produce(void *arg) {
    struct pipe *p = arg;
    for (uint64_t i = 0; i < p->items; i++)
        if (weft_chan_send(p->in, &i) != 0)
            return (void *)1;
    return (void *)(uintptr_t)weft_chan_close(p->in);
}

static void *transform(void *arg) {
    struct pipe *p = arg;
    uint64_t v;
    while (weft_chan_recv(p->in, &v) == 0) {
        uint64_t sq = v * v;
        if (weft_chan_send(p->out, &sq) != 0)
            break;
    }
    weft_wg_done(&p->transforms);
    return NULL;
}

/* Closes `out` once every transform is done. */
static void *closer(void *arg) {
    struct pipe *p = arg;
    weft_wg_wait(&p->transforms);
    weft_chan_close(p->out);
    return NULL;
}

static void *consume(void *arg) {
    struct pipe *p = arg;
    uint64_t v, sum = 0, n = 0;
    while (weft_chan_recv(p->out, &v) == 0) {
        sum += v;
        n++;
    }
    return n == p->items ? (void *)(uintptr_t)sum : (void *)(uintptr_t)~sum;
}

/* Sum of i^2 for i < n, mod 2^64 (the same wrap-around as the stage). */
static uint64_t expected_sum(uint64_t n) {
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += i * i;
    return s;
}

static void *run(void *arg) {
    struct pipe *p = arg;
    if (weft_chan_create(&p->in, sizeof(uint64_t), p->cap) != 0 ||
        weft_chan_create(&p->out, sizeof(uint64_t), p->cap) != 0 ||
        weft_wg_init(&p->transforms) != 0 ||
        weft_wg_add(&p->transforms, (int)p->stages) != 0)
        return (void *)1;
    weft_task *prod, *cons, *close_out;
    weft_spawn(NULL, produce, p, &prod);
    for (unsigned i = 0; i < p->stages; i++)
        weft_spawn(NULL, transform, p, NULL);
    weft_spawn(NULL, closer, p, &close_out);
    weft_spawn(NULL, consume, p, &cons);
    void *sum, *prod_rc;
    weft_join(prod, &prod_rc);
    weft_join(cons, &sum);
    weft_join(close_out, NULL);
    weft_chan_destroy(p->in);
    weft_chan_destroy(p->out);
    weft_wg_destroy(&p->transforms);
    return prod_rc ? (void *)1 : sum;
}

int main(int argc, char **argv) {
    uint64_t items = 1000000;
    unsigned stages = 4;
    size_t cap = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stages") == 0 && i + 1 < argc)
            stages = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--cap") == 0 && i + 1 < argc)
            cap = (size_t)atol(argv[++i]);
        else if (argv[i][0] != '-')
            items = (uint64_t)atoll(argv[i]);
        else {
            fprintf(stderr, "usage: %s [ITEMS] [--stages N] [--cap C]\n", argv[0]);
            return 2;
        }
    }
    if (stages < 1 || stages > 100000) {
        fprintf(stderr, "stages must be 1..100000\n");
        return 2;
    }
    weft_runtime *rt;
    if (weft_runtime_create(&rt, NULL) != 0)
        return 1;
    struct pipe p = {.items = items, .stages = stages, .cap = cap};
    uint64_t start = weft_now();
    void *sum;
    int rc = weft_run(rt, run, &p, &sum);
    double secs = (double)(weft_now() - start) / 1e9;
    weft_runtime_destroy(rt);
    uint64_t want = expected_sum(items);
    printf("%llu items through %u transform fibers (channel capacity %zu): "
           "%.3f s, %.2f M items/s\n",
           (unsigned long long)items, stages, cap, secs, (double)items / secs / 1e6);
    if (rc != 0 || (uint64_t)(uintptr_t)sum != want) {
        printf("FAILED: sum %llu, expected %llu\n", (unsigned long long)(uintptr_t)sum,
               (unsigned long long)want);
        return 1;
    }
    printf("sum of squares checked: %llu\n", (unsigned long long)want);
    return 0;
}
