/*
 * fresh_pages: writes one byte to every 4 KiB page of MIB mebibytes of new anonymous memory, asked for in
 * transparent huge pages as zonewatch's flow tables are (MADV_HUGEPAGE), and exits. scripts/bench runs it under
 * runstat to show what first touching fresh memory costs on the machine: zeroing it takes a few milliseconds at
 * memory bandwidth, but a virtual machine whose host backs guest memory lazily (or takes freed pages back: free
 * page reporting) can charge the guest many times that, as system time, to any program that grows its tables.
 *
 *   fresh_pages MIB
 *
 * Build: cc -O2 -o fresh_pages fresh_pages.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: fresh_pages MIB\n");
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) << 20;
    volatile char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { perror("fresh_pages: mmap"); return 1; }
    madvise((void *)p, bytes, 14 /* MADV_HUGEPAGE */);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    return 0;
}
