// Dequantization of the quantized weight types on the device, 32 elements at a time.
//
// Every quantized type's row is a sequence of 32-element "chunks": a whole block for the
// 32-element types, one of the 8 sub-blocks of 32 of a 256-element super-block for the
// K-quants and IQ4_XS. decode(row, c, v) writes the 32 values of chunk c of a row to v,
// computed with the same float operations as the reference dequantize (core/quant_*.cpp):
// products and sums are rounded separately (__fmul_rn / __fsub_rn stop the compiler from
// fusing them), so every value is bit-identical to the reference. Bit layouts are described
// in core/quant_blocks.h.
#pragma once

#include "backend/cuda/common.cuh"
#include "core/k_scales.h"
#include "core/quant_blocks.h"

namespace strata::cuda::quant {

// The 16 IQ4 levels packed into two 64-bit words, looked up without memory accesses.
__device__ __forceinline__ float iq4_level(uint32_t q) {
  constexpr auto pack = [](int first) {
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w |= uint64_t(uint8_t(kvalues_iq4nl[first + i])) << (8 * i);
    return w;
  };
  constexpr uint64_t lo = pack(0), hi = pack(8);
  const uint64_t t = q < 8 ? lo : hi;
  return float(int8_t(uint8_t(t >> (8 * (q & 7)))));
}

// Grouped nibbles of a 32-element 4-bit block: byte i holds element i (low nibble) and
// element i + 16 (high nibble).
template <typename F>
__device__ __forceinline__ void for_nibbles(const uint32_t (&w)[4], F&& f) {
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const uint32_t b = byte_at(w, i);
    f(i, b & 15u);
    f(i + 16, b >> 4);
  }
}

// The byte offsets in a Q4_0 row of format F (kernels.h: RowFormat) of block b's f16 scale
// and of its 16 bytes of nibbles (2-byte aligned in the file's format, 16-byte aligned grouped).
template <RowFormat F>
__host__ __device__ __forceinline__ int64_t q4_0_scale_at(int64_t b) {
  constexpr int64_t kBlock = sizeof(BlockQ4_0);
  return F == RowFormat::grouped8 ? (b >> 3) * (8 * kBlock) + 2 * (b & 7) : b * kBlock;
}
template <RowFormat F>
__host__ __device__ __forceinline__ int64_t q4_0_nibbles_at(int64_t b) {
  constexpr int64_t kBlock = sizeof(BlockQ4_0);
  return F == RowFormat::grouped8 ? (b >> 3) * (8 * kBlock) + 16 + 16 * (b & 7) : b * kBlock + 2;
}

template <RowFormat F>
struct Q4_0In {
  static constexpr int kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const float d = f16_bits_to_f32(load_u16(row + q4_0_scale_at<F>(c)));
    uint32_t w[4];
    load_words<16, F == RowFormat::grouped8 ? 16 : 2>(row + q4_0_nibbles_at<F>(c), w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = float(int(q) - 8) * d; });
  }
};
using Q4_0 = Q4_0In<RowFormat::blocks>;

struct Q4_1 {
  static constexpr int kBytes = sizeof(BlockQ4_1), kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + c * kBytes;
    const float d = f16_bits_to_f32(load_u16(b)), m = f16_bits_to_f32(load_u16(b + 2));
    uint32_t w[4];
    load_words<16, 4>(b + 4, w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = __fadd_rn(__fmul_rn(float(q), d), m); });
  }
};

struct Q5_0 {
  static constexpr int kBytes = sizeof(BlockQ5_0), kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + c * kBytes;
    const float d = f16_bits_to_f32(load_u16(b));
    const uint32_t qh = uint32_t(load_u16(b + 2)) | uint32_t(load_u16(b + 4)) << 16;
    uint32_t w[4];
    load_words<16, 2>(b + 6, w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = float(int(q | ((qh >> i) & 1u) << 4) - 16) * d; });
  }
};

struct Q5_1 {
  static constexpr int kBytes = sizeof(BlockQ5_1), kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + c * kBytes;
    const float d = f16_bits_to_f32(load_u16(b)), m = f16_bits_to_f32(load_u16(b + 2));
    const uint32_t qh = *reinterpret_cast<const uint32_t*>(b + 4);
    uint32_t w[4];
    load_words<16, 8>(b + 8, w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = __fadd_rn(__fmul_rn(float(q | ((qh >> i) & 1u) << 4), d), m); });
  }
};

struct Q8_0 {
  static constexpr int kBytes = sizeof(BlockQ8_0), kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + c * kBytes;
    const float d = f16_bits_to_f32(load_u16(b));
    uint32_t w[8];
    load_words<32, 2>(b + 2, w);
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = float(int8_t(byte_at(w, i))) * d;
  }
};

