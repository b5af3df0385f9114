// Argument checks of the backend ops, shared by every backend so that all of them refuse the
// same calls with the same messages. A backend calls check_<op>_args before it computes, then
// adds only its own limits (memory location, kernel limits, supported types).
//
// Every check throws strata::Error "<op>: <role> <tensor description>: <problem>".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "backend/backend.h"
#include "core/tensor.h"

namespace strata {

// ---- small checks ----------------------------------------------------------------------

// f32 with packed rows (nb0 == 4); row strides may be anything.
void check_f32(std::string_view op, std::string_view role, const Tensor& t);
// The output of an op: f32 with packed rows, and writable.
void check_f32_output(std::string_view op, std::string_view role, const Tensor& t);
// Exactly the shape `ne` (trailing 1s implied).
void check_shape(std::string_view op, std::string_view role, const Tensor& t, const Tensor::Dims& ne);
// The same shape as `ref`.
void check_same_shape(std::string_view op, std::string_view role, const Tensor& t, std::string_view ref_role,
                      const Tensor& ref);
// At most `n` dims (ne[i] == 1 for i >= n).
void check_max_dims(std::string_view op, std::string_view role, const Tensor& t, int n);
// `out` and `in` do not share any byte (for ops whose output must not alias an input).
void check_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                    const Tensor& in);
// For ops whose output may alias an input: `out` is `in` itself (same memory and strides)
// or does not overlap it at all.
void check_same_or_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                            const Tensor& in);
// A KV cache [head_dim, n_kv_heads, n_ctx]: f32 or f16 with packed rows.
void check_kv_cache(std::string_view op, std::string_view role, const Tensor& cache);

// ---- whole ops ---------------------------------------------------------------------------

// The check a backend makes of an input whose types it chooses itself (a weight, a table,
// an added tensor): e.g. "has a reference dequantize" or "the kernels support it".
using TypeCheck = void (*)(std::string_view op, std::string_view role, const Tensor& t);

// table [n_embd, n_vocab] (type: check_type); out [n_embd, n_ids] f32; every id in range.
void check_get_rows_args(const Tensor& table, std::span<const int32_t> ids, const Tensor& out, TypeCheck check_type);
// w [k, n] (type: check_type); x [k, m...] f32; out [n, m...] f32, separate from both.
void check_matmul_args(const Tensor& w, const Tensor& x, const Tensor& out, TypeCheck check_type);
// The same for a matmul inside op `op`, naming the weight and output w_role and out_role.
void check_matmul_args_of(std::string_view op, std::string_view w_role, const Tensor& w, const Tensor& x,
                          std::string_view out_role, const Tensor& out, TypeCheck check_type);
// The structure of a FusedMatmul (backend.h): x set, the prologue's inputs, every job's
// weight and output, the gate's two jobs and output, and head_dim / rope config where a job
// ropes or stores. Types and shapes are left to the ops (Backend's default runs them).
void check_matmul_fused_shape(const FusedMatmul& op);
// All of a FusedMatmul, as the ops it stands for check their arguments (a backend that fuses
// calls it first): the structure, the prologue's op, each job's matmul (weight type:
// check_type) and epilogue (bias: check_bias), the gate's swiglu, and outputs separate from
// every input and from each other.
void check_matmul_fused_args(const FusedMatmul& op, TypeCheck check_type, TypeCheck check_bias);
// x, out [n, rows...] f32, separate; weight [n] (type: check_weight).
void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& out, TypeCheck check_weight);
// a, out [n, rows...] f32 (out may be a); b [n, rows...] or [n] (type: check_b).
// Returns whether b is one row broadcast over a.
bool check_add_args(const Tensor& a, const Tensor& b, const Tensor& out, TypeCheck check_b);
// gate, up, out [n, rows...] f32; out separate from both (op: "swiglu" or "geglu").
void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out, std::string_view op = "swiglu");
// x, out [n, rows...] f32; out is x or separate from it; s finite.
void check_scale_args(const Tensor& x, float s, const Tensor& out);
// x [head_dim, n_heads, n_tokens] f32, writable; one position per token; a valid config.
void check_rope_args(const Tensor& x, std::span<const int32_t> positions, const RopeConfig& c);
// A KvLayout for n_tokens tokens over a cache of n_rows rows: one position (>= 0) and one
// sequence (a row of block_table) per token, block_table a whole number of sequences, and every
// block a token's position reaches (those of positions 0..positions[t] of its sequence) inside
// the cache.
void check_kv_layout(std::string_view op, const KvLayout& kv, int64_t n_tokens, const Tensor& cache);
// src [head_dim, n_kv_heads, n_tokens] f32; cache [head_dim, n_kv_heads, n_rows] writable;
// kv a valid layout for the tokens over the cache.
void check_store_kv_args(const Tensor& src, const Tensor& cache, const KvLayout& kv);
// q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_rows],
// n_heads a multiple of n_kv_heads; kv a valid layout for the tokens; window >= 0; out separate
// from the rest.
void check_attention_args(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                          int64_t window, const Tensor& out);
// Where a layout is one sequence at consecutive positions p0.. whose rows are its positions
// (blocks 0, 1, ... in order up to its last position): p0, what a dense-cache kernel takes as
// n_past. nullopt otherwise.
std::optional<int64_t> dense_kv_start(const KvLayout& kv);

// ---- mixture of experts ------------------------------------------------------------------

// An i32 tensor with packed rows (expert ids).
void check_i32_ids(std::string_view op, std::string_view role, const Tensor& t);
// logits [n_expert, m] f32; ids [n_used, m] i32 packed and weights [n_used, m] f32, writable
// and separate; 1 <= n_used <= n_expert.
void check_route_top_k_args(const Tensor& logits, const Tensor& ids, const Tensor& weights);
// w [k, n, n_expert] (type: check_type); x [k, 1 or n_used, m] f32; ids [n_used, m] i32;
// out [n, n_used, m] f32, separate from the rest.
void check_matmul_experts_args(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out,
                               TypeCheck check_type);
// Host ids (read by the caller) all in 0..n_expert-1.
void check_expert_ids(std::span<const int32_t> ids, int64_t n_expert, const Tensor& w);
// y [n, n_used, m] f32; weights [n_used, m] f32; out [n, m] f32, separate from both.
void check_sum_experts_args(const Tensor& y, const Tensor& weights, const Tensor& out);

}  // namespace strata
