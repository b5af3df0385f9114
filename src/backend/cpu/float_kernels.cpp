// The float kernel group (kernel_groups.h): F32, F16 and BF16 weights times f32 activations,
// and the portable path of each. Every path sums a dot product of k terms as lanes of
// partial sums over whole chunks of its vector width, reduced in a fixed order, and then
// adds the last k % width terms one by one, so a result depends on k and the path only.
#include "backend/cpu/float_kernels_isa.h"
#include "backend/cpu/kernel_groups.h"
#include "core/half.h"

namespace strata::cpu {
namespace {

float weight_at(const float* w, int64_t i) {
  return w[i];
}
float weight_at(const uint16_t* w, int64_t i, DType type) {
  return type == DType::F16 ? f16_to_f32(w[i]) : bf16_to_f32(w[i]);
}

constexpr int kLanes = 8;

// sum_l w[l] * x[l] as kLanes partial sums, reduced pairwise, then the tail in order.
template <typename Weight>
float dot_portable(const Weight& weight, const float* x, int64_t k) {
  float lane[kLanes] = {};
  const int64_t whole = k / kLanes * kLanes;
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] += weight(i + j) * x[i + j];
  }
  float sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (int64_t i = whole; i < k; ++i) sum += weight(i) * x[i];
  return sum;
}

template <DType kType>
void tile_portable(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
                   float* out, size_t out_stride) {
  for (int r = 0; r < nr; ++r) {
    const void* row = static_cast<const uint8_t*>(w) + size_t(r) * w_stride;
    for (int c = 0; c < nc; ++c) {
      const auto* xc = reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride);
      float sum;
      if constexpr (kType == DType::F32) {
        const auto* wr = static_cast<const float*>(row);
        sum = dot_portable([wr](int64_t i) { return weight_at(wr, i); }, xc, k);
      } else {
        const auto* wr = static_cast<const uint16_t*>(row);
        sum = dot_portable([wr](int64_t i) { return weight_at(wr, i, kType); }, xc, k);
      }
      out[size_t(c) * out_stride + size_t(r)] = sum;
    }
  }
}

constexpr TypeKernels kF32{ActFormat::f32, 4, 4, tile_portable<DType::F32>};
constexpr TypeKernels kF16{ActFormat::f32, 4, 4, tile_portable<DType::F16>};
constexpr TypeKernels kBF16{ActFormat::f32, 4, 4, tile_portable<DType::BF16>};

}  // namespace

const TypeKernels* float_kernels(DType type, Isa isa) {
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16) return nullptr;
  if (isa >= Isa::avx512) return float_kernels_avx512(type);
  if (isa >= Isa::avx2) return float_kernels_avx2(type);
  switch (type) {
    case DType::F32:
      return &kF32;
    case DType::F16:
      return &kF16;
    default:
      return &kBF16;
  }
}

}  // namespace strata::cpu
