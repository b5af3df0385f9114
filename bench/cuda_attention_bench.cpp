// Prompt (prefill) attention on the GPU: the scalar kernel (launch_attention) against the
// tensor-core one (launch_attention_prefill) on model shapes, f16 caches. Times with CUDA
// events (3 warm-up runs, median of 20) and prints ms, effective TFLOP/s
// (4 * n_heads * head_dim * causal query-key pairs) and the NMSE between the two outputs.
//
//   cuda_attention_bench [-t N_TOKENS] [-p N_PAST] [-r RUNS]
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "core/half.h"

namespace {

using strata::cuda::RowLayout;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    fmt::print(stderr, "cuda_attention_bench: {}: {}\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Shape {
  std::string name;
  int64_t n_heads, n_kv_heads, head_dim;
};

// A device buffer filled from host bytes.
template <typename T>
T* upload(const std::vector<T>& host) {
  T* p = nullptr;
  check(cudaMalloc(&p, host.size() * sizeof(T)), "cudaMalloc");
  check(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return p;
}

// Median milliseconds of `runs` launches (after 3 warm-up ones), each timed with events.
template <typename F>
double median_ms(F launch, int runs) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) check(launch(), "warm-up launch");
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    check(cudaEventRecord(start), "cudaEventRecord");
    check(launch(), "launch");
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double nmse(const std::vector<float>& ref, const std::vector<float>& got) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return norm > 0 ? err / norm : err;
}

void bench_shape(const Shape& s, int64_t n_tokens, int64_t n_past, int runs) {
  const int64_t d = s.head_dim, n_ctx = n_past + n_tokens;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q_host(size_t(d * s.n_heads * n_tokens));  // [d, n_heads, n_tokens]
  for (float& x : q_host) x = dist(rng);
  std::vector<uint16_t> k_host(size_t(d * s.n_kv_heads * n_ctx)), v_host(k_host.size());  // [d, n_kv, n_ctx]
  for (uint16_t& x : k_host) x = strata::f32_to_f16(dist(rng));
  for (uint16_t& x : v_host) x = strata::f32_to_f16(dist(rng));
  float* q = upload(q_host);
  uint16_t* k = upload(k_host);
  uint16_t* v = upload(v_host);
  float *out_old = nullptr, *out_new = nullptr;
  check(cudaMalloc(&out_old, q_host.size() * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&out_new, q_host.size() * sizeof(float)), "cudaMalloc");

  const RowLayout lq{s.n_heads, n_tokens, d * 4, d * 4 * s.n_heads, d * 4 * s.n_heads * n_tokens};
  const RowLayout lc{s.n_kv_heads, n_ctx, d * 2, d * 2 * s.n_kv_heads, d * 2 * s.n_kv_heads * n_ctx};
  const float scale = 1.0f / std::sqrt(float(d));
  if (!strata::cuda::attention_prefill_applies(q, lq, k, lc, v, lc, true, out_new, lq, d, s.n_heads, s.n_kv_heads,
                                               n_tokens, n_past)) {
    fmt::print(stderr, "cuda_attention_bench: the prefill kernel does not take {}\n", s.name);
    std::exit(1);
  }
  auto old_kernel = [&] {
    return strata::cuda::launch_attention(q, lq, k, lc, v, lc, true, out_old, lq, d, s.n_heads, s.n_kv_heads, n_tokens,
                                          n_past, nullptr, 0, scale, nullptr);
  };
  auto new_kernel = [&] {
    return strata::cuda::launch_attention_prefill(q, lq, k, lc, v, lc, out_new, lq, d, s.n_heads, s.n_kv_heads,
                                                  n_tokens, n_past, scale, nullptr);
  };
  const double ms_old = median_ms(old_kernel, runs), ms_new = median_ms(new_kernel, runs);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::vector<float> a(q_host.size()), b(q_host.size());
  check(cudaMemcpy(a.data(), out_old, a.size() * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
  check(cudaMemcpy(b.data(), out_new, b.size() * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");

  // Causal pairs: query t sees n_past + t + 1 keys.
  const double pairs = double(n_tokens) * double(n_past) + double(n_tokens) * double(n_tokens + 1) / 2;
  const double flop = 4.0 * double(s.n_heads) * double(d) * pairs;
  fmt::print(
      "| {:<10} | {:>2} | {:>2} | {:>3} | {:>4} | {:>4} | {:>8.3f} | {:>6.2f} | {:>8.3f} | {:>6.2f} | {:>6.1f}x | "
      "{:.1e} |\n",
      s.name, s.n_heads, s.n_kv_heads, d, n_tokens, n_past, ms_old, flop / ms_old * 1e-9, ms_new, flop / ms_new * 1e-9,
      ms_old / ms_new, nmse(a, b));
  for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v), static_cast<void*>(out_old),
                  static_cast<void*>(out_new)}) {
    cudaFree(p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n_tokens = 512, n_past = 0;
  int runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long long value = std::atoll(argv[i + 1]);
    if (flag == "-t") {
      n_tokens = value;
    } else if (flag == "-p") {
      n_past = value;
    } else if (flag == "-r") {
      runs = int(value);
    } else {
      fmt::print(stderr, "usage: cuda_attention_bench [-t N_TOKENS] [-p N_PAST] [-r RUNS]\n");
      return 2;
    }
  }
  if (n_tokens < 1 || n_past < 0 || runs < 1) {
    fmt::print(stderr, "cuda_attention_bench: -t must be >= 1, -p >= 0, -r >= 1\n");
    return 2;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  fmt::print("GPU: {}; f16 caches; median of {} runs after 3 warm-up\n\n", prop.name, runs);
  fmt::print(
      "| shape      |  H | KV |   D |    T | past | old (ms) | TFLOP/s | new (ms) | TFLOP/s | speedup | NMSE new vs "
      "old |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const Shape shapes[] = {{"TinyLlama", 32, 4, 64}, {"Llama-2-7B", 32, 32, 128}, {"Llama-3-8B", 32, 8, 128}};
  for (const Shape& s : shapes) bench_shape(s, n_tokens, n_past, runs);
  return 0;
}
