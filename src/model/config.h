// Hyperparameters of a Llama-family model, read from GGUF metadata. Architecture
// differences are flags here (design principle 1), not separate code paths.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "gguf/reader.h"

namespace strata {

struct ModelConfig {
  std::string arch;       // general.architecture: "llama" or "qwen2"
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  bool qkv_bias = false;   // qwen2: biases on the Q, K and V projections
  bool tied_output = false;  // no output.weight: token_embd doubles as the output matrix
  RopeConfig rope;

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t n_embd_kv() const { return head_dim() * n_head_kv; }
  int64_t n_gqa() const { return n_head / n_head_kv; }
};

// Reads and checks the hyperparameters; an unsupported architecture or a missing or
// inconsistent value throws naming the file and the key.
ModelConfig read_model_config(const gguf::File& file);

}  // namespace strata
