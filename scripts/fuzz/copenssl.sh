# Sourced by the fuzz and allocation scripts, which build Sources/Records into one module with swiftc: Records
# imports COpenSSL (a flow context computes its Community ID on first need), a C target that SwiftPM builds for the
# package. Here its module map and object are made by hand; COPENSSL_FLAGS holds what swiftc then needs.
copenssl_flags() {  # copenssl_flags ROOT WORK
  local root="$1" work="$2"
  mkdir -p "$work/copenssl"
  printf 'module COpenSSL {\n  header "%s/Sources/COpenSSL/include/COpenSSL.h"\n  export *\n}\n' "$root" \
    > "$work/copenssl/module.modulemap"
  clang -O2 -c -fPIC -I "$root/Sources/COpenSSL/include" "$root/Sources/COpenSSL/OpenSSL.c" -o "$work/copenssl/OpenSSL.o"
  COPENSSL_FLAGS=(-I "$work/copenssl" "$work/copenssl/OpenSSL.o" -ldl -lpthread)
}
