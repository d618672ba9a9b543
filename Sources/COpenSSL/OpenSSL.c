// OpenSSL loaded on first use (see COpenSSL.h): each function the Swift code calls is defined here under its own
// name and forwards to the library's, resolved once with dlsym. The definitions are hidden (not exported), so
// once libssl and libcrypto are loaded their own calls to these names still bind within the libraries.
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "COpenSSL.h"

// The versioned file names the packages' runtime libraries install (libssl3 on Debian 12: libssl.so.3).
#define ZW_TEXT(x) #x
#define ZW_SONAME(lib, version) "lib" lib ".so." ZW_TEXT(version)
#define ZW_CRYPTO_FILE ZW_SONAME("crypto", OPENSSL_SHLIB_VERSION)
#define ZW_SSL_FILE ZW_SONAME("ssl", OPENSSL_SHLIB_VERSION)

// The functions used, as (return type, name, parameters, arguments); VOID for those returning nothing.
// A signature that differs from the header's fails the compilation ("conflicting types").
#define ZW_CRYPTO_FUNCTIONS(FUNCTION, VOID) \
    FUNCTION(int, SHA1_Init, (SHA_CTX *c), (c)) \
    FUNCTION(int, SHA1_Update, (SHA_CTX *c, const void *data, size_t len), (c, data, len)) \
    FUNCTION(int, SHA1_Final, (unsigned char *md, SHA_CTX *c), (md, c)) \
    FUNCTION(unsigned char *, SHA1, (const unsigned char *d, size_t n, unsigned char *md), (d, n, md)) \
    FUNCTION(EVP_MD *, EVP_MD_fetch, (OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties), \
             (ctx, algorithm, properties)) \
    FUNCTION(int, EVP_Digest, (const void *data, size_t count, unsigned char *md, unsigned int *size, \
                               const EVP_MD *type, ENGINE *impl), (data, count, md, size, type, impl)) \
    FUNCTION(unsigned long, ERR_get_error, (void), ()) \
    VOID(ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len)) \
    VOID(ERR_clear_error, (void), ()) \
    FUNCTION(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM *param, const char *ipasc), (param, ipasc)) \
    FUNCTION(int, X509_VERIFY_PARAM_set1_host, (X509_VERIFY_PARAM *param, const char *name, size_t namelen), \
             (param, name, namelen)) \
    FUNCTION(const char *, X509_verify_cert_error_string, (long n), (n)) \
    FUNCTION(uint64_t, BIO_number_written, (BIO *bio), (bio))

#define ZW_SSL_FUNCTIONS(FUNCTION, VOID) \
    FUNCTION(const SSL_METHOD *, TLS_client_method, (void), ()) \
    FUNCTION(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *meth), (meth)) \
    FUNCTION(long, SSL_CTX_ctrl, (SSL_CTX *ctx, int cmd, long larg, void *parg), (ctx, cmd, larg, parg)) \
    FUNCTION(int, SSL_CTX_load_verify_locations, (SSL_CTX *ctx, const char *CAfile, const char *CApath), \
             (ctx, CAfile, CApath)) \
    FUNCTION(int, SSL_CTX_set_default_verify_paths, (SSL_CTX *ctx), (ctx)) \
    VOID(SSL_CTX_set_verify, (SSL_CTX *ctx, int mode, SSL_verify_cb callback), (ctx, mode, callback)) \
    FUNCTION(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX *ctx, const char *file), (ctx, file)) \
    FUNCTION(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX *ctx, const char *file, int type), (ctx, file, type)) \
    FUNCTION(int, SSL_CTX_check_private_key, (const SSL_CTX *ctx), (ctx)) \
    VOID(SSL_CTX_free, (SSL_CTX *ctx), (ctx)) \
    FUNCTION(SSL *, SSL_new, (SSL_CTX *ctx), (ctx)) \
    FUNCTION(int, SSL_set_fd, (SSL *s, int fd), (s, fd)) \
    FUNCTION(X509_VERIFY_PARAM *, SSL_get0_param, (SSL *ssl), (ssl)) \
    FUNCTION(long, SSL_ctrl, (SSL *ssl, int cmd, long larg, void *parg), (ssl, cmd, larg, parg)) \
    VOID(SSL_free, (SSL *ssl), (ssl)) \
    FUNCTION(int, SSL_connect, (SSL *ssl), (ssl)) \
    FUNCTION(int, SSL_get_error, (const SSL *s, int ret_code), (s, ret_code)) \
    FUNCTION(long, SSL_get_verify_result, (const SSL *ssl), (ssl)) \
    FUNCTION(int, SSL_write, (SSL *ssl, const void *buf, int num), (ssl, buf, num)) \
    FUNCTION(int, SSL_read, (SSL *ssl, void *buf, int num), (ssl, buf, num)) \
    FUNCTION(int, SSL_shutdown, (SSL *s), (s)) \
    FUNCTION(BIO *, SSL_get_wbio, (const SSL *s), (s))

// SHA1_Init and friends are deprecated in OpenSSL 3; zw_sha1 keeps them on purpose (see there).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// One pointer per function, typed from the header's declaration.
#define ZW_POINTER(type, name, parameters, arguments) static __typeof__(&name) zw_##name;
#define ZW_VOID_POINTER(name, parameters, arguments) static __typeof__(&name) zw_##name;
ZW_CRYPTO_FUNCTIONS(ZW_POINTER, ZW_VOID_POINTER)
ZW_SSL_FUNCTIONS(ZW_POINTER, ZW_VOID_POINTER)

