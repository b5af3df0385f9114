// Splitting text on special and added tokens before it is tokenized: control tokens
// (<|im_start|>, <s>, ...) when parsing of special tokens is on, user-defined (added)
// tokens always. Matching is leftmost-longest, as Hugging Face's added-token matcher does;
// the text between matches is left exactly as it was (no space is added or removed).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace strata {

struct Fragment {
  std::string_view text;    // ordinary text (when token == kNoToken)
  TokenId token = kNoToken;  // a special or added token
};

class SpecialSplitter {
public:
  explicit SpecialSplitter(const Vocab& vocab);

  // Appends the fragments of `text` to `out` (consecutive text is one fragment).
  void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

  size_t size() const { return n_tokens_; }

private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node, sorted
    TokenId token = kNoToken;
    bool control = false;  // matched only when parsing special tokens
  };
  int32_t child(int32_t node, uint8_t byte) const;
  // Length and token of the longest match at text[pos] (0 if none).
  size_t longest_match(std::string_view text, size_t pos, bool parse_special, TokenId& token) const;

  std::vector<Node> nodes_;  // nodes_[0] is the root
  std::array<bool, 256> first_any_{};
  std::array<bool, 256> first_added_{};
  size_t n_tokens_ = 0;
};

}  // namespace strata
