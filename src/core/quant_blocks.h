// Block layouts of the quantized types, byte for byte as GGUF files store them (the ggml
// definitions). Scales stored as f16 are kept as raw uint16_t bits; use f16_to_f32.
#pragma once

#include <cstdint>

namespace strata {

inline constexpr int QK4_0 = 32;
inline constexpr int QK4_1 = 32;
inline constexpr int QK5_0 = 32;
inline constexpr int QK5_1 = 32;
inline constexpr int QK8_0 = 32;
inline constexpr int QK8_1 = 32;
inline constexpr int QK4_NL = 32;
inline constexpr int QK_K = 256;         // super-block size of the K-quants and IQ types
inline constexpr int K_SCALE_SIZE = 12;  // packed 6-bit scales and mins of Q4_K / Q5_K

// ---- 32-element blocks ----------------------------------------------------------------
// x[i] = d * (q[i] - 8); element i is the low nibble of qs[i], element i+16 the high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// x[i] = d * q[i] + m; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// x[i] = d * (q[i] - 16); low 4 bits as Q4_0, bit 4 of element i is bit i of qh (LE u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// x[i] = d * q[i] + m; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// x[i] = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// x[i] = d * qs[i]; s = d * sum(qs) (an activation type; sized, not computed).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36);

// x[i] = d * kvalues_iq4nl[q[i]]; nibbles as Q4_0.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// ---- 256-element super-blocks (K-quants) ----------------------------------------------
// Element e of a super-block (0..255) is stored as described per type; "bit e/32 of byte
// e%32" is how Q3_K hmask and Q5_K qh keep one extra bit per element.

// 16 sub-blocks of 16 (j = e/16); scales[j] = scale (low 4 bits) | min (high 4 bits);
// x = d * scale * q - dmin * min, q in 0..3 at bits 2k..2k+1 of qs[32c + l] where
// e = 128c + 32k + l.
struct BlockQ2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 16 sub-blocks of 16 (j = e/16) with 6-bit scales stored + 32 in 12 bytes: low 4 bits of
// scale j in byte j%8 (low nibble for j < 8, high for j >= 8), top 2 bits in byte 8 + j%4 at
// bits 2*(j/4). q = (2 low bits laid out as Q2_K) | (hmask bit e/32 of byte e%32) << 2;
// x = d * (scale - 32) * (q - 4): a set hmask bit means "no -4 offset".
struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 8 sub-blocks of 32 (j = e/32) with 6-bit scales and mins packed in 12 bytes: for j < 4
// scale = scales[j] & 63, min = scales[j+4] & 63; for j >= 4 scale = (scales[j+4] & 15) |
// (scales[j-4] >> 6) << 4, min = (scales[j+4] >> 4) | (scales[j] >> 6) << 4.
// x = d * scale * q - dmin * min, q in 0..15 in qs[32c + l] where e = 64c + 32h + l
// (low nibble for h = 0, high for h = 1).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// As Q4_K with a fifth bit per element: q = nibble | (qh bit e/32 of byte e%32) << 4.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// 16 sub-blocks of 16 (j = e/16) with int8 scales; x = d * scales[j] * (q - 32), q in 0..63.
// With e = 128c + 32k + l: low 4 bits in ql[64c + 32(k&1) + l] (low nibble for k < 2, high
// for k >= 2), high 2 bits at bits 2k..2k+1 of qh[32c + l].
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Activation type of the K-quant dot products: x = d * qs[e] with an f32 d;
// bsums[j] = sum of qs[16j .. 16j+15].
struct BlockQ8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// 8 sub-blocks of 32 with 6-bit scales (low 4 bits in scales_l, high 2 in scales_h),
// x = d * (scale - 32) * kvalues_iq4nl[q].
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[QK_K / 64];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// The 16 non-uniform levels of IQ4_NL and IQ4_XS.
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace strata
