// The shapes of matmul_fused that the CUDA backend takes in one launch (cuda_fused.cpp): the
// residual add, gate/up with SwiGLU, plain jobs, each after rms_norm or not, q/k/v that rope
// and store, and attention before the output projection. For m <= kMaxVecColumns each is one
// matrix-vector launch with an epilogue (m = 1 with the norm, with rope, and after attention),
// and must give exactly the bits of the ops it stands for (Backend::matmul_fused: rms_norm,
// matmul, add, swiglu, rope, store_kv, attention); the results are also checked against
// cpu_ref under the matmul threshold. The suite every backend runs (tests/backend) holds the
// fused op to cpu_ref too; this file holds CUDA's launches to its own ops' bits.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/fused_cases.h"
#include "core/error.h"

namespace strata::test {
namespace {

// k not a multiple of 256 where the type allows it (32-element blocks, f16: 1184 = 37 * 32).
int64_t k_for(DType type) {
  return type_traits(type).block_size == 256 ? 1280 : 1184;
}

double threshold_for(DType type) {
  return type_traits(type).is_quantized ? kNmseQuantMatmul : kNmsePlainMatmul;
}

// The types of the fast kernels, and Q5_1 for the generic kernel (the ops one by one).
const std::vector<DType> kTypes = {DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::F16, DType::Q5_1};

void expect_identical(const Outputs& fused, const Outputs& parts, const std::string& what) {
  ASSERT_EQ(fused.size(), parts.size()) << what;
  for (size_t o = 0; o < fused.size(); ++o) {
    ASSERT_EQ(fused[o].size(), parts[o].size()) << what << ", output " << o;
    for (size_t i = 0; i < fused[o].size(); ++i) {
      ASSERT_EQ(fused[o][i], parts[o][i]) << what << ", output " << o << ", element " << i;
    }
  }
}

void expect_close(const Outputs& got, const Outputs& want, double threshold, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t o = 0; o < got.size(); ++o) {
    EXPECT_LE(nmse(to_double(want[o]), got[o]), threshold) << what << ", output " << o;
  }
}

// ---- CUDA ------------------------------------------------------------------------------------

class CudaFused : public ::testing::Test {
protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU";
    backend_ = make_cuda_backend();
  }
  std::unique_ptr<Backend> backend_;
  CpuRefBackend reference_;
};

std::string label(DType type, int64_t n, int64_t m) {
  return fmt::format("{} n={} m={}", dtype_name(type), n, m);
}

// Odd n (a partial last CTA), 2049 rows (2 rows per CTA on their own, 4 per swiglu CTA),
// m = 1 and m = 3, and m = 9 (the GEMM path: the ops one by one).
TEST_F(CudaFused, MatmulAddEqualsMatmulThenAdd) {
  uint32_t seed = 500;
  for (DType type : kTypes) {
    for (int64_t n : {517, 2049}) {
      const Weight w = make_weight(type, k_for(type), n, seed += 10);
      for (int64_t m : {1, 3, 9}) {
        if (n > 1000 && m != 1) continue;
        const Outputs fused = run_matmul_add(*backend_, w, m, seed, true);
        expect_identical(fused, run_matmul_add(*backend_, w, m, seed, false),
                         fmt::format("matmul_add {}", label(type, n, m)));
        expect_close(fused, run_matmul_add(reference_, w, m, seed, false), threshold_for(type),
                     fmt::format("matmul_add vs cpu_ref {}", label(type, n, m)));
      }
    }
  }
}

