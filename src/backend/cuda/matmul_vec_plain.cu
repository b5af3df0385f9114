// Decode matmul for the plain weight types F32, F16 and BF16: one warp per weight row. The
// fast path reads 16 bytes of the row per lane and step (4 f32 or 8 f16/bf16 elements) when
// rows and activations are 16-byte aligned; otherwise lanes read one element each.
#include "backend/cuda/matmul_vec.cuh"

namespace strata::cuda {
namespace {

enum class Plain { f32, f16, bf16 };

template <Plain P>
constexpr int kElemBytes = P == Plain::f32 ? 4 : 2;

// The 16 / kElemBytes weights of one 16-byte word, as f32.
template <Plain P>
__device__ __forceinline__ void unpack16(const uint4& u, float* w) {
  const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (P == Plain::f32) {
      w[i] = __uint_as_float(words[i]);
    } else if constexpr (P == Plain::f16) {
      w[2 * i] = f16_bits_to_f32(uint16_t(words[i] & 0xffffu));
      w[2 * i + 1] = f16_bits_to_f32(uint16_t(words[i] >> 16));
    } else {
      w[2 * i] = bf16_bits_to_f32(uint16_t(words[i] & 0xffffu));
      w[2 * i + 1] = bf16_bits_to_f32(uint16_t(words[i] >> 16));
    }
  }
}

template <Plain P>
__device__ __forceinline__ float load_plain(const uint8_t* row, int64_t l) {
  if constexpr (P == Plain::f32) return reinterpret_cast<const float*>(row)[l];
  if constexpr (P == Plain::f16) return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[l]);
  if constexpr (P == Plain::bf16) return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[l]);
}

template <Plain P, int M, bool kVec>
__global__ void __launch_bounds__(kVecRowsPerBlock* kWarp)
    matvec_plain_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t k, int64_t n,
                        const float* __restrict__ x, int64_t x_stride, float* __restrict__ out, int64_t out_stride,
                        int m) {
  start_after_previous_kernel();
  constexpr int V = 16 / kElemBytes<P>;  // elements per 16-byte word
  const int lane = threadIdx.x % kWarp;
  const int64_t row = int64_t(blockIdx.x) * kVecRowsPerBlock + threadIdx.x / kWarp;
  if (row >= n) return;
  const uint8_t* wr = w + row * row_bytes;
  float acc[M];
#pragma unroll
  for (int j = 0; j < M; ++j) acc[j] = 0.0f;
  if constexpr (kVec) {
#pragma unroll 4
    for (int64_t g = lane; g < k / V; g += kWarp) {  // word g holds elements V g .. V g + V - 1
      float wv[V];
      unpack16<P>(reinterpret_cast<const uint4*>(wr)[g], wv);
#pragma unroll
      for (int j = 0; j < M; ++j) {
        if (j < m) {
          const float4* xv = reinterpret_cast<const float4*>(x + j * x_stride + g * V);
          float s = 0.0f;
#pragma unroll
          for (int q = 0; q < V / 4; ++q) {
            const float4 xq = xv[q];
            s += wv[4 * q] * xq.x + wv[4 * q + 1] * xq.y + wv[4 * q + 2] * xq.z + wv[4 * q + 3] * xq.w;
          }
          acc[j] += s;
        }
      }
    }
  } else {
    for (int64_t l = lane; l < k; l += kWarp) {
      const float wl = load_plain<P>(wr, l);
#pragma unroll
      for (int j = 0; j < M; ++j) {
        if (j < m) acc[j] += wl * x[j * x_stride + l];
      }
    }
  }
#pragma unroll
  for (int j = 0; j < M; ++j) acc[j] = warp_sum(acc[j]);
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) out[j * out_stride + row] = acc[j];
    }
  }
}

template <Plain P, bool kVec>
void launch_plain_m(const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x, int64_t x_stride, float* out,
                    int64_t out_stride, int m, cudaStream_t stream) {
  const dim3 grid(unsigned(ceil_div(n, kVecRowsPerBlock)));
  const dim3 block(kVecRowsPerBlock * kWarp);
  const auto* wb = static_cast<const uint8_t*>(w);
  if (m <= 1) {
    (void)launch(matvec_plain_kernel<P, 1, kVec>, grid, block, 0, stream, wb, row_bytes, k, n, x, x_stride, out,
                 out_stride, m);
  } else if (m <= 2) {
    (void)launch(matvec_plain_kernel<P, 2, kVec>, grid, block, 0, stream, wb, row_bytes, k, n, x, x_stride, out,
                 out_stride, m);
  } else if (m <= 4) {
    (void)launch(matvec_plain_kernel<P, 4, kVec>, grid, block, 0, stream, wb, row_bytes, k, n, x, x_stride, out,
                 out_stride, m);
  } else {
    (void)launch(matvec_plain_kernel<P, 8, kVec>, grid, block, 0, stream, wb, row_bytes, k, n, x, x_stride, out,
                 out_stride, m);
  }
}

template <Plain P>
void launch_plain(const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x, int64_t x_stride, float* out,
                  int64_t out_stride, int m, cudaStream_t stream) {
  constexpr int V = 16 / kElemBytes<P>;
  const bool vec = (reinterpret_cast<uintptr_t>(w) & 15) == 0 && row_bytes % 16 == 0 && k % V == 0 &&
                   (reinterpret_cast<uintptr_t>(x) & 15) == 0 && x_stride % 4 == 0;
  if (vec) {
    launch_plain_m<P, true>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  } else {
    launch_plain_m<P, false>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  }
}

}  // namespace

cudaError_t launch_matvec_plain(DType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                                int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  switch (type) {
    case DType::F32:
      launch_plain<Plain::f32>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
      break;
    case DType::F16:
      launch_plain<Plain::f16>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
      break;
    case DType::BF16:
      launch_plain<Plain::bf16>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace strata::cuda
