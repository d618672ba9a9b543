// libpcap for Swift: the only header ZoneWatch's capture layer needs.
#include <pcap/pcap.h>
#include <stdio.h>