TEST_F(CudaFused, MatmulSwigluEqualsMatmulsThenSwiglu) {
  uint32_t seed = 600;
  for (DType type : kTypes) {
    for (int64_t n : {517, 2049}) {
      const Weight wg = make_weight(type, k_for(type), n, seed += 10),
                   wu = make_weight(type, k_for(type), n, seed += 10);
      for (int64_t m : {1, 3, 9}) {
        if (n > 1000 && m != 1) continue;
        const Outputs fused = run_swiglu(*backend_, wg, wu, m, seed, true, false);
        expect_identical(fused, run_swiglu(*backend_, wg, wu, m, seed, false, false),
                         fmt::format("matmul_swiglu {}", label(type, n, m)));
        expect_close(fused, run_swiglu(reference_, wg, wu, m, seed, false, false), threshold_for(type),
                     fmt::format("matmul_swiglu vs cpu_ref {}", label(type, n, m)));
      }
    }
  }
  // Gate and up of different types: the ops one by one.
  const Weight wg = make_weight(DType::Q4_K, 512, 99, 700), wu = make_weight(DType::Q6_K, 512, 99, 701);
  expect_identical(run_swiglu(*backend_, wg, wu, 1, 702, true, false),
                   run_swiglu(*backend_, wg, wu, 1, 702, false, false), "matmul_swiglu q4_K + q6_K");
}

// q, k, v of one type (one launch; 3 x 2049 rows take 4 rows per CTA), of two types mixed
// as Q4_K_M files mix them (two launches), and with types of no fast kernel among them.
TEST_F(CudaFused, MatmulBatchEqualsMatmuls) {
  uint32_t seed = 800;
  std::vector<std::vector<DType>> batches;
  for (DType type : kTypes) batches.push_back({type, type, type});
  batches.push_back({DType::Q4_K, DType::Q4_K, DType::Q6_K});
  batches.push_back({DType::Q4_0, DType::Q8_0, DType::Q4_0, DType::Q8_0, DType::Q4_0, DType::Q4_0});  // > kMaxVecJobs
  batches.push_back({DType::Q5_1, DType::F16, DType::Q5_1});
  for (const std::vector<DType>& types : batches) {
    const int64_t k = types[0] == DType::Q4_K || types[0] == DType::Q6_K ? 1280 : 1184;
    for (int64_t m : {1, 3}) {
      for (bool large : {false, true}) {
        if (large && m != 1) continue;
        std::vector<Weight> ws;
        std::string what = fmt::format("matmul_batch m={}", m);
        for (size_t i = 0; i < types.size(); ++i) {
          const int64_t n = large ? 2049 : (i == 0 ? 515 : 129 + 2 * int64_t(i));
          ws.push_back(make_weight(types[i], k, n, seed += 10));
          what = fmt::format("{} {}", what, label(types[i], n, m));
        }
        const Outputs fused = run_batch(*backend_, ws, m, seed, true, false);
        expect_identical(fused, run_batch(*backend_, ws, m, seed, false, false), what);
        expect_close(fused, run_batch(reference_, ws, m, seed, false, false), threshold_for(types[0]),
                     fmt::format("{} vs cpu_ref", what));
      }
    }
  }
}

// x as a column view that is not 16-byte aligned: the ops one by one, same bits.
// Q4_K rows of 16 blocks or more take the 8-lane kernel (the cases above, k = 1280, the
// 16-lane one): k = 4352 (17 blocks, a partial block step), each fused op against the ops
// one by one (bit-identical) and against cpu_ref.
TEST_F(CudaFused, Q4KEightLaneKernelInEveryFusedOp) {
  const int64_t k = 4352;
  uint32_t seed = 900;
  for (int64_t n : {517, 2049}) {
    const Weight w = make_weight(DType::Q4_K, k, n, seed += 10), w2 = make_weight(DType::Q4_K, k, n, seed += 10),
                 w3 = make_weight(DType::Q4_K, k, n + 6, seed += 10);
    for (int64_t m : {1, 3}) {
      const std::string what = label(DType::Q4_K, n, m);
      const Outputs add = run_matmul_add(*backend_, w, m, seed, true);
      expect_identical(add, run_matmul_add(*backend_, w, m, seed, false), "matmul_add " + what);
      expect_close(add, run_matmul_add(reference_, w, m, seed, false), kNmseQuantMatmul, "matmul_add cpu_ref " + what);
      const Outputs swiglu = run_swiglu(*backend_, w, w2, m, seed, true, false);
      expect_identical(swiglu, run_swiglu(*backend_, w, w2, m, seed, false, false), "matmul_swiglu " + what);
      expect_close(swiglu, run_swiglu(reference_, w, w2, m, seed, false, false), kNmseQuantMatmul,
                   "matmul_swiglu cpu_ref " + what);
      const std::vector<Weight> ws = {w, w2, w3};
      const Outputs batch = run_batch(*backend_, ws, m, seed, true, false);
      expect_identical(batch, run_batch(*backend_, ws, m, seed, false, false), "matmul_batch " + what);
      expect_close(batch, run_batch(reference_, ws, m, seed, false, false), kNmseQuantMatmul,
                   "matmul_batch cpu_ref " + what);
    }
  }
}

