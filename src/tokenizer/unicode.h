// UTF-8 helpers and the byte <-> character map of byte-level BPE (GPT-2 style).
// Text is handled as bytes: invalid UTF-8 is never an error here, it is split into
// single bytes so that every tokenizer stays lossless on arbitrary input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::unicode {

inline constexpr char32_t kInvalid = 0xFFFFFFFF;

// Length of the well-formed UTF-8 sequence starting at text[pos] (1..4), or 0 when the
// bytes there are not one (bad lead byte, missing/bad continuation, overlong form,
// surrogate, > U+10FFFF). pos < text.size().
size_t valid_sequence_length(std::string_view text, size_t pos);

// Length of the next "character": a well-formed sequence, or 1 for an invalid byte.
inline size_t char_length(std::string_view text, size_t pos) {
  const size_t n = valid_sequence_length(text, pos);
  return n == 0 ? 1 : n;
}

// Decodes the character at text[pos]; returns kInvalid for an invalid byte.
// `length` receives the bytes consumed (>= 1).
char32_t decode(std::string_view text, size_t pos, size_t& length);

// Appends the UTF-8 encoding of `cp` (cp <= 0x10FFFF, not a surrogate).
void append_utf8(std::string& out, char32_t cp);

// Number of bytes at the end of `text` that start a well-formed sequence but do not
// finish it yet (0..3): what a streaming decoder must hold back.
size_t incomplete_tail(std::string_view text);

// The byte a SentencePiece byte token "<0xXX>" (two hex digits) stands for, or -1.
int byte_token_value(std::string_view text);

// Replaces every invalid byte of `text` by U+FFFD.
std::string sanitize(std::string_view text);

// The byte-level BPE alphabet: each of the 256 byte values is written as one printable
// character (printable Latin-1 bytes as themselves, the others as U+0100 + n in order).
class ByteMap {
public:
  ByteMap();
  static const ByteMap& get();

  char32_t to_char(uint8_t byte) const { return to_char_[byte]; }
  // UTF-8 of to_char(byte).
  const std::string& to_utf8(uint8_t byte) const { return to_utf8_[byte]; }
  // The byte a character stands for, or -1 if it is not in the alphabet.
  int from_char(char32_t cp) const { return cp < from_char_.size() ? from_char_[cp] : -1; }

  // Byte-level text -> bytes; false (and `out` unspecified) if a character is not in
  // the alphabet.
  bool decode(std::string_view text, std::string& out) const;
  // Bytes -> byte-level text.
  std::string encode(std::string_view bytes) const;

private:
  std::array<char32_t, 256> to_char_{};
  std::array<std::string, 256> to_utf8_{};
  std::array<int16_t, 324> from_char_{};
};

}  // namespace strata::unicode
