// OpenSSL for Swift: SHA-1 (Community ID) and TLS (RFC 5425 syslog).
//
// The executable does not link libssl or libcrypto: loading them costs every process start-up ~1 ms of
// relocations and page faults, and most runs never hash a Community ID nor open a TLS session. OpenSSL.c
// defines each function used here under OpenSSL's own name (hidden, so libssl's own calls never reach it); the
// first call loads libcrypto.so.3 (and libssl.so.3 for SSL_ functions) with dlopen and forwards to it.
// A function that is not listed in OpenSSL.c fails the link: add it there.
#ifndef ZW_COPENSSL_H
#define ZW_COPENSSL_H

#include <stddef.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/// SHA-1 of a short input (a Community ID's 40 bytes or so); 1 on success. Exits with a message when libcrypto
/// cannot be loaded.
int zw_sha1(const unsigned char *data, size_t length, unsigned char *digest);

/// Loads libssl (and libcrypto) if not yet loaded: NULL on success, else why not (a static string).
/// Call before any SSL_ function; those exit with the same message when the library is missing.
const char *zw_openssl_load_ssl(void);

#endif
