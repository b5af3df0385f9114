// Prompt (many-column) kernels of the legacy types over activations packed 16 columns at a
// time: the lanes of a vector are columns, so one weight block meets 16 columns in one
// integer multiply-add per 4 bytes, and each output is summed in one lane, block after
// block. The matmul driver takes this path where the type and ISA have it and x has at
// least kPackMinColumns columns; the tile kernels (type_kernels.h) otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/isa.h"
#include "core/dtype.h"

namespace strata::cpu {

inline constexpr int kPackColumns = 16;
inline constexpr int64_t kPackMinColumns = 16;

// 16 columns x one block of 32 q8_32 activations (ActQ8_32), transposed: qs[g][c] holds
// column c's elements 4g..4g+3; sum[c] = sum of column c's 32 qs.
struct PackedQ8x16 {
  int8_t qs[8][kPackColumns][4];
  float d[kPackColumns];
  float s[kPackColumns];
  int32_t sum[kPackColumns];
};
static_assert(sizeof(PackedQ8x16) == 704);

// Packs nc <= 16 columns of q8_32 activations (column c: k / 32 ActQ8_32 at x + c * x_stride)
// into k / 32 PackedQ8x16; columns nc..15 are zeros.
void pack_q8_32x16(int64_t k, const void* x, size_t x_stride, int nc, PackedQ8x16* out);

// out[c * out_stride + r] = sum_l w[l, r] * x[l, c] for r < nr (1..max_rows) and c < nc
// (1..16); w as DotTileFn's; x: k / 32 PackedQ8x16. Each output's sum runs over the blocks
// in order in one lane: it does not depend on nr, nc or the other columns.
using PackedTileFn = void (*)(int64_t k, const void* w, size_t w_stride, int nr, const PackedQ8x16* x, int nc,
                              float* out, size_t out_stride);

struct PackedKernels {
  int max_rows;
  PackedTileFn tile;
};

// The packed kernels of weight type `type` on the best path at or below `isa`; nullptr
// where there are none (the type is then computed by its tile kernels).
const PackedKernels* packed_kernels(DType type, Isa isa);

}  // namespace strata::cpu