struct IQ4_NL {
  static constexpr int kBytes = sizeof(BlockIQ4_NL), kChunks = 1;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + c * kBytes;
    const float d = f16_bits_to_f32(load_u16(b));
    uint32_t w[4];
    load_words<16, 2>(b + 2, w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = d * iq4_level(q); });
  }
};

// ---- 256-element super-blocks: chunk c is sub-block j = c % 8 of super-block c / 8 --------

struct Q2_K {
  static constexpr int kBytes = sizeof(BlockQ2_K), kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8), group = j / 4, shift = 2 * (j % 4);  // e = 128 group + 32 (j%4) + l
    const float d = f16_bits_to_f32(load_u16(b + 80)), dmin = f16_bits_to_f32(load_u16(b + 82));
    uint32_t w[8];
    load_words<32, 4>(b + 16 + 32 * group, w);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const uint32_t sc = b[2 * j + half];  // the scale of elements e / 16
      const float step = d * float(sc & 15u), offset = dmin * float(sc >> 4);
#pragma unroll
      for (int l = 16 * half; l < 16 * half + 16; ++l) {
        v[l] = __fsub_rn(__fmul_rn(step, float((byte_at(w, l) >> shift) & 3u)), offset);
      }
    }
  }
};

struct Q3_K {
  static constexpr int kBytes = sizeof(BlockQ3_K), kChunks = 8;
  static __device__ int scale(const uint8_t* s, int j) {  // sub-block of 16, -32..31
    const int low = (s[j % 8] >> (4 * (j / 8))) & 15;
    const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | (high << 4)) - 32;
  }
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8), group = j / 4, shift = 2 * (j % 4);
    const float d = f16_bits_to_f32(load_u16(b + 108));
    uint32_t q[8], h[8];
    load_words<32, 2>(b + 32 + 32 * group, q);
    load_words<32, 2>(b, h);  // hmask: bit j of byte l
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float step = d * float(scale(b + 96, 2 * j + half));
#pragma unroll
      for (int l = 16 * half; l < 16 * half + 16; ++l) {
        const int lv = int(((byte_at(q, l) >> shift) & 3u) | ((byte_at(h, l) >> j) & 1u) << 2);
        v[l] = step * float(lv - 4);
      }
    }
  }
};

struct Q4_K {
  static constexpr int kBytes = sizeof(BlockQ4_K), kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8), shift = 4 * (j % 2);  // e = 64 (j/2) + 32 (j%2) + l
    const float d = f16_bits_to_f32(load_u16(b)), dmin = f16_bits_to_f32(load_u16(b + 2));
    int sc, mn;
    scale_min_6bit(b + 4, j, sc, mn);  // core/k_scales.h
    const float step = d * float(sc), offset = dmin * float(mn);
    uint32_t w[8];
    load_words<32, 16>(b + 16 + 32 * (j / 2), w);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = __fsub_rn(__fmul_rn(step, float((byte_at(w, l) >> shift) & 15u)), offset);
  }
};

struct Q5_K {
  static constexpr int kBytes = sizeof(BlockQ5_K), kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8), shift = 4 * (j % 2);
    const float d = f16_bits_to_f32(load_u16(b)), dmin = f16_bits_to_f32(load_u16(b + 2));
    int sc, mn;
    scale_min_6bit(b + 4, j, sc, mn);  // core/k_scales.h
    const float step = d * float(sc), offset = dmin * float(mn);
    uint32_t w[8], h[8];
    load_words<32, 16>(b + 48 + 32 * (j / 2), w);
    load_words<32, 16>(b + 16, h);  // qh: bit j of byte l
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const uint32_t q = ((byte_at(w, l) >> shift) & 15u) | ((byte_at(h, l) >> j) & 1u) << 4;
      v[l] = __fsub_rn(__fmul_rn(step, float(q)), offset);
    }
  }
};

// The byte offsets in a Q6_K row of format F (kernels.h: RowFormat) of block b's parts: ql (128
// bytes), qh (64), scales (16 int8) and d (f16); in the grouped format ql, qh and scales are
// 16-byte aligned.
struct Q6_KParts {
  int64_t ql, qh, scales, d;
};
template <RowFormat F>
__host__ __device__ __forceinline__ Q6_KParts q6_k_parts(int64_t b) {
  constexpr int64_t kBlock = sizeof(BlockQ6_K);
  if constexpr (F == RowFormat::grouped8) {
    const int64_t run = (b >> 3) * (8 * kBlock), j = b & 7;
    return {run + 128 * j, run + 8 * 128 + 64 * j, run + 8 * 192 + 16 * j, run + 8 * 208 + 2 * j};
  } else {
    const int64_t at = b * kBlock;
    return {at, at + 128, at + 192, at + 208};
  }
}

