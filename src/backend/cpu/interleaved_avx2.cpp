// The AVX2 kernels of the interleaved layout (interleaved.h), Q4_0 only: decode tiles of one
// group (rows 0-7 and 8-15 in the lanes of two vectors) by up to 4 q8_32 columns, and the
// repack of a group into the packed prompt kernels' blocks. Without VNNI a group's products
// are vpmaddubsw pairs (15 * 127 * 2 at most, so the 8 groups of a block add up in int16
// without saturating), then one vpmaddwd into int32: the same exact block sums as the other
// paths. Only called where the CPU has AVX2.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/interleaved_isa.h"

namespace strata::cpu {
namespace {

constexpr size_t kScaleBytes = kInterleaveRows * sizeof(uint16_t);
constexpr size_t kQ4_0BlockBytes = kScaleBytes + 4 * 64;
constexpr int kMaxCols = 4;

__m256i broadcast_group(const int8_t* qs) {
  int32_t g;
  std::memcpy(&g, qs, sizeof(g));
  return _mm256_set1_epi32(g);
}

// The unsigned levels u[g] (elements 4g..4g+3) of rows 8h..8h+7 of a Q4_0 block.
void q4_0_levels(const uint8_t* p, int h, __m256i u[8]) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kScaleBytes + 64 * j + 32 * h));
    u[j] = _mm256_and_si256(v, low);
    u[j + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  }
}

__m256 block_scales(const uint8_t* p, int h) {  // d of rows 8h..8h+7 as floats
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * h)));
}

template <int NC>
void tile_fixed(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride,
                float* out, size_t out_stride) {
  const ActQ8_32* cols[NC];
  const int32_t* sums[NC];
  __m256 acc[NC][2];
  for (int c = 0; c < NC; ++c) {
    cols[c] = reinterpret_cast<const ActQ8_32*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride);
    sums[c] = xsum + size_t(c) * xsum_stride;
    acc[c][0] = acc[c][1] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* p = w + size_t(b) * kQ4_0BlockBytes;
    for (int h = 0; h < 2; ++h) {
      __m256i u[8];
      q4_0_levels(p, h, u);
      const __m256 dw = block_scales(p, h);
      for (int c = 0; c < NC; ++c) {
        const ActQ8_32& a = cols[c][b];
        __m256i pairs = _mm256_maddubs_epi16(u[0], broadcast_group(a.qs));
        for (int g = 1; g < 8; ++g)
          pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(u[g], broadcast_group(a.qs + 4 * g)));
        const __m256i isum = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones), _mm256_set1_epi32(-8 * sums[c][b]));
        acc[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(a.d)), acc[c][h]);
      }
    }
  }
  for (int c = 0; c < NC; ++c) {
    _mm256_storeu_ps(out + size_t(c) * out_stride, acc[c][0]);
    _mm256_storeu_ps(out + size_t(c) * out_stride + 8, acc[c][1]);
  }
}

void tile(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride, int nc,
          float* out, size_t out_stride) {
  switch (nc) {
    case 1:
      return tile_fixed<1>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    case 2:
      return tile_fixed<2>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    case 3:
      return tile_fixed<3>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
    default:
      return tile_fixed<4>(k, w, x, x_stride, xsum, xsum_stride, out, out_stride);
  }
}

// The packed prompt kernels' block: signed levels q = u - 8, d as floats, no min, and
// start = -128 * each row's sum of levels (packed_gemm.h).
void to_packed(int64_t k, const uint8_t* w, RowPackedBlock* out) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* p = w + size_t(b) * kQ4_0BlockBytes;
    RowPackedBlock& o = out[b];
    for (int h = 0; h < 2; ++h) {
      __m256i u[8];
      q4_0_levels(p, h, u);
      __m256i pairs = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        const __m256i q = _mm256_sub_epi8(u[g], _mm256_set1_epi8(8));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.q[g][8 * h]), q);
        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(ones8, q));
      }
      const __m256i sum = _mm256_madd_epi16(pairs, ones16);
      _mm256_storeu_ps(o.d + 8 * h, block_scales(p, h));
      _mm256_storeu_ps(o.m + 8 * h, _mm256_setzero_ps());
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.start + 8 * h),
                          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 7)));
    }
  }
}

constexpr InterleavedKernels kQ4_0{32, kQ4_0BlockBytes, nullptr, kMaxCols, tile, to_packed, 0, nullptr};

}  // namespace

const InterleavedKernels* interleaved_tiles_avx2(DType type) {
  return type == DType::Q4_0 ? &kQ4_0 : nullptr;
}

}  // namespace strata::cpu
