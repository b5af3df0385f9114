// Hyperparameters of a decoder-only transformer, read from GGUF metadata. The keys every
// architecture shares are read here; each architecture file (src/model/arch/) reads its own
// and sets the features its blocks use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "gguf/reader.h"

namespace strata {

struct Architecture;

struct ModelConfig {
  std::string arch;  // general.architecture
  const Architecture* architecture = nullptr;
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_embd_head = 0;  // attention.key_length (== value_length); 0: n_embd / n_head
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float attn_scale = 0.0f;     // of q.k; 1 / sqrt(head_dim) unless the architecture says otherwise
  bool qkv_bias = false;       // biases on the Q, K and V projections (qwen2)
  bool qk_norm = false;        // rms_norm of each query and key head before rope (qwen3, gemma3)
  float embd_scale = 1.0f;     // the embeddings are multiplied by it (gemma3: sqrt(n_embd))
  int64_t sliding_window = 0;  // attention.sliding_window: keys seen by the windowed layers (0: none)
  int64_t swa_pattern = 0;     // gemma3: layers il % swa_pattern < swa_pattern - 1 are windowed
  RopeConfig rope_swa;         // rope of the sliding-window layers (gemma3: base 10000, no scaling)
  bool tied_output = false;    // no output.weight: token_embd doubles as the output matrix
  int64_t n_expert = 0;        // expert_count: experts of each feed-forward (0: a dense model)
  int64_t n_expert_used = 0;   // expert_used_count: experts each token is routed to
  int64_t n_ff_exp = 0;        // rows of one expert's gate and up projections
  RopeConfig rope;

  int64_t head_dim() const { return n_embd_head > 0 ? n_embd_head : n_embd / n_head; }
  int64_t n_embd_q() const { return head_dim() * n_head; }      // rows of wq, of the attention output
  int64_t n_embd_kv() const { return head_dim() * n_head_kv; }  // rows of wk, wv
  int64_t n_gqa() const { return n_head / n_head_kv; }
};

// Typed access to the metadata of one file under the prefix "<arch>.": the keys an
// architecture file names are those of its model card ("attention.head_count").
class MetadataReader {
public:
  MetadataReader(const gguf::File& file, std::string arch) : file_(file), arch_(std::move(arch)) {}

  bool has(std::string_view key) const;
  // A positive integer; throws naming the file and key when absent or not positive.
  int64_t positive(std::string_view key) const;
  int64_t positive_or(std::string_view key, int64_t fallback) const;
  // A finite float.
  float real_or(std::string_view key, float fallback) const;
  std::string string_or(std::string_view key, std::string fallback) const;
  // Throws "<file>: <message>".
  [[noreturn]] void fail_with(std::string_view message) const;

  const gguf::File& file() const { return file_; }
  std::string full_key(std::string_view key) const { return arch_ + "." + std::string(key); }

private:
  const gguf::File& file_;
  std::string arch_;
};

// Reads and checks the hyperparameters; an unsupported architecture (the error lists the
// supported ones) or a missing or inconsistent value throws naming the file and the key.
ModelConfig read_model_config(const gguf::File& file);

// The keys every architecture shares (sizes, norm epsilon, rope base and scaling), read into c
// with `rope_neox` as the rotation of its rope.
void read_common_config(const MetadataReader& r, ModelConfig& c, bool rope_neox);

}  // namespace strata
