// A tiny llama model of random weights written to a temporary GGUF file, and a tokenizer of
// single characters for it: what the engine tests run on every backend in a few milliseconds.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "backend/op_harness.h"
#include "gguf/writer.h"
#include "tokenizer/tokenizer.h"

namespace strata::test {

struct TinyModelShape {
  DType type = DType::Q8_0;  // of the matrices
  int64_t n_embd = 64, n_head = 4, n_head_kv = 2, n_ff = 96, n_layer = 2, n_vocab = 96, n_ctx_train = 128;
};

// Writes the model to `path` (a file in ::testing::TempDir()), which the caller removes.
inline void write_tiny_llama(const std::string& path, const TinyModelShape& s, uint32_t seed) {
  using gguf::Value;
  std::vector<gguf::KeyValue> kv = {
      {"general.architecture", Value{std::string("llama")}},
      {"llama.embedding_length", Value{uint32_t(s.n_embd)}},
      {"llama.block_count", Value{uint32_t(s.n_layer)}},
      {"llama.attention.head_count", Value{uint32_t(s.n_head)}},
      {"llama.attention.head_count_kv", Value{uint32_t(s.n_head_kv)}},
      {"llama.feed_forward_length", Value{uint32_t(s.n_ff)}},
      {"llama.context_length", Value{uint32_t(s.n_ctx_train)}},
      {"llama.attention.layer_norm_rms_epsilon", Value{1e-5f}},
  };
  std::vector<Tensor> tensors;  // owners of the bytes
  auto add = [&](const std::string& name, std::vector<int64_t> ne, DType type, float sigma) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    tensors.push_back(Tensor::from_f32(random_values(size_t(n), seed++, sigma), ne, type, name));
  };
  const int64_t kv_dim = s.n_embd / s.n_head * s.n_head_kv;
  add("token_embd.weight", {s.n_embd, s.n_vocab}, s.type, 1.0f);
  add("output_norm.weight", {s.n_embd}, DType::F32, 1.0f);
  add("output.weight", {s.n_embd, s.n_vocab}, s.type, 0.5f);
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    add(p + "attn_q.weight", {s.n_embd, s.n_embd}, s.type, 0.3f);
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, s.type, 0.3f);
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, s.type, 0.3f);
    add(p + "attn_output.weight", {s.n_embd, s.n_embd}, s.type, 0.2f);
    add(p + "ffn_norm.weight", {s.n_embd}, DType::F32, 1.0f);
    add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
    add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, s.type, 0.2f);
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.type, 0.2f);
  }
  std::vector<gguf::TensorData> data;
  for (const Tensor& t : tensors) {
    data.push_back({t.name(), t.dtype(), {t.ne().begin(), t.ne().begin() + t.n_dims()}, {t.data(), t.n_bytes()}});
  }
  gguf::write_file(path, kv, data);
}

// A SentencePiece vocabulary of n_vocab tokens: <unk>, <s>, </s> (end of generation), then one
// printable ASCII character each from '!' on.
inline Tokenizer tiny_tokenizer(int64_t n_vocab) {
  Vocab v;
  v.kind = VocabKind::Spm;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  for (int64_t i = 3; i < n_vocab; ++i) {
    v.tokens.push_back(std::string(1, char('!' + (i - 3) % 94)));
    v.types.push_back(TokenType::Normal);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  return Tokenizer::from_vocab(std::move(v));
}

}  // namespace strata::test