struct zw_symbol { const char *name; void **slot; };
#define ZW_SYMBOL(type, name, parameters, arguments) { #name, (void **)&zw_##name },
#define ZW_VOID_SYMBOL(name, parameters, arguments) { #name, (void **)&zw_##name },
static const struct zw_symbol zw_crypto_symbols[] = { ZW_CRYPTO_FUNCTIONS(ZW_SYMBOL, ZW_VOID_SYMBOL) };
static const struct zw_symbol zw_ssl_symbols[] = { ZW_SSL_FUNCTIONS(ZW_SYMBOL, ZW_VOID_SYMBOL) };

/// Opens `file` and fills the pointers of `symbols`: NULL, or why not (written to `message`).
static const char *zw_load(const char *file, const struct zw_symbol *symbols, size_t count,
                           char *message, size_t capacity) {
    void *library = dlopen(file, RTLD_LAZY | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(message, capacity, "cannot load OpenSSL: %s", dlerror());
        return message;
    }
    for (size_t i = 0; i < count; i++) {
        void *address = dlsym(library, symbols[i].name);
        if (address == NULL) {
            snprintf(message, capacity, "cannot load OpenSSL: %s has no %s", file, symbols[i].name);
            return message;
        }
        *symbols[i].slot = address;
    }
    return NULL;
}

// Each library is loaded at most once, by whichever thread comes first; the others wait in pthread_once.
// `*_ready` lets the hot path (a Community ID per new flow) skip the call once loaded.
static pthread_once_t zw_crypto_once = PTHREAD_ONCE_INIT, zw_ssl_once = PTHREAD_ONCE_INIT;
static const char *zw_crypto_failure, *zw_ssl_failure;
static char zw_crypto_message[512], zw_ssl_message[512];
static int zw_crypto_ready;

static void zw_load_crypto(void) {
    zw_crypto_failure = zw_load(ZW_CRYPTO_FILE, zw_crypto_symbols, sizeof zw_crypto_symbols / sizeof *zw_crypto_symbols,
                                zw_crypto_message, sizeof zw_crypto_message);
    if (zw_crypto_failure == NULL) __atomic_store_n(&zw_crypto_ready, 1, __ATOMIC_RELEASE);
}

static void zw_load_ssl(void) {
    pthread_once(&zw_crypto_once, zw_load_crypto);
    zw_ssl_failure = zw_crypto_failure;
    if (zw_ssl_failure == NULL) {
        zw_ssl_failure = zw_load(ZW_SSL_FILE, zw_ssl_symbols, sizeof zw_ssl_symbols / sizeof *zw_ssl_symbols,
                                 zw_ssl_message, sizeof zw_ssl_message);
    }
}

const char *zw_openssl_load_ssl(void) {
    pthread_once(&zw_ssl_once, zw_load_ssl);
    return zw_ssl_failure;
}

/// A missing library where the caller cannot report it (a Community ID): the message, and exit status 1.
/// Only the first thread to get here exits (exit from two threads at once is undefined); others wait for it.
static void zw_fail(const char *message) {
    static int failing;
    if (__atomic_exchange_n(&failing, 1, __ATOMIC_ACQ_REL) == 0) {
        fprintf(stderr, "zonewatch: %s\n", message);
        exit(1);
    }
    for (;;) pause();
}

static inline void zw_require_crypto(void) {
    if (__builtin_expect(__atomic_load_n(&zw_crypto_ready, __ATOMIC_ACQUIRE), 1)) return;
    pthread_once(&zw_crypto_once, zw_load_crypto);
    if (zw_crypto_failure != NULL) zw_fail(zw_crypto_failure);
}

static inline void zw_require_ssl(void) {
    const char *failure = zw_openssl_load_ssl();
    if (failure != NULL) zw_fail(failure);
}

// The forwarding definitions, hidden: linked into the executable, never exported.
#define ZW_HIDDEN __attribute__((visibility("hidden")))
#define ZW_CRYPTO_FORWARD(type, name, parameters, arguments) \
    ZW_HIDDEN type name parameters { zw_require_crypto(); return zw_##name arguments; }
#define ZW_CRYPTO_VOID_FORWARD(name, parameters, arguments) \
    ZW_HIDDEN void name parameters { zw_require_crypto(); zw_##name arguments; }
#define ZW_SSL_FORWARD(type, name, parameters, arguments) \
    ZW_HIDDEN type name parameters { zw_require_ssl(); return zw_##name arguments; }
#define ZW_SSL_VOID_FORWARD(name, parameters, arguments) \
    ZW_HIDDEN void name parameters { zw_require_ssl(); zw_##name arguments; }
ZW_CRYPTO_FUNCTIONS(ZW_CRYPTO_FORWARD, ZW_CRYPTO_VOID_FORWARD)
ZW_SSL_FUNCTIONS(ZW_SSL_FORWARD, ZW_SSL_VOID_FORWARD)

// SHA-1 with OpenSSL's own SHA-1 functions rather than EVP: OpenSSL 3 deprecates them in favour of EVP, but EVP
// fetches the algorithm through its provider machinery (~5 million instructions of library set-up at the first
// fetch and ~1,300 more per digest than the hash itself). The digest is the same.
int zw_sha1(const unsigned char *data, size_t length, unsigned char *digest) {
    zw_require_crypto();
    SHA_CTX context;
    if (zw_SHA1_Init(&context) != 1 || zw_SHA1_Update(&context, data, length) != 1) return 0;
    return zw_SHA1_Final(digest, &context);
}
