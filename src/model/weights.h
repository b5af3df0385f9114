// The weight tensors of a Llama-family model, looked up by their GGUF names and checked
// against the config's shapes. Tensors are views into the mmapped file (CPU) or device
// copies, as the backend's upload() decides.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "gguf/reader.h"
#include "model/config.h"

namespace strata {

struct LayerWeights {
  Tensor attn_norm;  // [n_embd] f32
  Tensor wq;         // [n_embd, n_embd]
  Tensor wk;         // [n_embd, n_embd_kv]
  Tensor wv;         // [n_embd, n_embd_kv]
  Tensor bq;         // [n_embd] f32 (qkv_bias only)
  Tensor bk;         // [n_embd_kv] f32 (qkv_bias only)
  Tensor bv;         // [n_embd_kv] f32 (qkv_bias only)
  Tensor wo;         // [n_embd, n_embd]
  Tensor ffn_norm;   // [n_embd] f32
  Tensor ffn_gate;   // [n_embd, n_ff]
  Tensor ffn_up;     // [n_embd, n_ff]
  Tensor ffn_down;   // [n_ff, n_embd]
};

struct ModelWeights {
  Tensor token_embd;   // [n_embd, n_vocab]
  Tensor output_norm;  // [n_embd] f32
  Tensor output;       // [n_embd, n_vocab] (token_embd when tied)
  std::vector<LayerWeights> layers;
};

// `keep_alive` owns the memory behind `file` (the mapping). Reads rope_freqs.weight into
// config.rope.freq_factors when present. Throws naming the tensor for a missing tensor, a
// wrong shape or a type no backend op can read. `progress` (optional) gets the fraction of
// tensor bytes made available to the backend so far.
using LoadProgress = std::function<void(double fraction)>;
ModelWeights load_weights(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, ModelConfig& config,
                          Backend& backend, const LoadProgress& progress = {});

}  // namespace strata
