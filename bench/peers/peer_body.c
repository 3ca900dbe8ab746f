/*
 * bench/peers/peer_body.c - the parallel loops' bodies (pfor_balanced,
 * pfor_imbalanced), compiled once and linked into every peer that runs
 * them.
 *
 * Inlined from a header into each peer instead, the same source became
 * different machine code in each (gcc for the C peers, g++ for oneTBB's),
 * and the body's speed, not the runtime's, decided the comparison: on
 * one worker the imbalanced loop took 52.6-53.2 ms in weft's peer against
 * 51.8-52.1 in oneTBB's, the balanced one 47.6-47.9 against 50.8-51.2,
 * while each runtime's two-worker time was half its own one-worker time.
 * Every peer now calls these, once per range it runs (OpenMP's loop: once
 * per index, a call's few nanoseconds against an index's ~110).
 */
#define _POSIX_C_SOURCE 200809L /* peer.h's clock_gettime */

#include "peer.h"

/* A dependent chain of multiply-xorshift rounds: no closed form for the
 * compiler to find. */
static inline uint64_t work(uint64_t i, uint64_t rounds) {
    uint64_t x = i;
    for (uint64_t r = 0; r < rounds; r++) {
        x ^= x >> 31;
        x *= 0x9e3779b97f4a7c15ull;
        x += r;
    }
    return x;
}

uint64_t peer_pfor_balanced_range(uint64_t lo, uint64_t hi) {
    uint64_t sum = 0;
    for (uint64_t i = lo; i < hi; i++)
        sum += work(i, PEER_PFOR_BAL_ROUNDS);
    return sum;
}

uint64_t peer_pfor_imbalanced_range(uint64_t lo, uint64_t hi) {
    uint64_t sum = 0;
    for (uint64_t i = lo; i < hi; i++)
        sum += work(i, 1 + i * PEER_PFOR_IMB_ROUNDS / PEER_PFOR_N);
    return sum;
}
