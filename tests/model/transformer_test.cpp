// The forward pass (Transformer) on tiny synthetic models of every architecture (and heads
// wider than n_embd / n_head), on every backend of
// the registry (tests/backend/backends_under_test.h): a prompt in one pass and decode steps
// after it, fused (the path that ships) against op by op (--unfused) on the same backend, every
// named intermediate compared; the logits against cpu_ref64; and decode steps without a tap
// (recorded and replayed where the backend records, CUDA graphs) against tapped ones. Against
// cpu_ref64 every named intermediate is judged as `strata verify` judges it.
#include "model/transformer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/op_harness.h"
#include "backend/tensor_parallel/tensor_parallel_backend.h"
#include "model/model.h"
#include "model/tiny_models.h"
#include "runtime/tensor_diff.h"

namespace strata::test {
namespace {

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

INSTANTIATE_TEST_SUITE_P(AllBackends, TransformerOnBackend,
                         ::testing::Combine(::testing::ValuesIn(backend_names()), ::testing::ValuesIn(tiny_variants())),
                         [](const auto& info) {
                           return test_name_of(std::get<0>(info.param) + "_" + std::get<1>(info.param));
                         });

// Tensor parallelism (issue 21): tiny llama, qwen2 and qwen3 split Megatron-style over K = 2 and
// 4 in-process cpu_ref parts (heads, KV heads, feed-forward columns and vocabulary all divide by
// 4) against the same model on one cpu_ref. The split changes only the order of the row-split
// projections' sums (attn_output, ffn_down: K partial products added), so every named
// intermediate is within the op thresholds as `strata verify` judges, and far below them: the
// largest differences (NMSE ~2e-9) are in layer 1's attention, where a key or value that
// differs in its last f32 bits rounds to the other neighbour in the f16 cache.
class TransformerSplit : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

// cpu_ref counting the fused matmuls it is given.
class CountingCpuRef : public CpuRefBackend {
public:
  CountingCpuRef() : CpuRefBackend(Accumulation::f32, 1) {}
  void matmul_fused(const FusedMatmul& op) override {
    ++fused;
    CpuRefBackend::matmul_fused(op);
  }
  int fused = 0;
};

TEST_P(TransformerSplit, EqualsOneDevice) {
  const auto& [arch, k] = GetParam();
  TinyShape shape = tiny_shape(arch);
  shape.n_head = 8;
  shape.n_head_kv = 4;
  shape.n_embd = 128;
  shape.n_ff = 128;
  const std::string path = write_tiny_model(shape, 9);
  auto split = make_in_process_tensor_parallel(k, [] { return std::make_unique<CpuRefBackend>(Accumulation::f32, 1); });
  CpuRefBackend one(Accumulation::f32, 1);
  const std::unique_ptr<Model> split_model = Model::load(path, *split);
  const std::unique_ptr<Model> one_model = Model::load(path, one);
  EXPECT_GT(split->weight_bytes().split, 0u);

  for (const bool unfused : {false, true}) {
    const Passes got = run_model(*split_model, *split, unfused, true);
    const Passes want = run_model(*one_model, one, unfused, true);
    ASSERT_EQ(got.order, want.order);
    std::vector<TensorDiff> diffs;
    double worst = 0;
    std::string worst_name;
    for (const std::string& tensor : got.order) {
      diffs.push_back(diff_values(tensor, {}, got.taps.at(tensor), want.taps.at(tensor)));
      if (diffs.back().nmse > worst) worst = diffs.back().nmse, worst_name = tensor;
    }
    apply_thresholds(diffs);
    for (const TensorDiff& d : diffs) {
      EXPECT_TRUE(d.pass) << arch << " k " << k << " " << d.name << ": nmse " << d.nmse << " > " << d.threshold;
    }
    EXPECT_LE(worst, 1e-7) << arch << " k " << k << (unfused ? " unfused" : "") << " " << worst_name;
    // Before the first row-split sum the parts compute exactly what one device does.
    EXPECT_EQ(got.taps.at("blk.0.q_rope"), want.taps.at("blk.0.q_rope"));
    EXPECT_EQ(got.taps.at("blk.0.attn_out"), want.taps.at("blk.0.attn_out"));
  }
  // Decode steps without a tap give the tapped bits.
  const Passes tapped = run_model(*split_model, *split, false, true);
  const Passes untapped = run_model(*split_model, *split, false, false);
  EXPECT_EQ(untapped.logits, tapped.logits);

  // Every fused matmul of a pass runs fused on each part: per layer q/k/v, attention with its
  // projection, gate/up, down (qk_norm: q/k/v's rope and store are plain ops after it); the
  // output matrix.
  std::vector<CountingCpuRef*> parts;
  auto counted = make_in_process_tensor_parallel(k, [&] {
    auto p = std::make_unique<CountingCpuRef>();
    parts.push_back(p.get());
    return p;
  });
  const std::unique_ptr<Model> counted_model = Model::load(path, *counted);
  const int32_t token = 3;
  KvCache cache(*counted, counted_model->config(), 16, DType::F16);
  Transformer(counted_model->config(), counted_model->weights(), *counted, false).forward({&token, 1}, 0, cache, false);
  for (const CountingCpuRef* p : parts) EXPECT_EQ(p->fused, 4 * shape.n_layer + 1) << arch << " k " << k;
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    InProcessParts, TransformerSplit,
    ::testing::Combine(::testing::Values(std::string("llama"), std::string("qwen2"), std::string("qwen3")),
                       ::testing::Values(2, 4)),
    [](const auto& info) { return std::get<0>(info.param) + "_k" + std::to_string(std::get<1>(info.param)); });

}  // namespace
}  // namespace strata::test
