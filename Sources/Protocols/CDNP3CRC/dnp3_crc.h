// The DNP3 link CRC (CRC-16/DNP) of eight octets by carry-less multiplication, for Swift, which has no intrinsic for
// PCLMULQDQ. The table-driven step (DNP3CRC.step8) takes eight dependent-free lookups and about 28 instructions; this
// takes two multiplications and about ten. The instruction is written as inline assembly (as prefetch.h does) so
// that these functions inline into Swift code built for baseline x86-64; whether the CPU has it is asked once
// (zw_dnp3_clmul_available) and the table is used otherwise.
#ifndef ZONEWATCH_DNP3_CRC_H
#define ZONEWATCH_DNP3_CRC_H

#include <stdint.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <emmintrin.h>

// Barrett reduction in the reflected domain. D (eight octets, little-endian: the first octet's low bit is the first
// bit sent, the highest power) times x^16 mod P, P = x^16 + 0x3D65:
//   q = D + floor(D * mu' / x^64)   with mu = floor(x^80 / P) = x^64 + mu'
//   R = (q * 0x3D65) mod x^16
// Reflected, a carry-less product's bit k stands for x^(126-k), so the quotient is the product's low 63 bits
// shifted up one (mu' is stored shifted: ZW_DNP3_MU2), and R is bits 63...78 of q times 0xA6BC (stored shifted:
// bits 64...79, the high half's low 16 bits).
#define ZW_DNP3_MU2 0x124f9628f81e8e38ULL   /* reflected mu' (0x0927cb147c0f471c) << 1 */
#define ZW_DNP3_POLY2 0x14D78ULL            /* reflected polynomial 0xA6BC << 1 */

static inline __attribute__((always_inline)) __m128i zw_clmul_low(__m128i a, __m128i b) {
    __asm__("pclmulqdq $0x00, %1, %0" : "+x"(a) : "x"(b));
    return a;
}

/// The CRC-16/DNP register (before the final complement) after the eight octets of `word` (little-endian), starting
/// from zero. Only when zw_dnp3_clmul_available() is nonzero.
static inline __attribute__((always_inline)) uint16_t zw_dnp3_crc_register64(uint64_t word) {
    uint64_t low = (uint64_t)_mm_cvtsi128_si64(zw_clmul_low(_mm_cvtsi64_si128((long long)word),
                                                            _mm_cvtsi64_si128((long long)ZW_DNP3_MU2)));
    __m128i r = zw_clmul_low(_mm_cvtsi64_si128((long long)(word ^ low)), _mm_cvtsi64_si128((long long)ZW_DNP3_POLY2));
    return (uint16_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
}

/// Nonzero when the CPU has PCLMULQDQ (CPUID leaf 1, ECX bit 1).
static inline int zw_dnp3_clmul_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_PCLMUL) != 0;
}
#else
static inline uint16_t zw_dnp3_crc_register64(uint64_t word) { (void)word; return 0; }
static inline int zw_dnp3_clmul_available(void) { return 0; }
#endif

#endif
