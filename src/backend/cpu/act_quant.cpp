// Activation quantization of the fast CPU backend (type_kernels.h): the forms a weight
// type's dot products read. The portable path below defines the bytes; the SIMD paths
// (act_quant_avx2.cpp) produce the same bytes for every input.
//
// q8_32, per block of 32 (ActQ8_32):
//   amax = max |x| (NaN ignored); a block with amax < kTinyBlock is all zeros (d = s = 0);
//   d = amax / 127, id = 1 / d, q = round_half_even(clamp(x * id, -127, 127)), where the
//   clamp maps NaN to -127; s = d * float(sum q).
// q8_256 is core's reference quantize_row_q8_k (BlockQ8_K with bsums).
#include <cmath>
#include <cstring>

#include "backend/cpu/act_quant_isa.h"
#include "backend/cpu/type_kernels.h"
#include "core/error.h"
#include "core/quant.h"

namespace strata::cpu {
namespace {

// Below this a block's scale would be subnormal and 1 / d could overflow: stored as zeros.
constexpr float kTinyBlock = 1e-30f;

void quantize_q8_32_block(const float* x, ActQ8_32& out) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) amax = a;
  }
  if (!(amax >= kTinyBlock)) {
    std::memset(&out, 0, sizeof(out));
    return;
  }
  const float d = amax / 127.0f;
  const float id = 1.0f / d;
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    const float v = std::fmin(std::fmax(x[i] * id, -127.0f), 127.0f);
    constexpr float kRounder = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, ties to even
    const int q = int((v + kRounder) - kRounder);
    out.qs[i] = int8_t(q);
    sum += q;
  }
  out.d = d;
  out.s = d * float(sum);
}

void quantize_q8_32_portable(const float* x, int64_t k, void* out) {
  auto* blocks = static_cast<ActQ8_32*>(out);
  for (int64_t b = 0; b < k / 32; ++b) quantize_q8_32_block(x + 32 * b, blocks[b]);
}

}  // namespace

size_t act_bytes(ActFormat format, int64_t k) {
  switch (format) {
    case ActFormat::f32:
      return size_t(k) * sizeof(float);
    case ActFormat::q8_32:
      return size_t(k / 32) * sizeof(ActQ8_32);
    case ActFormat::q8_256:
      return size_t(k / QK_K) * sizeof(BlockQ8_K);
  }
  return 0;
}

int64_t act_block(ActFormat format) {
  switch (format) {
    case ActFormat::f32:
      return 1;
    case ActFormat::q8_32:
      return 32;
    case ActFormat::q8_256:
      return QK_K;
  }
  return 1;
}

void quantize_act(ActFormat format, Isa isa, const float* x, int64_t k, void* out) {
  if (k < 0 || k % act_block(format) != 0) {
    fail("quantize_act: {} activations are not a whole number of blocks of {}", k, act_block(format));
  }
  const bool avx2 = isa >= Isa::avx2;
  switch (format) {
    case ActFormat::f32:
      std::memcpy(out, x, size_t(k) * sizeof(float));
      return;
    case ActFormat::q8_32:
      (avx2 ? quantize_q8_32_avx2 : quantize_q8_32_portable)(x, k, out);
      return;
    case ActFormat::q8_256:
      if (avx2) {
        quantize_q8_256_avx2(x, k, out);
      } else {
        quantize_row_q8_k(x, out, k);
      }
      return;
  }
}

void act_residual(ActFormat format, const float* x, const void* q, int64_t k, float* residual) {
  switch (format) {
    case ActFormat::f32:
      fail("act_residual: f32 activations have no rounding residual");
    case ActFormat::q8_32: {
      const auto* blocks = static_cast<const ActQ8_32*>(q);
      for (int64_t i = 0; i < k; ++i) residual[i] = x[i] - blocks[i / 32].d * float(blocks[i / 32].qs[i % 32]);
      return;
    }
    case ActFormat::q8_256: {
      const auto* blocks = static_cast<const BlockQ8_K*>(q);
      for (int64_t i = 0; i < k; ++i) residual[i] = x[i] - blocks[i / QK_K].d * float(blocks[i / QK_K].qs[i % QK_K]);
      return;
    }
  }
}

}  // namespace strata::cpu
