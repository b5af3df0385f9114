#include "model/weights.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace strata {
namespace {

class WeightLoader {
public:
  WeightLoader(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, Backend& backend,
               const LoadProgress& progress)
      : file_(file), keep_alive_(keep_alive), backend_(backend), progress_(progress) {
    for (const auto& t : file.tensors()) total_bytes_ += t.nbytes;
  }

  // A host view of `name`, checked to have shape `ne` (nullopt-like empty Tensor if optional and absent).
  Tensor host(const std::string& name, std::vector<int64_t> ne, bool required = true) const {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    if (info == nullptr) {
      if (required) fail("{}: missing tensor '{}'", file_.name(), name);
      return Tensor();
    }
    if (info->shape != ne) {
      fail("{}: tensor '{}' has shape [{}], expected [{}]", file_.name(), name, fmt::join(info->shape, ", "),
           fmt::join(ne, ", "));
    }
    if (type_traits(info->type).dequantize == nullptr) {
      fail("{}: tensor '{}' has type {}, which Strata cannot compute", file_.name(), name, dtype_name(info->type));
    }
    return Tensor::external(info->type, info->shape, info->data, info->nbytes, keep_alive_, name);
  }

  // A matrix, uploaded in its stored type.
  Tensor matrix(const std::string& name, int64_t ne0, int64_t ne1) const {
    return upload(host(name, {ne0, ne1}));
  }

  // A vector (norm weight or bias), converted to f32 on the host first.
  Tensor vector(const std::string& name, int64_t n, bool required = true) const {
    Tensor t = host(name, {n}, required);
    if (t.n_elements() == 0) return t;
    if (t.dtype() != DType::F32) {
      t = t.to_f32();
      t.set_name(name);
    }
    return upload(t);
  }

private:
  Tensor upload(const Tensor& host) const {
    Tensor t = backend_.upload(host);
    done_bytes_ += host.n_bytes();
    if (progress_ && total_bytes_ > 0) progress_(double(done_bytes_) / double(total_bytes_));
    return t;
  }

  const gguf::File& file_;
  const std::shared_ptr<const void>& keep_alive_;
  Backend& backend_;
  const LoadProgress& progress_;
  uint64_t total_bytes_ = 0;
  mutable uint64_t done_bytes_ = 0;
};

LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l;
  l.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
  l.wq = w.matrix(p + "attn_q.weight", c.n_embd, c.n_embd);
  l.wk = w.matrix(p + "attn_k.weight", c.n_embd, c.n_embd_kv());
  l.wv = w.matrix(p + "attn_v.weight", c.n_embd, c.n_embd_kv());
  if (c.qkv_bias) {
    l.bq = w.vector(p + "attn_q.bias", c.n_embd);
    l.bk = w.vector(p + "attn_k.bias", c.n_embd_kv());
    l.bv = w.vector(p + "attn_v.bias", c.n_embd_kv());
  }
  l.wo = w.matrix(p + "attn_output.weight", c.n_embd, c.n_embd);
  l.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
  l.ffn_gate = w.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
  l.ffn_up = w.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
  l.ffn_down = w.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
  return l;
}

}  // namespace

ModelWeights load_weights(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, ModelConfig& config,
                          Backend& backend, const LoadProgress& progress) {
  const WeightLoader w(file, keep_alive, backend, progress);
  ModelWeights m;
  m.token_embd = w.matrix("token_embd.weight", config.n_embd, config.n_vocab);
  m.output_norm = w.vector("output_norm.weight", config.n_embd);
  m.output = config.tied_output ? m.token_embd : w.matrix("output.weight", config.n_embd, config.n_vocab);
  const Tensor freqs = w.host("rope_freqs.weight", {config.rope.n_rot / 2}, false);
  if (freqs.n_elements() > 0) {
    const Tensor f = freqs.to_f32();
    const auto* v = reinterpret_cast<const float*>(f.data());
    config.rope.freq_factors.assign(v, v + f.n_elements());
  }
  for (int64_t il = 0; il < config.n_layer; ++il) m.layers.push_back(load_layer(w, config, il));
  return m;
}

}  // namespace strata
