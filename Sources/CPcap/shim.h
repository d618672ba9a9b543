// libpcap for Swift: the only header ZoneWatch's capture layer needs.
#include <pcap/pcap.h>
#include <stdio.h>

// The bytes glibc has read from a capture file into the stream's buffer and libpcap has not consumed yet:
// the records after the current packet. PacketSource.upcoming(_:) reads their headers (never copying) so that
// the flows of packets a few places ahead can be prefetched. glibc's FILE fields are part of its public ABI.
static inline const unsigned char *zw_stdio_unread(FILE *stream, long *count) {
    *count = (long)(stream->_IO_read_end - stream->_IO_read_ptr);
    return (const unsigned char *)stream->_IO_read_ptr;
}
