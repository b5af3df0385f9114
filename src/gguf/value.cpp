// Typed access to GGUF metadata values.
#include "gguf/value.h"

#include <limits>
#include <optional>
#include <type_traits>
#include <variant>

#include "core/error.h"

namespace strata::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "str";
    case ValueType::ARRAY: return "arr";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
  }
  return "unknown";
}

namespace {

[[noreturn]] void wrong_type(std::string_view what, std::string_view expected, const Value& v) {
  fail("{}: expected {}, got {}", what, expected, value_type_name(v.type()));
}

// Integer alternatives widened to a sign and a magnitude-preserving pair; nullopt for others.
struct Wide {
  bool negative;
  uint64_t magnitude;  // two's-complement value when negative (as int64)
};

std::optional<Wide> widen_integer(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::optional<Wide> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool> || !std::is_integral_v<T>) {
          return std::nullopt;
        } else if constexpr (std::is_signed_v<T>) {
          return Wide{x < 0, uint64_t(int64_t(x))};
        } else {
          return Wide{false, uint64_t(x)};
        }
      },
      v.data);
}

}  // namespace

const std::string& Value::as_string(std::string_view what) const {
  if (const auto* s = std::get_if<std::string>(&data)) return *s;
  wrong_type(what, "a string", *this);
}

const Array& Value::as_array(std::string_view what) const {
  if (const auto* a = std::get_if<Array>(&data)) return *a;
  wrong_type(what, "an array", *this);
}

bool Value::as_bool(std::string_view what) const {
  if (const auto* b = std::get_if<bool>(&data)) return *b;
  wrong_type(what, "a bool", *this);
}

int64_t Value::as_int(std::string_view what) const {
  auto w = widen_integer(*this);
  if (!w) wrong_type(what, "an integer", *this);
  if (!w->negative && w->magnitude > uint64_t(std::numeric_limits<int64_t>::max())) {
    fail("{}: value {} does not fit in a signed 64-bit integer", what, w->magnitude);
  }
  return int64_t(w->magnitude);
}

uint64_t Value::as_uint(std::string_view what) const {
  auto w = widen_integer(*this);
  if (!w) wrong_type(what, "an integer", *this);
  if (w->negative) fail("{}: expected a non-negative integer, got {}", what, int64_t(w->magnitude));
  return w->magnitude;
}

double Value::as_double(std::string_view what) const {
  if (const auto* f = std::get_if<float>(&data)) return *f;
  if (const auto* d = std::get_if<double>(&data)) return *d;
  auto w = widen_integer(*this);
  if (!w) wrong_type(what, "a number", *this);
  return w->negative ? double(int64_t(w->magnitude)) : double(w->magnitude);
}

Value make_array(ValueType elem_type, std::vector<Value> items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type() != elem_type) {
      fail("array item {} has type {}, expected {}", i, value_type_name(items[i].type()), value_type_name(elem_type));
    }
  }
  return Value{Array{elem_type, std::move(items)}};
}

}  // namespace strata::gguf
