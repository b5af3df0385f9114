// Rows of any supported type to f32: get_rows (rows picked by id), copies of device tensors
// to the host (to_host_f32), and dequantized weight tiles for the prefill GEMM.
#include "backend/cuda/quant_decode.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ int64_t source_row(const int32_t* ids, int64_t r) {
  return ids != nullptr ? int64_t(ids[r]) : r;
}

// One thread per 32-element chunk: grid.x covers the chunks of a row; rows are strided by
// grid.y.
template <typename T>
__global__ void quant_rows_kernel(const uint8_t* src, RowLayout ls, const int32_t* ids, int64_t n_rows,
                                  int64_t n_chunks, float* dst, int64_t dst_stride) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= n_chunks) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    float v[32];
    T::decode(src + row_offset(ls, source_row(ids, r)), c, v);
    float* out = dst + r * dst_stride + c * 32;
    if ((reinterpret_cast<uintptr_t>(out) & 15) == 0) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        reinterpret_cast<float4*>(out)[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
      }
    } else {
#pragma unroll
      for (int i = 0; i < 32; ++i) out[i] = v[i];
    }
  }
}

enum class Plain { f32, f16, bf16 };

template <Plain P>
__device__ __forceinline__ float plain_value(const uint8_t* p) {
  if constexpr (P == Plain::f32) return *reinterpret_cast<const float*>(p);
  if constexpr (P == Plain::f16) return f16_bits_to_f32(load_u16(p));
  if constexpr (P == Plain::bf16) return bf16_bits_to_f32(load_u16(p));
}

// One thread per element.
template <Plain P>
__global__ void plain_rows_kernel(const uint8_t* src, RowLayout ls, int64_t nb0, const int32_t* ids, int64_t n_rows,
                                  int64_t ne0, float* dst, int64_t dst_stride) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= ne0) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    dst[r * dst_stride + i] = plain_value<P>(src + row_offset(ls, source_row(ids, r)) + i * nb0);
  }
}

dim3 grid_for(int64_t blocks_per_row, int64_t n_rows) {
  return dim3(unsigned(blocks_per_row), unsigned(n_rows < kMaxGridY ? n_rows : kMaxGridY));
}

template <Plain P>
cudaError_t launch_plain(const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0, int64_t n_rows,
                         float* dst, int64_t dst_stride, cudaStream_t stream) {
  plain_rows_kernel<P><<<grid_for(ceil_div(ne0, kThreads), n_rows), kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(src), ls, int64_t(nb0), ids, n_rows, ne0, dst, dst_stride);
  return cudaGetLastError();
}

}  // namespace

bool convert_supported(DType type) {
  if (type == DType::F32 || type == DType::F16 || type == DType::BF16) return true;
  return quant::dispatch_quant(type, [](auto) {});
}

cudaError_t launch_rows_to_f32(DType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0,
                               int64_t n_rows, float* dst, int64_t dst_stride, cudaStream_t stream) {
  if (n_rows == 0 || ne0 == 0) return cudaSuccess;
  switch (type) {
    case DType::F32: return launch_plain<Plain::f32>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
    case DType::F16: return launch_plain<Plain::f16>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
    case DType::BF16: return launch_plain<Plain::bf16>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
    default: break;
  }
  const int64_t n_chunks = ne0 / 32;
  const bool known = quant::dispatch_quant(type, [&](auto tag) {
    quant_rows_kernel<typename decltype(tag)::type><<<grid_for(ceil_div(n_chunks, kThreads), n_rows), kThreads, 0, stream>>>(
        static_cast<const uint8_t*>(src), ls, ids, n_rows, n_chunks, dst, dst_stride);
  });
  return known ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace strata::cuda
