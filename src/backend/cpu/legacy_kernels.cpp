// The legacy kernel group (kernel_groups.h): Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights times
// q8_32 activations (ActQ8_32), and the portable path of each.
//
// Every path computes a weight block (d_w, levels q, min m) against an activation block
// (d_x, qs, s) as
//   isum = sum_i q_i * qs_i                      (exact, in integers)
//   dot += float(isum) * (d_w * d_x) [+ m * s]   (the min term for Q4_1 and Q5_1)
// with q = nibble - 8 (Q4_0), nibble | fifth bit << 4, minus 16 for Q5_0, qs (Q8_0). The
// SIMD paths split float(isum) into lanes of partial sums and reduce them at the end, so
// they agree with this path to within float rounding.
#include <cstring>
#include <type_traits>

#include "backend/cpu/kernel_groups.h"
#include "backend/cpu/legacy_kernels_isa.h"
#include "backend/cpu/row_dequantize.h"
#include "core/half.h"

namespace strata::cpu {
namespace {

// A weight block as signed levels: x_i = d * q_i + m.
struct Levels {
  float d;
  float m;
  int8_t q[32];
};

int nibble(const uint8_t* qs, int i) {
  return i < 16 ? qs[i] & 0x0f : qs[i - 16] >> 4;
}

uint32_t fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));  // little-endian u32 (x86)
  return bits;
}

void unpack(const BlockQ4_0& b, Levels& l) {
  l.d = f16_to_f32(b.d);
  l.m = 0.0f;
  for (int i = 0; i < 32; ++i) l.q[i] = int8_t(nibble(b.qs, i) - 8);
}

void unpack(const BlockQ4_1& b, Levels& l) {
  l.d = f16_to_f32(b.d);
  l.m = f16_to_f32(b.m);
  for (int i = 0; i < 32; ++i) l.q[i] = int8_t(nibble(b.qs, i));
}

void unpack(const BlockQ5_0& b, Levels& l) {
  const uint32_t qh = fifth_bits(b.qh);
  l.d = f16_to_f32(b.d);
  l.m = 0.0f;
  for (int i = 0; i < 32; ++i) l.q[i] = int8_t((nibble(b.qs, i) | int((qh >> i) & 1u) << 4) - 16);
}

void unpack(const BlockQ5_1& b, Levels& l) {
  const uint32_t qh = fifth_bits(b.qh);
  l.d = f16_to_f32(b.d);
  l.m = f16_to_f32(b.m);
  for (int i = 0; i < 32; ++i) l.q[i] = int8_t(nibble(b.qs, i) | int((qh >> i) & 1u) << 4);
}

void unpack(const BlockQ8_0& b, Levels& l) {
  l.d = f16_to_f32(b.d);
  l.m = 0.0f;
  std::memcpy(l.q, b.qs, sizeof(l.q));
}

template <typename Block>
constexpr bool kHasMin = std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>;

constexpr int kMaxRows = 4;
constexpr int kMaxCols = 4;

template <typename Block>
void tile_portable(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
                   float* out, size_t out_stride) {
  float sum[kMaxRows][kMaxCols] = {};
  for (int64_t b = 0; b < k / 32; ++b) {
    for (int r = 0; r < nr; ++r) {
      Levels l;
      unpack(reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride)[b], l);
      for (int c = 0; c < nc; ++c) {
        const ActQ8_32& a = reinterpret_cast<const ActQ8_32*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride)[b];
        int isum = 0;
        for (int i = 0; i < 32; ++i) isum += int(l.q[i]) * int(a.qs[i]);
        sum[r][c] += float(isum) * (l.d * a.d);
        if constexpr (kHasMin<Block>) sum[r][c] += l.m * a.s;
      }
    }
  }
  for (int r = 0; r < nr; ++r) {
    for (int c = 0; c < nc; ++c) out[size_t(c) * out_stride + size_t(r)] = sum[r][c];
  }
}

constexpr TypeKernels kQ4_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile_portable<BlockQ4_0>};
constexpr TypeKernels kQ4_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile_portable<BlockQ4_1>};
constexpr TypeKernels kQ5_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile_portable<BlockQ5_0>};
constexpr TypeKernels kQ5_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile_portable<BlockQ5_1>};
constexpr TypeKernels kQ8_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile_portable<BlockQ8_0>};

const TypeKernels* legacy_kernels_portable(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kQ4_0;
    case DType::Q4_1:
      return &kQ4_1;
    case DType::Q5_0:
      return &kQ5_0;
    case DType::Q5_1:
      return &kQ5_1;
    case DType::Q8_0:
      return &kQ8_0;
    default:
      return nullptr;
  }
}

}  // namespace

void bias_q8_32(int64_t k, void* x) {
  auto* blocks = static_cast<ActQ8_32*>(x);
  for (int64_t b = 0; b < k / 32; ++b) {
    for (int8_t& q : blocks[b].qs) q = int8_t(uint8_t(q) ^ 0x80u);
  }
}

const PackedKernels* packed_kernels(DType type, Isa isa) {
  if (isa >= Isa::avx512_vnni) return legacy_packed_kernels_avx512_vnni(type);
  if (isa >= Isa::avx2) return legacy_packed_kernels_avx2(type);
  return nullptr;
}

DequantizeRowFn dequantize_row_fn(DType type, Isa isa) {
  if (isa >= Isa::avx2 && legacy_kernels_portable(type) != nullptr) return legacy_dequantize_avx2(type);
  return type_traits(type).dequantize;
}

const TypeKernels* legacy_kernels(DType type, Isa isa) {
  const TypeKernels* portable = legacy_kernels_portable(type);
  if (portable == nullptr) return nullptr;
  if (isa >= Isa::avx512_vnni) return legacy_kernels_avx512_vnni(type);
  if (isa >= Isa::avx2) return legacy_kernels_avx2(type);
  return portable;
}

}  // namespace strata::cpu
