/*
 * runstat: runs a command and reports its resources, for scripts/bench (GNU time prints CPU time in 10 ms
 * steps, too coarse for a bare libpcap loop that takes a few hundred milliseconds).
 *
 *   runstat OUTFILE COMMAND [ARGS...]
 *
 * Runs COMMAND (stdin, stdout and stderr inherited), waits for it with wait4 and writes one line to OUTFILE:
 * "MAXRSS_KB USER_US SYS_US WALL_US". Exits with the command's status (128 + signal when killed).
 *
 * Build: cc -O2 -o runstat runstat.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: runstat OUTFILE COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("runstat: fork"); return 2; }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("runstat: exec");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("runstat: wait4"); return 2; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *out = fopen(argv[1], "w");
    if (!out) { perror("runstat: output"); return 2; }
    long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    fprintf(out, "%ld %lld %lld %lld\n", ru.ru_maxrss,
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, wall);
    fclose(out);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
