// GGUF metadata values: the 13 value types of the format, arrays included (nested too).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace strata::gguf {

// Tensor data alignment when a file has no general.alignment key.
inline constexpr uint64_t kDefaultAlignment = 32;

// Numbered as in the file format.
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view value_type_name(ValueType type);  // "u8", "str", "arr", ...

struct Value;

struct Array {
  ValueType elem_type = ValueType::UINT8;
  std::vector<Value> items;  // every item has type elem_type (the writer checks, the reader ensures)

  bool operator==(const Array&) const = default;
};

struct Value {
  // The alternative index equals the ValueType id.
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;
  Storage data;

  ValueType type() const { return ValueType(data.index()); }

  // Typed access that says what was expected (throws strata::Error naming `what`).
  const std::string& as_string(std::string_view what) const;
  const Array& as_array(std::string_view what) const;
  bool as_bool(std::string_view what) const;
  // Any integer type whose value fits; throws on floats, negative to unsigned, overflow.
  int64_t as_int(std::string_view what) const;
  uint64_t as_uint(std::string_view what) const;
  // Any numeric type.
  double as_double(std::string_view what) const;

  bool operator==(const Value&) const = default;
};

// An array value from items of one type (empty arrays need the explicit element type).
Value make_array(ValueType elem_type, std::vector<Value> items);

// A metadata key and its value, in file order.
struct KeyValue {
  std::string key;
  Value value;
};

}  // namespace strata::gguf
