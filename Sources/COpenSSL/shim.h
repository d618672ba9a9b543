// OpenSSL for Swift: SHA-1 (Community ID) and TLS (RFC 5425 syslog).
// Community ID uses the low-level SHA1_* calls, deprecated in OpenSSL 3 in favour of EVP (whose first use
// initialises the library: ~1 ms a process); they are still built and supported, so without the warnings.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
