// Counts every heap allocation made in the process that links it, by defining the malloc family on
// top of glibc's __libc_* entry points (no dlsym, so no recursion). Used by scripts/fuzz/dnp3-allocations.
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long count;

void *malloc(size_t n) { count++; return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { count++; return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { count++; return __libc_realloc(p, n); }
void *memalign(size_t align, size_t n) { count++; return __libc_memalign(align, n); }
void *aligned_alloc(size_t align, size_t n) { count++; return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    count++;
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

unsigned long zw_dnp3_allocations(void) { return count; }
