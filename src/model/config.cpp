#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace strata {
namespace {

// Architectures written by the shared Llama-family forward pass.
bool is_supported_arch(const std::string& arch) { return arch == "llama" || arch == "qwen2"; }

int64_t read_int(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) fail("{}: missing metadata key '{}'", f.name(), key);
  const int64_t x = v->as_int(f.name() + ": " + key);
  if (x <= 0) fail("{}: metadata '{}' must be positive, got {}", f.name(), key, x);
  return x;
}

int64_t read_int_or(const gguf::File& f, const std::string& key, int64_t fallback) {
  return f.find(key) != nullptr ? read_int(f, key) : fallback;
}

float read_float_or(const gguf::File& f, const std::string& key, float fallback) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return fallback;
  const double x = v->as_double(f.name() + ": " + key);
  if (!std::isfinite(x)) fail("{}: metadata '{}' is not finite", f.name(), key);
  return float(x);
}

void read_rope(const gguf::File& f, ModelConfig& c) {
  const std::string& a = c.arch;
  c.rope.n_rot = int(read_int_or(f, a + ".rope.dimension_count", c.head_dim()));
  if (c.rope.n_rot % 2 != 0 || c.rope.n_rot > c.head_dim()) {
    fail("{}: {}.rope.dimension_count = {} must be even and at most the head size {}", f.name(), a, c.rope.n_rot,
         c.head_dim());
  }
  c.rope.freq_base = read_float_or(f, a + ".rope.freq_base", 10000.0f);
  c.rope.neox = a == "qwen2";
  const gguf::Value* type = f.find(a + ".rope.scaling.type");
  const std::string scaling = type != nullptr ? type->as_string(a + ".rope.scaling.type") : "none";
  if (scaling == "linear") {
    const float factor = read_float_or(f, a + ".rope.scaling.factor", 1.0f);
    if (factor <= 0.0f) fail("{}: {}.rope.scaling.factor must be positive", f.name(), a);
    c.rope.freq_scale = 1.0f / factor;
  } else if (scaling != "none") {
    fail("{}: rope scaling '{}' is not supported (supported: none, linear)", f.name(), scaling);
  }
}

}  // namespace

ModelConfig read_model_config(const gguf::File& f) {
  ModelConfig c;
  const gguf::Value* arch = f.find("general.architecture");
  if (arch == nullptr) fail("{}: missing metadata key 'general.architecture'", f.name());
  c.arch = arch->as_string("general.architecture");
  if (!is_supported_arch(c.arch)) {
    fail("{}: architecture '{}' is not supported (supported: llama, qwen2)", f.name(), c.arch);
  }
  const std::string& a = c.arch;
  c.n_embd = read_int(f, a + ".embedding_length");
  c.n_layer = read_int(f, a + ".block_count");
  c.n_head = read_int(f, a + ".attention.head_count");
  c.n_head_kv = read_int_or(f, a + ".attention.head_count_kv", c.n_head);
  c.n_ff = read_int(f, a + ".feed_forward_length");
  c.n_ctx_train = read_int_or(f, a + ".context_length", 2048);
  c.rms_eps = read_float_or(f, a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  if (c.n_embd % c.n_head != 0) fail("{}: embedding length {} is not a multiple of {} heads", f.name(), c.n_embd, c.n_head);
  if (c.n_head % c.n_head_kv != 0) {
    fail("{}: {} attention heads are not a multiple of {} KV heads", f.name(), c.n_head, c.n_head_kv);
  }
  if (!(c.rms_eps > 0.0f)) fail("{}: {}.attention.layer_norm_rms_epsilon must be positive", f.name(), a);
  c.qkv_bias = a == "qwen2";
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: missing tensor 'token_embd.weight'", f.name());
  if (embd->shape.size() != 2) fail("{}: tensor 'token_embd.weight' must be 2-D", f.name());
  c.n_vocab = embd->shape[1];
  read_rope(f, c);
  return c;
}

}  // namespace strata
