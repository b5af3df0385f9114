#include "tokenizer/unicode.h"

namespace strata::unicode {

namespace {

bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

}  // namespace

size_t valid_sequence_length(std::string_view text, size_t pos) {
  const size_t avail = text.size() - pos;
  const auto* s = reinterpret_cast<const uint8_t*>(text.data() + pos);
  const uint8_t b0 = s[0];
  if (b0 < 0x80) return 1;
  if (b0 < 0xC2) return 0;  // continuation byte, or overlong 2-byte lead (C0, C1)
  if (b0 < 0xE0) return avail >= 2 && is_continuation(s[1]) ? 2 : 0;
  if (b0 < 0xF0) {
    if (avail < 3 || !is_continuation(s[1]) || !is_continuation(s[2])) return 0;
    if (b0 == 0xE0 && s[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && s[1] >= 0xA0) return 0;  // surrogates U+D800..U+DFFF
    return 3;
  }
  if (b0 < 0xF5) {
    if (avail < 4 || !is_continuation(s[1]) || !is_continuation(s[2]) || !is_continuation(s[3])) return 0;
    if (b0 == 0xF0 && s[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && s[1] >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

char32_t decode(std::string_view text, size_t pos, size_t& length) {
  const size_t n = valid_sequence_length(text, pos);
  const auto* s = reinterpret_cast<const uint8_t*>(text.data() + pos);
  length = n == 0 ? 1 : n;
  switch (n) {
    case 1: return s[0];
    case 2: return char32_t(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3: return char32_t(s[0] & 0x0F) << 12 | char32_t(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    case 4:
      return char32_t(s[0] & 0x07) << 18 | char32_t(s[1] & 0x3F) << 12 | char32_t(s[2] & 0x3F) << 6 |
             (s[3] & 0x3F);
    default: return kInvalid;
  }
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

size_t incomplete_tail(std::string_view text) {
  // A sequence is at most 4 bytes: look at the last 3 bytes for a lead byte whose
  // sequence runs past the end, with only continuation bytes after it.
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = uint8_t(text[n - back]);
    if (is_continuation(b)) continue;
    size_t need = 0;
    if (b >= 0xC2 && b < 0xE0) need = 2;
    else if (b >= 0xE0 && b < 0xF0) need = 3;
    else if (b >= 0xF0 && b < 0xF5) need = 4;
    if (need <= back) return 0;  // ASCII, invalid lead, or a sequence that is complete
    // The bytes present must be a valid prefix: check them as far as they go.
    const auto* s = reinterpret_cast<const uint8_t*>(text.data() + n - back);
    if (back >= 2) {
      if (b == 0xE0 && s[1] < 0xA0) return 0;
      if (b == 0xED && s[1] >= 0xA0) return 0;
      if (b == 0xF0 && s[1] < 0x90) return 0;
      if (b == 0xF4 && s[1] >= 0x90) return 0;
    }
    return back;
  }
  return 0;
}

int byte_token_value(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]);
  const int lo = hex(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = valid_sequence_length(text, pos);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      pos += 1;
    } else {
      out.append(text.substr(pos, n));
      pos += n;
    }
  }
  return out;
}

ByteMap::ByteMap() {
  from_char_.fill(-1);
  char32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? char32_t(b) : next_extra++;
    to_char_[b] = cp;
    from_char_[cp] = int16_t(b);
    append_utf8(to_utf8_[b], cp);
  }
}

const ByteMap& ByteMap::get() {
  static const ByteMap map;
  return map;
}

bool ByteMap::decode(std::string_view text, std::string& out) const {
  out.clear();
  for (size_t pos = 0; pos < text.size();) {
    size_t len = 0;
    const char32_t cp = unicode::decode(text, pos, len);
    const int b = cp == kInvalid ? -1 : from_char(cp);
    if (b < 0) return false;
    out += char(b);
    pos += len;
  }
  return true;
}

std::string ByteMap::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += to_utf8_[uint8_t(c)];
  return out;
}

}  // namespace strata::unicode
