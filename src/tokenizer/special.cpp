#include "tokenizer/special.h"

#include <algorithm>

namespace strata {

SpecialSplitter::SpecialSplitter(const Vocab& vocab) {
  nodes_.emplace_back();
  for (TokenId id = 0; id < vocab.size(); ++id) {
    const TokenType type = vocab.type(id);
    const bool control = vocab.is_control(id);
    if (!control && type != TokenType::UserDefined) continue;
    const std::string& text = vocab.tokens[size_t(id)];
    if (text.empty()) continue;
    int32_t node = 0;
    for (char ch : text) {
      const auto b = uint8_t(ch);
      int32_t next = child(node, b);
      if (next < 0) {
        next = int32_t(nodes_.size());
        nodes_.emplace_back();
        auto& kids = nodes_[size_t(node)].children;
        kids.insert(std::upper_bound(kids.begin(), kids.end(), std::pair<uint8_t, int32_t>{b, -1}), {b, next});
      }
      node = next;
    }
    // Two tokens with the same text: an added (always parsed) one is preferred.
    Node& end = nodes_[size_t(node)];
    if (end.token == kNoToken || (end.control && !control)) {
      end.token = id;
      end.control = control;
    }
    first_any_[uint8_t(text[0])] = true;
    if (!control) first_added_[uint8_t(text[0])] = true;
    ++n_tokens_;
  }
}

int32_t SpecialSplitter::child(int32_t node, uint8_t byte) const {
  const auto& kids = nodes_[size_t(node)].children;
  auto it = std::lower_bound(kids.begin(), kids.end(), std::pair<uint8_t, int32_t>{byte, INT32_MIN});
  return (it != kids.end() && it->first == byte) ? it->second : -1;
}

size_t SpecialSplitter::longest_match(std::string_view text, size_t pos, bool parse_special, TokenId& token) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, uint8_t(text[i]));
    if (node < 0) break;
    const Node& n = nodes_[size_t(node)];
    if (n.token != kNoToken && (parse_special || !n.control)) {
      best = i + 1 - pos;
      token = n.token;
    }
  }
  return best;
}

void SpecialSplitter::split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  const auto& first = parse_special ? first_any_ : first_added_;
  size_t start = 0;  // of the pending text fragment
  for (size_t pos = 0; pos < text.size();) {
    if (!first[uint8_t(text[pos])]) {
      ++pos;
      continue;
    }
    TokenId token = kNoToken;
    const size_t len = longest_match(text, pos, parse_special, token);
    if (len == 0) {
      ++pos;
      continue;
    }
    if (pos > start) out.push_back({text.substr(start, pos - start), kNoToken});
    out.push_back({{}, token});
    pos += len;
    start = pos;
  }
  if (start < text.size()) out.push_back({text.substr(start), kNoToken});
}

}  // namespace strata
