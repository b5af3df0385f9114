// Byte-level BPE (tokenizer.ggml.model = "gpt2"): a word's bytes start as the one-character
// tokens of the byte alphabet and the pair of adjacent tokens with the lowest merge rank is
// merged until no listed merge applies (ties: the leftmost pair first).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/string_map.h"
#include "tokenizer/vocab.h"

namespace strata {

class BpeEncoder {
public:
  // Scratch buffers of one encoding call (one per thread; reused between words).
  struct Scratch {
    struct Symbol {
      TokenId id;
      int32_t prev;
      int32_t next;
    };
    struct Candidate {
      int32_t rank;
      int32_t left;  // symbol index
      TokenId left_id;
      TokenId right_id;
      TokenId merged;
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };

  // `ignore_merges`: a word that is a token as a whole is that token (Llama 3 style).
  BpeEncoder(const Vocab& vocab, bool ignore_merges);

  // Appends the tokens of one pre-tokenized word (raw bytes, not byte-level text). Bytes
  // without a byte token (byte_token() == kNoToken) are skipped: callers replace them first.
  void encode_word(std::string_view word, std::vector<TokenId>& out, Scratch& scratch) const;

  size_t n_merges() const { return merges_.size(); }
  // The token standing for one raw byte (kNoToken if the vocabulary lacks it).
  TokenId byte_token(uint8_t b) const { return byte_tokens_[b]; }

private:
  struct Merge {
    int32_t rank;
    TokenId merged;
  };
  static uint64_t key(TokenId left, TokenId right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }
  void add_candidate(Scratch& s, int32_t left) const;

  std::array<TokenId, 256> byte_tokens_{};
  std::unordered_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  StringMap<TokenId> whole_words_;  // raw bytes of each token -> id (only with ignore_merges)
};

}  // namespace strata
