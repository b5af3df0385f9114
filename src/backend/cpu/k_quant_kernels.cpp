// The K-quant group of the kernel table: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K weights against
// BlockQ8_K activations, on the portable path (here) and the AVX2 / AVX-512 paths
// (k_quant_kernels_avx2.cpp, k_quant_kernels_avx512.cpp).
//
// Every path reduces a weight super-block and an activation block (scale dx) to one common
// form over the 16 groups g of 16 elements:
//   dot = d * dx * I - dm * dx * M,  I = sum_g sc[g] * sum_{e in g} q[e] * a[e],
//                                    M = sum_g m[g] * bsums[g]
// with unsigned levels q (0..3, 0..7, 0..15, 0..31, 0..63) and integer group scales sc and
// offsets m. Q2_K/Q4_K/Q5_K: dm = dmin and m = the mins; Q3_K/Q6_K: dm = d and m = 4*sc (or
// 32*sc), the level offset folded into the bsums. I and M are exact in int32, so every path
// computes the same two integers; each output accumulates acc += (d*dx)*I - (dm*dx)*M over
// the super-blocks in order, and the paths differ only in the rounding of that step (the
// SIMD paths fuse it and keep the accumulators in vector lanes).
#include "backend/cpu/kernel_groups.h"
#include "core/half.h"
#include "core/k_scales.h"

