// Internal to the GGUF reader: a bounds-checked little-endian cursor over the file bytes,
// and the metadata parser that reads through it.
// Every read checks the bytes left first; every error names the file, what was being read
// (the context: "header", "metadata key 'x'", "tensor 'y'") and the byte offset.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include <vector>

#include "core/error.h"
#include "gguf/value.h"

namespace strata::gguf::detail {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

// A name or key made safe for a one-line error message: control bytes escaped, cut at ~80 bytes.
std::string printable(std::string_view s);

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);

class Cursor {
public:
  Cursor(std::span<const uint8_t> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t left() const { return bytes_.size() - pos_; }
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  // Throws "<file>: <context>: <message>".
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    strata::fail("{}: {}: {}", file_, context_, fmt::format(format, std::forward<Args>(args)...));
  }

  void need(uint64_t n, std::string_view what) const {
    if (n > left()) {
      fail("unexpected end of file reading {} at offset {} (needs {} bytes, {} left)", what, pos_, n, left());
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A GGUF string: u64 length, then that many bytes (not NUL-terminated).
  std::string read_string(std::string_view what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > left()) {
      fail("{} length {} at offset {} exceeds the {} bytes left in the file", what, len, at, left());
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), size_t(len));
    pos_ += len;
    return s;
  }

private:
  std::span<const uint8_t> bytes_;
  const std::string& file_;
  std::string context_ = "header";
  uint64_t pos_ = 0;
};

// Arrays may nest (an array of arrays of ...) at most this many levels deep.
inline constexpr int kMaxArrayDepth = 8;

// Reads `count` key-value pairs at the cursor; the caller has checked `count` against the
// bytes left. Rejects empty, non-UTF-8 and duplicate keys and unknown value types.
// `value_offsets[i]` is where the value of pair i starts (its type id), for later errors.
std::vector<KeyValue> read_metadata(Cursor& c, uint64_t count, std::vector<uint64_t>& value_offsets);

}  // namespace strata::gguf::detail