// The norm folded into the launch (m = 1, k <= 2048): every CTA normalizes x and must
// reproduce the rms_norm kernel's bits, for each fast kernel, with and without the slab path
// (Q8_0 and F16 read rows directly), a partial last CTA, q/k/v of two types (the second
// launch reads normed), and the cases that take the ops one by one: m = 3, a type of no fast
// kernel. x longer than the f32 kernels normalize (k = 2080, and 4352 on Q4_K's 8-lane
// kernel) takes the integer kernels at m = 1, whatever the matrix's size (normed and its q8
// form by the rms_norm kernel, whose blocks split the row), and SwiGLU at 8 rows per CTA
// through the slab (Q4_K, n = 2049: a partial last CTA).
TEST_F(CudaFused, RmsNormMatmulEqualsRmsNormThenMatmul) {
  uint32_t seed = 1100;
  std::vector<std::pair<std::vector<DType>, int64_t>> batches;  // types of q, k, v; k
  for (DType type : kTypes) batches.push_back({{type, type, type}, k_for(type)});
  batches.push_back({{DType::Q4_K, DType::Q4_K, DType::Q4_K}, 4352});
  batches.push_back({{DType::Q4_K, DType::Q4_K, DType::Q6_K}, 2048});
  batches.push_back({{DType::Q4_0, DType::Q4_0, DType::Q4_0}, 2080});
  for (const auto& [types, k] : batches) {
    for (int64_t m : {1, 3}) {
      std::vector<Weight> ws;
      std::string what = fmt::format("rms_norm_matmul_batch k={} m={}", k, m);
      for (size_t i = 0; i < types.size(); ++i) {
        const int64_t n = i == 0 ? 2049 : 517 + 2 * int64_t(i);
        ws.push_back(make_weight(types[i], k, n, seed += 10));
        what = fmt::format("{} {}", what, label(types[i], n, m));
      }
      const Outputs fused = run_batch(*backend_, ws, m, seed, true, true);
      expect_identical(fused, run_batch(*backend_, ws, m, seed, false, true), what);
      expect_close(fused, run_batch(reference_, ws, m, seed, false, true), threshold_for(types[0]),
                   fmt::format("{} vs cpu_ref", what));

      const std::string swiglu = fmt::format("rms_norm_matmul_swiglu k={} {}", k, label(types[0], ws[0].n, m));
      const Weight wu = make_weight(types[0], k, ws[0].n, seed += 10);
      const Outputs fused_swiglu = run_swiglu(*backend_, ws[0], wu, m, seed, true, true);
      expect_identical(fused_swiglu, run_swiglu(*backend_, ws[0], wu, m, seed, false, true), swiglu);
      expect_close(fused_swiglu, run_swiglu(reference_, ws[0], wu, m, seed, false, true), threshold_for(types[0]),
                   swiglu + " vs cpu_ref");
    }
  }
}

