// The matmul driver of the fast CPU backend: weights of any dequantizable type times f32
// activations, over the per-type kernel table (type_kernels.h) and a thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "backend/cpu/interleaved.h"
#include "backend/cpu/isa.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace strata::cpu {

struct MatmulConfig {
  Isa isa;                       // the path to run (at most detected_isa())
  bool f32_activations = false;  // no 8-bit activations: quantized weights are dequantized to f32 rows
  // 8-bit activations in two terms where the kernels read 8-bit ones: x ~ q + q_residual
  // (act_residual; about 15 significant bits), each kernel call made for both terms over the
  // same weight bytes.
  bool two_term = false;
};

// out = w x: w [k, n] of any dequantizable type; x [k, m...] f32; out [n, m...] f32. The
// contract and the argument checks (with their messages) of Backend::matmul, as cpu_ref
// (backend/op_checks.h). Each output is computed by one task in an order that depends on
// k, the type and config only: the result is the same for any number of threads in `pool`.
// `interleaved`: w's interleaved copy, or nullptr (MatmulProduct).
void matmul(const Tensor& w, const Tensor& x, Tensor& out, const MatmulConfig& config, ThreadPool& pool,
            const InterleavedWeight* interleaved = nullptr);

// One product of matmul_groups: out = w x (arguments already checked as matmul checks them).
struct MatmulProduct {
  const Tensor* w;  // [k, n]
  Tensor* out;      // [n, m] f32
  // w's interleaved copy (interleaved.h), or nullptr: read instead of w's rows where the
  // plan's kernels take it (8-bit activations), with results of the same accuracy.
  const InterleavedWeight* interleaved = nullptr;
};

// Products computed by the same tasks, block of rows by block of rows (all of the same n).
struct MatmulGroup {
  std::vector<MatmulProduct> products;
  int64_t row_align = 1;  // every task's first row is a multiple of this (whole heads)
};

// What a task has just computed: rows [r0, r1) of columns [c0, c1) of every product of group
// `group`. The epilogue runs in the same task, on those outputs only.
struct MatmulTask {
  size_t group;
  int64_t r0, r1, c0, c1;
};
using MatmulEpilogue = std::function<void(const MatmulTask&)>;

// Every product of every group in one run of `pool` (the activations of x converted once per
// form the weights' kernels read), each task followed by `epilogue` when it is set. Results
// are those of matmul() for each product, for any thread count.
void matmul_groups(std::span<const MatmulGroup> groups, const Tensor& x, const MatmulConfig& config, ThreadPool& pool,
                   const MatmulEpilogue& epilogue = {});

}  // namespace strata::cpu
