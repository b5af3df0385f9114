// One forward pass over many sequences (Transformer::forward of a Batch over a paged cache)
// against each sequence alone in a dense cache, on tiny models of every architecture and on
// every backend of the registry: 4 sequences fed in steps that mix prompt chunks and decode
// tokens, tokens shuffled within a batch, blocks shuffled in the cache, every token's logits
// or only some of them (gathered). cpu_ref gives the same bits (every op is per column and
// attention reads the positions in order wherever their rows lie); the fast backends agree
// within the forward pass's tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/op_harness.h"
#include "core/error.h"
#include "model/model.h"
#include "model/tiny_models.h"
#include "model/transformer.h"

namespace strata::test {
namespace {

// Runs `f`, expects a strata::Error, and checks that its message contains each of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no strata::Error was thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

constexpr int64_t kSeqs = 4;
constexpr int64_t kBlockTokens = 4;
constexpr int64_t kBlocks = 20;  // 80 rows: some blocks stay unused

// The tokens each sequence is fed (prompt, then what it "generated"), and how many of each
// sequence's next tokens every step takes: prompts in chunks beside other sequences' decode
// tokens, a sequence joining late (3), sequences finishing early (1, 2), one decode token alone.
const std::vector<std::vector<int32_t>> kTokens = {
    {1, 17, 42, 5, 88, 7, 63, 20, 9, 33},
    {3, 95, 11, 2},
    {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61},
    {90, 8, 31, 77, 4, 16},
};
const std::vector<std::vector<int64_t>> kSteps = {{5, 1, 7, 0}, {1, 2, 5, 4}, {1, 1, 0, 1}, {2, 0, 0, 1}, {1, 0, 0, 0}};

using Logits = std::map<std::pair<int64_t, int64_t>, std::vector<float>>;  // (sequence, position) -> [n_vocab]

// Each sequence alone in a dense cache, fed in the same pieces as in the batches, every
// token's logits.
Logits run_alone(const Model& model, Backend& b) {
  const int64_t n_vocab = model.config().n_vocab;
  Transformer t(model.config(), model.weights(), b);
  Logits logits;
  for (int64_t s = 0; s < kSeqs; ++s) {
    KvCache cache(b, model.config(), 16, DType::F16);
    int64_t pos = 0;
    for (const auto& step : kSteps) {
      const int64_t n = step[size_t(s)];
      if (n == 0) continue;
      const std::span<const int32_t> piece = std::span(kTokens[size_t(s)]).subspan(size_t(pos), size_t(n));
      const std::vector<float> out = download(b, t.forward(piece, pos, cache, true));
      for (int64_t i = 0; i < n; ++i) {
        logits[{s, pos + i}].assign(out.begin() + i * n_vocab, out.begin() + (i + 1) * n_vocab);
      }
      pos += n;
    }
  }
  return logits;
}

// All sequences together in one paged cache, one forward pass per step. Odd steps ask for
// every token's logits, even ones for every other token's (their columns gathered).
Logits run_batched(const Model& model, Backend& b) {
  const int64_t n_vocab = model.config().n_vocab, max_blocks = 4;
  Transformer t(model.config(), model.weights(), b);
  KvCache cache(b, model.config(), kBlocks * kBlockTokens, DType::F16);
  std::mt19937 rng(11);
  std::vector<int32_t> blocks(kBlocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const std::vector<int32_t> table(blocks.begin(), blocks.begin() + kSeqs * max_blocks);  // [kSeqs * max_blocks]
  std::vector<int64_t> fed(kSeqs, 0);
  Logits logits;
  for (size_t step = 0; step < kSteps.size(); ++step) {
    std::vector<int32_t> tokens, positions, seq;
    for (int64_t s = 0; s < kSeqs; ++s) {
      for (int64_t i = 0; i < kSteps[step][size_t(s)]; ++i) {
        const int64_t p = fed[size_t(s)]++;
        tokens.push_back(kTokens[size_t(s)][size_t(p)]);
        positions.push_back(int32_t(p));
        seq.push_back(int32_t(s));
      }
    }
    std::vector<size_t> order(tokens.size());  // any order within a batch
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> t_tokens, t_positions, t_seq, outputs;
    for (size_t i : order) {
      t_tokens.push_back(tokens[i]), t_positions.push_back(positions[i]), t_seq.push_back(seq[i]);
    }
    for (int32_t i = 0; i < int32_t(t_tokens.size()); ++i) {
      if (step % 2 == 0 || i % 2 == 1) outputs.push_back(i);
    }
    const KvLayout kv{.positions = t_positions,
                      .seq = t_seq,
                      .block_table = table,
                      .max_blocks = max_blocks,
                      .block_tokens = kBlockTokens};
    const std::vector<float> out = download(b, t.forward({.tokens = t_tokens, .kv = &kv, .outputs = outputs}, cache));
    EXPECT_EQ(out.size(), outputs.size() * size_t(n_vocab));
    for (size_t o = 0; o < outputs.size(); ++o) {
      const size_t i = size_t(outputs[o]);
      logits[{t_seq[i], t_positions[i]}].assign(out.begin() + int64_t(o) * n_vocab,
                                                out.begin() + int64_t(o + 1) * n_vocab);
    }
  }
  return logits;
}

class TransformerBatch : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(TransformerBatch, EqualsEachSequenceAlone) {
  const auto& [name, arch] = GetParam();
  STRATA_BACKEND_OR_SKIP(b, name);
  const std::string path = write_tiny_model(tiny_shape(arch), 7);
  const std::unique_ptr<Model> model = Model::load(path, b);
  const Logits alone = run_alone(*model, b);
  const Logits batched = run_batched(*model, b);
  EXPECT_GT(batched.size(), size_t(20));
  const bool exact = name.starts_with("cpu_ref");
  for (const auto& [key, values] : batched) {
    const std::vector<float>& want = alone.at(key);
    const std::string where = fmt::format("{} {} sequence {} position {}", name, arch, key.first, key.second);
    if (exact) {
      EXPECT_EQ(values, want) << where;
    } else {
      // The fast backends' kernels may take a batch's columns in other groups (8-bit
      // activations are per column, the sums' order is not); far below the op thresholds.
      EXPECT_LE(nmse(to_double(want), values), 1e-6) << where;
    }
  }
  std::remove(path.c_str());
}

// A batch the cache cannot hold, or whose outputs are not increasing indices, is refused.
TEST(TransformerBatchErrors, RefusesBadBatches) {
  Backend& b = reference_backend();
  const std::string path = write_tiny_model(tiny_shape("llama"), 7);
  const std::unique_ptr<Model> model = Model::load(path, b);
  Transformer t(model->config(), model->weights(), b);
  KvCache cache(b, model->config(), 8, DType::F16);
  const std::vector<int32_t> tokens = {1, 2}, positions = {0, 1}, seq = {0, 0}, table = {0, 1};
  const KvLayout kv{.positions = positions, .seq = seq, .block_table = table, .max_blocks = 2, .block_tokens = 4};
  const std::vector<int32_t> bad_outputs = {1, 0}, past_end = {2};
  expect_error([&] { t.forward({.tokens = tokens, .kv = &kv, .outputs = bad_outputs}, cache); },
               {"forward", "output 0 (outputs[1])", "2 tokens"});
  expect_error([&] { t.forward({.tokens = tokens, .kv = &kv, .outputs = past_end}, cache); }, {"forward", "output 2"});
  const std::vector<int32_t> far = {0, 9};  // position 9: block 2 of a table of 2
  const KvLayout outside{.positions = far, .seq = seq, .block_table = table, .max_blocks = 2, .block_tokens = 4};
  expect_error([&] { t.forward({.tokens = tokens, .kv = &outside, .outputs = {}}, cache); },
               {"forward", "position 9", "2 blocks of 4 tokens"});
  const std::vector<int32_t> high_blocks = {0, 5};  // block 5 of a cache of 2
  const std::vector<int32_t> late = {0, 5};
  const KvLayout beyond{.positions = late, .seq = seq, .block_table = high_blocks, .max_blocks = 2, .block_tokens = 4};
  expect_error([&] { t.forward({.tokens = tokens, .kv = &beyond, .outputs = {}}, cache); },
               {"forward", "block 1 of sequence 0 is block 5", "2 blocks"});
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TransformerBatch,
                         ::testing::Combine(::testing::ValuesIn(backend_names()), ::testing::ValuesIn(tiny_variants())),
                         [](const auto& info) {
                           return test_name_of(std::get<0>(info.param) + "_" + std::get<1>(info.param));
                         });

}  // namespace
}  // namespace strata::test
