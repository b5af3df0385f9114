// Row primitives of the fast CPU backend's non-matmul ops (attention, norms, the KV cache),
// one table per ISA path (isa.h). Every function sums in f32 in an order fixed by n and the
// path (16 lanes of partial sums, combined in a fixed tree), never by the caller's thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/isa.h"

namespace strata::cpu {

struct OpKernels {
  float (*dot_f32)(const float* a, const float* b, int64_t n);     // sum_i a[i] b[i]
  float (*dot_f16)(const uint16_t* a, const float* b, int64_t n);  // a f16
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);  // y[i] += a x[i]
  void (*axpy_f16)(float a, const uint16_t* x, float* y, int64_t n);
  void (*scale_f32)(float s, float* y, int64_t n);             // y[i] *= s
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);  // round to nearest even
  // y[i] += sum_c p[c] x_c[i] over c = 0..n_x-1 in order (the same sums as axpy of each x_c in
  // turn), x_c at (const uint8_t*)x + c * x_stride: attention's weighted sum of values.
  void (*accumulate_f32)(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n);
  void (*accumulate_f16)(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n);
  // x[i] = exp(x[i] - shift), in place (the SIMD paths: a degree-7 polynomial after range
  // reduction, within 2 ulp of the correctly rounded value; 0 below exp's normal range).
  void (*exp_shifted)(float* x, int64_t n, float shift);
  // out[i] = g[i] / (1 + exp(-g[i])) * u[i] (SwiGLU; exp as in exp_shifted).
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t n);
};

// The primitives of the best path at or below `isa`.
const OpKernels& op_kernels(Isa isa);

}  // namespace strata::cpu
