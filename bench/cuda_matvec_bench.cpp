// Decode matrix-vector kernels on the GPU: launch_matvec (the fast kernels where they apply)
// against launch_matvec_generic (one warp per row, the fallback) for the weight types and
// shapes of the Llama family, one activation column (m = 1) unless -m says otherwise.
// Times one launch with CUDA events (3 warm-ups, median of -r runs, 30 by default), rotating
// over enough weight copies (>= 4) that a matrix smaller than the L2 is not read from it,
// and prints GB/s of weight bytes, the fraction of a measured device-to-device copy's
// bandwidth (bytes read + written), and the largest difference between the two outputs
// relative to the largest output (a sanity check; the tests hold the real one).
//
//   cuda_matvec_bench [-r RUNS] [-m COLUMNS] [-t TYPE]...
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "core/dtype.h"

namespace {

using strata::DType;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    fmt::print(stderr, "cuda_matvec_bench: {}: {}\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Shape {
  const char* model;
  int64_t n, k;  // rows, elements per row
};

constexpr Shape kShapes[] = {
    {"7B", 4096, 4096},         {"7B", 11008, 4096},     {"7B", 4096, 11008},   {"7B", 32000, 4096},
    {"L3-8B", 1024, 4096},      {"L3-8B", 14336, 4096},  {"L3-8B", 4096, 14336}, {"L3-8B", 128256, 4096},
    {"TinyLlama", 2048, 2048},  {"TinyLlama", 256, 2048}, {"TinyLlama", 5632, 2048},
    {"TinyLlama", 2048, 5632},  {"TinyLlama", 32000, 2048},
};

// Byte offsets (within a block) of the f16 scales of a type, which random bytes must not
// make Inf or NaN; every 2-byte word for F16.
std::vector<size_t> f16_fields(DType type) {
  switch (type) {
    case DType::Q4_0:
    case DType::Q8_0:
      return {0};
    case DType::Q4_K:
      return {0, 2};
    case DType::Q6_K:
      return {208};
    default:
      return {};
  }
}

// Random weight bytes with finite scales (|f16| < 2: bit 14 cleared).
std::vector<uint8_t> random_weight(DType type, size_t bytes, uint64_t seed) {
  std::vector<uint8_t> w(bytes);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    std::memcpy(&w[i], &s, 8);
  }
  const auto& traits = strata::type_traits(type);
  if (type == DType::F16) {
    for (size_t i = 1; i < bytes; i += 2) w[i] &= 0xBF;
  } else {
    for (size_t b = 0; b + traits.type_size <= bytes; b += traits.type_size) {
      for (size_t f : f16_fields(type)) w[b + f + 1] &= 0xBF;
    }
  }
  return w;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + written per second) over 1 GiB.
double copy_bandwidth(int runs) {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc");
  check(cudaMalloc(&b, bytes), "cudaMalloc");
  check(cudaMemset(a, 1, bytes), "cudaMemset");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < runs + 2; ++i) {
    cudaEventRecord(e0);
    check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
    cudaEventRecord(e1);
    check(cudaEventSynchronize(e1), "copy");
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 2) ms.push_back(t);
  }
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (double(median(ms)) * 1e-3);
}

using Launcher = cudaError_t (*)(strata::cuda::WeightType, const void*, size_t, int64_t, int64_t, const float*, int64_t,
                                 float*, int64_t, int, cudaStream_t);

