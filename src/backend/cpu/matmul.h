// The matmul driver of the fast CPU backend: weights of any dequantizable type times f32
// activations, over the per-type kernel table (type_kernels.h) and a thread pool.
#pragma once

#include "backend/cpu/isa.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace strata::cpu {

struct MatmulConfig {
  Isa isa;                       // the path to run (at most detected_isa())
  bool f32_activations = false;  // no 8-bit activations: quantized weights are dequantized to f32 rows
};

// out = w x: w [k, n] of any dequantizable type; x [k, m...] f32; out [n, m...] f32. The
// contract and the argument checks (with their messages) of Backend::matmul, as cpu_ref
// (backend/op_checks.h). Each output is computed by one task in an order that depends on
// k, the type and config only: the result is the same for any number of threads in `pool`.
void matmul(const Tensor& w, const Tensor& x, Tensor& out, const MatmulConfig& config, ThreadPool& pool);

}  // namespace strata::cpu