// Matrices of 2^23 weights or more take the integer kernels at m = 1 (x rounded to its q8
// form: by the rms_norm kernel where the op starts with a norm, else by a launch of its own),
// also in rows short enough for the f32 kernels to fold the norm (2048); smaller ones stay f32
// there, so a batch may take both, and take the integer kernels in longer rows (the 4096 x
// 1024 k below). The fused ops must still give the ops' bits, and stay within the matmul
// threshold of cpu_ref.
TEST_F(CudaFused, LargeMatricesTakeTheIntegerKernels) {
  uint32_t seed = 1400;
  const std::vector<Weight> qkv = {make_weight(DType::Q4_0, 4096, 4096, seed += 10),
                                   make_weight(DType::Q4_0, 4096, 1024, seed += 10),
                                   make_weight(DType::Q6_K, 4096, 4100, seed += 10)};
  Outputs fused = run_batch(*backend_, qkv, 1, seed, true, true);
  expect_identical(fused, run_batch(*backend_, qkv, 1, seed, false, true), "rms_norm_matmul_batch");
  expect_close(fused, run_batch(reference_, qkv, 1, seed, false, true), kNmseQuantMatmul,
               "rms_norm_matmul_batch vs cpu_ref");
  fused = run_batch(*backend_, qkv, 1, seed, true, false);
  expect_identical(fused, run_batch(*backend_, qkv, 1, seed, false, false), "matmul_batch");
  // Q4_K and Q6_K rows grouped in one launch (launch_matvec_q8_jobs_pair) where Q4_K comes first;
  // where Q6_K does, a launch per type.
  for (const std::vector<DType>& types : std::vector<std::vector<DType>>{{DType::Q4_K, DType::Q6_K, DType::Q4_K},
                                                                         {DType::Q6_K, DType::Q4_K, DType::Q6_K}}) {
    std::vector<Weight> ws;
    for (DType type : types) ws.push_back(make_weight(type, 4096, 1000 + 36 * int64_t(ws.size()), seed += 10));
    const std::string what =
        fmt::format("matmul_batch {} {} {}", dtype_name(types[0]), dtype_name(types[1]), dtype_name(types[2]));
    fused = run_batch(*backend_, ws, 1, seed, true, true);
    expect_identical(fused, run_batch(*backend_, ws, 1, seed, false, true), what);
    expect_close(fused, run_batch(reference_, ws, 1, seed, false, true), kNmseQuantMatmul, what + " vs cpu_ref");
  }

  const Weight gate = make_weight(DType::Q4_K, 4096, 4100, seed += 10),
               up = make_weight(DType::Q4_K, 4096, 4100, seed += 10);
  fused = run_swiglu(*backend_, gate, up, 1, seed, true, true);
  expect_identical(fused, run_swiglu(*backend_, gate, up, 1, seed, false, true), "rms_norm_matmul_swiglu");
  expect_close(fused, run_swiglu(reference_, gate, up, 1, seed, false, true), kNmseQuantMatmul,
               "rms_norm_matmul_swiglu vs cpu_ref");
  fused = run_swiglu(*backend_, gate, up, 1, seed, true, false);
  expect_identical(fused, run_swiglu(*backend_, gate, up, 1, seed, false, false), "matmul_swiglu");

  const Weight down = make_weight(DType::Q4_0, 11008, 1536, seed += 10);
  fused = run_matmul_add(*backend_, down, 1, seed, true);
  expect_identical(fused, run_matmul_add(*backend_, down, 1, seed, false), "matmul_add");
  expect_close(fused, run_matmul_add(reference_, down, 1, seed, false), kNmseQuantMatmul, "matmul_add vs cpu_ref");

  // TinyLlama's feed-forward shapes, smaller: rows of 2048 (2^23 weights and more).
  const Weight short_gate = make_weight(DType::Q4_0, 2048, 4100, seed += 10),
               short_up = make_weight(DType::Q4_0, 2048, 4100, seed += 10);
  fused = run_swiglu(*backend_, short_gate, short_up, 1, seed, true, true);
  expect_identical(fused, run_swiglu(*backend_, short_gate, short_up, 1, seed, false, true),
                   "rms_norm_matmul_swiglu, rows of 2048");
  expect_close(fused, run_swiglu(reference_, short_gate, short_up, 1, seed, false, true), kNmseQuantMatmul,
               "rms_norm_matmul_swiglu, rows of 2048, vs cpu_ref");
  const Weight short_down = make_weight(DType::Q4_0, 4128, 2048, seed += 10);
  fused = run_matmul_add(*backend_, short_down, 1, seed, true);
  expect_identical(fused, run_matmul_add(*backend_, short_down, 1, seed, false), "matmul_add, rows of 4128");
  expect_close(fused, run_matmul_add(reference_, short_down, 1, seed, false), kNmseQuantMatmul,
               "matmul_add, rows of 4128, vs cpu_ref");
}

