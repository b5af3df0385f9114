// The fast CPU backend's fused matmul (backend/cpu/fused.cpp) is its plain ops bit for bit:
// on every ISA path this CPU has, with 1, 2 and 3 threads, every output of the fused op
// (prologue, each job after its epilogue, the gated output, the caches) equals the same op
// run as the backend's own plain ops (Backend::matmul_fused), and the 1-thread figures.
// Shapes with many row blocks (n up to 1024, heads split over tasks), one and several
// column blocks (m 1, 9, 70), the packed prompt kernels, and the f32-activation mode.
// Every activation mode: two-term 8-bit (the default) on every path, one-term 8-bit and f32
// on the best one. Two-term q, k and v are also held to cpu_ref64 at a bar one-term 8-bit
// activations cannot meet.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/fused_cases.h"

namespace strata::test {
namespace {

struct Path {
  cpu::Isa isa;
  bool f32_act = false;
  bool q8_act = false;  // one-term 8-bit activations
};

std::vector<Path> paths() {
  std::vector<Path> p;
  for (cpu::Isa isa : cpu::available_isas()) p.push_back({isa});
  p.push_back({cpu::detected_isa(), false, true});
  p.push_back({cpu::detected_isa(), true});
  return p;
}

std::string path_name(const Path& p, int threads) {
  return fmt::format("{}{} {} threads", cpu::isa_name(p.isa),
                     p.f32_act  ? " f32-act"
                     : p.q8_act ? " q8-act"
                                : "",
                     threads);
}

// run(backend, fused) on every path and thread count: fused == plain, and == 1 thread's.
template <typename Run>
void expect_exact(const Run& run, const std::string& what) {
  for (const Path& p : paths()) {
    Outputs one_thread;
    for (int threads : {1, 2, 3}) {
      CpuBackend b(threads, p.isa, p.f32_act, p.q8_act);
      const Outputs fused = run(b, true), plain = run(b, false);
      const std::string where = what + " on " + path_name(p, threads);
      ASSERT_EQ(fused.size(), plain.size()) << where;
      for (size_t o = 0; o < fused.size(); ++o) EXPECT_EQ(fused[o], plain[o]) << where << ", output " << o;
      if (threads == 1) {
        one_thread = fused;
      } else {
        for (size_t o = 0; o < fused.size(); ++o) EXPECT_EQ(fused[o], one_thread[o]) << where << " vs 1, output " << o;
      }
    }
  }
}

TEST(CpuFused, JobsSwigluAndResidualAreThePlainOps) {
  uint32_t seed = 1;
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q6_K, DType::F16}) {
    const int64_t k = type_traits(type).block_size == 256 ? 512 : 320;
    const Weight w1 = make_weight(type, k, 600, seed += 10), w2 = make_weight(type, k, 600, seed += 10);
    const Weight w3 = make_weight(type, k, 131, seed += 10);
    for (int64_t m : {1, 9, 70}) {
      const std::string what = fmt::format("{} m {}", dtype_name(type), m);
      expect_exact([&](Backend& b, bool f) { return run_swiglu(b, w1, w2, m, seed, f, true); }, "swiglu " + what);
      expect_exact([&](Backend& b, bool f) { return run_batch(b, {w1, w3, w2}, m, seed, f, true); }, "jobs " + what);
      expect_exact([&](Backend& b, bool f) { return run_matmul_add(b, w3, m, seed, f); }, "residual " + what);
    }
  }
}

TEST(CpuFused, QkvRopeStoreAndAttentionAreThePlainOps) {
  uint32_t seed = 2;
  for (DType type : {DType::Q4_0, DType::Q4_K, DType::F16}) {
    const int64_t k = type_traits(type).block_size == 256 ? 512 : 576;
    // 16 heads of q over many tasks, 4 KV heads, partial rotation, f16 cache, biases.
    const QkvCase c{{make_weight(type, k, 1024, seed += 10), make_weight(type, k, 256, seed += 10),
                     make_weight(type, k, 256, seed += 10)},
                    64,
                    DType::F16,
                    RopeConfig{48, 10000.0f, 1.0f, true, {}},
                    true};
    for (const auto& [pos, m] : {std::pair{int64_t(3), int64_t(1)}, {0, 9}, {2, 70}}) {
      expect_exact([&](Backend& b, bool f) { return run_qkv_rope_store(b, c, pos, seed, f, m); },
                   fmt::format("qkv {} pos {} m {}", dtype_name(type), pos, m));
    }
    // q, k, v on two-term activations: within 1e-8 of cpu_ref64 (one-term 8-bit: ~3e-5).
    for (const auto& [pos, m] : {std::pair{int64_t(3), int64_t(1)}, {2, 70}}) {
      const Outputs want = run_qkv_rope_store(reference_backend(), c, pos, seed, false, m);
      for (cpu::Isa isa : cpu::available_isas()) {
        CpuBackend b(2, isa);
        const Outputs got = run_qkv_rope_store(b, c, pos, seed, true, m);
        for (size_t o = 1; o <= 3; ++o) {
          EXPECT_LE(nmse(to_double(want[o]), got[o]), 1e-8)
              << fmt::format("two-term qkv {} m {} on {}, output {}", dtype_name(type), m, cpu::isa_name(isa), o);
        }
      }
    }
    const AttentionCase a{64, 8, 2, 300, DType::F16};
    const Weight wo = make_weight(type, 512, 600, seed += 10);
    for (int64_t m : {1, 9}) {
      expect_exact([&](Backend& b, bool f) { return run_attention_matmul_add(b, a, wo, seed, f, m); },
                   fmt::format("attention + {} m {}", dtype_name(type), m));
    }
  }
}

}  // namespace
}  // namespace strata::test
