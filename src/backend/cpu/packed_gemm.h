// Prompt (many-column) kernels of the legacy types. A task repacks its weight rows 16 at a
// time so that the lanes of a vector are 16 rows: an activation's 4-byte group is broadcast
// from memory against the same group of 16 rows (one vpdpbusd for 16 x 4 products), the
// per-block float work is shared by 16 rows, and each output is summed in one lane, block
// after block. The matmul driver takes this path where the type and ISA have it and x has
// at least kPackMinColumns columns; the tile kernels (type_kernels.h) otherwise.
//
// Per block, as the tile kernels (legacy_kernels.cpp): isum = sum_i q_i * qs_i exactly, then
// dot += float(isum) * (d_w * d_x) [+ m * s]. vpdpbusd multiplies unsigned by signed bytes,
// so the activations come biased (qs + 128, bias_q8_32) and each weight row-block carries
// start = -128 * sum(q), the bias's share.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/isa.h"
#include "core/dtype.h"

namespace strata::cpu {

inline constexpr int kPackRows = 16;
inline constexpr int64_t kPackMinColumns = 8;

// One block (32 elements) of 16 weight rows: q[g][r] holds row r's signed levels of elements
// 4g..4g+3 (element = d * level + m), d[r] and m[r] its scale and min, start[r] = -128 * the
// sum of its 32 levels. Rows past the real ones are all zeros.
struct RowPackedBlock {
  int8_t q[8][kPackRows][4];
  float d[kPackRows];
  float m[kPackRows];
  int32_t start[kPackRows];
};
static_assert(sizeof(RowPackedBlock) == 704);

// Repacks nr <= 16 rows (row r at w + r * w_stride, k elements of the type) into k / 32
// RowPackedBlock.
using RepackFn = void (*)(int64_t k, const void* w, size_t w_stride, int nr, RowPackedBlock* out);

// out[c * out_stride + r] = sum_l w[l, r] * x[l, c] for r < nr (1..16) and c < nc
// (1..max_cols); w: k / 32 RowPackedBlock; x: column c at x + c * x_stride, k / 32 biased
// ActQ8_32 (bias_q8_32). Each output's sum does not depend on nr, nc or the other rows.
using RowTileFn = void (*)(int64_t k, const RowPackedBlock* w, int nr, const void* x, size_t x_stride, int nc,
                           float* out, size_t out_stride);

struct PackedKernels {
  int max_cols;
  RepackFn repack;
  RowTileFn tile;
};

// The packed kernels of weight type `type` on the best path at or below `isa`; nullptr
// where there are none (the type is then computed by its tile kernels).
const PackedKernels* packed_kernels(DType type, Isa isa);

// k / 32 ActQ8_32 in place with their bytes biased to unsigned: qs ^ 0x80 = qs + 128.
void bias_q8_32(int64_t k, void* x);

}  // namespace strata::cpu
