// Parsing of the GGUF metadata key-value section. Every count is checked against the bytes
// left in the file before anything is allocated for it.
#include <fmt/format.h>

#include <unordered_map>

#include "gguf/parse.h"

namespace strata::gguf::detail {
namespace {

constexpr uint32_t kMaxValueType = uint32_t(ValueType::FLOAT64);

// The fewest bytes one value of `type` can take in the file.
uint64_t min_encoded_size(ValueType type) {
  switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
    case ValueType::STRING: return 8;       // the length
    case ValueType::ARRAY: return 4 + 8;  // element type and count
  }
  return 1;
}

ValueType read_value_type(Cursor& c, std::string_view what) {
  const uint64_t at = c.pos();
  const uint32_t id = c.read<uint32_t>(what);
  if (id > kMaxValueType) c.fail("unknown {} {} at offset {}", what, id, at);
  return ValueType(id);
}

Value read_value(Cursor& c, ValueType type, int depth);

Value read_array(Cursor& c, int depth) {
  const ValueType elem = read_value_type(c, "array element type");
  if (elem == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth) {
    c.fail("arrays nested deeper than {} levels at offset {}", kMaxArrayDepth, c.pos() - 4);
  }
  const uint64_t at = c.pos();
  const uint64_t count = c.read<uint64_t>("array count");
  const uint64_t min_size = min_encoded_size(elem);
  if (count > c.left() / min_size) {
    c.fail("array count {} at offset {} cannot fit: {} items of {} need at least {} bytes each, {} bytes left", count,
           at, count, value_type_name(elem), min_size, c.left());
  }
  Array a{elem, {}};
  a.items.reserve(size_t(count));  // bounded by the bytes left, checked above
  for (uint64_t i = 0; i < count; ++i) a.items.push_back(read_value(c, elem, depth + 1));
  return Value{std::move(a)};
}

Value read_value(Cursor& c, ValueType type, int depth) {
  switch (type) {
    case ValueType::UINT8: return Value{c.read<uint8_t>("u8 value")};
    case ValueType::INT8: return Value{c.read<int8_t>("i8 value")};
    case ValueType::UINT16: return Value{c.read<uint16_t>("u16 value")};
    case ValueType::INT16: return Value{c.read<int16_t>("i16 value")};
    case ValueType::UINT32: return Value{c.read<uint32_t>("u32 value")};
    case ValueType::INT32: return Value{c.read<int32_t>("i32 value")};
    case ValueType::FLOAT32: return Value{c.read<float>("f32 value")};
    case ValueType::UINT64: return Value{c.read<uint64_t>("u64 value")};
    case ValueType::INT64: return Value{c.read<int64_t>("i64 value")};
    case ValueType::FLOAT64: return Value{c.read<double>("f64 value")};
    case ValueType::BOOL: {
      const uint64_t at = c.pos();
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail("bool value {} at offset {} is neither 0 nor 1", b, at);
      return Value{b == 1};
    }
    case ValueType::STRING: return Value{c.read_string("string")};
    case ValueType::ARRAY: return read_array(c, depth);
  }
  c.fail("unknown value type {} at offset {}", uint32_t(type), c.pos());
}

}  // namespace

std::vector<KeyValue> read_metadata(Cursor& c, uint64_t count, std::vector<uint64_t>& value_offsets) {
  std::vector<KeyValue> kvs;
  kvs.reserve(size_t(count));  // the caller checked count against the bytes left
  value_offsets.reserve(size_t(count));
  std::unordered_map<std::string_view, uint64_t> seen;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t at = c.pos();
    c.set_context(fmt::format("metadata kv {}", i));
    std::string key = c.read_string("key");
    if (key.empty()) c.fail("empty key at offset {}", at);
    if (!is_valid_utf8(key)) c.fail("key at offset {} is not valid UTF-8", at);
    c.set_context(fmt::format("metadata key '{}'", printable(key)));
    if (auto it = seen.find(key); it != seen.end()) {
      c.fail("duplicate key at offset {} (first defined by kv {})", at, it->second);
    }
    value_offsets.push_back(c.pos());
    const ValueType type = read_value_type(c, "value type");
    Value v = read_value(c, type, 0);
    kvs.push_back(KeyValue{std::move(key), std::move(v)});
    // Views into kvs stay valid: the vector never reallocates (reserved above).
    seen.emplace(kvs.back().key, i);
  }
  return kvs;
}

}  // namespace strata::gguf::detail
