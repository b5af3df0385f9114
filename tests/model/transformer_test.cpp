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

}  // namespace
}  // namespace strata::test
