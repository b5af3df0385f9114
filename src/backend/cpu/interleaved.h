// Matmul weights kept in the layout the decode kernels read fastest: a copy made once, at
// load (Backend::prepare_matmul_weight), for the types and ISA paths that have kernels for it
// (avx512-vnni: Q4_0, Q8_0, Q4_K, Q6_K; avx2 and avx512: Q4_0).
//
// The rows are interleaved 16 at a time. A group of 16 rows is one block per 32 elements of k
// (256 for K-quants), each holding the 16 rows' block scales (f16, row order) and then their
// levels as unsigned bytes u = q + offset in lanes: a 64-byte vector holds 4 consecutive
// elements of each of the 16 rows (bytes 4r..4r+3 = row r). One vpdpbusd multiplies such a
// vector by an activation's broadcast 4 bytes: 16 rows x 4 products. A decode step reads each
// group as one contiguous stream instead of 16 short rows side by side.
//  - Q4_0 (288 bytes per block): 4 vectors of nibbles; the low nibbles of vector j are
//    elements 4j..4j+3, the high ones elements 16+4j..16+4j+3 (offset 8).
//  - Q8_0 (544 bytes per block): 8 vectors, vector g elements 4g..4g+3 (offset 128).
//  - Q4_K (2368 bytes per block of 256): d and dmin of the 16 rows (f16), their 8 scales (one
//    byte each, sub-block by sub-block) and 8 mins (bytes, row r's mins of sub-blocks 2p and
//    2p + 1 side by side), then 32 vectors of nibbles: the low ones of vector j are elements
//    4j..4j+3, the high ones elements 128+4j..128+4j+3.
//  - Q6_K (3360 bytes per block of 256): d, the 16 scales in pairs (row r's two side by side),
//    the levels' low 4 bits as Q4_K's nibbles, their top 2 bits four to a byte.
// Legacy types, per block: isum = sum_i u_i x_i - offset * sum_i x_i exactly in int32 (the
// second term from the activations' block sums), then acc += float(isum) * (d_w * d_x) in the
// row's lane, block after block: the same exact integer products as the tile kernels, summed in
// another order. A K-quant block's integers and float steps are those of its other tiles
// (k_quant_kernels_avx512.cpp), so it gives their results bit for bit.
//
// Prompts repack from this layout (to_packed for the packed kernels of packed_gemm.h, or the
// copy's own prompt tiles), so that once it is made the original rows are not read again by
// matmuls: their mmapped pages can be released.
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
  int64_t block_elements;  // elements of k per block: 32 (legacy types) or 256 (K-quants)
  size_t block_bytes;      // bytes of one block of a group (16 rows)
  // Writes rows [0, nr) (nr <= 16; row r at w + r * w_stride, k elements of the type) as the
  // k / block_elements blocks of one group at out; rows past nr are zeros.
  void (*interleave)(int64_t k, const void* w, size_t w_stride, int nr, uint8_t* out);
  int max_cols;
  // For the 16 rows of the group at w and nc <= max_cols columns of the type's activation
  // form (column c at x + c * x_stride; q8_32 columns come with their k / 32 block sums at
  // xsum + c * xsum_stride, act_block_sums; K-quants read the bsums of BlockQ8_K):
  //   out[c * out_stride + r] = sum_l w[l, r] * x[l, c]
  // summed block after block: the order depends on k only.
  void (*tile)(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t* xsum, size_t xsum_stride,
               int nc, float* out, size_t out_stride);
  // Prompts, one of two ways: the group as the k / 32 RowPackedBlock that the type's packed
  // kernels read (legacy types), or a tile of the 16 rows by nc <= prompt_max_cols columns as
  // `tile` computes it (K-quants); the other is nullptr.
  void (*to_packed)(int64_t k, const uint8_t* w, RowPackedBlock* out);
  int prompt_max_cols;
  void (*prompt_tile)(int64_t k, const uint8_t* w, const void* x, size_t x_stride, int nc, float* out,
                      size_t out_stride);
};

// The interleaved kernels of `type` on `isa` exactly (no fallback to a lower path: the layout
// is made for the path the backend runs); nullptr where there are none.
const InterleavedKernels* interleaved_kernels(DType type, Isa isa);

// A matrix [k, n] in the interleaved layout: ceil(n / 16) groups of k / block_elements
// blocks, the rows past n zeros. `source` is the tensor it was made from (kept, so that its memory, and so its
// address, stays the matrix's while this copy exists).
struct InterleavedWeight {
  const InterleavedKernels* kernels;
  Tensor source;
  std::unique_ptr<Storage> data;
  size_t group_bytes() const { return size_t(source.ne(0) / kernels->block_elements) * kernels->block_bytes; }
  const uint8_t* group(int64_t g) const { return data->data() + size_t(g) * group_bytes(); }
};

// The interleaved copy of w (2-D, contiguous rows of a type with kernels on `isa`), made by
// `pool`'s threads; nullptr where w's type has no interleaved kernels on `isa`.
std::unique_ptr<InterleavedWeight> interleave_weight(const Tensor& w, Isa isa, ThreadPool& pool);

// sums[b] = the sum of the 32 levels of block b of k q8_32 activations (ActQ8_32).
void act_block_sums(const void* x, int64_t k, int32_t* sums);

}  // namespace strata::cpu
