// The portable path of the op primitives: plain loops over 16 partial sums, which GCC
// vectorises for the baseline x86-64 (SSE2) without changing the order of any sum.
#include "backend/cpu/op_kernels.h"

#include <cmath>

#include "backend/cpu/op_kernels_isa.h"
#include "core/half.h"

namespace strata::cpu {
namespace {

constexpr int kLanes = 16;

// The lanes combined in a fixed tree: (0+8, 1+9, ...), then halves again.
float reduce_lanes(float* acc) {
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] += a[i + j] * b[i + j];
  return reduce_lanes(acc);
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += f16_to_f32(a[i + j]) * b[i + j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] += f16_to_f32(a[i + j]) * b[i + j];
  return reduce_lanes(acc);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * f16_to_f32(x[i]);
}

void scale_f32(float s, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

void to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void accumulate_f32(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  for (int64_t c = 0; c < n_x; ++c)
    axpy_f32(p[c], reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride), y, n);
}

void accumulate_f16(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  for (int64_t c = 0; c < n_x; ++c)
    axpy_f16(p[c], reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride), y, n);
}

void exp_shifted(float* x, int64_t n, float shift) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

constexpr OpKernels kPortable = {dot_f32, dot_f16,        axpy_f32,       axpy_f16,    scale_f32,
                                 to_f16,  accumulate_f32, accumulate_f16, exp_shifted, silu_mul};

}  // namespace

const OpKernels& op_kernels(Isa isa) {
  if (isa >= Isa::avx512) return op_kernels_avx512();
  if (isa >= Isa::avx2) return op_kernels_avx2();
  return kPortable;
}

}  // namespace strata::cpu
