// The mixture-of-experts kernels: routing (top-k of each token's router logits and their
// softmax), the expert-indexed matmul (a warp per output row of one (slot, token) column, the
// expert read from the ids on the device) and the weighted sum of the slots. The ids never
// leave the device, so a decode step that routes can be recorded as a CUDA graph.
#include "backend/cuda/common.cuh"
#include "backend/cuda/quant_decode.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = 8;  // warps per block of matmul_experts

// Whether expert a comes before b: the larger logit first, equal logits in index order.
__device__ __forceinline__ bool before(const float* l, int a, int b) {
  return l[a] > l[b] || (l[a] == l[b] && a < b);
}

// One thread per token: n_used picks of the next expert after the previous pick in that order.
__global__ void route_top_k_kernel(const float* logits, int64_t logits_stride, int n_expert, int32_t* ids,
                                   float* weights, int64_t weights_stride, int n_used, int64_t m) {
  start_after_previous_kernel();
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= m) return;
  const float* l = logits + t * logits_stride;
  int32_t* id = ids + t * n_used;
  float* w = weights + t * weights_stride;
  int prev = -1;
  float sum = 0.0f;
  for (int s = 0; s < n_used; ++s) {
    int best = -1;
    for (int e = 0; e < n_expert; ++e) {
      if (prev >= 0 && !before(l, prev, e)) continue;  // taken already
      if (best < 0 || before(l, e, best)) best = e;
    }
    id[s] = best;
    prev = best;
    w[s] = expf(l[best] - l[id[0]]);
    sum += w[s];
  }
  for (int s = 0; s < n_used; ++s) w[s] /= sum;
}

// Weight rows of expert e start at w + e * expert_bytes + i * row_bytes.
struct ExpertRows {
  const uint8_t* w;
  size_t row_bytes, expert_bytes;
  int64_t k, n, n_expert;
};

// sum_l w_row[l] x[l] by one warp, over 32-element chunks (quantized types).
template <typename Traits>
__device__ float dot_quant(const uint8_t* row, const float* x, int64_t k, int lane) {
  float acc = 0.0f;
  for (int64_t c = lane; c < k / 32; c += kWarp) {
    float v[32];
    Traits::decode(row, c, v);
#pragma unroll
    for (int i = 0; i < 32; ++i) acc += v[i] * x[c * 32 + i];
  }
  return warp_sum(acc);
}

// The same for the plain types, an element per lane.
template <DType T>
__device__ float dot_plain(const uint8_t* row, const float* x, int64_t k, int lane) {
  float acc = 0.0f;
  for (int64_t l = lane; l < k; l += kWarp) {
    float wl;
    if constexpr (T == DType::F32) wl = reinterpret_cast<const float*>(row)[l];
    if constexpr (T == DType::F16) wl = f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[l]);
    if constexpr (T == DType::BF16) wl = bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[l]);
    acc += wl * x[l];
  }
  return warp_sum(acc);
}

// grid (row blocks, n_used * m): column j = s + t * n_used of out [n, n_used, m] (packed) is
// w[:, :, ids[j]] x[:, s or 0, t]; an id out of range gives zeros.
template <typename Dot>
__global__ void __launch_bounds__(kRowsPerBlock* kWarp)
    matmul_experts_kernel(ExpertRows w, const float* x, int64_t x_stride, int64_t x_slots, const int32_t* ids,
                          int64_t n_used, float* out, Dot dot) {
  start_after_previous_kernel();
  const int lane = threadIdx.x % kWarp;
  const int64_t i = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int64_t j = blockIdx.y, s = j % n_used, t = j / n_used;
  if (i >= w.n) return;
  const int32_t e = ids[j];
  float v = 0.0f;
  if (e >= 0 && e < w.n_expert) {
    const uint8_t* row = w.w + size_t(e) * w.expert_bytes + size_t(i) * w.row_bytes;
    v = dot(row, x + (t * x_slots + (x_slots == 1 ? 0 : s)) * x_stride, w.k, lane);
  }
  if (lane == 0) out[j * w.n + i] = v;
}

template <typename Traits>
struct QuantDot {
  __device__ float operator()(const uint8_t* row, const float* x, int64_t k, int lane) const {
    return dot_quant<Traits>(row, x, k, lane);
  }
};
template <DType T>
struct PlainDot {
  __device__ float operator()(const uint8_t* row, const float* x, int64_t k, int lane) const {
    return dot_plain<T>(row, x, k, lane);
  }
};

// out[i, t] = sum_s weights[s, t] y[i, s, t]    (all packed)
__global__ void sum_experts_kernel(const float* y, const float* weights, float* out, int64_t n, int64_t n_used,
                                   int64_t m) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t t = blockIdx.y;
  if (i >= n || t >= m) return;
  float acc = 0.0f;
  for (int64_t s = 0; s < n_used; ++s) acc += weights[t * n_used + s] * y[(t * n_used + s) * n + i];
  out[t * n + i] = acc;
}

}  // namespace

bool experts_supported(WeightType type) {
  if (type.type == DType::F32 || type.type == DType::F16 || type.type == DType::BF16) return true;
  return quant::dispatch_quant(type, [](auto) {});
}

cudaError_t launch_route_top_k(const float* logits, int64_t logits_stride, int64_t n_expert, int32_t* ids,
                               float* weights, int64_t weights_stride, int64_t n_used, int64_t m, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  (void)launch(route_top_k_kernel, dim3(unsigned(ceil_div(m, kThreads))), dim3(kThreads), 0, stream, logits,
               logits_stride, int(n_expert), ids, weights, weights_stride, int(n_used), m);
  return cudaGetLastError();
}

cudaError_t launch_matmul_experts(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n,
                                  int64_t n_expert, const float* x, int64_t x_stride, int64_t x_slots,
                                  const int32_t* ids, int64_t n_used, int64_t m, float* out, cudaStream_t stream) {
  if (n == 0 || n_used * m == 0) return cudaSuccess;
  const ExpertRows rows{static_cast<const uint8_t*>(w), row_bytes, row_bytes * size_t(n), k, n, n_expert};
  const dim3 grid(unsigned(ceil_div(n, kRowsPerBlock)), unsigned(n_used * m));
  const dim3 block(kRowsPerBlock * kWarp);
  auto go = [&](auto dot) {
    (void)launch(matmul_experts_kernel<decltype(dot)>, grid, block, 0, stream, rows, x, x_stride, x_slots, ids, n_used,
                 out, dot);
  };
  switch (type.type) {
    case DType::F32:
      go(PlainDot<DType::F32>{});
      break;
    case DType::F16:
      go(PlainDot<DType::F16>{});
      break;
    case DType::BF16:
      go(PlainDot<DType::BF16>{});
      break;
    default:
      if (!quant::dispatch_quant(type, [&](auto tag) { go(QuantDot<typename decltype(tag)::type>{}); })) {
        return cudaErrorInvalidValue;
      }
  }
  return cudaGetLastError();
}

cudaError_t launch_sum_experts(const float* y, const float* weights, float* out, int64_t n, int64_t n_used, int64_t m,
                               cudaStream_t stream) {
  if (n == 0 || m == 0) return cudaSuccess;
  (void)launch(sum_experts_kernel, dim3(unsigned(ceil_div(n, kThreads)), unsigned(m)), dim3(kThreads), 0, stream, y,
               weights, out, n, n_used, m);
  return cudaGetLastError();
}

}  // namespace strata::cuda
