// Data types of tensor elements, numbered as GGUF files number them, and one table of
// traits per type (design principle 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace strata {

// Values are the ggml/GGUF type ids; gaps are ids that GGUF retired.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

// Converts a row of `n` elements (a multiple of block_size) between f32 and this type.
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct TypeTraits {
  DType type;
  std::string_view name;       // as ggml names it: "q4_0", "f16", ...
  int64_t block_size;          // elements per block (1 for plain types)
  size_t type_size;            // bytes per block
  bool is_quantized;
  DequantizeRowFn dequantize;  // reference; nullptr: Strata can size it but not compute it
  QuantizeRowFn quantize;      // reference; nullptr: Strata cannot write this type
};

// Traits of a type id read from a file; nullptr for an id that GGUF does not define.
const TypeTraits* find_type_traits(uint32_t id);
// Traits of a known type.
const TypeTraits& type_traits(DType type);
// Lookup by ggml name ("q4_k"); case-insensitive.
std::optional<DType> dtype_from_name(std::string_view name);
std::string_view dtype_name(DType type);
// Every type in the table, in id order.
std::span<const TypeTraits> all_type_traits();

// Bytes of a row of `ne0` elements; throws if ne0 is not a multiple of the block size.
size_t row_bytes(DType type, int64_t ne0);

}  // namespace strata
