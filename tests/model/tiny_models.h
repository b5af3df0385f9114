// Tiny synthetic models of every architecture the forward pass builds (random weights written
// to a temporary GGUF file), for the tests of tests/model.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "backend/op_harness.h"
#include "gguf/writer.h"

namespace strata::test {

struct TinyShape {
  std::string arch;       // general.architecture
  DType type;             // of the matrices
  int64_t head_dim = 16;  // attention.key_length (written when n_embd != n_head * head_dim)
  int64_t n_embd = 64, n_head = 4, n_head_kv = 2, n_ff = 96, n_layer = 2, n_vocab = 96;
  int64_t taps_per_layer = 13;
  int64_t sliding_window = 0;                             // attention.sliding_window (gemma3)
  int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;  // mixture of experts (mixtral, qwen3moe)
};

// The tiny model of a test variant: "<arch>", "<arch>_wide_heads" (n_head * head_dim != n_embd)
// or "llama_window" (attention.sliding_window 3, Mistral's kind of file), "mixtral" (a llama
// file with 4 experts, 2 per token), "qwen3moe" (8 experts, 3 per token, of 48 rows).
inline TinyShape tiny_shape(const std::string& variant) {
  const bool wide = variant.ends_with("_wide_heads");
  TinyShape s{variant.substr(0, variant.find('_')), DType::F16};
  if (variant == "mixtral") s = {"llama", DType::Q8_0, 16, 64, 4, 2, 96, 2, 96, 16, 0, 4, 2, 96};
  if (s.arch == "qwen3moe") s = {"qwen3moe", DType::F16, 24, 64, 4, 2, 96, 2, 96, 16, 0, 8, 3, 48};
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
inline std::string write_tiny_model(const TinyShape& s, uint32_t seed) {
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
  if (s.n_expert > 0) {
    kv.push_back({a + ".expert_count", Value{uint32_t(s.n_expert)}});
    kv.push_back({a + ".expert_used_count", Value{uint32_t(s.n_expert_used)}});
    if (a == "qwen3moe") kv.push_back({a + ".expert_feed_forward_length", Value{uint32_t(s.n_ff_exp)}});
  }
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
    if (a == "qwen3" || a == "gemma3" || a == "qwen3moe") {
      add(p + "attn_q_norm.weight", {s.head_dim}, DType::F32, 1.0f);
      add(p + "attn_k_norm.weight", {s.head_dim}, DType::F32, 1.0f);
    }
    add(p + "attn_output.weight", {q_dim, s.n_embd}, s.type, 0.2f);
    if (a == "gemma3") add(p + "post_attention_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    add(p + "ffn_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    if (s.n_expert > 0) {  // an f32 router (router logits far apart: no near-ties) and 3-D experts
      add(p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, DType::F32, 1.0f);
      add(p + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, s.type, 0.2f);
      add(p + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, s.type, 0.2f);
      add(p + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert}, s.type, 0.2f);
    } else if (a == "phi3") {  // gate and up in one tensor
      add(p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}, s.type, 0.2f);
      add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.type, 0.2f);
    } else {
      add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
      add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
      add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.type, 0.2f);
    }
    if (a == "gemma3") add(p + "post_ffw_norm.weight", {s.n_embd}, DType::F32, 1.0f);
  }
  for (const Tensor& t : tensors) {
    data.push_back({t.name(), t.dtype(), {t.ne().begin(), t.ne().begin() + t.n_dims()}, {t.data(), t.n_bytes()}});
  }
  // The process id in the name: test binaries running at once do not write each other's files.
  const std::string path = ::testing::TempDir() + "strata-tiny-" + std::to_string(getpid()) + "-" + a + "-" +
                           std::to_string(s.head_dim) + "-e" + std::to_string(s.n_expert) + "-w" +
                           std::to_string(s.sliding_window) + "-" + std::string(dtype_name(s.type)) + ".gguf";
  gguf::write_file(path, kv, data);
  return path;
}

// The variants every test of tests/model runs.
inline std::vector<std::string> tiny_variants() {
  return {"llama",  "qwen2", "llama_wide_heads", "qwen2_wide_heads", "qwen3", "llama_window",
          "gemma3", "phi3",  "mixtral",          "qwen3moe"};
}

}  // namespace strata::test
