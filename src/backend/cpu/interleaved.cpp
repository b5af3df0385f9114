// The interleaved layout (interleaved.h): making it (portable code: it runs once, at load),
// the activations' block sums, and the table of the paths' kernels.
#include "backend/cpu/interleaved.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/interleaved_isa.h"
#include "core/error.h"
#include "core/k_scales.h"
#include "core/quant_blocks.h"

namespace strata::cpu {
namespace {

constexpr size_t kScaleBytes = kInterleaveRows * sizeof(uint16_t);  // the 16 rows' f16 scales

template <typename Block>
const Block* row_blocks(const void* w, size_t w_stride, int r) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride);
}

// Q4_0: the nibble bytes of vector j are the row's qs[4j..4j+3] as stored (low nibble element
// i, high nibble element i + 16), so the nibbles are already u = q + 8.
void interleave_q4_0(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out) {
  constexpr size_t kBlockBytes = kScaleBytes + 4 * 64;
  for (int r = 0; r < nr; ++r) {
    const BlockQ4_0* row = row_blocks<BlockQ4_0>(w, w_stride, r);
    for (int64_t b = 0; b < k / 32; ++b) {
      uint8_t* block = out + size_t(b) * kBlockBytes;
      std::memcpy(block + size_t(r) * sizeof(uint16_t), &row[b].d, sizeof(uint16_t));
      for (int j = 0; j < 4; ++j)
        std::memcpy(block + kScaleBytes + size_t(j) * 64 + size_t(r) * 4, row[b].qs + 4 * j, 4);
    }
  }
}

// Q8_0: u = q + 128, i.e. the byte with its top bit flipped.
void interleave_q8_0(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out) {
  constexpr size_t kBlockBytes = kScaleBytes + 8 * 64;
  for (int r = 0; r < nr; ++r) {
    const BlockQ8_0* row = row_blocks<BlockQ8_0>(w, w_stride, r);
    for (int64_t b = 0; b < k / 32; ++b) {
      uint8_t* block = out + size_t(b) * kBlockBytes;
      std::memcpy(block + size_t(r) * sizeof(uint16_t), &row[b].d, sizeof(uint16_t));
      uint8_t* levels = block + kScaleBytes + size_t(r) * 4;
      for (int i = 0; i < 32; ++i) levels[size_t(i / 4) * 64 + size_t(i % 4)] = uint8_t(row[b].qs[i]) ^ 0x80;
    }
  }
}

InterleavedKernels with_interleave(const InterleavedKernels* tiles, decltype(InterleavedKernels::interleave) fn) {
  InterleavedKernels k = *tiles;
  k.interleave = fn;
  return k;
}

// Q4_K: d, dmin, the 8 scales, the 8 mins (in pairs of sub-blocks: row r's two side by side),
// then the levels; a row's qs hold element
// 64q + 32h + l in nibble h of qs[32q + l] (quant_blocks.h).
void interleave_q4_k(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out) {
  constexpr size_t kBlockBytes = 2 * kScaleBytes + 2 * 8 * kInterleaveRows + 32 * 64;
  constexpr size_t kScales = 2 * kScaleBytes, kMins = kScales + 8 * kInterleaveRows,
                   kLevels = kMins + 8 * kInterleaveRows;
  for (int r = 0; r < nr; ++r) {
    const BlockQ4_K* row = row_blocks<BlockQ4_K>(w, w_stride, r);
    for (int64_t b = 0; b < k / QK_K; ++b) {
      const BlockQ4_K& blk = row[b];
      uint8_t* block = out + size_t(b) * kBlockBytes;
      std::memcpy(block + size_t(r) * sizeof(uint16_t), &blk.d, sizeof(uint16_t));
      std::memcpy(block + kScaleBytes + size_t(r) * sizeof(uint16_t), &blk.dmin, sizeof(uint16_t));
      for (int j = 0; j < 8; ++j) {
        int scale = 0, min = 0;
        scale_min_6bit(blk.scales, j, scale, min);
        block[kScales + size_t(j) * kInterleaveRows + size_t(r)] = uint8_t(scale);
        block[kMins + size_t(j / 2) * 2 * kInterleaveRows + size_t(r) * 2 + size_t(j % 2)] = uint8_t(min);
      }
      const auto level = [&](int e) { return (blk.qs[32 * (e / 64) + e % 32] >> (4 * (e / 32 % 2))) & 15; };
      for (int e = 0; e < 128; ++e) {
        block[kLevels + size_t(e / 4) * 64 + size_t(r) * 4 + size_t(e % 4)] = uint8_t(level(e) | level(128 + e) << 4);
      }
    }
  }
}

