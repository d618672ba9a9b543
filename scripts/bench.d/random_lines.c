/*
 * random_lines: how fast this machine serves cache lines from random places, for scripts/bench's machine line.
 * With 100,000 flows every packet reads a few lines of flow tables far larger than the cache (flow index, flow
 * state, dissector state, the detector's entry): what one such line costs bounds the time a packet can take.
 *
 *   random_lines MIB
 *
 * Prints "NS_PER_LINE" for 4,194,304 independent loads, two rounds, of one byte from random 64-byte lines of MIB
 * mebibytes of anonymous memory in transparent huge pages (as zonewatch's tables): the loads do not depend on one
 * another, so the figure is the memory system's throughput for random lines, not one load's latency.
 *
 * Build: cc -O2 -o random_lines random_lines.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: random_lines MIB\n");
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) << 20, huge = 2u << 20;
    char *block = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) { perror("random_lines: mmap"); return 1; }
    char *p = (char *)(((uintptr_t)block + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(p, bytes, 14 /* MADV_HUGEPAGE */);
    for (size_t i = 0; i < bytes; i += 64) p[i] = (char)(i >> 6);
    size_t lines = bytes / 64, n = (size_t)1 << 22;
    uint32_t *line = malloc(n * sizeof *line);
    if (!line) { perror("random_lines: malloc"); return 1; }
    uint64_t x = 88172645463325252ull;   /* xorshift64: fixed, so every run reads the same lines */
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; line[i] = (uint32_t)(x % lines); }
    struct timespec a, b;
    unsigned long sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < n; i++) sum += (unsigned char)p[(size_t)line[i] * 64];
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (2.0 * (double)n);
    volatile unsigned long used = sum;   /* the loads are not optimised away */
    (void)used;
    printf("%.2f\n", ns);
    return 0;
}