// The q/k/v launches rope and store themselves (kernels.h: VecRole): for every fast kernel
// (pairs of rows in a CTA: R rounded up to even for Q6_K, Q8_0 and small n), a type of no fast
// kernel (the rope and store_kv ops after matmul), GQA, f16 and f32 caches, partial rotation,
// scaled angles with per-pair factors, neox pairs (the ops one by one), and the integer
// kernels next to f32 ones in one op (Llama-2-7B's q with a small k and a Q6_K v).
TEST_F(CudaFused, RmsNormQkvRopeStoreKvEqualsTheOps) {
  uint32_t seed = 1600;
  std::vector<QkvCase> cases;
  const RopeConfig plain{64, 10000.0f, 1.0f, false, {}};
  for (DType type : kTypes) {
    const int64_t k = k_for(type);
    cases.push_back({{make_weight(type, k, 512, seed += 10), make_weight(type, k, 128, seed += 10),
                      make_weight(type, k, 128, seed += 10)},
                     64,
                     DType::F16,
                     plain});
  }
  const int64_t k = 1184;
  std::vector<float> factors(32);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + 0.25f * float(i % 5);
  cases.push_back({{make_weight(DType::Q4_0, k, 4096, seed += 10), make_weight(DType::Q4_0, k, 1024, seed += 10),
                    make_weight(DType::Q4_0, k, 1024, seed += 10)},
                   128,
                   DType::F32,
                   {64, 500000.0f, 0.25f, false, factors}});  // 4 rows per CTA, half of each head turned
  cases.push_back({{make_weight(DType::F16, k, 256, seed += 10), make_weight(DType::F16, k, 256, seed += 10),
                    make_weight(DType::F16, k, 256, seed += 10)},
                   64,
                   DType::F16,
                   {64, 10000.0f, 1.0f, true, {}}});  // neox: the ops
  cases.push_back({{make_weight(DType::Q4_0, 4096, 4096, seed += 10), make_weight(DType::Q4_0, 4096, 1024, seed += 10),
                    make_weight(DType::Q6_K, 4096, 1024, seed += 10)},
                   128,
                   DType::F16,
                   {128, 10000.0f, 1.0f, false, {}}});
  // Llama-3-8B's q, k and v, smaller: Q4_K q and k and a Q6_K v (rows grouped) in one launch
  // (kernels.h: launch_matvec_q8_jobs_pair), 4 and 2 rows per CTA.
  for (int64_t n : {1024, 256}) {
    cases.push_back({{make_weight(DType::Q4_K, 4096, 2 * n, seed += 10), make_weight(DType::Q4_K, 4096, n, seed += 10),
                      make_weight(DType::Q6_K, 4096, n, seed += 10)},
                     128,
                     DType::F16,
                     {128, 500000.0f, 1.0f, false, {}}});
  }
  for (const QkvCase& c : cases) {
    for (int64_t pos : {0, 37}) {
      const std::string what = fmt::format("rms_norm_qkv_rope_store_kv {} {} {} head_dim {} n_rot {}{} cache {} pos {}",
                                           label(c.w[0].host.dtype(), c.w[0].n, 1), dtype_name(c.w[1].host.dtype()),
                                           dtype_name(c.w[2].host.dtype()), c.head_dim, c.rope.n_rot,
                                           c.rope.neox ? " neox" : "", dtype_name(c.cache), pos);
      const Outputs fused = run_qkv_rope_store(*backend_, c, pos, seed, true);
      expect_identical(fused, run_qkv_rope_store(*backend_, c, pos, seed, false), what);
      expect_close(fused, run_qkv_rope_store(reference_, c, pos, seed, false), threshold_for(c.w[0].host.dtype()),
                   what + " vs cpu_ref");
    }
  }
}

