// Rows of any supported type to f32 or f16: get_rows (rows picked by id), copies of device
// tensors to the host (to_host_f32), and dequantized weight tiles for the prefill GEMM.
// f16 output saturates at +-65504 rather than becoming infinite.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/quant_decode.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ int64_t source_row(const int32_t* ids, int64_t r) {
  return ids != nullptr ? int64_t(ids[r]) : r;
}

__device__ __forceinline__ void store(float* p, float v) {
  *p = v;
}
__device__ __forceinline__ void store(__half* p, float v) {
  *p = __float2half_rn(isnan(v) ? v : fminf(fmaxf(v, -65504.0f), 65504.0f));
}

// One thread per 32-element chunk, over all (row, chunk) pairs of the call (grid-stride).
template <typename T, typename Out>
__global__ void quant_rows_kernel(const uint8_t* src, RowLayout ls, const int32_t* ids, int64_t n_rows,
                                  int64_t n_chunks, Out* dst, int64_t dst_stride) {
  start_after_previous_kernel();
  const int64_t total = n_rows * n_chunks;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n_chunks, c = idx % n_chunks;
    float v[32];
    T::decode(src + row_offset(ls, source_row(ids, r)), c, v);
    Out* out = dst + r * dst_stride + c * 32;
    if constexpr (!std::is_same_v<Out, float>) {
      if ((reinterpret_cast<uintptr_t>(out) & 15) == 0) {  // four 16-byte stores of 8 halves
        uint32_t h[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          Out lo, hi;
          store(&lo, v[2 * i]);
          store(&hi, v[2 * i + 1]);
          h[i] = uint32_t(__half_as_ushort(lo)) | uint32_t(__half_as_ushort(hi)) << 16;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          reinterpret_cast<uint4*>(out)[i] = make_uint4(h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]);
        }
      } else {
#pragma unroll
        for (int i = 0; i < 32; ++i) store(out + i, v[i]);
      }
    } else if ((reinterpret_cast<uintptr_t>(out) & 15) == 0) {
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
template <Plain P, typename Out>
__global__ void plain_rows_kernel(const uint8_t* src, RowLayout ls, int64_t nb0, const int32_t* ids, int64_t n_rows,
                                  int64_t ne0, Out* dst, int64_t dst_stride) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= ne0) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    store(dst + r * dst_stride + i, plain_value<P>(src + row_offset(ls, source_row(ids, r)) + i * nb0));
  }
}

dim3 grid_for(int64_t blocks_per_row, int64_t n_rows) {
  return dim3(unsigned(blocks_per_row), unsigned(n_rows < kMaxGridY ? n_rows : kMaxGridY));
}

template <Plain P, typename Out>
cudaError_t launch_plain(const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0, int64_t n_rows,
                         Out* dst, int64_t dst_stride, cudaStream_t stream) {
  return launch(plain_rows_kernel<P, Out>, grid_for(ceil_div(ne0, kThreads), n_rows), kThreads, 0, stream,
                static_cast<const uint8_t*>(src), ls, int64_t(nb0), ids, n_rows, ne0, dst, dst_stride);
}

bool convert_supported_impl(DType type) {
  if (type == DType::F32 || type == DType::F16 || type == DType::BF16) return true;
  return quant::dispatch_quant(type, [](auto) {});
}

