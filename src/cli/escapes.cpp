#include "cli/escapes.h"

namespace strata::cli {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string process_escapes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'f': out += '\f'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case '\\':
      case '\'':
      case '"':
      case '?': out += c; break;
      case 'x': {
        int value = -1;
        size_t digits = 0;
        while (digits < 2 && i + 1 + digits < text.size() && hex_digit(text[i + 1 + digits]) >= 0) {
          value = (value < 0 ? 0 : value * 16) + hex_digit(text[i + 1 + digits]);
          ++digits;
        }
        if (digits == 0) {
          out += "\\x";
        } else {
          out += char(value);
          i += digits;
        }
        break;
      }
      default:
        out += '\\';
        out += c;
    }
  }
  return out;
}

}  // namespace strata::cli
