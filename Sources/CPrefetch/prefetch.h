// A cache prefetch hint for Swift, which has no intrinsic for it. The flow table uses it to start loading the
// flows of packets a few places ahead while the current one is processed (see FlowTable.prefetch).
#ifndef ZONEWATCH_PREFETCH_H
#define ZONEWATCH_PREFETCH_H

static inline __attribute__((always_inline)) void zw_prefetch(const void *address) {
#if defined(__x86_64__)
    __asm__("prefetchw %0" : : "m"(*(const char *)address));
#else
    __builtin_prefetch(address, 1, 3);   // for writing: the flow's counters are updated
#endif
}

#endif
