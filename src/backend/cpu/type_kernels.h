// The per-type kernel table of the fast CPU backend (design principle 5): for each weight
// type, the form its activations are converted to and a dot-product tile kernel, per ISA
// path (isa.h). A type or path without an entry falls back to the next lower path; a type
// without any entry is computed by dequantizing rows to f32 (matmul.cpp). An ARM NEON path
// joins by adding its entries, type by type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/isa.h"
#include "core/dtype.h"
#include "core/quant_blocks.h"

namespace strata::cpu {

// What a weight type's dot product reads its activations as.
enum class ActFormat {
  f32,     // the f32 values themselves (F32, F16, BF16 weights; the f32-activation mode)
  q8_32,   // blocks of 32: ActQ8_32 (the 32-element quant types)
  q8_256,  // blocks of 256: BlockQ8_K of core/quant_blocks.h (the K-quants)
};

// 32 activations rounded to 8 bits: x[i] ~ d * qs[i], with d = max|x| / 127; s = d * sum(qs)
// (what the types with an offset or a min need: sum_i (d_w q_i + m) x_i = ... + m * s).
struct ActQ8_32 {
  float d;
  float s;
  int8_t qs[32];
};
static_assert(sizeof(ActQ8_32) == 40);

// Bytes of the `format` form of k activations (k a multiple of the format's block).
size_t act_bytes(ActFormat format, int64_t k);
// Elements per block of `format` (1 for f32).
int64_t act_block(ActFormat format);
// Converts k f32 activations to `format` (k a multiple of its block) on the `isa` path; the
// result is the same on every path (the tests check it).
void quantize_act(ActFormat format, Isa isa, const float* x, int64_t k, void* out);
// What quantize_act left out: residual[i] = x[i] - (its q8 value d * q[i]), for a q8 format
// (k a multiple of its block, q = quantize_act's output for x). Quantized in turn, it gives
// activations of two 8-bit terms (about 15 significant bits) that the same kernels take in
// two calls: w x ~ w q + w q_residual.
void act_residual(ActFormat format, const float* x, const void* q, int64_t k, float* residual);

// Dot products of nr weight rows with nc activation columns (1 <= nr <= max_rows,
// 1 <= nc <= max_cols):
//   out[c * out_stride + r] = sum_l w[l, r] * x[l, c]
// w: row r at (const uint8_t*)w + r * w_stride, k elements of the weight type;
// x: column c at (const uint8_t*)x + c * x_stride, k activations in the type's ActFormat.
// Each output is summed in an order that depends on k and the path only, never on nr, nc
// or the thread that runs it.
using DotTileFn = void (*)(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
                           float* out, size_t out_stride);

struct TypeKernels {
  ActFormat act;
  int max_rows;  // largest nr one call takes
  int max_cols;  // largest nc one call takes
  DotTileFn dot_tile;
};

// The kernels of weight type `type` on the best path at or below `isa`; nullptr where the
// type has none (it is then dequantized to f32 rows).
const TypeKernels* type_kernels(DType type, Isa isa);

}  // namespace strata::cpu
