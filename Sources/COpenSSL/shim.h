// OpenSSL for Swift: SHA-1 (Community ID) and TLS (RFC 5425 syslog).
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