// Median milliseconds of one launch, rotating over the weight copies.
float time_launch(Launcher launch, strata::cuda::WeightType type, const std::vector<void*>& copies, size_t row_bytes,
                  const Shape& s, const float* x, float* out, int m, int runs) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < runs + 3; ++i) {
    const void* w = copies[size_t(i) % copies.size()];
    cudaEventRecord(e0);
    check(launch(type, w, row_bytes, s.k, s.n, x, s.k, out, s.n, m, nullptr), "launch");
    cudaEventRecord(e1);
    check(cudaEventSynchronize(e1), "kernel");
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 3) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(ms);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 30, m = 1;
  std::vector<DType> types;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-r" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "-m" && i + 1 < argc) {
      m = std::clamp(std::atoi(argv[++i]), 1, strata::cuda::kMaxVecColumns);
    } else if (a == "-t" && i + 1 < argc) {
      const auto t = strata::dtype_from_name(argv[++i]);
      if (!t) {
        fmt::print(stderr, "cuda_matvec_bench: unknown type {}\n", argv[i]);
        return 2;
      }
      types.push_back(*t);
    } else {
      fmt::print(stderr, "usage: cuda_matvec_bench [-r RUNS] [-m COLUMNS] [-t TYPE]...\n");
      return 2;
    }
  }
  if (types.empty()) types = {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16};

  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const double copy = copy_bandwidth(10);
  fmt::print("device: {} ({} SMs, L2 {} MB); device-to-device copy {:.0f} GB/s (read + write); m = {}, median of {}\n\n",
             prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy * 1e-9, m, runs);
  fmt::print("| type | model | n x k | MB | old GB/s | new GB/s | new / copy | new / old | new us | max diff |\n");
  fmt::print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");

  for (DType type : types) {
    for (const Shape& s : kShapes) {
      const size_t row_bytes = strata::row_bytes(type, s.k), bytes = row_bytes * size_t(s.n);
      const size_t n_copies = bytes < (size_t(64) << 20) ? std::max<size_t>(4, (size_t(256) << 20) / bytes) : 1;
      std::vector<void*> copies(std::min<size_t>(n_copies, 64));
      const std::vector<uint8_t> host = random_weight(type, bytes, uint64_t(s.n * 31 + s.k));
      // The rows in the format the backend's upload gives them (Q4_0, Q6_K: regrouped, kernels.h).
      const strata::cuda::WeightType wt{type, strata::cuda::device_format(type, s.k)};
      void* staging = nullptr;
      check(cudaMalloc(&staging, bytes), "cudaMalloc");
      check(cudaMemcpy(staging, host.data(), bytes, cudaMemcpyHostToDevice), "upload");
      for (void*& c : copies) {
        check(cudaMalloc(&c, bytes), "cudaMalloc");
        check(wt.format == strata::cuda::RowFormat::grouped8
                  ? strata::cuda::launch_group_rows(type, staging, c, s.k, s.n, row_bytes, nullptr)
                  : cudaMemcpy(c, staging, bytes, cudaMemcpyDeviceToDevice),
              "upload");
      }
      check(cudaFree(staging), "cudaFree");
      std::vector<float> xh(size_t(s.k * m));
      for (size_t i = 0; i < xh.size(); ++i) xh[i] = std::sin(float(i) * 0.37f);
      float *x = nullptr, *out_old = nullptr, *out_new = nullptr;
      check(cudaMalloc(&x, xh.size() * sizeof(float)), "cudaMalloc");
      check(cudaMalloc(&out_old, size_t(s.n * m) * sizeof(float)), "cudaMalloc");
      check(cudaMalloc(&out_new, size_t(s.n * m) * sizeof(float)), "cudaMalloc");
      check(cudaMemcpy(x, xh.data(), xh.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");

      const float t_old =
          time_launch(strata::cuda::launch_matvec_generic, wt, copies, row_bytes, s, x, out_old, m, runs);
      const float t_new = time_launch(strata::cuda::launch_matvec, wt, copies, row_bytes, s, x, out_new, m, runs);
      std::vector<float> a(size_t(s.n * m)), b(a.size());
      check(cudaMemcpy(a.data(), out_old, a.size() * sizeof(float), cudaMemcpyDeviceToHost), "download");
      check(cudaMemcpy(b.data(), out_new, b.size() * sizeof(float), cudaMemcpyDeviceToHost), "download");
      double max_ref = 0, max_diff = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        max_ref = std::max(max_ref, double(std::fabs(a[i])));
        max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
      }
      const double gb_old = double(bytes) / (double(t_old) * 1e-3) * 1e-9;
      const double gb_new = double(bytes) / (double(t_new) * 1e-3) * 1e-9;
      fmt::print("| {} | {} | {} x {} | {:.1f} | {:.0f} | {:.0f} | {:.2f} | {:.2f} | {:.1f} | {:.1e} |\n",
                 strata::dtype_name(type), s.model, s.n, s.k, double(bytes) / 1e6, gb_old, gb_new,
                 gb_new * 1e9 / copy, gb_new / gb_old, double(t_new) * 1e3, max_diff / std::max(max_ref, 1e-30));
      std::fflush(stdout);
      for (void* c : copies) cudaFree(c);
      cudaFree(x);
      cudaFree(out_old);
      cudaFree(out_new);
    }
  }
  return 0;
}
