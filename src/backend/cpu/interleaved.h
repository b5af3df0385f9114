// Matmul weights kept in the layout the decode kernels read fastest: a copy made once, at
// load (Backend::prepare_matmul_weight), for the types and ISA paths that have kernels for it.
//
// The rows are interleaved 16 at a time. A group of 16 rows is k / 32 blocks, one per 32
// elements of k, each holding the 16 rows' block scales (f16, row order) and then their
// levels as unsigned bytes u = q + offset in lanes: a 64-byte vector holds 4 consecutive
// elements of each of the 16 rows (bytes 4r..4r+3 = row r). One vpdpbusd multiplies such a
// vector by an activation's broadcast 4 bytes: 16 rows x 4 products. A decode step reads each
// group as one contiguous stream instead of 16 short rows side by side.
//  - Q4_0 (288 bytes per block): 4 vectors of nibbles; the low nibbles of vector j are
//    elements 4j..4j+3, the high ones elements 16+4j..16+4j+3 (offset 8).
//  - Q8_0 (544 bytes per block): 8 vectors, vector g elements 4g..4g+3 (offset 128).
// Per block: isum = sum_i u_i x_i - offset * sum_i x_i exactly in int32 (the second term from
// the activations' block sums), then acc += float(isum) * (d_w * d_x) in the row's lane, block
// after block: the same exact integer products as the tile kernels, summed in another order.
//
// Prompts (packed_gemm.h) repack from this layout (to_packed), so that once it is made the
// original rows are not read again: their mmapped pages can be released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/cpu/isa.h"
#include "backend/cpu/packed_gemm.h"
#include "backend/cpu/type_kernels.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace strata::cpu {

inline constexpr int kInterleaveRows = kPackRows;

// One type's interleaved kernels on one ISA path.
struct InterleavedKernels {
  size_t block_bytes;  // bytes of one 32-element block of a group (16 rows)
  // Writes rows [0, nr) (nr <= 16; row r at w + r * w_stride, k elements of the type) as the
  // k / 32 blocks of one group at out; rows past nr are zeros.
  void (*interleave)(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out);
  int max_cols;
  // For the 16 rows of the group at w (k / 32 blocks) and nc <= max_cols q8_32 columns (column
  // c at x + c * x_stride; xsum + c * xsum_stride: its k / 32 block sums, act_block_sums):
  //   out[c * out_stride + r] = sum_l w[l, r] * x[l, c]
  // summed block after block: the order depends on k only.
  void (*tile)(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride,
               int nc, float* out, size_t out_stride);
  // The group at w as the k / 32 RowPackedBlock the packed prompt kernels of the type read.
  void (*to_packed)(int64_t k, const uint8_t* w, RowPackedBlock* out);
};

// The interleaved kernels of `type` on `isa` exactly (no fallback to a lower path: the layout
// is made for the path the backend runs); nullptr where there are none.
const InterleavedKernels* interleaved_kernels(DType type, Isa isa);

// A matrix [k, n] in the interleaved layout: ceil(n / 16) groups of k / 32 blocks, the rows
// past n zeros. `source` is the tensor it was made from (kept, so that its memory, and so its
// address, stays the matrix's while this copy exists).
struct InterleavedWeight {
  const InterleavedKernels* kernels;
  Tensor source;
  std::unique_ptr<Storage> data;
  size_t group_bytes() const { return size_t(source.ne(0) / 32) * kernels->block_bytes; }
  const uint8_t* group(int64_t g) const { return data->data() + size_t(g) * group_bytes(); }
};

// The interleaved copy of w (2-D, contiguous rows of a type with kernels on `isa`), made by
// `pool`'s threads; nullptr where w's type has no interleaved kernels on `isa`.
std::unique_ptr<InterleavedWeight> interleave_weight(const Tensor& w, Isa isa, ThreadPool& pool);

// sums[b] = the sum of the 32 levels of block b of k q8_32 activations (ActQ8_32).
void act_block_sums(const void* x, int64_t k, int32_t* sums);

}  // namespace strata::cpu
