// The rotation of rope (cpu_ref/rope.cpp defines it), shared by the rope kernels (rope.cu) and
// the q/k/v decode launch that ropes its rows itself (matmul_vec_fast.cuh), so that both give
// the same bits: the angle and its cos/sin in double, as the reference does, the turn in f32.
#pragma once

#include "backend/cuda/common.cuh"

namespace strata::cuda {

// {cos, sin} of the angle pos * theta_scale.
__device__ __forceinline__ float2 rope_cos_sin(double pos, double theta_scale) {
  double s, c;
  sincos(pos * theta_scale, &s, &c);
  return make_float2(float(c), float(s));
}

// (x0, x1) turned by the angle of cs = rope_cos_sin(...).
__device__ __forceinline__ float2 rope_turn(float x0, float x1, float2 cs) {
  return make_float2(__fsub_rn(__fmul_rn(x0, cs.x), __fmul_rn(x1, cs.y)),
                     __fadd_rn(__fmul_rn(x0, cs.y), __fmul_rn(x1, cs.x)));
}

// (x0, x1) turned by pos * theta_scale.
__device__ __forceinline__ float2 rope_turn(float x0, float x1, double pos, double theta_scale) {
  return rope_turn(x0, x1, rope_cos_sin(pos, theta_scale));
}

}  // namespace strata::cuda
