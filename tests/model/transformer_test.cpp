// The forward pass (Transformer) on tiny synthetic models of every architecture (and heads
// wider than n_embd / n_head), on every backend of
// the registry (tests/backend/backends_under_test.h): a prompt in one pass and decode steps
// after it, fused (the path that ships) against op by op (--unfused) on the same backend, every
// named intermediate compared; the logits against cpu_ref64; and decode steps without a tap
// (recorded and replayed where the backend records, CUDA graphs) against tapped ones. Against
// cpu_ref64 every named intermediate is judged as `strata verify` judges it.
#include "model/transformer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/op_harness.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "runtime/tensor_diff.h"

namespace strata::test {
namespace {

struct TinyShape {
  std::string arch;       // general.architecture
  DType type;             // of the matrices
  int64_t head_dim = 16;  // attention.key_length (written when n_embd != n_head * head_dim)
  int64_t n_embd = 64, n_head = 4, n_head_kv = 2, n_ff = 96, n_layer = 2, n_vocab = 96;
  int64_t taps_per_layer = 13;
  int64_t sliding_window = 0;  // attention.sliding_window (gemma3)
};

// The tiny model of a test variant: "<arch>", "<arch>_wide_heads" (n_head * head_dim != n_embd)
// or "llama_window" (attention.sliding_window 3, Mistral's kind of file).
TinyShape tiny_shape(const std::string& variant) {
  const bool wide = variant.ends_with("_wide_heads");
  TinyShape s{variant.substr(0, variant.find('_')), DType::F16};
  if (s.arch == "llama") s.type = DType::Q8_0;
  if (wide || s.arch == "qwen3") s.head_dim = 24;
  if (variant == "llama_window") s.sliding_window = 3;
  if (s.arch == "gemma3") {  // 6 layers: 5 windowed and a global one; windows of 3 of the 8 positions
    s.head_dim = 24;
    s.n_layer = 6;
    s.sliding_window = 3;
    s.taps_per_layer = 15;  // and attn_post_norm, ffn_post_norm
  }
  return s;
}

// Writes a model of random weights to a temporary GGUF file and returns its path.
std::string write_tiny_model(const TinyShape& s, uint32_t seed) {
  using gguf::Value;
  const std::string a = s.arch;
  std::vector<gguf::KeyValue> kv = {
      {"general.architecture", Value{a}},
      {a + ".embedding_length", Value{uint32_t(s.n_embd)}},
      {a + ".block_count", Value{uint32_t(s.n_layer)}},
      {a + ".attention.head_count", Value{uint32_t(s.n_head)}},
      {a + ".attention.head_count_kv", Value{uint32_t(s.n_head_kv)}},
      {a + ".feed_forward_length", Value{uint32_t(s.n_ff)}},
      {a + ".context_length", Value{uint32_t(64)}},
      {a + ".attention.layer_norm_rms_epsilon", Value{1e-5f}},
  };
  if (s.sliding_window > 0) kv.push_back({a + ".attention.sliding_window", Value{uint32_t(s.sliding_window)}});
  if (s.head_dim * s.n_head != s.n_embd) {
    kv.push_back({a + ".attention.key_length", Value{uint32_t(s.head_dim)}});
    kv.push_back({a + ".attention.value_length", Value{uint32_t(s.head_dim)}});
  }
  std::vector<Tensor> tensors;  // owners of the bytes
  std::vector<gguf::TensorData> data;
  auto add = [&](const std::string& name, std::vector<int64_t> ne, DType type, float sigma) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    tensors.push_back(Tensor::from_f32(random_values(size_t(n), seed++, sigma), ne, type, name));
  };
  const int64_t q_dim = s.head_dim * s.n_head;      // rows of wq
  const int64_t kv_dim = s.head_dim * s.n_head_kv;  // rows of wk, wv
  add("token_embd.weight", {s.n_embd, s.n_vocab}, s.type, 1.0f);
  add("output_norm.weight", {s.n_embd}, DType::F32, 1.0f);
  if (a == "llama") add("output.weight", {s.n_embd, s.n_vocab}, s.type, 0.2f);
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    if (a == "phi3") {  // q, k, v in one tensor
      add(p + "attn_qkv.weight", {s.n_embd, q_dim + 2 * kv_dim}, s.type, 0.2f);
    } else {
      add(p + "attn_q.weight", {s.n_embd, q_dim}, s.type, 0.2f);
      add(p + "attn_k.weight", {s.n_embd, kv_dim}, s.type, 0.2f);
      add(p + "attn_v.weight", {s.n_embd, kv_dim}, s.type, 0.2f);
    }
    if (a == "qwen2") {
      add(p + "attn_q.bias", {q_dim}, DType::F32, 0.5f);
      add(p + "attn_k.bias", {kv_dim}, DType::F32, 0.5f);
      add(p + "attn_v.bias", {kv_dim}, DType::F32, 0.5f);
    }
    if (a == "qwen3" || a == "gemma3") {
      add(p + "attn_q_norm.weight", {s.head_dim}, DType::F32, 1.0f);
      add(p + "attn_k_norm.weight", {s.head_dim}, DType::F32, 1.0f);
    }
    add(p + "attn_output.weight", {q_dim, s.n_embd}, s.type, 0.2f);
    if (a == "gemma3") add(p + "post_attention_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    add(p + "ffn_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    if (a == "phi3") {  // gate and up in one tensor
      add(p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}, s.type, 0.2f);
    } else {
      add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
      add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
    }
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.type, 0.2f);
    if (a == "gemma3") add(p + "post_ffw_norm.weight", {s.n_embd}, DType::F32, 1.0f);
  }
  for (const Tensor& t : tensors) {
    data.push_back({t.name(), t.dtype(), {t.ne().begin(), t.ne().begin() + t.n_dims()}, {t.data(), t.n_bytes()}});
  }
  const std::string path = ::testing::TempDir() + "strata-tiny-" + a + "-" + std::to_string(s.head_dim) + "-w" +
                           std::to_string(s.sliding_window) + "-" + std::string(dtype_name(s.type)) + ".gguf";
  gguf::write_file(path, kv, data);
  return path;
}

