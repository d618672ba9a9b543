/*
 * pcap_count: the bare libpcap baseline for scripts/bench. Opens an offline capture and counts its packets
 * (and their wire bytes) in a pcap_dispatch callback that does nothing else, so its time is libpcap's own
 * reading cost: the floor any pcap-based analyser pays per packet.
 *
 *   pcap_count [-b BYTES [-u]] FILE
 *
 * Prints "PACKETS packets WIRE_BYTES bytes LOOP_NS ns" on stdout (LOOP_NS: time spent in the dispatch loop
 * alone, from CLOCK_MONOTONIC). -b reads through fopen + setvbuf with a BYTES-sized buffer of our own and
 * pcap_fopen_offline (glibc ignores the size when setvbuf's buffer is NULL, so we supply one), the larger-read
 * variant described in ../shared/reference/style.md part B2; -u also turns stdio's per-call locking of that
 * stream off (__fsetlocking BYCALLER: one thread reads it), as zonewatch does. -V prints libpcap's version
 * string and exits.
 * Exit status: 0 success, 1 read error, 2 usage or open error.
 *
 * Build: cc -O2 -o pcap_count pcap_count.c $(pkg-config --cflags --libs libpcap)
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct counts {
    uint64_t packets;
    uint64_t bytes;
};

static void count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
    struct counts *c = (struct counts *)user;
    c->packets++;
    c->bytes += h->len;
    (void)bytes;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t bufsize = 0;
    int i = 1;
    if (argc == 2 && strcmp(argv[1], "-V") == 0) {
        printf("%s\n", pcap_lib_version());
        return 0;
    }
    int unlocked = 0;
    if (argc >= 4 && strcmp(argv[1], "-b") == 0) {
        bufsize = (size_t)strtoull(argv[2], NULL, 10);
        i = 3;
        if (argc == 5 && strcmp(argv[3], "-u") == 0) {
            unlocked = 1;
            i = 4;
        }
    }
    if (i != argc - 1 || (i >= 3 && bufsize == 0)) {
        fprintf(stderr, "usage: pcap_count [-b BYTES [-u]] FILE | pcap_count -V\n");
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p;
    char *buffer = NULL;
    if (bufsize) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            perror(argv[i]);
            return 2;
        }
        buffer = malloc(bufsize);
        if (!buffer || setvbuf(fp, buffer, _IOFBF, bufsize) != 0) {
            fprintf(stderr, "pcap_count: setvbuf failed\n");
            return 2;
        }
        if (unlocked) __fsetlocking(fp, FSETLOCKING_BYCALLER);
        p = pcap_fopen_offline(fp, err);
    } else {
        p = pcap_open_offline(argv[i], err);
    }
    if (!p) {
        fprintf(stderr, "pcap_count: %s\n", err);
        return 2;
    }
    struct counts c = {0, 0};
    int r;
    uint64_t t0 = now_ns();
    while ((r = pcap_dispatch(p, 4096, count, (u_char *)&c)) > 0) {
    }
    uint64_t t1 = now_ns();
    if (r == PCAP_ERROR) {
        fprintf(stderr, "pcap_count: %s (after %llu packets)\n", pcap_geterr(p), (unsigned long long)c.packets);
        return 1;
    }
    printf("%llu packets %llu bytes %llu ns\n", (unsigned long long)c.packets, (unsigned long long)c.bytes,
           (unsigned long long)(t1 - t0));
    pcap_close(p); /* closes the FILE too */
    free(buffer);
    return 0;
}
