#include "model/config.h"

#include <cmath>

#include "core/error.h"
#include "model/arch/architecture.h"

namespace strata {

bool MetadataReader::has(std::string_view key) const {
  return file_.find(full_key(key)) != nullptr;
}

int64_t MetadataReader::positive(std::string_view key) const {
  const std::string k = full_key(key);
  const gguf::Value* v = file_.find(k);
  if (v == nullptr) fail("{}: missing metadata key '{}'", file_.name(), k);
  const int64_t x = v->as_int(file_.name() + ": " + k);
  if (x <= 0) fail("{}: metadata '{}' must be positive, got {}", file_.name(), k, x);
  return x;
}

int64_t MetadataReader::positive_or(std::string_view key, int64_t fallback) const {
  return has(key) ? positive(key) : fallback;
}

float MetadataReader::real_or(std::string_view key, float fallback) const {
  const std::string k = full_key(key);
  const gguf::Value* v = file_.find(k);
  if (v == nullptr) return fallback;
  const double x = v->as_double(file_.name() + ": " + k);
  if (!std::isfinite(x)) fail("{}: metadata '{}' is not finite", file_.name(), k);
  return float(x);
}

std::string MetadataReader::string_or(std::string_view key, std::string fallback) const {
  const std::string k = full_key(key);
  const gguf::Value* v = file_.find(k);
  return v != nullptr ? v->as_string(file_.name() + ": " + k) : fallback;
}

void MetadataReader::fail_with(std::string_view message) const {
  fail("{}: {}", file_.name(), message);
}

namespace {

void read_rope(const MetadataReader& r, ModelConfig& c, bool neox) {
  c.rope.n_rot = int(r.positive_or("rope.dimension_count", c.head_dim()));
  if (c.rope.n_rot % 2 != 0 || c.rope.n_rot > c.head_dim()) {
    r.fail_with(fmt::format("{} = {} must be even and at most the head size {}", r.full_key("rope.dimension_count"),
                            c.rope.n_rot, c.head_dim()));
  }
  c.rope.freq_base = r.real_or("rope.freq_base", 10000.0f);
  c.rope.neox = neox;
  const std::string scaling = r.string_or("rope.scaling.type", "none");
  if (scaling == "linear") {
    const float factor = r.real_or("rope.scaling.factor", 1.0f);
    if (factor <= 0.0f) r.fail_with(fmt::format("{} must be positive", r.full_key("rope.scaling.factor")));
    c.rope.freq_scale = 1.0f / factor;
  } else if (scaling != "none") {
    r.fail_with(fmt::format("rope scaling '{}' is not supported (supported: none, linear)", scaling));
  }
}

}  // namespace

void read_common_config(const MetadataReader& r, ModelConfig& c, bool rope_neox) {
  const gguf::File& f = r.file();
  c.n_embd = r.positive("embedding_length");
  c.n_layer = r.positive("block_count");
  c.n_head = r.positive("attention.head_count");
  c.n_head_kv = r.positive_or("attention.head_count_kv", c.n_head);
  c.n_ff = r.positive("feed_forward_length");
  c.n_ctx_train = r.positive_or("context_length", 2048);
  c.rms_eps = r.real_or("attention.layer_norm_rms_epsilon", 1e-5f);
  if (!r.has("attention.key_length") && c.n_embd % c.n_head != 0) {
    fail("{}: embedding length {} is not a multiple of {} heads (and no {})", f.name(), c.n_embd, c.n_head,
         r.full_key("attention.key_length"));
  }
  c.n_embd_head = r.positive_or("attention.key_length", c.n_embd / c.n_head);
  const int64_t value_length = r.positive_or("attention.value_length", c.n_embd_head);
  if (value_length != c.n_embd_head) {
    fail("{}: {} = {} differs from {} = {} (supported: equal key and value heads)", f.name(),
         r.full_key("attention.value_length"), value_length, r.full_key("attention.key_length"), c.n_embd_head);
  }
  if (c.n_head % c.n_head_kv != 0) {
    fail("{}: {} attention heads are not a multiple of {} KV heads", f.name(), c.n_head, c.n_head_kv);
  }
  if (!(c.rms_eps > 0.0f)) fail("{}: {} must be positive", f.name(), r.full_key("attention.layer_norm_rms_epsilon"));
  c.attn_scale = 1.0f / std::sqrt(float(c.head_dim()));
  read_rope(r, c, rope_neox);
}

ModelConfig read_model_config(const gguf::File& f) {
  ModelConfig c;
  const gguf::Value* arch = f.find("general.architecture");
  if (arch == nullptr) fail("{}: missing metadata key 'general.architecture'", f.name());
  c.arch = arch->as_string("general.architecture");
  c.architecture = find_architecture(c.arch);
  if (c.architecture == nullptr) {
    fail("{}: architecture '{}' is not supported (supported: {})", f.name(), c.arch, supported_architectures());
  }
  c.architecture->read_config(MetadataReader(f, c.arch), c);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: missing tensor 'token_embd.weight'", f.name());
  if (embd->shape.size() != 2) fail("{}: tensor 'token_embd.weight' must be 2-D", f.name());
  c.n_vocab = embd->shape[1];
  return c;
}

}  // namespace strata
