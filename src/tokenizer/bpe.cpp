#include "tokenizer/bpe.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace strata {

namespace {

// Heap order: lowest rank first, then leftmost.
struct Later {
  bool operator()(const BpeEncoder::Scratch::Candidate& a, const BpeEncoder::Scratch::Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

}  // namespace

BpeEncoder::BpeEncoder(const Vocab& vocab, bool ignore_merges) : ignore_merges_(ignore_merges) {
  // Token text -> id (a later duplicate wins, as in a JSON vocabulary).
  StringMap<TokenId> ids;
  ids.reserve(vocab.tokens.size());
  for (TokenId id = 0; id < vocab.size(); ++id) ids[vocab.tokens[size_t(id)]] = id;

  const auto& bytes = unicode::ByteMap::get();
  for (int b = 0; b < 256; ++b) {
    const TokenId* id = find_value(ids, bytes.to_utf8(uint8_t(b)));
    byte_tokens_[size_t(b)] = id ? *id : kNoToken;
  }

  // "left right" -> rank; merges whose parts or result are not tokens can never apply.
  merges_.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string_view m = vocab.merges[rank];
    const size_t space = m.find(' ', 1);
    if (space == std::string_view::npos) continue;
    const TokenId* left = find_value(ids, m.substr(0, space));
    const TokenId* right = find_value(ids, m.substr(space + 1));
    joined.assign(m.substr(0, space));
    joined.append(m.substr(space + 1));
    const TokenId* merged = find_value(ids, joined);
    if (!left || !right || !merged) continue;
    merges_[key(*left, *right)] = Merge{int32_t(rank), *merged};
  }

  if (ignore_merges_) {
    std::string raw;
    for (TokenId id = 0; id < vocab.size(); ++id) {
      if (vocab.is_control(id)) continue;
      if (bytes.decode(vocab.tokens[size_t(id)], raw)) whole_words_.emplace(raw, id);
    }
  }
}

void BpeEncoder::add_candidate(Scratch& s, int32_t left) const {
  if (left < 0) return;
  const auto& l = s.symbols[size_t(left)];
  if (l.next < 0 || l.id < 0) return;
  const auto& r = s.symbols[size_t(l.next)];
  if (r.id < 0) return;
  auto it = merges_.find(key(l.id, r.id));
  if (it == merges_.end()) return;
  s.heap.push_back({it->second.rank, left, l.id, r.id, it->second.merged});
  std::push_heap(s.heap.begin(), s.heap.end(), Later{});
}

void BpeEncoder::encode_word(std::string_view word, std::vector<TokenId>& out, Scratch& s) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const TokenId* id = find_value(whole_words_, word)) {
      out.push_back(*id);
      return;
    }
  }
  if (word.size() == 1) {
    if (TokenId id = byte_tokens_[uint8_t(word[0])]; id >= 0) out.push_back(id);
    return;
  }

  // One symbol per byte, linked in a list: [n] {id, prev, next}.
  const auto n = int32_t(word.size());
  s.symbols.resize(size_t(n));
  for (int32_t i = 0; i < n; ++i) s.symbols[size_t(i)] = {byte_tokens_[uint8_t(word[size_t(i)])], i - 1, i + 1};
  s.symbols[size_t(n - 1)].next = -1;
  s.heap.clear();
  for (int32_t i = 0; i + 1 < n; ++i) add_candidate(s, i);

  constexpr TokenId kDead = -2;
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), Later{});
    const Scratch::Candidate c = s.heap.back();
    s.heap.pop_back();
    auto& l = s.symbols[size_t(c.left)];
    // Stale if either side has changed since the candidate was queued.
    if (l.id != c.left_id || l.next < 0 || s.symbols[size_t(l.next)].id != c.right_id) continue;
    auto& r = s.symbols[size_t(l.next)];
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) s.symbols[size_t(r.next)].prev = c.left;
    r.id = kDead;
    add_candidate(s, l.prev);
    add_candidate(s, c.left);
  }
  // Bytes without a token of their own (id < 0) have nothing to emit; Tokenizer::encode
  // replaces the characters holding them before they get here.
  for (int32_t i = 0; i >= 0; i = s.symbols[size_t(i)].next)
    if (s.symbols[size_t(i)].id >= 0) out.push_back(s.symbols[size_t(i)].id);
}

}  // namespace strata
