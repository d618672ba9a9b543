/*
 * malloc_count.so: an LD_PRELOAD heap-call counter for scripts/bench.
 *
 *   LD_PRELOAD=./malloc_count.so MALLOC_COUNT_OUT=counts.txt ./program ...
 *
 * Interposes malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign, valloc and pvalloc,
 * counts every call (relaxed atomics: the program may have threads) and forwards to glibc's own
 * implementations (__libc_malloc and friends, exported by glibc for exactly this), so no dlsym bootstrap is
 * needed. At exit (a destructor: runs after exit() and return from main, not after _exit) it writes one line
 *
 *   malloc_count: allocs A malloc M calloc C realloc R memalign L free F bytes B
 *
 * to the file named by MALLOC_COUNT_OUT (appending), or to stderr. "allocs" is M + C + R + L: every call
 * that can take memory from the heap (realloc included, since growing a buffer is an allocation).
 *
 * Build: cc -O2 -shared -fPIC -o malloc_count.so malloc_count.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static unsigned long long n_malloc, n_calloc, n_realloc, n_memalign, n_free, n_bytes;

#define COUNT(var, n) __atomic_fetch_add(&(var), (n), __ATOMIC_RELAXED)

void *malloc(size_t size) {
    COUNT(n_malloc, 1);
    COUNT(n_bytes, size);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    COUNT(n_calloc, 1);
    COUNT(n_bytes, count * size);
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size) {
    COUNT(n_realloc, 1);
    COUNT(n_bytes, size);
    return __libc_realloc(ptr, size);
}

void free(void *ptr) {
    if (ptr) COUNT(n_free, 1);
    __libc_free(ptr);
}

void *memalign(size_t alignment, size_t size) {
    COUNT(n_memalign, 1);
    COUNT(n_bytes, size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size) { return memalign((size_t)sysconf(_SC_PAGESIZE), size); }

void *pvalloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, (size + page - 1) & ~(page - 1));
}

__attribute__((destructor)) static void malloc_count_report(void) {
    char line[256];
    unsigned long long m = __atomic_load_n(&n_malloc, __ATOMIC_RELAXED), c = __atomic_load_n(&n_calloc, __ATOMIC_RELAXED),
                       r = __atomic_load_n(&n_realloc, __ATOMIC_RELAXED), l = __atomic_load_n(&n_memalign, __ATOMIC_RELAXED),
                       f = __atomic_load_n(&n_free, __ATOMIC_RELAXED), b = __atomic_load_n(&n_bytes, __ATOMIC_RELAXED);
    int len = snprintf(line, sizeof line, "malloc_count: allocs %llu malloc %llu calloc %llu realloc %llu memalign %llu free %llu bytes %llu\n",
                       m + c + r + l, m, c, r, l, f, b);
    if (len <= 0) return;
    int fd = 2;
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (path && *path) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) fd = 2;
    }
    ssize_t w = write(fd, line, (size_t)len);
    (void)w;
    if (fd != 2) close(fd);
}
