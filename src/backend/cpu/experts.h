// The mixture-of-experts ops of the fast CPU backend (experts.cpp), with the contracts and
// argument checks of backend.h / op_checks.h. Results do not depend on the thread count.
#pragma once

#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"

namespace strata::cpu {

void route_top_k(const OpContext& ctx, const Tensor& logits, Tensor& ids, Tensor& weights);
// Each expert's columns gathered and multiplied by matmul() (its kernels and activation form).
void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out, const MatmulConfig& config,
                    ThreadPool& pool);
void sum_experts(const OpContext& ctx, const Tensor& y, const Tensor& weights, Tensor& out);

}  // namespace strata::cpu
