// The AVX-512 VNNI kernels of the interleaved layout (interleaved.h): decode tiles of one
// group (16 rows in the lanes of a vector) by up to 4 q8_32 columns, and the repack of a
// group into the packed prompt kernels' blocks. Only called at the avx512_vnni level.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialized variable) as
// the unused source of their unmasked forms, and GCC 12 then reports it as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)  // clang (the fuzz build) has neither warning
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/interleaved_isa.h"

namespace strata::cpu {
namespace {

constexpr size_t kScaleBytes = kInterleaveRows * sizeof(uint16_t);

// Per type: a block's bytes and its unsigned levels u[g] (elements 4g..4g+3 of each row).
struct Q4_0Layout {
  static constexpr int kOffset = 8;
  static constexpr size_t kBlockBytes = kScaleBytes + 4 * 64;
  static void levels(const uint8_t* p, __m512i u[8]) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_loadu_si512(p + 64 * j);
      u[j] = _mm512_and_si512(v, low);
      u[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  }
};

struct Q8_0Layout {
  static constexpr int kOffset = 128;
  static constexpr size_t kBlockBytes = kScaleBytes + 8 * 64;
  static void levels(const uint8_t* p, __m512i u[8]) {
    for (int g = 0; g < 8; ++g) u[g] = _mm512_loadu_si512(p + 64 * g);
  }
};

__m512i broadcast_group(const int8_t* qs) {
  int32_t g;
  std::memcpy(&g, qs, sizeof(g));
  return _mm512_set1_epi32(g);
}

__m512 block_scales(const uint8_t* p) {  // the 16 rows' d as floats
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

constexpr int kMaxCols = 4;

template <typename L, int NC>
void tile_fixed(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride,
                float* out, size_t out_stride) {
  const ActQ8_32* cols[NC];
  const int32_t* sums[NC];
  __m512 acc[NC];
  for (int c = 0; c < NC; ++c) {
    cols[c] = reinterpret_cast<const ActQ8_32*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride);
    sums[c] = xsum + size_t(c) * xsum_stride;
    acc[c] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* p = w + size_t(b) * L::kBlockBytes;
    __m512i u[8];
    L::levels(p + kScaleBytes, u);
    const __m512 dw = block_scales(p);
    for (int c = 0; c < NC; ++c) {
      const ActQ8_32& a = cols[c][b];
      // Two chains of dependent vpdpbusd (even and odd groups), added at the end: exact.
      __m512i even = _mm512_set1_epi32(-L::kOffset * sums[c][b]), odd = _mm512_setzero_si512();
      for (int g = 0; g < 8; g += 2) {
        even = _mm512_dpbusd_epi32(even, u[g], broadcast_group(a.qs + 4 * g));
        odd = _mm512_dpbusd_epi32(odd, u[g + 1], broadcast_group(a.qs + 4 * g + 4));
      }
      const __m512i isum = _mm512_add_epi32(even, odd);
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), acc[c]);
    }
  }
  for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + size_t(c) * out_stride, acc[c]);
}

template <typename L>
void tile(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride, int nc,
          float* out, size_t out_stride) {
  switch (nc) {
    case 1:
      return tile_fixed<L, 1>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    case 2:
      return tile_fixed<L, 2>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    case 3:
      return tile_fixed<L, 3>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    default:
      return tile_fixed<L, 4>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
  }
}

// The packed prompt kernels' block: signed levels q = u - offset, d as floats, no min, and
// start = -128 * each row's sum of levels (packed_gemm.h).
template <typename L>
void to_packed(int64_t k, const uint8_t* w, RowPackedBlock* out) {
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* p = w + size_t(b) * L::kBlockBytes;
    RowPackedBlock& o = out[b];
    __m512i u[8];
    L::levels(p + kScaleBytes, u);
    __m512i sum = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {
      const __m512i q = _mm512_sub_epi8(u[g], _mm512_set1_epi8(char(L::kOffset)));
      _mm512_storeu_si512(o.q[g], q);
      sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), q);
    }
    _mm512_storeu_ps(o.d, block_scales(p));
    _mm512_storeu_ps(o.m, _mm512_setzero_ps());
    _mm512_storeu_si512(o.start, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
  }
}

template <typename L>
constexpr InterleavedKernels kKernels{32, L::kBlockBytes, nullptr, kMaxCols, tile<L>, to_packed<L>, 0, nullptr};

}  // namespace

const InterleavedKernels* interleaved_tiles_avx512_vnni(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kKernels<Q4_0Layout>;
    case DType::Q8_0:
      return &kKernels<Q8_0Layout>;
    default:
      return interleaved_k_quant_tiles_avx512_vnni(type);
  }
}

}  // namespace strata::cpu