template <typename Out>
cudaError_t launch_rows(WeightType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0,
                        int64_t n_rows, Out* dst, int64_t dst_stride, cudaStream_t stream) {
  if (n_rows == 0 || ne0 == 0) return cudaSuccess;
  if (type.format == RowFormat::blocks) {
    switch (type.type) {
      case DType::F32:
        return launch_plain<Plain::f32>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
      case DType::F16:
        return launch_plain<Plain::f16>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
      case DType::BF16:
        return launch_plain<Plain::bf16>(src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
      default:
        break;
    }
  }
  const int64_t n_chunks = ne0 / 32;
  const int64_t blocks = std::min<int64_t>(ceil_div(n_rows * n_chunks, kThreads), int64_t(1) << 20);
  cudaError_t status = cudaErrorInvalidValue;  // for a type without a kernel
  quant::dispatch_quant(type, [&](auto tag) {
    status = launch(quant_rows_kernel<typename decltype(tag)::type, Out>, unsigned(blocks), kThreads, 0, stream,
                    static_cast<const uint8_t*>(src), ls, ids, n_rows, n_chunks, dst, dst_stride);
  });
  return status;
}

// N bytes from `from` (2-byte aligned) to `to` (16-byte aligned when N >= 16).
template <int N>
__device__ __forceinline__ void copy_part(const uint8_t* from, uint8_t* to) {
  if constexpr (N >= 16) {
    uint32_t w[N / 4];
    load_words<N, 2>(from, w);
#pragma unroll
    for (int i = 0; i < N / 16; ++i) {
      reinterpret_cast<uint4*>(to)[i] = make_uint4(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
    }
  } else {
    static_assert(N == 2);
    *reinterpret_cast<uint16_t*>(to) = load_u16(from);
  }
}

// One thread per block: its parts from the file's format (src) to their places in the
// grouped8 format (dst), quant_decode.cuh's offsets.
template <DType kType>
__global__ void group_rows_kernel(const uint8_t* src, uint8_t* dst, int64_t n_blocks, int64_t row_blocks,
                                  size_t row_bytes) {
  start_after_previous_kernel();
  constexpr RowFormat kFile = RowFormat::blocks, kGrouped = RowFormat::grouped8;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_blocks;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_blocks, b = i % row_blocks;
    const uint8_t* in = src + r * row_bytes;
    uint8_t* out = dst + r * row_bytes;
    if constexpr (kType == DType::Q4_0) {
      copy_part<2>(in + quant::q4_0_scale_at<kFile>(b), out + quant::q4_0_scale_at<kGrouped>(b));
      copy_part<16>(in + quant::q4_0_nibbles_at<kFile>(b), out + quant::q4_0_nibbles_at<kGrouped>(b));
    } else {
      static_assert(kType == DType::Q6_K);
      const quant::Q6_KParts from = quant::q6_k_parts<kFile>(b), to = quant::q6_k_parts<kGrouped>(b);
      copy_part<128>(in + from.ql, out + to.ql);
      copy_part<64>(in + from.qh, out + to.qh);
      copy_part<16>(in + from.scales, out + to.scales);
      copy_part<2>(in + from.d, out + to.d);
    }
  }
}

}  // namespace

cudaError_t launch_group_rows(DType type, const void* src, void* dst, int64_t ne0, int64_t n_rows, size_t row_bytes,
                              cudaStream_t stream) {
  const int64_t run = group_elems(type);
  if (run == 0 || ne0 <= 0 || ne0 % run != 0 || row_bytes < strata::row_bytes(type, ne0) || row_bytes % 16 != 0 ||
      reinterpret_cast<uintptr_t>(dst) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t row_blocks = ne0 / type_traits(type).block_size, n_blocks = n_rows * row_blocks;
  if (n_blocks == 0) return cudaSuccess;
  const int64_t ctas = std::min<int64_t>(ceil_div(n_blocks, kThreads), int64_t(1) << 20);
  const auto kernel = type == DType::Q4_0 ? group_rows_kernel<DType::Q4_0> : group_rows_kernel<DType::Q6_K>;
  return launch(kernel, unsigned(ctas), kThreads, 0, stream, static_cast<const uint8_t*>(src),
                static_cast<uint8_t*>(dst), n_blocks, row_blocks, row_bytes);
}

bool convert_supported(DType type) {
  return convert_supported_impl(type);
}

cudaError_t launch_rows_to_f32(WeightType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0,
                               int64_t n_rows, float* dst, int64_t dst_stride, cudaStream_t stream) {
  return launch_rows<float>(type, src, ls, nb0, ids, ne0, n_rows, dst, dst_stride, stream);
}

cudaError_t launch_rows_to_f16(WeightType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids, int64_t ne0,
                               int64_t n_rows, void* dst, int64_t dst_stride, cudaStream_t stream) {
  return launch_rows<__half>(type, src, ls, nb0, ids, ne0, n_rows, static_cast<__half*>(dst), dst_stride, stream);
}

}  // namespace strata::cuda
