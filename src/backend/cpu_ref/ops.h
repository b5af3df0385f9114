// The kernels of the reference CPU backend, one function per op (declared here, defined
// in the file of their family: rows.cpp, matmul.cpp, norm.cpp, elementwise.cpp, rope.cpp,
// attention.cpp, experts.cpp). Each checks its arguments (types, shapes, ranges) and throws
// strata::Error naming the op, the role of the argument and its shape; then it runs a
// plain loop instantiated for Acc = float or double. The contracts are those of backend.h.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "backend/cpu_ref/accumulation.h"

namespace strata::cpu_ref {

void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out);
void matmul(const Tensor& w, const Tensor& x, Tensor& out, Accumulation acc, int n_threads);
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Accumulation acc);
void add(const Tensor& a, const Tensor& b, Tensor& out, Accumulation acc);
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, Accumulation acc);
void geglu(const Tensor& gate, const Tensor& up, Tensor& out, Accumulation acc);
void scale(const Tensor& x, float s, Tensor& out);
void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config, Accumulation acc);
void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv);
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
               int64_t window, Tensor& out, Accumulation acc);
// Mixture of experts (matmul_experts in matmul.cpp, the others in experts.cpp).
void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights, Accumulation acc);
void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out, Accumulation acc, int n_threads);
void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out, Accumulation acc);

}  // namespace strata::cpu_ref
