// The fast CPU backend's matmul (backend/cpu/matmul.h) on the weight shapes of TinyLlama:
// decode (m = 1) in GB/s of weight bytes, next to the machine's streaming read bandwidth
// measured here with the same threads, and prompt tiles (m = -m columns) in GFLOP/s.
// Decode rotates over enough weight copies (>= 512 MB in all) that no matrix is read from
// the caches; each figure is the median of -r runs after 3 warm-ups.
//
// --hot reads one copy over and over (from the caches where it fits): the kernels' own speed.
// --interleaved gives each weight copy its interleaved copy (backend/cpu/interleaved.h, made
// at load by the cpu backend) where its type has one; --two-term the backend's default
// two-term 8-bit activations (one term otherwise).
// --huge puts the read buffer and the weights in transparent huge pages (madvise): without
// it they sit in 4 KB pages, as weights mmapped from a file do.
//
//   cpu_matmul_bench [-t THREADS] [-i ISA] [-r RUNS] [-m COLUMNS] [--f32] [--two-term] [--interleaved]
//                    [--hot] [--huge] [TYPE]...
#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu/matmul.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace {

using strata::DType;
using strata::Tensor;
using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t n, k;  // rows, elements per row
  const char* what;
};

constexpr Shape kShapes[] = {
    {2048, 2048, "attn q/o"}, {5632, 2048, "ffn gate/up"}, {2048, 5632, "ffn down"}, {32000, 2048, "output"}};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <typename Fn>
double median_seconds(int runs, const Fn& fn) {
  std::vector<double> t;
  for (int i = 0; i < runs + 3; ++i) {
    const auto t0 = Clock::now();
    fn(i);
    if (i >= 3) t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// `bytes` of memory aligned to 2 MB, in transparent huge pages where `huge` (if the kernel
// gives them).
std::shared_ptr<uint8_t> allocate(size_t bytes, bool huge) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHuge, size));
  if (p == nullptr) {
    fmt::print(stderr, "cpu_matmul_bench: out of memory ({} bytes)\n", size);
    std::exit(1);
  }
  if (huge) madvise(p, size, MADV_HUGEPAGE);
  return std::shared_ptr<uint8_t>(p, std::free);
}

// Bytes per second of a streaming read over the pool: each run reads the next 64 MiB slice
// of a 1 GiB buffer (so never from the caches), in chunks of 256 KiB, with software prefetches
// kReadAhead bytes ahead (as the decode kernels do). Short runs, as decode's, so that a
// median is robust against other processes taking the cores.
constexpr size_t kReadAhead = 2048;

