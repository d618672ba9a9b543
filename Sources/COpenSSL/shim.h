// OpenSSL for Swift: SHA-1 (Community ID) and TLS (RFC 5425 syslog).
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

// SHA-1 of a short input (a Community ID's 40 bytes or so) with OpenSSL's own SHA-1, called directly. OpenSSL 3
// deprecates these functions in favour of EVP, but EVP fetches the algorithm through its provider machinery:
// ~5 million instructions of library set-up at the first fetch and ~1,300 more per digest than the hash itself.
// The digest is the same. Scoped so that no other OpenSSL deprecation is hidden.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline int zw_sha1(const unsigned char *data, size_t length, unsigned char *digest) {
    SHA_CTX context;
    if (SHA1_Init(&context) != 1 || SHA1_Update(&context, data, length) != 1) return 0;
    return SHA1_Final(digest, &context);
}
#pragma GCC diagnostic pop
