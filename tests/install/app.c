/*
 * tests/install/app.c - a user program built against the installed weft
 * (pkg-config and find_package), outside the source tree. Exits non-zero
 * if any result is wrong.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

#define N 100

static void *leaf(void *arg) {
    weft_yield();
    return (void *)((uintptr_t)arg * 2);
}

static void *root(void *arg) {
    uintptr_t n = (uintptr_t)arg, sum = 0;
    weft_task *t[N];
    for (uintptr_t i = 0; i < n; i++)
        if (weft_spawn(NULL, leaf, (void *)i, &t[i]) != 0)
            return NULL;
    for (uintptr_t i = 0; i < n; i++) {
        void *r = NULL;
        if (weft_join(t[i], &r) != 0)
            return NULL;
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

int main(void) {
    printf("weft %d.%d.%d\n", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
           WEFT_VERSION_PATCH);
    weft_runtime *rt = NULL;
    weft_config cfg = {.workers = 2};
    int rc = weft_runtime_create(&rt, &cfg);
    if (rc != 0) {
        fprintf(stderr, "weft_runtime_create: %s\n", weft_strerror(rc));
        return 1;
    }
    void *res = NULL;
    rc = weft_run(rt, root, (void *)(uintptr_t)N, &res);
    if (rc != 0 || (uintptr_t)res != (uintptr_t)N * (N - 1)) {
        fprintf(stderr, "weft_run: rc %d, sum %lu\n", rc,
                (unsigned long)(uintptr_t)res);
        return 1;
    }
    weft_task *t = NULL;
    if (weft_spawn(rt, leaf, (void *)21, &t) != 0 || weft_join(t, &res) != 0 ||
        (uintptr_t)res != 42) {
        fprintf(stderr, "spawn/join from main failed\n");
        return 1;
    }
    if (weft_spawn(NULL, leaf, NULL, NULL) != -EINVAL) {
        fprintf(stderr, "weft_spawn(NULL, ...) outside a fiber must fail\n");
        return 1;
    }
    rc = weft_runtime_destroy(rt);
    if (rc != 0) {
        fprintf(stderr, "weft_runtime_destroy: %s\n", weft_strerror(rc));
        return 1;
    }
    puts("ok");
    return 0;
}
