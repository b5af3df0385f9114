// Device helpers shared by the kernels: row addressing, warp/block reductions, half and
// bfloat16 conversions, and aligned loads of packed bytes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/bench_switches.h"
#include "backend/cuda/kernels.h"

namespace strata::cuda {

inline constexpr int kWarp = 32;

// Byte offset of flat row r (see RowLayout).
__device__ __forceinline__ int64_t row_offset(const RowLayout& l, int64_t r) {
  const int64_t i1 = r % l.ne1;
  const int64_t rest = r / l.ne1;
  return i1 * l.nb1 + (rest % l.ne2) * l.nb2 + (rest / l.ne2) * l.nb3;
}

template <typename T>
__device__ __forceinline__ T* row_ptr(void* base, const RowLayout& l, int64_t r) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + row_offset(l, r));
}
template <typename T>
__device__ __forceinline__ const T* row_ptr(const void* base, const RowLayout& l, int64_t r) {
  return reinterpret_cast<const T*>(static_cast<const char*>(base) + row_offset(l, r));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block; every thread gets the result. `scratch` holds >= 32 floats;
// blockDim.x is a multiple of 32.
template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(v) : warp_sum(v);
}

__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}

__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}

// N bytes at p (p aligned to A bytes, N a multiple of 4 and of A) as N/4 little-endian words.
template <int N, int A>
__device__ __forceinline__ void load_words(const uint8_t* p, uint32_t (&w)[N / 4]) {
  static_assert(N % 4 == 0 && N % A == 0);
  if constexpr (A >= 16) {
#pragma unroll
    for (int i = 0; i < N / 16; ++i) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[i];
      w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
    }
  } else if constexpr (A >= 8) {
#pragma unroll
    for (int i = 0; i < N / 8; ++i) {
      const uint2 v = reinterpret_cast<const uint2*>(p)[i];
      w[2 * i] = v.x, w[2 * i + 1] = v.y;
    }
  } else if constexpr (A >= 4) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) w[i] = reinterpret_cast<const uint32_t*>(p)[i];
  } else {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
    for (int i = 0; i < N / 4; ++i) w[i] = uint32_t(h[2 * i]) | uint32_t(h[2 * i + 1]) << 16;
  }
}

// Byte i of a word array (i a compile-time constant after unrolling).
template <int N>
__device__ __forceinline__ uint32_t byte_at(const uint32_t (&w)[N], int i) {
  return (w[i / 4] >> (8 * (i % 4))) & 0xffu;
}

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// ---- programmatic dependent launch (Hopper) ------------------------------------------------
// A kernel started with launch() may be scheduled while the kernel before it on the stream
// is still running, which hides most of the gap between two small kernels (a decode step is
// hundreds of them). Such a kernel must call wait_for_previous_kernel() before it touches
// global memory: it returns once the previous kernel has finished and its writes are
// visible. allow_next_kernel() lets the next kernel be scheduled (once every block of this one
// has called it or exited). STRATA_CUDA_PDL=0 turns the overlap off (for comparisons).
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// Both, in the order every kernel here uses them: at its first line.
__device__ __forceinline__ void start_after_previous_kernel() {
  wait_for_previous_kernel();
  allow_next_kernel();
}

// ---- bulk copies into shared memory (sm_90) ----------------------------------------------------
// One thread starts copies of contiguous global bytes into shared memory (16-byte aligned
// addresses, sizes multiples of 16) by the copy engine (cp.async.bulk), each completing on an
// mbarrier that was armed for the bytes of all its copies; the block's threads then wait on
// it. Copies of bytes that the previous kernel does not write (weights) may start before
// wait_for_previous_kernel(): their load then overlaps the previous kernel. Kernels that use
// these are launched only on devices of compute capability 9.0 or later (elsewhere they trap).
struct SharedBarrier {
  uint64_t word;
};

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// One thread: initializes `bar` for one phase of `bytes` bytes in all. The block must
// __syncthreads() before other threads wait on it.
__device__ __forceinline__ void bulk_arm(SharedBarrier* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(bar)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
#else
  (void)bar, (void)bytes;
  __trap();
#endif
}

// The thread that armed `bar`: copies `bytes` from src to dst, completing on `bar`.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, SharedBarrier* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   shared_address(dst)),
               "l"(src), "r"(bytes), "r"(shared_address(bar))
               : "memory");
#else
  (void)dst, (void)src, (void)bytes, (void)bar;
  __trap();
#endif
}

// Any thread: returns once every byte `bar` was armed for has landed.
__device__ __forceinline__ void bulk_wait(SharedBarrier* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  while (!done) {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done)
                 : "r"(shared_address(bar))
                 : "memory");
  }
#else
  (void)bar;
  __trap();
#endif
}

bool dependent_launch_enabled();  // step.cu

template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   Args... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = dependent_launch_enabled() ? 1 : 0;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, Params(args)...);
}

}  // namespace strata::cuda
