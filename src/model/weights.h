// The weight tensors of a model, looked up by their GGUF names and checked against the
// config's shapes. Tensors are views into the mmapped file (CPU) or device copies, as the
// backend's upload() decides. Which tensors a layer has is its architecture's tensor table
// (src/model/arch/); an absent optional tensor is an empty Tensor.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "gguf/reader.h"
#include "model/config.h"

namespace strata {

struct LayerWeights {
  Tensor attn_norm;       // [n_embd] f32
  Tensor wq;              // [n_embd, n_embd_q]
  Tensor wk;              // [n_embd, n_embd_kv]
  Tensor wv;              // [n_embd, n_embd_kv]
  Tensor bq;              // [n_embd_q] f32 (qkv_bias only)
  Tensor bk;              // [n_embd_kv] f32 (qkv_bias only)
  Tensor bv;              // [n_embd_kv] f32 (qkv_bias only)
  Tensor q_norm;          // [head_dim] f32: rms_norm of each query head (qwen3, gemma3)
  Tensor k_norm;          // [head_dim] f32: rms_norm of each key head
  Tensor wo;              // [n_embd_q, n_embd]
  Tensor attn_post_norm;  // [n_embd] f32: norm of the attention's output before the residual (gemma3)
  Tensor ffn_norm;        // [n_embd] f32
  Tensor ffn_gate;        // [n_embd, n_ff]
  Tensor ffn_up;          // [n_embd, n_ff]
  Tensor ffn_down;        // [n_ff, n_embd]
  Tensor ffn_post_norm;   // [n_embd] f32: norm of the feed-forward's output before the residual (gemma3)
  Tensor ffn_gate_inp;    // [n_embd, n_expert]: the router (mixture of experts)
  Tensor ffn_gate_exps;   // [n_embd, n_ff_exp, n_expert]
  Tensor ffn_up_exps;     // [n_embd, n_ff_exp, n_expert]
  Tensor ffn_down_exps;   // [n_ff_exp, n_embd, n_expert]
};

// What the backend's prepare_matmul_weight made of the matrices: how many it copied into
// another layout and the bytes of those copies (whose mmapped pages were released).
struct PreparedWeights {
  int64_t matrices = 0;
  uint64_t bytes = 0;
};

struct ModelWeights {
  PreparedWeights prepared;
  Tensor token_embd;   // [n_embd, n_vocab]
  Tensor output_norm;  // [n_embd] f32
  Tensor output;       // [n_embd, n_vocab] (token_embd when tied)
  std::vector<LayerWeights> layers;
};

// Progress of a load: the fraction of tensor bytes made available to the backend so far.
using LoadProgress = std::function<void(double fraction)>;

// What weight `name` (a GGUF tensor name) is to a backend that splits tensors over devices
// (Placement): Megatron's split of a block. q, k, v (and their biases, phi3's fused qkv) and
// gate, up by output columns in whole heads of `head_dim` / columns; attn_output and ffn_down by
// input rows, so that each part's product is a partial sum of the whole; output.weight by
// vocabulary; everything else (norms, embeddings) whole on every device.
Placement weight_placement(std::string_view name, int64_t head_dim);

// Looks tensors up in one file, checks them and makes them available to the backend, each with
// its weight_placement.
class WeightLoader {
public:
  WeightLoader(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, Backend& backend,
               const LoadProgress& progress, int64_t head_dim);

  // A host view of `name`, checked to have shape `ne` (an empty Tensor if optional and absent).
  Tensor host(const std::string& name, std::vector<int64_t> ne, bool required = true) const;
  // A matrix [ne0, ne1] that matmuls read, uploaded in its stored type (and prepared for them:
  // prepare_matmul_weight).
  Tensor matrix(const std::string& name, int64_t ne0, int64_t ne1) const;
  // Rows first..first+count-1 of a matrix [ne0, ne1] (a part of a fused tensor), uploaded and
  // prepared as a matrix [ne0, count].
  Tensor matrix_rows(const std::string& name, int64_t ne0, int64_t ne1, int64_t first, int64_t count) const;
  // A matrix [ne0, ne1] read by get_rows only (an embedding table), uploaded in its stored type.
  Tensor table(const std::string& name, int64_t ne0, int64_t ne1) const;
  // Prepares an uploaded matrix for matmuls (Backend::prepare_matmul_weight); where the backend
  // made a copy, the file's pages of `host` are released.
  void prepare_for_matmul(const Tensor& host, const Tensor& uploaded) const;
  const PreparedWeights& prepared() const { return prepared_; }
  // A 3-D tensor [ne0, ne1, ne2] (the experts' matrices), uploaded in its stored type.
  Tensor experts(const std::string& name, int64_t ne0, int64_t ne1, int64_t ne2) const;
  // A vector [n] (norm weight or bias), converted to f32 on the host first.
  Tensor vector(const std::string& name, int64_t n, bool required = true) const;

private:
  Tensor upload(const Tensor& host, std::string_view name) const;

  const gguf::File& file_;
  const std::shared_ptr<const void>& keep_alive_;
  Backend& backend_;
  const LoadProgress& progress_;
  int64_t head_dim_;
  uint64_t total_bytes_ = 0;
  mutable uint64_t done_bytes_ = 0;
  mutable PreparedWeights prepared_;
};

// `keep_alive` owns the memory behind `file` (the mapping). Reads rope_freqs.weight into
// config.rope.freq_factors when present. Throws naming the tensor for a missing tensor, a
// wrong shape or a type no backend op can read. `progress` (optional) gets the fraction of
// tensor bytes made available to the backend so far.
ModelWeights load_weights(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, ModelConfig& config,
                          Backend& backend, const LoadProgress& progress = {});

}  // namespace strata
