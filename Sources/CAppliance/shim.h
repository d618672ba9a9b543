// Linux process-privilege calls for Swift. prctl(2) and syscall(2) are C variadic functions, which Swift
// cannot call, and glibc has no header for capget/capset; these fixed-signature inline wrappers fill the gap.
#ifndef ZONEWATCH_CAPPLIANCE_H
#define ZONEWATCH_CAPPLIANCE_H
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>
#include <linux/capability.h>

/// prctl(2) with every argument spelled out.
static inline int zw_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}

/// Clears the effective, permitted and inheritable capability sets of the calling thread (capset(2), v3).
static inline int zw_clear_capabilities(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    return (int)syscall(SYS_capset, &header, data);
}

/// The effective and permitted capability sets of the calling thread as 64-bit masks (capget(2), v3).
static inline int zw_get_capabilities(unsigned long long *effective, unsigned long long *permitted) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    *effective = (unsigned long long)data[0].effective | ((unsigned long long)data[1].effective << 32);
    *permitted = (unsigned long long)data[0].permitted | ((unsigned long long)data[1].permitted << 32);
    return 0;
}

// glibc declares these only with _GNU_SOURCE; the prototypes are the same. glibc's wrappers (not raw syscalls)
// apply the change to every thread of the process.
int setresuid(uid_t ruid, uid_t euid, uid_t suid);
int setresgid(gid_t rgid, gid_t egid, gid_t sgid);
static inline int zw_setresuid(uid_t id) { return setresuid(id, id, id); }
static inline int zw_setresgid(gid_t id) { return setresgid(id, id, id); }

/// setgroups(2) with one group (glibc declares it only under _DEFAULT_SOURCE; grp.h gives it here).
static inline int zw_setgroups1(gid_t gid) { return setgroups(1, &gid); }

/// The thread id (gettid), for naming worker threads in logs.
static inline long zw_gettid(void) { return (long)syscall(SYS_gettid); }

/// A 64-bit word written by one thread and read by another (`QuietVerdictTable`): each value is whole by
/// itself, so no ordering is asked for, only that the compiler neither splits nor caches the access.
static inline __attribute__((always_inline)) unsigned long long zw_load_relaxed_u64(const unsigned long long *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline __attribute__((always_inline)) void zw_store_relaxed_u64(unsigned long long *p, unsigned long long v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/// The same with ordering: the rule word of `QuietVerdictTable`, whose change must not be seen before the verdicts
/// forgotten ahead of it.
static inline __attribute__((always_inline)) unsigned long long zw_load_acquire_u64(const unsigned long long *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline __attribute__((always_inline)) void zw_store_release_u64(unsigned long long *p, unsigned long long v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/// A read prefetch hint (a compiler builtin): a memory-mapped capture file is read ahead of the records in hand.
static inline __attribute__((always_inline)) void zw_prefetch_read(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
