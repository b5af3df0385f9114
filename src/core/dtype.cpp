#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace strata {
namespace {

void copy_f32(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
void copy_to_f32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * sizeof(float)); }

void dequantize_row_f16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
}
void quantize_row_f16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
}
void dequantize_row_bf16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
}
void quantize_row_bf16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
}

// Sizes of the types Strata reads but does not compute (so `inspect` works on any file).
constexpr size_t kIQ2XXSBytes = 2 + 64;
constexpr size_t kIQ2XSBytes = 2 + 64 + 8;
constexpr size_t kIQ3XXSBytes = 2 + 96;
constexpr size_t kIQ1SBytes = 2 + 32 + 16;
constexpr size_t kIQ3SBytes = 2 + 64 + 8 + 32 + 4;
constexpr size_t kIQ2SBytes = 2 + 64 + 8 + 8;
constexpr size_t kIQ1MBytes = 32 + 16 + 8;
constexpr size_t kTQ1_0Bytes = 48 + 4 + 2;
constexpr size_t kTQ2_0Bytes = 64 + 2;
constexpr size_t kMXFP4Bytes = 1 + 16;

constexpr std::array kTypes = {
    TypeTraits{DType::F32, "f32", 1, 4, false, copy_f32, copy_to_f32},
    TypeTraits{DType::F16, "f16", 1, 2, false, dequantize_row_f16, quantize_row_f16},
    TypeTraits{DType::Q4_0, "q4_0", QK4_0, sizeof(BlockQ4_0), true, dequantize_row_q4_0, quantize_row_q4_0},
    TypeTraits{DType::Q4_1, "q4_1", QK4_1, sizeof(BlockQ4_1), true, dequantize_row_q4_1, quantize_row_q4_1},
    TypeTraits{DType::Q5_0, "q5_0", QK5_0, sizeof(BlockQ5_0), true, dequantize_row_q5_0, quantize_row_q5_0},
    TypeTraits{DType::Q5_1, "q5_1", QK5_1, sizeof(BlockQ5_1), true, dequantize_row_q5_1, quantize_row_q5_1},
    TypeTraits{DType::Q8_0, "q8_0", QK8_0, sizeof(BlockQ8_0), true, dequantize_row_q8_0, quantize_row_q8_0},
    TypeTraits{DType::Q8_1, "q8_1", QK8_1, sizeof(BlockQ8_1), true, nullptr, nullptr},
    TypeTraits{DType::Q2_K, "q2_K", QK_K, sizeof(BlockQ2_K), true, dequantize_row_q2_k, quantize_row_q2_k},
    TypeTraits{DType::Q3_K, "q3_K", QK_K, sizeof(BlockQ3_K), true, dequantize_row_q3_k, quantize_row_q3_k},
    TypeTraits{DType::Q4_K, "q4_K", QK_K, sizeof(BlockQ4_K), true, dequantize_row_q4_k, quantize_row_q4_k},
    TypeTraits{DType::Q5_K, "q5_K", QK_K, sizeof(BlockQ5_K), true, dequantize_row_q5_k, quantize_row_q5_k},
    TypeTraits{DType::Q6_K, "q6_K", QK_K, sizeof(BlockQ6_K), true, dequantize_row_q6_k, quantize_row_q6_k},
    TypeTraits{DType::Q8_K, "q8_K", QK_K, sizeof(BlockQ8_K), true, dequantize_row_q8_k, quantize_row_q8_k},
    TypeTraits{DType::IQ2_XXS, "iq2_xxs", QK_K, kIQ2XXSBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ2_XS, "iq2_xs", QK_K, kIQ2XSBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ3_XXS, "iq3_xxs", QK_K, kIQ3XXSBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ1_S, "iq1_s", QK_K, kIQ1SBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ4_NL, "iq4_nl", QK4_NL, sizeof(BlockIQ4_NL), true, dequantize_row_iq4_nl, quantize_row_iq4_nl},
    TypeTraits{DType::IQ3_S, "iq3_s", QK_K, kIQ3SBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ2_S, "iq2_s", QK_K, kIQ2SBytes, true, nullptr, nullptr},
    TypeTraits{DType::IQ4_XS, "iq4_xs", QK_K, sizeof(BlockIQ4_XS), true, dequantize_row_iq4_xs, quantize_row_iq4_xs},
    TypeTraits{DType::I8, "i8", 1, 1, false, nullptr, nullptr},
    TypeTraits{DType::I16, "i16", 1, 2, false, nullptr, nullptr},
    TypeTraits{DType::I32, "i32", 1, 4, false, nullptr, nullptr},
    TypeTraits{DType::I64, "i64", 1, 8, false, nullptr, nullptr},
    TypeTraits{DType::F64, "f64", 1, 8, false, nullptr, nullptr},
    TypeTraits{DType::IQ1_M, "iq1_m", QK_K, kIQ1MBytes, true, nullptr, nullptr},
    TypeTraits{DType::BF16, "bf16", 1, 2, false, dequantize_row_bf16, quantize_row_bf16},
    TypeTraits{DType::TQ1_0, "tq1_0", QK_K, kTQ1_0Bytes, true, nullptr, nullptr},
    TypeTraits{DType::TQ2_0, "tq2_0", QK_K, kTQ2_0Bytes, true, nullptr, nullptr},
    TypeTraits{DType::MXFP4, "mxfp4", 32, kMXFP4Bytes, true, nullptr, nullptr},
};

bool iequal(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) { return std::tolower(uint8_t(x)) == std::tolower(uint8_t(y)); });
}

}  // namespace

const TypeTraits* find_type_traits(uint32_t id) {
  for (const auto& t : kTypes) {
    if (uint32_t(t.type) == id) return &t;
  }
  return nullptr;
}

const TypeTraits& type_traits(DType type) {
  const TypeTraits* t = find_type_traits(uint32_t(type));
  if (t == nullptr) fail("unknown tensor type id {}", uint32_t(type));
  return *t;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& t : kTypes) {
    if (iequal(t.name, name)) return t.type;
  }
  return std::nullopt;
}

std::string_view dtype_name(DType type) { return type_traits(type).name; }

std::span<const TypeTraits> all_type_traits() { return kTypes; }

size_t row_bytes(DType type, int64_t ne0) {
  const TypeTraits& t = type_traits(type);
  if (ne0 < 0 || ne0 % t.block_size != 0) {
    fail("a row of {} elements is not a whole number of {} blocks ({} elements each)", ne0, t.name, t.block_size);
  }
  return size_t(ne0 / t.block_size) * t.type_size;
}

}  // namespace strata
