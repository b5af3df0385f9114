// The q8 form of activations (XQ8, kernels.h), shared by the quantize kernel and the rms_norm
// kernel that writes it too, so that both give the same bits.
#pragma once

#include "backend/cuda/common.cuh"

namespace strata::cuda {

inline constexpr int kQ8Block = 32;  // values per block of the q8 form

// Word `word` (values 4 word .. 4 word + 3) of x is v; lanes 8g .. 8g + 7 of the warp hold
// the 4 words of one block in order. Every lane of the warp calls this (the shuffles); lanes
// with valid = false (past the end of x, in whole blocks) write nothing.
__device__ __forceinline__ void quantize_word_q8(float4 v, int64_t word, bool valid, XQ8 out) {
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int o = 4; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  const int q0 = __float2int_rn(v.x * inv), q1 = __float2int_rn(v.y * inv);
  const int q2 = __float2int_rn(v.z * inv), q3 = __float2int_rn(v.w * inv);
  int sum = (q0 + q1) + (q2 + q3);
#pragma unroll
  for (int o = 4; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (!valid) return;
  reinterpret_cast<uint32_t*>(out.q)[word] =
      (uint32_t(q0) & 0xffu) | (uint32_t(q1) & 0xffu) << 8 | (uint32_t(q2) & 0xffu) << 16 | uint32_t(q3) << 24;
  if (word % 8 == 0) {
    const float d = amax / 127.0f;
    out.ds[word / 8] = make_float2(d, d * float(sum));
  }
}

// Value e of x is v, and the 32 lanes of the warp hold block e / 32 in order (one value
// each): the same q8 form as quantize_word_q8 gives (the same amax, scale and rounding).
__device__ __forceinline__ void quantize_lane_q8(float v, int64_t e, XQ8 out) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  const int q = __float2int_rn(v * inv);
  int sum = q;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  out.q[e] = int8_t(q);
  if (e % kQ8Block == 0) {
    const float d = amax / 127.0f;
    out.ds[e / kQ8Block] = make_float2(d, d * float(sum));
  }
}

}  // namespace strata::cuda
