#include "tokenizer/spm.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace strata {

namespace {

struct Symbol {
  uint32_t start;  // byte offset into the text
  uint32_t len;    // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Candidate {
  float score;
  int32_t left;
  int32_t right;
  uint32_t len;  // len(left) + len(right) when queued: a later change makes it stale
};

// Heap order: highest score first, then leftmost.
struct Worse {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  }
};

constexpr std::string_view kMark = "\xE2\x96\x81";  // '▁'

uint64_t span_key(uint32_t start, uint32_t len) { return uint64_t(start) << 32 | len; }

// "E2 96 81": bytes in hex, for messages.
std::string hex_bytes(std::string_view bytes) {
  std::string out;
  for (char b : bytes) out += fmt::format("{}{:02X}", out.empty() ? "" : " ", uint8_t(b));
  return out;
}

}  // namespace

struct SpmEncoder::History {
  std::unordered_map<uint64_t, uint32_t> left_len;  // span -> length of its left part
};

SpmEncoder::SpmEncoder(const Vocab& vocab) {
  byte_tokens_.fill(kNoToken);
  pieces_.reserve(vocab.tokens.size());
  for (TokenId id = 0; id < vocab.size(); ++id) {
    const std::string& text = vocab.tokens[size_t(id)];
    const TokenType type = vocab.type(id);
    if (type == TokenType::Byte) {
      if (const int b = unicode::byte_token_value(text); b >= 0) byte_tokens_[size_t(b)] = id;
      continue;
    }
    if (type == TokenType::Control || type == TokenType::Unknown) continue;
    pieces_[text] = Piece{id, vocab.scores[size_t(id)], type == TokenType::Unused};
    // A '▁' inside a piece after another character would let merges cross word starts.
    for (size_t pos = text.find(kMark, 1); pos != std::string::npos; pos = text.find(kMark, pos + 1))
      if (pos < kMark.size() || text.compare(pos - kMark.size(), kMark.size(), kMark) != 0) split_at_spaces_ = false;
  }
  unk_ = vocab.unk;
}

void SpmEncoder::encode(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const {
  if (!split_at_spaces_) {
    encode_segment(text, out, replaced);
    return;
  }
  // No piece joins a character to a following '▁' (checked at load), so no merge crosses
  // the start of a "▁word": each is merged on its own (a small heap, and repeated words
  // are merged once per call: segment -> {offset in out, count}).
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  size_t start = 0;
  auto flush = [&](size_t end) {
    if (end == start) return;
    const std::string_view segment = text.substr(start, end - start);
    if (auto it = seen.find(segment); it != seen.end()) {
      for (size_t k = 0; k < it->second.second; ++k) out.push_back(out[it->second.first + k]);
    } else {
      const size_t offset = out.size();
      const size_t replaced_before = replaced;
      encode_segment(segment, out, replaced);
      // A repeat is copied, not encoded again: only segments encoded without a
      // replacement are kept, so that `replaced` counts every replaced character.
      if (segment.size() <= 256 && replaced == replaced_before)
        seen.emplace(segment, std::pair{offset, out.size() - offset});
    }
    start = end;
  };
  const std::string_view mark = kMark;
  for (size_t pos = text.find(mark, 1); pos != std::string_view::npos; pos = text.find(mark, pos + mark.size())) {
    const bool after_mark = pos >= mark.size() && text.substr(pos - mark.size(), mark.size()) == mark;
    if (!after_mark) flush(pos);
  }
  flush(text.size());
}

void SpmEncoder::encode_segment(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const {
  if (text.empty()) return;
  // [n] one symbol per character (an invalid byte is a character of its own).
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = unicode::char_length(text, pos);
    const auto i = int32_t(symbols.size());
    symbols.push_back({uint32_t(pos), uint32_t(n), i - 1, i + 1});
    pos += n;
  }
  symbols.back().next = -1;

  std::vector<Candidate> heap;
  History history;
  auto add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[size_t(left)];
    const Symbol& r = symbols[size_t(right)];
    const uint32_t len = l.len + r.len;
    const Piece* piece = find_value(pieces_, text.substr(l.start, len));
    if (!piece) return;
    heap.push_back({piece->score, left, right, len});
    std::push_heap(heap.begin(), heap.end(), Worse{});
    if (piece->unused) history.left_len[span_key(l.start, len)] = l.len;
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) add(i, i + 1);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Worse{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = symbols[size_t(c.left)];
    Symbol& r = symbols[size_t(c.right)];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[size_t(r.next)].prev = c.left;
    add(l.prev, c.left);
    add(c.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next)
    emit(text, symbols[size_t(i)].start, symbols[size_t(i)].len, history, out, replaced);
}

void SpmEncoder::emit(std::string_view text, uint32_t start, uint32_t len, const History& history,
                      std::vector<TokenId>& out, size_t& replaced) const {
  const std::string_view s = text.substr(start, len);
  const Piece* piece = find_value(pieces_, s);
  if (piece && !piece->unused) {
    out.push_back(piece->id);
    return;
  }
  if (piece) {
    auto it = history.left_len.find(span_key(start, len));
    if (it != history.left_len.end()) {
      emit(text, start, it->second, history, out, replaced);
      emit(text, start + it->second, len - it->second, history, out, replaced);
      return;
    }
  }
  byte_fallback(s, out, replaced);
}

void SpmEncoder::byte_fallback(std::string_view bytes, std::vector<TokenId>& out, size_t& replaced) const {
  const bool all = std::all_of(bytes.begin(), bytes.end(), [&](char b) { return byte_tokens_[uint8_t(b)] >= 0; });
  if (all) {
    for (char b : bytes) out.push_back(byte_tokens_[uint8_t(b)]);
    return;
  }
  if (unk_ < 0) {
    fail(
        "tokenize: the text has a character (bytes {}) with no piece, no byte tokens and no unknown token in the "
        "vocabulary",
        hex_bytes(bytes));
  }
  // Each character with no piece and no byte tokens is one unknown token.
  for (size_t pos = 0; pos < bytes.size(); pos += unicode::char_length(bytes, pos)) {
    out.push_back(unk_);
    ++replaced;
  }
}

}  // namespace strata