// Recorded decode steps (run_step) read the position on the device: the fused op replayed at
// positions 0..5 fills the caches as the ops do.
TEST_F(CudaFused, RecordedQkvRopeStoreKvEqualsTheOps) {
  const QkvCase c{{make_weight(DType::Q4_0, 1184, 512, 1700), make_weight(DType::Q4_0, 1184, 128, 1701),
                   make_weight(DType::Q4_0, 1184, 128, 1702)},
                  64,
                  DType::F16,
                  {64, 10000.0f, 1.0f, false, {}}};
  Backend& b = *backend_;
  const Tensor x = upload_values(b, random_values(1184, 1703), {1184, 1});
  const Tensor norm_weight = upload_values(b, random_values(1184, 1704), {1184});
  const Tensor wq = b.upload(c.w[0].host), wk = b.upload(c.w[1].host), wv = b.upload(c.w[2].host);
  struct State {
    Tensor normed, q, k, v, k_cache, v_cache;
  };
  auto state = [&] {
    return State{b.alloc(DType::F32, {1184, 1}, "normed"),   b.alloc(DType::F32, {512, 1}, "q"),
                 b.alloc(DType::F32, {128, 1}, "k"),         b.alloc(DType::F32, {128, 1}, "v"),
                 b.alloc(DType::F16, {64, 2, 6}, "k_cache"), b.alloc(DType::F16, {64, 2, 6}, "v_cache")};
  };
  State recorded = state(), direct = state();
  StepRecording recording;
  for (int64_t pos = 0; pos < 6; ++pos) {
    const int32_t position = int32_t(pos);
    const DenseKvLayout kv(pos, 1, 6);
    auto op = [&](State& s, std::vector<MatmulJob>& jobs) {
      jobs = {{.w = &wq, .out = &s.q, .rope = true},
              {.w = &wk, .out = &s.k, .rope = true, .store = &s.k_cache},
              {.w = &wv, .out = &s.v, .store = &s.v_cache}};
      return FusedMatmul{.x = &s.normed,
                         .prologue = FusedMatmul::Prologue::rms_norm,
                         .norm_input = &x,
                         .norm_weight = &norm_weight,
                         .norm_eps = 1e-5f,
                         .kv = &kv.get(),
                         .jobs = jobs,
                         .head_dim = 64,
                         .rope = &c.rope,
                         .positions = {&position, 1}};
    };
    std::vector<MatmulJob> recorded_jobs, direct_jobs;
    b.run_step(recording, 0, pos, [&] { b.matmul_fused(op(recorded, recorded_jobs)); });
    b.Backend::matmul_fused(op(direct, direct_jobs));
    for (auto [got, want] : {std::pair{&recorded.q, &direct.q},
                             {&recorded.k_cache, &direct.k_cache},
                             {&recorded.v_cache, &direct.v_cache}}) {
      ASSERT_EQ(download(b, *got), download(b, *want)) << got->name() << " at position " << pos;
    }
  }
}

// Where the projection takes the integer kernels, the attention kernel writes out's q8 form
// (one split, or the last of several merging them); f32 caches, and a projection too small
// for the integer kernels, take the ops one by one.
TEST_F(CudaFused, AttentionMatmulAddEqualsTheOps) {
  uint32_t seed = 1800;
  const std::vector<std::pair<AttentionCase, DType>> cases = {
      {{128, 32, 32, 0, DType::F16}, DType::Q4_0},    // Llama-2-7B's first token
      {{128, 32, 32, 127, DType::F16}, DType::Q4_0},  // one whole split
      {{128, 32, 8, 300, DType::F16}, DType::Q4_K},   // three splits, GQA
      {{64, 64, 4, 200, DType::F16}, DType::Q6_K},    // head_dim 64, two splits
      {{128, 32, 8, 40, DType::F32}, DType::Q4_0},    // f32 caches: the ops
      {{64, 4, 2, 9, DType::F16}, DType::Q4_0},       // 256 x 300: f32 kernels, the ops
  };
  for (const auto& [c, type] : cases) {
    const int64_t k = c.head_dim * c.n_heads, n = k == 4096 ? 4096 : 300;
    const Weight w = make_weight(type, k, n, seed += 10);
    const std::string what =
        fmt::format("attention_matmul_add head_dim {} heads {}/{} n_past {} cache {} {}", c.head_dim, c.n_heads,
                    c.n_kv_heads, c.n_past, dtype_name(c.cache), label(type, n, 1));
    const Outputs fused = run_attention_matmul_add(*backend_, c, w, seed, true);
    expect_identical(fused, run_attention_matmul_add(*backend_, c, w, seed, false), what);
    expect_close(fused, run_attention_matmul_add(reference_, c, w, seed, false), kNmseQuantMatmul,
                 what + " vs cpu_ref");
  }
}