// Every tap of a run (host values by name, "#k" for the k-th repeat; `order`: execution order)
// and the logits of each pass.
struct Passes {
  std::map<std::string, std::vector<float>> taps;
  std::vector<std::string> order;
  std::vector<std::vector<float>> logits;
};

const std::vector<int32_t> kPrompt = {1, 17, 42, 5, 88};
const std::vector<int32_t> kNext = {7, 63, 20};

// The prompt in one pass, then each of kNext by a decode step; `tapped`: with a tap on every
// pass (the decode steps then run op by op), else decode steps that a backend may record.
Passes run_model(const Model& model, Backend& b, bool unfused, bool tapped) {
  Transformer t(model.config(), model.weights(), b, unfused);
  KvCache cache(b, model.config(), 16, DType::F16);
  Passes run;
  const Tap tap = [&](std::string_view name, const Tensor& value) {
    std::string key(name);
    for (int k = 1; run.taps.contains(key); ++k) key = std::string(name) + "#" + std::to_string(k);
    run.taps[key] = download(b, value);
    run.order.push_back(key);
  };
  run.logits.push_back(download(b, t.forward(kPrompt, 0, cache, true, tap)));
  int64_t pos = int64_t(kPrompt.size());
  for (int32_t token : kNext) {
    run.logits.push_back(download(b, t.forward({&token, 1}, pos++, cache, false, tapped ? tap : Tap{})));
  }
  return run;
}

class TransformerOnBackend : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(TransformerOnBackend, FusedEqualsUnfusedAndTheReference) {
  const auto& [name, arch] = GetParam();
  STRATA_BACKEND_OR_SKIP(b, name);
  const TinyShape shape = tiny_shape(arch);
  const std::string path = write_tiny_model(shape, 7);
  const std::unique_ptr<Model> model = Model::load(path, b);
  const std::unique_ptr<Model> ref_model = Model::load(path, reference_backend());

  const Passes fused = run_model(*model, b, false, true);
  const Passes unfused = run_model(*model, b, true, true);
  const Passes reference = run_model(*ref_model, reference_backend(), true, true);
  ASSERT_EQ(fused.taps.size(), unfused.taps.size());
  // Per layer: the block's taps; then result_norm and logits; inp_embd first; 4 passes.
  EXPECT_EQ(fused.taps.size(), size_t(4 * (1 + shape.taps_per_layer * shape.n_layer + 2)));
  for (const auto& [tensor, values] : fused.taps) {
    ASSERT_TRUE(unfused.taps.contains(tensor)) << tensor;
    // The fused kernels may round differently from the ops they stand for, within the
    // op thresholds of the generic suite; here far below them on these small sums.
    EXPECT_LE(nmse(to_double(unfused.taps.at(tensor)), values), 1e-6) << name << " " << arch << " " << tensor;
  }
  // Against the reference as `strata verify` judges: each tensor within its op's threshold plus
  // what the tensors before it carry (runtime/tensor_diff.h).
  std::vector<TensorDiff> diffs;
  for (const std::string& tensor : fused.order) {
    diffs.push_back(diff_values(tensor, {}, fused.taps.at(tensor), reference.taps.at(tensor)));
  }
  apply_thresholds(diffs);
  for (const TensorDiff& d : diffs) {
    EXPECT_TRUE(d.pass) << name << " " << arch << " " << d.name << ": nmse " << d.nmse << " > " << d.threshold;
  }
  // Decode steps without a tap (recorded where the backend records) give the tapped bits.
  const Passes untapped = run_model(*model, b, false, false);
  for (size_t pass = 0; pass < fused.logits.size(); ++pass) {
    EXPECT_EQ(untapped.logits[pass], fused.logits[pass]) << name << " " << arch << " pass " << pass;
  }
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    AllBackends, TransformerOnBackend,
    ::testing::Combine(::testing::ValuesIn(backend_names()),
                       ::testing::Values(std::string("llama"), std::string("qwen2"), std::string("llama_wide_heads"),
                                         std::string("qwen2_wide_heads"), std::string("qwen3"),
                                         std::string("llama_window"), std::string("gemma3"), std::string("phi3"))),
    [](const auto& info) { return test_name_of(std::get<0>(info.param) + "_" + std::get<1>(info.param)); });

}  // namespace
}  // namespace strata::test