double read_bandwidth(strata::ThreadPool& pool, int runs, bool huge) {
  const size_t bytes = size_t(1) << 30, slice = size_t(64) << 20, chunk = size_t(256) << 10;
  const std::shared_ptr<uint8_t> buf = allocate(bytes, huge);
  std::memset(buf.get(), 1, bytes);
  std::vector<int64_t> sink(size_t(pool.n_threads()));
  const double t = median_seconds(runs, [&](int run) {
    const uint8_t* base = buf.get() + size_t(run) % (bytes / slice) * slice;
    pool.run(int64_t(slice / chunk), [&](int64_t task, int thread) {
#if defined(__x86_64__)
      const auto* p = reinterpret_cast<const __m128i*>(base + size_t(task) * chunk);
      __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
      for (size_t i = 0; i < chunk / 16; i += 4) {
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kReadAhead, _MM_HINT_T0);
        a = _mm_add_epi64(a, _mm_load_si128(p + i));
        b = _mm_add_epi64(b, _mm_load_si128(p + i + 1));
        c = _mm_add_epi64(c, _mm_load_si128(p + i + 2));
        d = _mm_add_epi64(d, _mm_load_si128(p + i + 3));
      }
      const __m128i s = _mm_add_epi64(_mm_add_epi64(a, b), _mm_add_epi64(c, d));
      sink[size_t(thread)] += _mm_cvtsi128_si64(s);
#else
      const auto* p = reinterpret_cast<const uint64_t*>(base + size_t(task) * chunk);
      uint64_t s = 0;
      for (size_t i = 0; i < chunk / 8; ++i) s += p[i];
      sink[size_t(thread)] += int64_t(s);
#endif
    });
  });
  if (sink[0] == 42) fmt::print(" ");
  return double(slice) / t;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 20, m = 128;
  strata::cpu::MatmulConfig config{strata::cpu::detected_isa(), false};
  std::vector<DType> types;
  bool hot = false, huge = false, interleaved = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-t" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "-r" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "-m" && i + 1 < argc) {
      m = std::max(2, std::atoi(argv[++i]));
    } else if (a == "-i" && i + 1 < argc) {
      const auto isa = strata::cpu::isa_from_name(argv[++i]);
      if (!isa || *isa > strata::cpu::detected_isa()) {
        fmt::print(stderr, "cpu_matmul_bench: ISA {} unknown or not on this CPU\n", argv[i]);
        return 2;
      }
      config.isa = *isa;
    } else if (a == "--huge") {
      huge = true;
    } else if (a == "--hot") {
      hot = true;
    } else if (a == "--f32") {
      config.f32_activations = true;
    } else if (a == "--two-term") {
      config.two_term = true;
    } else if (a == "--interleaved") {
      interleaved = true;
    } else if (const auto t = strata::dtype_from_name(a)) {
      types.push_back(*t);
    } else {
      fmt::print(stderr,
                 "usage: cpu_matmul_bench [-t THREADS] [-i ISA] [-r RUNS] [-m COLUMNS] [--f32] [--two-term] "
                 "[--interleaved] [--hot] [--huge] [TYPE]...\n");
      return 2;
    }
  }
  if (types.empty()) types = {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::F16};

  strata::ThreadPool pool(threads);
  const double read = read_bandwidth(pool, std::max(runs, 20), huge);
  fmt::print(
      "cpu_matmul_bench: {} threads, {}{}{}{}, read bandwidth {:.1f} GB/s; median of {} runs; prompt m = {}{}{}\n\n",
      threads, strata::cpu::isa_name(config.isa), config.f32_activations ? " (f32 activations)" : "",
      config.two_term ? " (two-term activations)" : "", interleaved ? " (interleaved weights)" : "", read * 1e-9, runs,
      m, hot ? "; decode reads one copy (hot)" : "", huge ? "; huge pages" : "");
  fmt::print("| type | n x k | what | MB | decode us | decode GB/s | of read bw | prompt ms | prompt GFLOP/s |\n");
  fmt::print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (DType type : types) {
    for (const Shape& s : kShapes) {
      const Tensor w = Tensor::from_f32(random_values(size_t(s.n * s.k), 1), {s.k, s.n}, type, "w");
      const size_t bytes = w.n_bytes();
      const size_t n_copies = hot ? 1 : std::max<size_t>(1, (size_t(512) << 20) / bytes + 1);
      std::vector<Tensor> copies;
      std::vector<std::unique_ptr<strata::cpu::InterleavedWeight>> interleaved_copies;
      for (size_t c = 0; c < n_copies; ++c) {
        const std::shared_ptr<uint8_t> mem = allocate(bytes, huge);
        std::memcpy(mem.get(), w.data(), bytes);
        copies.push_back(Tensor::external(type, {s.k, s.n}, mem.get(), bytes, mem, "w"));
        interleaved_copies.push_back(interleaved ? strata::cpu::interleave_weight(copies.back(), config.isa, pool)
                                                 : nullptr);
      }
      const auto product = [&](size_t c, const Tensor& x, Tensor& out) {
        strata::cpu::matmul(copies[c], x, out, config, pool, interleaved_copies[c].get());
      };
      const Tensor x1 = Tensor::from_f32(random_values(size_t(s.k), 2), {s.k, 1}, DType::F32, "x");
      const Tensor xm = Tensor::from_f32(random_values(size_t(s.k * m), 3), {s.k, m}, DType::F32, "x");
      Tensor out1 = Tensor::empty(DType::F32, {s.n, 1});
      Tensor outm = Tensor::empty(DType::F32, {s.n, m});
      const double t1 = median_seconds(runs, [&](int i) { product(size_t(i) % n_copies, x1, out1); });
      const double tm = median_seconds(std::max(3, runs / 4), [&](int) { product(0, xm, outm); });
      const double gbs = double(bytes) / t1 * 1e-9;
      fmt::print("| {} | {} x {} | {} | {:.1f} | {:.0f} | {:.1f} | {:.0f}% | {:.2f} | {:.0f} |\n",
                 strata::dtype_name(type), s.n, s.k, s.what, double(bytes) / 1e6, t1 * 1e6, gbs,
                 100.0 * gbs * 1e9 / read, tm * 1e3, 2.0 * double(s.n) * double(s.k) * double(m) / tm * 1e-9);
      std::fflush(stdout);
    }
  }
  return 0;
}
