// The fused matmul (Backend::matmul_fused) on every backend of the registry, in the shapes the
// model uses (fused_cases.h): fused against the reference's plain ops (cpu_ref64, the op
// threshold of the weight type), and against the backend's own plain ops (the same threshold:
// a backend may fuse with other rounding, never with another result). Every output the op
// writes is compared: the prologue's, each job's after its epilogue, the gated one, the caches.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/fused_cases.h"

namespace strata::test {
namespace {

double threshold_for(DType type) {
  return type_traits(type).is_quantized ? kNmseQuantMatmul : kNmsePlainMatmul;
}

// The last output when it is the gated one, silu(gate) * up: it carries the errors of both
// products, so its bar is the elementwise op's plus what its inputs carry (as verify judges,
// runtime/tensor_diff.h: kPropagation = 4 times the inputs' bar).
enum class Last { product, gated };

void expect_close(const Outputs& got, const Outputs& want, double threshold, Last last, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t o = 0; o < got.size(); ++o) {
    const bool gated = last == Last::gated && o + 1 == got.size();
    const double bar = gated ? kNmseElementwise + 4.0 * threshold : threshold;
    EXPECT_LE(nmse(to_double(want[o]), got[o]), bar) << what << ", output " << o;
  }
}

// fused(b) against the reference's parts and b's own parts.
template <typename Run>
void check(Backend& b, const Run& run, double threshold, const std::string& what, Last last = Last::product) {
  const Outputs fused = run(b, true);
  expect_close(fused, run(reference_backend(), false), threshold, last, what + " vs cpu_ref64");
  expect_close(fused, run(b, false), threshold, last, what + " vs its own ops");
}

// k not a multiple of 256 where the type allows it (32-element blocks: 1184 = 37 * 32).
int64_t k_for(DType type) {
  return type_traits(type).block_size == 256 ? 768 : 416;
}

const std::vector<DType> kTypes = {DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::F16, DType::Q5_1};

class BackendFused : public ::testing::TestWithParam<std::string> {};

TEST_P(BackendFused, ResidualSwigluAndPlainJobs) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  uint32_t seed = 100;
  for (DType type : kTypes) {
    const int64_t k = k_for(type);
    const Weight w1 = make_weight(type, k, 67, seed += 10), w2 = make_weight(type, k, 67, seed += 10);
    const Weight w3 = make_weight(type, k, 33, seed += 10);
    const double t = threshold_for(type);
    for (int64_t m : {1, 3, 9}) {
      const std::string what = fmt::format("{} m={}", dtype_name(type), m);
      check(
          b, [&](Backend& be, bool f) { return run_matmul_add(be, w1, m, seed, f); }, t, "residual " + what);
      for (bool norm : {false, true}) {
        const std::string n = norm ? "rms_norm + " : "";
        check(
            b, [&](Backend& be, bool f) { return run_swiglu(be, w1, w2, m, seed, f, norm); }, t, n + "swiglu " + what,
            Last::gated);
        check(
            b, [&](Backend& be, bool f) { return run_swiglu(be, w1, w2, m, seed, f, norm, FusedMatmul::Gate::geglu); },
            t, n + "geglu " + what, Last::gated);
        check(
            b,
            [&](Backend& be, bool f) {
              return run_batch(be, {w1, w2, w3}, m, seed, f, norm);
            },
            t, n + "jobs " + what);
      }
    }
  }
}

// q/k/v after rms_norm, q and k roped, k and v stored: decode and prompt shapes, GQA, f16 and
// f32 caches, partial rotation, neox pairs, scaled angles with factors, and biases (qwen2).
TEST_P(BackendFused, QkvRopeAndStore) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  uint32_t seed = 300;
  std::vector<float> factors(16);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + 0.25f * float(i % 5);
  for (DType type : {DType::Q4_0, DType::Q4_K, DType::F16}) {
    const int64_t k = k_for(type);
    for (const auto& [rope, cache, bias] : {std::tuple{RopeConfig{64, 10000.0f, 1.0f, false, {}}, DType::F16, false},
                                            {RopeConfig{32, 500000.0f, 0.25f, false, factors}, DType::F32, false},
                                            {RopeConfig{64, 1000000.0f, 1.0f, true, {}}, DType::F16, true}}) {
      const QkvCase c{{make_weight(type, k, 256, seed += 10), make_weight(type, k, 128, seed += 10),
                       make_weight(type, k, 128, seed += 10)},
                      64,
                      cache,
                      rope,
                      bias};
      for (const auto& [pos, m] : {std::pair{int64_t(0), int64_t(1)}, {37, 1}, {5, 6}}) {
        const std::string what = fmt::format("qkv {} n_rot {}{}{} cache {} pos {} m {}", dtype_name(type), rope.n_rot,
                                             rope.neox ? " neox" : "", bias ? " bias" : "", dtype_name(cache), pos, m);
        check(
            b, [&](Backend& be, bool f) { return run_qkv_rope_store(be, c, pos, seed, f, m); }, threshold_for(type),
            what);
      }
    }
  }
  // Heads of 24 rows: blocks of whole heads that are not whole groups of 16 rows (the cpu
  // backend's interleaved Q4_0 / Q8_0 weights are read 16 rows at a time).
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
    const int64_t k = k_for(type);
    const QkvCase c{{make_weight(type, k, 240, seed += 10), make_weight(type, k, 72, seed += 10),
                     make_weight(type, k, 72, seed += 10)},
                    24,
                    DType::F16,
                    RopeConfig{24, 10000.0f, 1.0f, false, {}}};
    for (int64_t m : {1, 9}) {
      check(
          b, [&](Backend& be, bool f) { return run_qkv_rope_store(be, c, 3, seed, f, m); }, threshold_for(type),
          fmt::format("qkv {} head_dim 24 m {}", dtype_name(type), m));
    }
  }
}

// Attention, then the output projection with its residual add: decode and a prompt chunk, GQA,
// f16 and f32 caches.
TEST_P(BackendFused, AttentionThenProjection) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  uint32_t seed = 500;
  for (const auto& [c, type] : {std::pair{AttentionCase{64, 8, 2, 40, DType::F16}, DType::Q4_0},
                                {AttentionCase{64, 4, 4, 0, DType::F32}, DType::Q4_K},
                                {AttentionCase{32, 6, 3, 17, DType::F16}, DType::F16},
                                {AttentionCase{64, 4, 1, 30, DType::F16, 8}, DType::Q8_0}}) {
    const Weight w = make_weight(type, c.head_dim * c.n_heads, 96, seed += 10);
    for (int64_t m : {1, 4}) {
      const std::string what = fmt::format("attention + {} heads {}/{} n_past {} window {} m {}", dtype_name(type),
                                           c.n_heads, c.n_kv_heads, c.n_past, c.window, m);
      check(
          b, [&](Backend& be, bool f) { return run_attention_matmul_add(be, c, w, seed, f, m); }, threshold_for(type),
          what);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendFused, ::testing::ValuesIn(backend_names()),
                         [](const auto& info) { return test_name_of(info.param); });

}  // namespace
}  // namespace strata::test
