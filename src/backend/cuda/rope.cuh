// The rotation of rope (cpu_ref/rope.cpp defines it), shared by the rope kernels (rope.cu) and
// the q/k/v decode launch that ropes its rows itself (matmul_vec_fast.cuh), so that both give
// the same bits: the angle and its cos/sin in double, as the reference does, the turn in f32.
#pragma once

#include "backend/cuda/common.cuh"

namespace strata::cuda {

// (x0, x1) turned by pos * theta_scale.
__device__ __forceinline__ float2 rope_turn(float x0, float x1, double pos, double theta_scale) {
  double s, c;
  sincos(pos * theta_scale, &s, &c);
  const float cos_t = float(c), sin_t = float(s);
  return make_float2(__fsub_rn(__fmul_rn(x0, cos_t), __fmul_rn(x1, sin_t)),
                     __fadd_rn(__fmul_rn(x0, sin_t), __fmul_rn(x1, cos_t)));
}

}  // namespace strata::cuda
