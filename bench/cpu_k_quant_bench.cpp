// Throughput of the K-quant kernels through the fast CPU backend's matmul driver: decode
// (one activation column, weights streamed from memory: GB/s of weights, next to the
// machine's read bandwidth measured the same way) and a prompt-sized GEMM (64 columns,
// weights in cache: GMAC/s).
//
//   cpu_k_quant_bench [--threads N] [--isa NAME] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/type_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant_blocks.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The best of `reps` timings of fn().
template <class Fn>
double best_time(int reps, const Fn& fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Read bandwidth: every thread sums its share of a buffer far larger than the caches.
double read_bandwidth(ThreadPool& pool, int reps) {
  const size_t words = size_t(256) << 20 >> 3;  // 256 MiB
  std::vector<uint64_t> buf(words, 1);
  std::vector<uint64_t> sums(size_t(pool.n_threads()) * 8);
  const int64_t tasks = pool.n_threads();
  const double t = best_time(reps, [&] {
    pool.run(tasks, [&](int64_t task, int) {
      const size_t b = words * size_t(task) / size_t(tasks), e = words * size_t(task + 1) / size_t(tasks);
      uint64_t s = 0;
      for (size_t i = b; i < e; ++i) s += buf[i];
      sums[size_t(task) * 8] = s;
    });
  });
  return double(words * 8) / t / 1e9;
}

// Random levels and scales with sane f16 scales: speed does not depend on the values.
Tensor random_weights(DType type, int64_t k, int64_t n, std::mt19937& rng) {
  Tensor w = Tensor::empty(type, {k, n});
  uint8_t* p = w.mutable_data();
  const size_t bytes = row_bytes(type, k) * size_t(n);
  for (size_t i = 0; i < bytes; i += 4) {
    const uint32_t v = uint32_t(rng());
    std::memcpy(p + i, &v, std::min<size_t>(4, bytes - i));
  }
  const size_t block = type_traits(type).type_size;
  const uint16_t scale = f32_to_f16(0.01f);
  for (size_t b = 0; b < bytes / block; ++b) {
    uint8_t* blk = p + b * block;
    switch (type) {  // d (and dmin)
      case DType::Q2_K:
        reinterpret_cast<BlockQ2_K*>(blk)->d = reinterpret_cast<BlockQ2_K*>(blk)->dmin = scale;
        break;
      case DType::Q3_K:
        reinterpret_cast<BlockQ3_K*>(blk)->d = scale;
        break;
      case DType::Q4_K:
        reinterpret_cast<BlockQ4_K*>(blk)->d = reinterpret_cast<BlockQ4_K*>(blk)->dmin = scale;
        break;
      case DType::Q5_K:
        reinterpret_cast<BlockQ5_K*>(blk)->d = reinterpret_cast<BlockQ5_K*>(blk)->dmin = scale;
        break;
      case DType::Q6_K:
        reinterpret_cast<BlockQ6_K*>(blk)->d = scale;
        break;
      default:
        break;
    }
  }
  return w;
}

Tensor random_activations(int64_t k, int64_t m, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(size_t(k * m));
  for (float& x : v) x = dist(rng);
  return Tensor::from_f32(v, {k, m}, DType::F32);
}

// The tile kernel alone on one thread, weights in L2 (512 rows of k): decode tiles
// (max_rows x 1) in GB/s of weights and full tiles (max_rows x max_cols) in GMAC/s.
void kernel_in_cache(DType type, cpu::Isa isa, int64_t k, int reps, std::mt19937& rng) {
  const cpu::TypeKernels& kern = *cpu::type_kernels(type, isa);
  constexpr int64_t n = 512;
  const Tensor w = random_weights(type, k, n, rng);
  const int64_t cols = kern.max_cols;
  std::vector<uint8_t> act(cpu::act_bytes(kern.act, k) * size_t(cols));
  std::vector<float> x(static_cast<size_t>(k));
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t c = 0; c < cols; ++c) {
    for (float& v : x) v = dist(rng);
    cpu::quantize_act(kern.act, isa, x.data(), k, act.data() + c * cpu::act_bytes(kern.act, k));
  }
  std::vector<float> out(size_t(n * cols));
  const size_t ws = w.nb(1), xs = cpu::act_bytes(kern.act, k);
  auto sweep = [&](int nc) {
    for (int64_t r = 0; r < n; r += kern.max_rows) {
      kern.dot_tile(k, w.row(r), ws, kern.max_rows, act.data(), xs, nc, out.data() + r, size_t(n));
    }
  };
  const double t1 = best_time(reps * 5, [&] { sweep(1); });
  const double tn = best_time(reps * 5, [&] { sweep(int(cols)); });
  std::printf("      kernel alone, 1 thread, in L2: %dx1 tiles %5.1f GB/s of weights | %dx%d tiles %6.1f GMAC/s\n",
              kern.max_rows, double(w.nb(1) * n) / t1 / 1e9, kern.max_rows, kern.max_cols,
              double(k * n * cols) / tn / 1e9);
}

int run(int argc, char** argv) {
  int threads = 2, reps = 10;
  cpu::Isa isa = cpu::detected_isa();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") {
      threads = std::stoi(argv[i + 1]);
    } else if (a == "--reps") {
      reps = std::stoi(argv[i + 1]);
    } else if (a == "--isa") {
      const auto parsed = cpu::isa_from_name(argv[i + 1]);
      if (!parsed) fail("unknown ISA path '{}'", argv[i + 1]);
      isa = *parsed;
    } else {
      fail("unknown option '{}'", a);
    }
  }
  ThreadPool pool(threads);
  std::mt19937 rng(1);
  std::printf("path %s, %d threads\n", std::string(cpu::isa_name(isa)).c_str(), threads);
  std::printf("read bandwidth (256 MiB, summed): %.1f GB/s\n", read_bandwidth(pool, reps));

  const cpu::MatmulConfig config{isa};
  constexpr int64_t k = 4096;
  for (DType type : {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q3_K, DType::Q2_K}) {
    // Decode: at least 128 MiB of weights, one column.
    const int64_t n_decode = int64_t((size_t(128) << 20) / row_bytes(type, k));
    const Tensor w = random_weights(type, k, n_decode, rng);
    const Tensor x1 = random_activations(k, 1, rng);
    Tensor out1 = Tensor::empty(DType::F32, {n_decode, 1});
    const double t_decode = best_time(reps, [&] { cpu::matmul(w, x1, out1, config, pool); });
    const double gbs = double(row_bytes(type, k) * size_t(n_decode)) / t_decode / 1e9;

    // Prompt: 4096 x 4096 weights (in cache for the K-quants), 64 columns.
    constexpr int64_t n = 4096, m = 64;
    const Tensor wp = random_weights(type, k, n, rng);
    const Tensor xp = random_activations(k, m, rng);
    Tensor outp = Tensor::empty(DType::F32, {n, m});
    const double t_prompt = best_time(std::max(2, reps / 3), [&] { cpu::matmul(wp, xp, outp, config, pool); });
    std::printf(
        "%-5s decode [%lld x %lld] x 1: %6.2f ms, %5.1f GB/s of weights | prompt [%lld x %lld] x %lld: %7.2f ms, %6.1f "
        "GMAC/s\n",
        std::string(dtype_name(type)).c_str(), (long long)k, (long long)n_decode, t_decode * 1e3, gbs, (long long)k,
        (long long)n, (long long)m, t_prompt * 1e3, double(k * n * m) / t_prompt / 1e9);
    kernel_in_cache(type, isa, k, reps, rng);
  }
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  try {
    return strata::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