// Q6_K: d, the 16 scales (in pairs of runs: row r's two side by side), then the low 4 bits of
// the levels as Q4_K's nibbles and their top 2 bits four to a byte: vector t's byte i of row r
// holds those of elements 4t+i, 64+4t+i, 128+4t+i and 192+4t+i at bits 0, 2, 4 and 6.
void interleave_q6_k(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out) {
  constexpr size_t kScales = kScaleBytes, kLow = kScales + 16 * kInterleaveRows, kHigh = kLow + 32 * 64;
  constexpr size_t kBlockBytes = kHigh + 16 * 64;
  for (int r = 0; r < nr; ++r) {
    const BlockQ6_K* row = row_blocks<BlockQ6_K>(w, w_stride, r);
    for (int64_t b = 0; b < k / QK_K; ++b) {
      const BlockQ6_K& blk = row[b];
      uint8_t* block = out + size_t(b) * kBlockBytes;
      std::memcpy(block + size_t(r) * sizeof(uint16_t), &blk.d, sizeof(uint16_t));
      for (int j = 0; j < 16; ++j) {
        block[kScales + size_t(j / 2) * 2 * kInterleaveRows + size_t(r) * 2 + size_t(j % 2)] = uint8_t(blk.scales[j]);
      }
      // Element 128n + 32q + l: low bits in nibble q/2 of ql[64n + 32(q%2) + l], top bits at 2q of qh[32n + l].
      const auto level = [&](int e) {
        const int n = e / 128, q = e % 128 / 32, l = e % 32;
        const int low = (blk.ql[64 * n + 32 * (q % 2) + l] >> (4 * (q / 2))) & 15;
        return low | ((blk.qh[32 * n + l] >> (2 * q)) & 3) << 4;
      };
      for (int e = 0; e < 128; ++e) {
        block[kLow + size_t(e / 4) * 64 + size_t(r) * 4 + size_t(e % 4)] =
            uint8_t((level(e) & 15) | (level(128 + e) & 15) << 4);
      }
      for (int e = 0; e < 64; ++e) {
        uint8_t top = 0;
        for (int i = 0; i < 4; ++i) top = uint8_t(top | (level(64 * i + e) >> 4) << (2 * i));
        block[kHigh + size_t(e / 4) * 64 + size_t(r) * 4 + size_t(e % 4)] = top;
      }
    }
  }
}

}  // namespace

void act_block_sums(const void* x, int64_t k, int32_t* sums) {
  const auto* blocks = static_cast<const ActQ8_32*>(x);
  for (int64_t b = 0; b < k / 32; ++b) {
    int32_t s = 0;
    for (int8_t q : blocks[b].qs) s += q;
    sums[b] = s;
  }
}

const InterleavedKernels* interleaved_kernels(DType type, Isa isa) {
  if (isa == Isa::avx2 || isa == Isa::avx512) {  // no VNNI: Q4_0 only
    if (type != DType::Q4_0) return nullptr;
    static const InterleavedKernels q4_0 = with_interleave(interleaved_tiles_avx2(type), interleave_q4_0);
    return &q4_0;
  }
  if (isa != Isa::avx512_vnni) return nullptr;  // the portable path reads the rows as they are
  switch (type) {
    case DType::Q4_0: {
      static const InterleavedKernels q4_0 = with_interleave(interleaved_tiles_avx512_vnni(type), interleave_q4_0);
      return &q4_0;
    }
    case DType::Q8_0: {
      static const InterleavedKernels q8_0 = with_interleave(interleaved_tiles_avx512_vnni(type), interleave_q8_0);
      return &q8_0;
    }
    case DType::Q4_K: {
      static const InterleavedKernels q4_k = with_interleave(interleaved_tiles_avx512_vnni(type), interleave_q4_k);
      return &q4_k;
    }
    case DType::Q6_K: {
      static const InterleavedKernels q6_k = with_interleave(interleaved_tiles_avx512_vnni(type), interleave_q6_k);
      return &q6_k;
    }
    default:
      return nullptr;
  }
}

std::unique_ptr<InterleavedWeight> interleave_weight(const Tensor& w, Isa isa, ThreadPool& pool) {
  const InterleavedKernels* kernels = interleaved_kernels(w.dtype(), isa);
  if (kernels == nullptr) return nullptr;
  if (w.ne(2) != 1 || w.ne(3) != 1 || !w.is_contiguous()) {
    fail("interleave_weight: {} must be a contiguous matrix", w.describe());
  }
  auto out = std::make_unique<InterleavedWeight>();
  out->kernels = kernels;
  out->source = w;
  const int64_t k = w.ne(0), n = w.ne(1), groups = (n + kInterleaveRows - 1) / kInterleaveRows;
  out->data = std::make_unique<Storage>(size_t(groups) * out->group_bytes());
  const InterleavedWeight& iw = *out;
  pool.run(groups, [&](int64_t g, int) {
    const int nr = int(std::min<int64_t>(kInterleaveRows, n - g * kInterleaveRows));
    kernels->interleave(k, w.row(g * kInterleaveRows), w.nb(1), nr, iw.data->data() + size_t(g) * iw.group_bytes());
  });
  return out;
}

}  // namespace strata::cpu
