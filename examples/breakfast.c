/*
 * examples/breakfast.c - the coroutine breakfast, three ways.
 *
 * Brewing coffee takes 3 s and toasting a bagel 2 s. Done one after the
 * other, breakfast takes 5 s; started together, as asyncio.gather or two
 * asyncio.create_task calls do, it takes 3 s, because a fiber that sleeps
 * frees its worker for the other.
 *
 *   breakfast                 all three versions
 *   breakfast sync|gather|tasks
 *   breakfast --scale 0.01    the same story, 100 times faster
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static double scale = 1.0;

static uint64_t seconds(double s) { return (uint64_t)(s * scale * (double)WEFT_SEC); }

static void *brew_coffee(void *arg) {
    (void)arg;
    printf("Start brewCoffee()\n");
    weft_sleep(seconds(3));
    printf("End brewCoffee()\n");
    return "Coffee ready";
}

static void *toast_bagel(void *arg) {
    (void)arg;
    printf("Start toastBagel()\n");
    weft_sleep(seconds(2));
    printf("End toastBagel()\n");
    return "Bagel toasted";
}

static void report(const char *coffee, const char *bagel, uint64_t start) {
    double elapsed = (double)(weft_now() - start) / (double)WEFT_SEC;
    printf("Result of brewCoffee : %s\n", coffee);
    printf("Result of toastBagel : %s\n", bagel);
    printf("Total execution time : %.2f seconds\n", elapsed);
}

/* One after the other: 5 s. */
static void *breakfast_sync(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    const char *coffee = brew_coffee(NULL);
    const char *bagel = toast_bagel(NULL);
    report(coffee, bagel, start);
    return NULL;
}

/* asyncio.gather(brewCoffee(), toastBagel()): 3 s. */
static void *breakfast_gather(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    weft_task *tasks[2];
    if (weft_spawn(NULL, brew_coffee, NULL, &tasks[0]) != 0 ||
        weft_spawn(NULL, toast_bagel, NULL, &tasks[1]) != 0)
        abort();
    void *results[2];
    int rc = weft_gather(tasks, 2, results);
    if (rc != 0) {
        fprintf(stderr, "gather: %s\n", weft_strerror(rc));
        return (void *)1;
    }
    report(results[0], results[1], start);
    return NULL;
}

/* Two asyncio.create_task calls, awaited one by one: 3 s as well. */
static void *breakfast_tasks(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    weft_task *coffee_task, *bagel_task;
    if (weft_spawn(NULL, brew_coffee, NULL, &coffee_task) != 0 ||
        weft_spawn(NULL, toast_bagel, NULL, &bagel_task) != 0)
        abort();
    void *coffee, *bagel;
    if (weft_join(coffee_task, &coffee) != 0 || weft_join(bagel_task, &bagel) != 0)
        return (void *)1;
    report(coffee, bagel, start);
    return NULL;
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [sync|gather|tasks|all] [--scale FACTOR]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    const char *which = "all";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = strtod(argv[++i], NULL);
            if (!(scale > 0))
                return usage(argv[0]);
        } else if (strcmp(argv[i], "sync") == 0 || strcmp(argv[i], "gather") == 0 ||
                   strcmp(argv[i], "tasks") == 0 || strcmp(argv[i], "all") == 0) {
            which = argv[i];
        } else {
            return usage(argv[0]);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* One worker, as asyncio runs its tasks on one event loop: sleeping
     * needs no second core, and the two tasks then start in the order
     * they were created, so the story reads as the seed's every time.
     * With more workers they start at once on two cores, and either
     * "Start" line may come first. */
    weft_runtime *rt;
    weft_config cfg = {.workers = 1};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc != 0) {
        fprintf(stderr, "weft_runtime_create: %s\n", weft_strerror(rc));
        return 1;
    }
    static const struct {
        const char *name, *title;
        weft_fn fn;
    } versions[] = {
        {"sync", "Synchronous: one after the other", breakfast_sync},
        {"gather", "Asynchronous: weft_gather", breakfast_gather},
        {"tasks", "Asynchronous: two tasks, joined one by one", breakfast_tasks},
    };
    int failed = 0;
    bool first = true;
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, versions[i].name) != 0)
            continue;
        printf("%s### %s\n", first ? "" : "\n", versions[i].title);
        first = false;
        void *result;
        rc = weft_run(rt, versions[i].fn, NULL, &result);
        if (rc != 0 || result != NULL)
            failed = 1;
    }
    rc = weft_runtime_destroy(rt);
    return failed || rc != 0;
}