template <RowFormat F>
struct Q6_KIn {
  static constexpr int kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    constexpr int kAlign = F == RowFormat::grouped8 ? 16 : 2;
    const Q6_KParts p = q6_k_parts<F>(c / 8);
    const int j = int(c % 8), group = j / 4, k = j % 4;  // e = 128 group + 32 k + l
    const float d = f16_bits_to_f32(load_u16(row + p.d));
    uint32_t lo[8], hi[8];
    load_words<32, kAlign>(row + p.ql + 64 * group + 32 * (k & 1), lo);
    load_words<32, kAlign>(row + p.qh + 32 * group, hi);
    const int lo_shift = 4 * (k >> 1), hi_shift = 2 * k;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float step = d * float(int8_t(row[p.scales + 2 * j + half]));
#pragma unroll
      for (int l = 16 * half; l < 16 * half + 16; ++l) {
        const int q = int(((byte_at(lo, l) >> lo_shift) & 15u) | ((byte_at(hi, l) >> hi_shift) & 3u) << 4);
        v[l] = step * float(q - 32);
      }
    }
  }
};
using Q6_K = Q6_KIn<RowFormat::blocks>;

struct Q8_K {
  static constexpr int kBytes = sizeof(BlockQ8_K), kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8);
    const float d = *reinterpret_cast<const float*>(b);
    uint32_t w[8];
    load_words<32, 4>(b + 4 + 32 * j, w);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = d * float(int8_t(byte_at(w, l)));
  }
};

struct IQ4_XS {
  static constexpr int kBytes = sizeof(BlockIQ4_XS), kChunks = 8;
  static __device__ void decode(const uint8_t* row, int64_t c, float (&v)[32]) {
    const uint8_t* b = row + (c / 8) * kBytes;
    const int j = int(c % 8);
    const float d = f16_bits_to_f32(load_u16(b));
    const int low = (b[4 + j / 2] >> (4 * (j % 2))) & 15;
    const int high = (load_u16(b + 2) >> (2 * j)) & 3;
    const float dl = d * float((low | high << 4) - 32);
    uint32_t w[4];
    load_words<16, 8>(b + 8 + 16 * j, w);
    for_nibbles(w, [&](int i, uint32_t q) { v[i] = dl * iq4_level(q); });
  }
};

// A type as a value: dispatch passes Tag<Traits>{} to a generic lambda, which takes the
// traits back as typename decltype(tag)::type.
template <typename T>
struct Tag {
  using type = T;
};

// Calls f(Tag<Traits>{}) for a 32-element block type; returns false for others.
template <typename F>
bool dispatch_blocks32(DType type, F&& f) {
  switch (type) {
    case DType::Q4_0:
      f(Tag<Q4_0>{});
      return true;
    case DType::Q4_1:
      f(Tag<Q4_1>{});
      return true;
    case DType::Q5_0:
      f(Tag<Q5_0>{});
      return true;
    case DType::Q5_1:
      f(Tag<Q5_1>{});
      return true;
    case DType::Q8_0:
      f(Tag<Q8_0>{});
      return true;
    case DType::IQ4_NL:
      f(Tag<IQ4_NL>{});
      return true;
    default:
      return false;
  }
}

// The same for the 256-element super-block types.
template <typename F>
bool dispatch_blocks256(DType type, F&& f) {
  switch (type) {
    case DType::Q2_K:
      f(Tag<Q2_K>{});
      return true;
    case DType::Q3_K:
      f(Tag<Q3_K>{});
      return true;
    case DType::Q4_K:
      f(Tag<Q4_K>{});
      return true;
    case DType::Q5_K:
      f(Tag<Q5_K>{});
      return true;
    case DType::Q6_K:
      f(Tag<Q6_K>{});
      return true;
    case DType::Q8_K:
      f(Tag<Q8_K>{});
      return true;
    case DType::IQ4_XS:
      f(Tag<IQ4_XS>{});
      return true;
    default:
      return false;
  }
}

// Either.
template <typename F>
bool dispatch_quant(DType type, F&& f) {
  return dispatch_blocks32(type, f) || dispatch_blocks256(type, f);
}

// The same for a weight's type and format (grouped8: Q4_0 and Q6_K, kernels.h).
template <typename F>
bool dispatch_quant(WeightType type, F&& f) {
  if (type.format == RowFormat::blocks) return dispatch_quant(type.type, f);
  if (type.format != RowFormat::grouped8) return false;
  switch (type.type) {
    case DType::Q4_0:
      f(Tag<Q4_0In<RowFormat::grouped8>>{});
      return true;
    case DType::Q6_K:
      f(Tag<Q6_KIn<RowFormat::grouped8>>{});
      return true;
    default:
      return false;
  }
}
template <typename F>
bool dispatch_blocks32(WeightType type, F&& f) {
  return type_traits(type.type).block_size == 32 && dispatch_quant(type, f);
}
template <typename F>
bool dispatch_blocks256(WeightType type, F&& f) {
  return type_traits(type.type).block_size == 256 && dispatch_quant(type, f);
}

}  // namespace strata::cuda::quant