// Decode attention loads the keys before n_past while the previous kernel still runs only
// where that kernel stored none of them. Here it stored them all (store_kv of n_past + 1 rows
// over caches of NaN, v last): read before it finished, they would make the output NaN.
TEST_F(CudaFused, DecodeAttentionWaitsForKeysTheLastStoreWrote) {
  constexpr int64_t kHeadDim = 128, kHeads = 8, kKvHeads = 2, kPast = 100, kCtx = 128;
  auto run = [&](Backend& b) {
    const std::vector<float> nan(size_t(kHeadDim * kKvHeads * kCtx), std::nanf(""));
    Tensor k_cache = upload_values(b, nan, {kHeadDim, kKvHeads, kCtx}, DType::F16);
    Tensor v_cache = upload_values(b, nan, {kHeadDim, kKvHeads, kCtx}, DType::F16);
    const size_t rows = size_t(kHeadDim * kKvHeads * (kPast + 1));
    const Tensor k = upload_values(b, random_values(rows, 1900), {kHeadDim, kKvHeads, kPast + 1});
    const Tensor v = upload_values(b, random_values(rows, 1901), {kHeadDim, kKvHeads, kPast + 1});
    const Tensor q = upload_values(b, random_values(size_t(kHeadDim * kHeads), 1902), {kHeadDim, kHeads, 1});
    Tensor out = b.alloc(DType::F32, {kHeadDim, kHeads, 1}, "out");
    b.store_kv(k, k_cache, DenseKvLayout(0, kPast + 1, kCtx));
    b.store_kv(v, v_cache, DenseKvLayout(0, kPast + 1, kCtx));
    b.attention(q, k_cache, v_cache, DenseKvLayout(kPast, 1, kCtx), 1.0f / std::sqrt(float(kHeadDim)), 0, out);
    return Outputs{download(b, out)};
  };
  expect_close(run(*backend_), run(reference_), kNmseQuantMatmul, "attention after store_kv of every key");
}

TEST_F(CudaFused, UnalignedInputTakesTheOps) {
  const Weight w = make_weight(DType::Q4_0, 256, 77, 900);
  const Tensor wd = backend_->upload(w.host);
  const Tensor wide = upload_values(*backend_, random_values(size_t(257 * 2), 901), {257, 2});
  Tensor x = wide.slice(0, 1, 256);  // starts 4 bytes in
  auto run = [&](bool fused) {
    Tensor product = backend_->alloc(DType::F32, {77, 2}, "product");
    Tensor acc = upload_values(*backend_, random_values(size_t(77 * 2), 902), {77, 2});
    const MatmulJob job[] = {{.w = &wd, .out = &product, .residual = &acc}};
    run_fused(*backend_, {.x = &x, .jobs = job}, fused);
    return Outputs{download(*backend_, product), download(*backend_, acc)};
  };
  expect_identical(run(true), run(false), "matmul_add, unaligned x");
}

TEST_F(CudaFused, HostTensorsAreRefused) {
  const Tensor w = backend_->upload(make_weight(DType::Q4_0, 64, 8, 1).host);
  Tensor host_x = Tensor::from_f32(std::vector<float>(64, 1.0f), {64, 1}, DType::F32, "x");
  Tensor out8 = backend_->alloc(DType::F32, {8, 1}, "out8");
  const MatmulJob job[] = {{.w = &w, .out = &out8}};
  const std::string message = error_of([&] { backend_->matmul_fused({.x = &host_x, .jobs = job}); });
  EXPECT_NE(message.find("host memory"), std::string::npos) << message;
}

}  // namespace
}  // namespace strata::test