namespace strata::cpu {

// The ISA paths' tiles (all with the DotTileFn contract, up to kAvx2Rows x kAvx2Cols,
// kAvx512Rows x kAvx512Cols, and kVnniRows x kVnniCols on avx512-vnni).
void q2_k_tile_avx2(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q3_k_tile_avx2(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q4_k_tile_avx2(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q5_k_tile_avx2(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q6_k_tile_avx2(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q2_k_tile_avx512(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q3_k_tile_avx512(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q4_k_tile_avx512(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q5_k_tile_avx512(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q6_k_tile_avx512(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q2_k_tile_avx512_vnni(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q3_k_tile_avx512_vnni(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q4_k_tile_avx512_vnni(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q5_k_tile_avx512_vnni(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);
void q6_k_tile_avx512_vnni(int64_t, const void*, size_t, int, const void*, size_t, int, float*, size_t);

namespace {

constexpr int kPortableRows = 4, kPortableCols = 4;
constexpr int kAvx2Rows = 8, kAvx2Cols = 64;  // the wide tiles (k_quant_kernels_avx2.cpp)
constexpr int kAvx512Rows = 4, kAvx512Cols = 4;
constexpr int kVnniRows = 16, kVnniCols = 64;  // the wide tiles (k_quant_kernels_avx512.cpp)

// ---- Portable: each weight super-block unpacked to levels and group scales -------------

constexpr int kGroups = QK_K / 16;

// Group scales and offsets of each type (the bit layouts of quant_blocks.h).
void group_scales(const BlockQ2_K& b, int16_t sc[kGroups], int16_t m[kGroups]) {
  for (int g = 0; g < kGroups; ++g) {
    sc[g] = int16_t(b.scales[g] & 15);
    m[g] = int16_t(b.scales[g] >> 4);
  }
}

void group_scales(const BlockQ3_K& b, int16_t sc[kGroups], int16_t m[kGroups]) {
  for (int g = 0; g < kGroups; ++g) {
    const int low = (b.scales[g % 8] >> (4 * (g / 8))) & 15;
    const int high = (b.scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    sc[g] = int16_t((low | (high << 4)) - 32);
    m[g] = int16_t(4 * sc[g]);
  }
}

// Q4_K / Q5_K: one 6-bit scale and min per 32 elements, each for both of its groups.
void group_scales_6bit(const uint8_t s[K_SCALE_SIZE], int16_t sc[kGroups], int16_t m[kGroups]) {
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    scale_min_6bit(s, j, scale, min);
    sc[2 * j] = sc[2 * j + 1] = int16_t(scale);
    m[2 * j] = m[2 * j + 1] = int16_t(min);
  }
}

void group_scales(const BlockQ6_K& b, int16_t sc[kGroups], int16_t m[kGroups]) {
  for (int g = 0; g < kGroups; ++g) {
    sc[g] = b.scales[g];
    m[g] = int16_t(32 * sc[g]);
  }
}

// One weight super-block in the common form: levels q[256], group scales, d and dm.
struct Unpacked {
  int8_t q[QK_K];  // levels, 0..63
  int16_t sc[kGroups];
  int16_t m[kGroups];
  float d;
  float dm;
};

// Levels in runs of 32: element 32j + l is level(j, l) (l = 0..31 is the inner loop, so
// the compiler can vectorize it).
template <class Level>
inline void unpack_levels(int8_t q[QK_K], const Level& level) {
  for (int j = 0; j < QK_K / 32; ++j) {
    for (int l = 0; l < 32; ++l) q[32 * j + l] = int8_t(level(j, l));
  }
}

// Field layouts (quant_blocks.h), for element 32j + l:
//   2-bit (Q2_K, Q3_K low bits): bits 2(j%4) of qs[32(j/4) + l];
//   4-bit (Q4_K, Q5_K low bits): nibble j%2 of qs[32(j/2) + l];
//   high bit (Q3_K hmask, Q5_K qh): bit j of h[l].
inline int bits2(const uint8_t* qs, int j, int l) {
  return (qs[32 * (j / 4) + l] >> (2 * (j % 4))) & 3;
}
inline int bits4(const uint8_t* qs, int j, int l) {
  return (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
}
inline int hbit(const uint8_t* h, int j, int l) {
  return (h[l] >> j) & 1;
}

void unpack(const BlockQ2_K& b, Unpacked& u) {
  unpack_levels(u.q, [&](int j, int l) { return bits2(b.qs, j, l); });
  group_scales(b, u.sc, u.m);
  u.d = f16_to_f32(b.d);
  u.dm = f16_to_f32(b.dmin);
}

void unpack(const BlockQ3_K& b, Unpacked& u) {
  unpack_levels(u.q, [&](int j, int l) { return bits2(b.qs, j, l) | hbit(b.hmask, j, l) << 2; });
  group_scales(b, u.sc, u.m);
  u.d = u.dm = f16_to_f32(b.d);
}

void unpack(const BlockQ4_K& b, Unpacked& u) {
  unpack_levels(u.q, [&](int j, int l) { return bits4(b.qs, j, l); });
  group_scales_6bit(b.scales, u.sc, u.m);
  u.d = f16_to_f32(b.d);
  u.dm = f16_to_f32(b.dmin);
}

void unpack(const BlockQ5_K& b, Unpacked& u) {
  unpack_levels(u.q, [&](int j, int l) { return bits4(b.qs, j, l) | hbit(b.qh, j, l) << 4; });
  group_scales_6bit(b.scales, u.sc, u.m);
  u.d = f16_to_f32(b.d);
  u.dm = f16_to_f32(b.dmin);
}

// Q6_K: element 128c + 32k + l (j = 4c + k): low 4 bits in nibble k/2 of ql[64c + 32(k%2) + l],
// high 2 bits at bits 2k of qh[32c + l].
void unpack(const BlockQ6_K& b, Unpacked& u) {
  unpack_levels(u.q, [&](int j, int l) {
    const int c = j / 4, k = j % 4;
    const int low = (b.ql[64 * c + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
    const int high = (b.qh[32 * c + l] >> (2 * k)) & 3;
    return low | high << 4;
  });
  group_scales(b, u.sc, u.m);
  u.d = u.dm = f16_to_f32(b.d);
}

template <class Block>
void tile_portable(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
                   float* out, size_t out_stride) {
  const int64_t nb = k / QK_K;
  float acc[kPortableRows][kPortableCols] = {};
  Unpacked u;
  for (int64_t ib = 0; ib < nb; ++ib) {
    for (int r = 0; r < nr; ++r) {
      unpack(static_cast<const Block*>(static_cast<const void*>(static_cast<const uint8_t*>(w) + r * w_stride))[ib], u);
      for (int c = 0; c < nc; ++c) {
        const auto& a =
            static_cast<const BlockQ8_K*>(static_cast<const void*>(static_cast<const uint8_t*>(x) + c * x_stride))[ib];
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < kGroups; ++g) {
          int32_t s = 0;
          for (int i = 16 * g; i < 16 * g + 16; ++i) s += u.q[i] * a.qs[i];
          isum += u.sc[g] * s;
          msum += u.m[g] * a.bsums[g];
        }
        acc[r][c] += (u.d * a.d) * float(isum);
        acc[r][c] -= (u.dm * a.d) * float(msum);
      }
    }
  }
  for (int r = 0; r < nr; ++r) {
    for (int c = 0; c < nc; ++c) out[c * out_stride + r] = acc[r][c];
  }
}

constexpr ActFormat kAct = ActFormat::q8_256;

// [type][path]: the paths in the order of Isa.
struct TypeEntries {
  DType type;
  TypeKernels path[4];
};

const TypeEntries kEntries[] = {
    {DType::Q2_K,
     {{kAct, kPortableRows, kPortableCols, tile_portable<BlockQ2_K>},
      {kAct, kAvx2Rows, kAvx2Cols, q2_k_tile_avx2},
      {kAct, kAvx512Rows, kAvx512Cols, q2_k_tile_avx512},
      {kAct, kVnniRows, kVnniCols, q2_k_tile_avx512_vnni}}},
    {DType::Q3_K,
     {{kAct, kPortableRows, kPortableCols, tile_portable<BlockQ3_K>},
      {kAct, kAvx2Rows, kAvx2Cols, q3_k_tile_avx2},
      {kAct, kAvx512Rows, kAvx512Cols, q3_k_tile_avx512},
      {kAct, kVnniRows, kVnniCols, q3_k_tile_avx512_vnni}}},
    {DType::Q4_K,
     {{kAct, kPortableRows, kPortableCols, tile_portable<BlockQ4_K>},
      {kAct, kAvx2Rows, kAvx2Cols, q4_k_tile_avx2},
      {kAct, kAvx512Rows, kAvx512Cols, q4_k_tile_avx512},
      {kAct, kVnniRows, kVnniCols, q4_k_tile_avx512_vnni}}},
    {DType::Q5_K,
     {{kAct, kPortableRows, kPortableCols, tile_portable<BlockQ5_K>},
      {kAct, kAvx2Rows, kAvx2Cols, q5_k_tile_avx2},
      {kAct, kAvx512Rows, kAvx512Cols, q5_k_tile_avx512},
      {kAct, kVnniRows, kVnniCols, q5_k_tile_avx512_vnni}}},
    {DType::Q6_K,
     {{kAct, kPortableRows, kPortableCols, tile_portable<BlockQ6_K>},
      {kAct, kAvx2Rows, kAvx2Cols, q6_k_tile_avx2},
      {kAct, kAvx512Rows, kAvx512Cols, q6_k_tile_avx512},
      {kAct, kVnniRows, kVnniCols, q6_k_tile_avx512_vnni}}},
};

}  // namespace

const TypeKernels* k_quant_kernels(DType type, Isa isa) {
  for (const TypeEntries& e : kEntries) {
    if (e.type == type) return &e.path[static_cast<int>(isa)];
  }
  return nullptr;
}

}  // namespace strata::cpu
