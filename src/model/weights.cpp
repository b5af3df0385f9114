#include "model/weights.h"

#include <fmt/ranges.h>

#include "core/error.h"
#include "model/arch/architecture.h"

namespace strata {

Placement weight_placement(std::string_view name, int64_t head_dim) {
  using Kind = Placement::Kind;
  if (name == "output.weight") return {Kind::vocab};
  if (!name.starts_with("blk.")) return {};
  const size_t dot = name.find('.', 4);  // after blk.N
  if (dot == std::string_view::npos) return {};
  const std::string_view role = name.substr(dot + 1);
  for (std::string_view head_columns : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_qkv.weight",
                                        "attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
    if (role == head_columns) return {Kind::columns, head_dim};
  }
  if (role == "attn_output.weight") return {Kind::rows, head_dim};
  if (role == "ffn_gate.weight" || role == "ffn_up.weight") return {Kind::columns};
  if (role == "ffn_down.weight") return {Kind::rows};
  return {};
}

WeightLoader::WeightLoader(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, Backend& backend,
                           const LoadProgress& progress, int64_t head_dim)
    : file_(file), keep_alive_(keep_alive), backend_(backend), progress_(progress), head_dim_(head_dim) {
  for (const auto& t : file.tensors()) total_bytes_ += t.nbytes;
}

Tensor WeightLoader::host(const std::string& name, std::vector<int64_t> ne, bool required) const {
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

Tensor WeightLoader::matrix(const std::string& name, int64_t ne0, int64_t ne1) const {
  const Tensor h = host(name, {ne0, ne1});
  Tensor t = upload(h, name);
  prepare_for_matmul(h, t);
  return t;
}

Tensor WeightLoader::table(const std::string& name, int64_t ne0, int64_t ne1) const {
  return upload(host(name, {ne0, ne1}), name);
}

void WeightLoader::prepare_for_matmul(const Tensor& host, const Tensor& uploaded) const {
  const size_t bytes = backend_.prepare_matmul_weight(uploaded);
  if (bytes == 0) return;
  prepared_.matrices += 1;
  prepared_.bytes += bytes;
  file_.release_pages(host.data(), host.n_bytes());
}

Tensor WeightLoader::matrix_rows(const std::string& name, int64_t ne0, int64_t ne1, int64_t first,
                                 int64_t count) const {
  Tensor part = host(name, {ne0, ne1}).slice(1, first, count);  // [ne0, count], contiguous rows
  part.set_name(fmt::format("{}[{}:{}]", name, first, first + count));
  Tensor t = upload(part, name);
  prepare_for_matmul(part, t);
  return t;
}

Tensor WeightLoader::experts(const std::string& name, int64_t ne0, int64_t ne1, int64_t ne2) const {
  return upload(host(name, {ne0, ne1, ne2}), name);
}

Tensor WeightLoader::vector(const std::string& name, int64_t n, bool required) const {
  Tensor t = host(name, {n}, required);
  if (t.n_elements() == 0) return t;
  if (t.dtype() != DType::F32) {
    t = t.to_f32();
    t.set_name(name);
  }
  return upload(t, name);
}

Tensor WeightLoader::upload(const Tensor& host, std::string_view name) const {
  Tensor t = backend_.upload_placed(host, weight_placement(name, head_dim_));
  done_bytes_ += host.n_bytes();
  if (progress_ && total_bytes_ > 0) progress_(double(done_bytes_) / double(total_bytes_));
  return t;
}

ModelWeights load_weights(const gguf::File& file, const std::shared_ptr<const void>& keep_alive, ModelConfig& config,
                          Backend& backend, const LoadProgress& progress) {
  const WeightLoader w(file, keep_alive, backend, progress, config.head_dim());
  ModelWeights m;
  m.token_embd = w.table("token_embd.weight", config.n_embd, config.n_vocab);
  m.output_norm = w.vector("output_norm.weight", config.n_embd);
  // A tied output matrix is not prepared: get_rows reads the table's rows from the file, and
  // with the file's pages released each row read would map its neighbours back in (fault-around),
  // so the copy would end up beside the table (+20 MB peak RSS on the default model's prompts).
  m.output = config.tied_output ? m.token_embd : w.matrix("output.weight", config.n_embd, config.n_vocab);
  const Tensor freqs = w.host("rope_freqs.weight", {config.rope.n_rot / 2}, false);
  if (freqs.n_elements() > 0) {
    const Tensor f = freqs.to_f32();
    const auto* v = reinterpret_cast<const float*>(f.data());
    config.rope.freq_factors.assign(v, v + f.n_elements());
  }
  for (int64_t il = 0; il < config.n_layer; ++il) m.layers.push_back(config.architecture->load_layer(w, config, il));
  m.prepared = w.prepared();
  return m;
}

}  // namespace strata
