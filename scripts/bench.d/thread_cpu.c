/*
 * thread_cpu.so — LD_PRELOAD helper of scripts/bench (section siem): when the process exits it appends
 *
 *   main_thread_cpu_ns process_cpu_ns on_main_thread
 *
 * to the file named by $THREAD_CPU_OUT. zonewatch replay analyses packets on its main thread (one worker) and
 * delivers alerts to a SIEM on an output thread of its own; the process's CPU time (what runstat reports) adds
 * both, so it cannot tell whether delivery slowed the packet path. The main thread's CPU time can: it is
 * exactly what the capture path paid, queueing alerts included, whatever the output thread or the receiver
 * did on the other core.
 *
 * The destructor runs on the thread that called exit(): zonewatch's main thread. on_main_thread is 1 when that
 * is so (gettid() == getpid()); the bench refuses the figure otherwise.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

__attribute__((destructor)) static void report_thread_cpu(void) {
    const char *path = getenv("THREAD_CPU_OUT");
    if (!path) return;
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    unsigned long long thread_ns = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
    unsigned long long process_ns =
        ((unsigned long long)ru.ru_utime.tv_sec + (unsigned long long)ru.ru_stime.tv_sec) * 1000000000ull +
        ((unsigned long long)ru.ru_utime.tv_usec + (unsigned long long)ru.ru_stime.tv_usec) * 1000ull;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%llu %llu %d\n", thread_ns, process_ns, gettid() == getpid());
    fclose(f);
}
