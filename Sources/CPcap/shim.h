// libpcap for Swift: the only header ZoneWatch's capture layer needs.
#include <pcap/pcap.h>
#include <stdio.h>
// __fsetlocking: the replay's capture stream is read by one thread, so stdio need not lock it per fread.
#include <stdio_ext.h>
