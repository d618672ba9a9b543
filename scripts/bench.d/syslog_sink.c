/*
 * syslog_sink — a syslog-over-TCP receiver for scripts/bench (section siem): listens on 127.0.0.1 only, takes
 * connections one after the other, reads everything each one sends and counts whole RFC 6587 frames, so the
 * bench can check that every alert zonewatch produced arrived and how fast.
 *
 *   syslog_sink [-l] PORT_FILE REPORT_FILE MAX_SECONDS
 *
 * Binds an ephemeral port and writes its number to PORT_FILE (written to a temporary name and renamed, so a
 * reader never sees half of it). For every connection, when the sender closes it, appends one line to
 * REPORT_FILE:
 *
 *   frames bytes malformed accept_ns first_byte_ns last_frame_ns eof_ns
 *
 * (CLOCK_MONOTONIC nanoseconds). Octet counting (MSG-LEN SP MSG) by default, -l: LF-terminated messages. A
 * frame is malformed when its length field is not a decimal number or its message does not start with '<'
 * (every syslog PRI does). Exits after MAX_SECONDS whatever happens (alarm), so a stuck bench cannot leave it
 * behind for long; scripts/bench also kills it on exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "syslog_sink: %s: %s\n", what, strerror(errno));
    exit(1);
}

struct counts {
    uint64_t frames, bytes, malformed, first_ns, last_ns;
};

/* Octet-counting parser state carried across reads. */
struct octet_state {
    int64_t need;     /* bytes left of the current message; -1 while reading MSG-LEN */
    int64_t length;   /* MSG-LEN digits so far */
    int digits;       /* how many */
    int at_start;     /* the next message byte is its first */
};

static void count_octet(struct octet_state *s, const unsigned char *p, size_t n, struct counts *c, int *completed) {
    size_t i = 0;
    while (i < n) {
        if (s->need < 0) {
            unsigned char b = p[i++];
            if (b == ' ') {
                if (s->digits == 0 || s->length == 0) c->malformed++;
                s->need = s->length; s->length = 0; s->digits = 0; s->at_start = 1;
                if (s->need == 0) { c->frames++; (*completed)++; s->need = -1; }
            } else if (b >= '0' && b <= '9' && s->digits < 12) {
                s->length = s->length * 10 + (b - '0'); s->digits++;
            } else {
                c->malformed++;   /* lost sync: count it; the numbers that follow will not add up */
                s->length = 0; s->digits = 0;
            }
        } else {
            if (s->at_start) { if (p[i] != '<') c->malformed++; s->at_start = 0; }
            size_t take = (size_t)s->need < n - i ? (size_t)s->need : n - i;
            s->need -= (int64_t)take; i += take;
            if (s->need == 0) { c->frames++; (*completed)++; s->need = -1; }
        }
    }
}

static void count_lf(int *at_start, const unsigned char *p, size_t n, struct counts *c, int *completed) {
    const unsigned char *end = p + n;
    while (p < end) {
        if (*at_start) { if (*p != '<') c->malformed++; *at_start = 0; }
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        c->frames++; (*completed)++;
        p = nl + 1;
        *at_start = 1;
    }
}

int main(int argc, char **argv) {
    int lf = 0, arg = 1;
    if (argc > 1 && strcmp(argv[1], "-l") == 0) { lf = 1; arg = 2; }
    if (argc - arg != 3) {
        fprintf(stderr, "usage: syslog_sink [-l] PORT_FILE REPORT_FILE MAX_SECONDS\n");
        return 2;
    }
    const char *port_file = argv[arg], *report_file = argv[arg + 1];
    unsigned max_seconds = (unsigned)strtoul(argv[arg + 2], NULL, 10);
    alarm(max_seconds > 0 ? max_seconds : 1);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind 127.0.0.1");
    if (listen(listener, 8) != 0) die("listen");
    if (getsockname(listener, (struct sockaddr *)&addr, &len) != 0) die("getsockname");

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *pf = fopen(tmp, "w");
    if (!pf) die(tmp);
    fprintf(pf, "%u\n", ntohs(addr.sin_port));
    if (fclose(pf) != 0 || rename(tmp, port_file) != 0) die(port_file);

    static unsigned char buf[1 << 20];
    for (;;) {
        int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) { if (errno == EINTR) continue; die("accept"); }
        struct counts c = {0};
        struct octet_state s = { .need = -1 };
        int lf_start = 1;
        uint64_t accepted = now_ns();
        for (;;) {
            ssize_t n = recv(conn, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (c.bytes == 0) c.first_ns = now_ns();
            c.bytes += (uint64_t)n;
            int completed = 0;
            if (lf) count_lf(&lf_start, buf, (size_t)n, &c, &completed);
            else count_octet(&s, buf, (size_t)n, &c, &completed);
            if (completed) c.last_ns = now_ns();
        }
        uint64_t eof = now_ns();
        close(conn);
        if ((!lf && s.need >= 0) || (lf && !lf_start) || (!lf && s.digits > 0)) c.malformed++;   /* cut short */
        char line[256];
        int m = snprintf(line, sizeof line, "%llu %llu %llu %llu %llu %llu %llu\n",
                         (unsigned long long)c.frames, (unsigned long long)c.bytes, (unsigned long long)c.malformed,
                         (unsigned long long)accepted, (unsigned long long)c.first_ns,
                         (unsigned long long)c.last_ns, (unsigned long long)eof);
        int rf = open(report_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (rf < 0) die(report_file);
        if (write(rf, line, (size_t)m) != m) die(report_file);
        close(rf);
    }
}
