// SentencePiece BPE (tokenizer.ggml.model = "llama"): the text (spaces already written as
// U+2581 '▁') starts as one symbol per character; the adjacent pair whose concatenation
// is a piece with the highest score is merged until none is (ties: leftmost first).
// Symbols that are not pieces fall back to <0xXX> byte tokens, or to the unknown token.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/string_map.h"
#include "tokenizer/vocab.h"

namespace strata {

class SpmEncoder {
public:
  explicit SpmEncoder(const Vocab& vocab);

  // Appends the tokens of `text`, which is already escaped ('▁' for ' ', prefix added).
  // `replaced` counts the characters written as the unknown token (no piece and no byte
  // tokens for them); throws strata::Error if the vocabulary has no unknown token either.
  void encode(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const;

  // The <0xXX> token of a byte (kNoToken if the vocabulary lacks it).
  TokenId byte_token(uint8_t b) const { return byte_tokens_[b]; }

private:
  struct Piece {
    TokenId id;
    float score;
    bool unused;  // merged like a piece, then split back into the pieces it came from
  };
  void encode_segment(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const;
  struct History;  // how merged unused pieces were formed
  void emit(std::string_view text, uint32_t start, uint32_t len, const History& history, std::vector<TokenId>& out,
            size_t& replaced) const;
  void byte_fallback(std::string_view bytes, std::vector<TokenId>& out, size_t& replaced) const;

  StringMap<Piece> pieces_;  // pieces that merges may form: normal, user-defined, unused
  std::array<TokenId, 256> byte_tokens_{};
  TokenId unk_ = kNoToken;
  bool split_at_spaces_ = true;  // no piece has '▁' after another character
};

}  // namespace strata
