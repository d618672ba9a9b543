// A cache prefetch hint for Swift, which has no intrinsic for it. The flow table uses it to start loading the
// flows of packets a few places ahead while the current one is processed (see FlowTable.prefetch).
#ifndef ZONEWATCH_PREFETCH_H
#define ZONEWATCH_PREFETCH_H

// For writing: the packet updates the flow's counters. Clang emits PREFETCHW for that only when told the CPU has
// it (-mprfchw), which SwiftPM does not pass; the x86-64 CPUs ZoneWatch runs on have it (AMD since K8, Intel since
// Broadwell).
static inline __attribute__((always_inline)) void zw_prefetch(const void *address) {
#if defined(__x86_64__)
    __asm__("prefetchw %0" : : "m"(*(const char *)address));
#else
    __builtin_prefetch(address, 1, 3);
#endif
}

#endif
