// The tokenizer of a GGUF model: text -> token ids -> text, exactly as the model's
// original (Hugging Face) tokenizer does it. Built once from the vocabulary; every method
// is const and thread-safe, and copies share one immutable state (one vocabulary for many
// sessions).
//
//   auto tok = strata::Tokenizer::from_gguf(file);
//   std::vector<strata::TokenId> ids = tok.encode("Hello world");   // BOS added if the model asks
//   std::string text = tok.decode(ids, {.skip_special = true});
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace strata::gguf {
class File;
}

namespace strata {

struct PreTokenizerSpec;

struct DecodeOptions {
  bool skip_special = false;  // leave out control and unknown tokens (BOS, EOS, <|im_end|>, ...)
  // SentencePiece models: drop the space that encode put before the text, i.e. a leading
  // space of the first token. Turn off when decoding a continuation (generated tokens).
  bool strip_space_prefix = true;
};

class Tokenizer {
public:
  // Reads tokenizer.ggml.* (a vocab-only GGUF is enough). Throws strata::Error naming the
  // file and what is wrong, e.g. an unknown tokenizer.ggml.pre.
  static Tokenizer from_gguf(const gguf::File& file);
  // From a vocabulary built or edited in code (tests use it to try other pre-tokenizers).
  static Tokenizer from_vocab(Vocab vocab);

  // Text -> ids. `add_special`: BOS/EOS as the model asks (add_bos_token/add_eos_token).
  // `parse_special`: text such as "<|im_start|>" becomes that control token; when off it is
  // tokenized as ordinary text. Added (user-defined) tokens are always matched.
  // Any bytes are accepted. Invalid UTF-8 is kept through byte tokens where the vocabulary
  // has them (byte-level BPE: the byte alphabet; SentencePiece: <0xXX> byte fallback). A
  // character that has none becomes U+FFFD (byte-level BPE) or the unknown token; their
  // number goes to `*replaced` when given, so that callers can say so. Throws
  // strata::Error only for a vocabulary that can represent neither.
  std::vector<TokenId> encode(std::string_view text, bool add_special = true, bool parse_special = true,
                              size_t* replaced = nullptr) const;

  // The bytes a token stands for (special tokens: their text). May be part of a UTF-8
  // character. Throws strata::Error for an id outside the vocabulary.
  const std::string& token_to_piece(TokenId id) const;

  // Ids -> text: the inverse of encode (without BOS/EOS or parse_special, decode(encode(s))
  // == s for any s). A SentencePiece model's leading space, added by encode, is removed.
  std::string decode(std::span<const TokenId> ids, DecodeOptions options = {}) const;
  // The building block of decode() and StreamDecoder: appends the text of one token;
  // `at_start` is true before the first token and is cleared here.
  void append_decoded(TokenId id, DecodeOptions options, bool& at_start, std::string& out) const;

  const Vocab& vocab() const;
  int32_t n_tokens() const;
  bool is_control(TokenId id) const;  // control or unknown: not text
  // End of generation: EOS, EOT, EOM and tokens such as <|im_end|> / <|endoftext|>.
  bool is_eog(TokenId id) const;
  // The pre-tokenizer in use (nullptr for a SentencePiece model).
  const PreTokenizerSpec* pre_tokenizer() const;
  // Things that were odd in the file but not fatal (unknown special ids, missing pre, ...).
  const std::vector<std::string>& warnings() const;

  struct State;

private:
  explicit Tokenizer(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// Turns a stream of generated ids into text, holding back the bytes of a UTF-8 character
// until it is complete: what push() returns is always whole, valid UTF-8 (bytes that can
// never form a character come out as U+FFFD). One per sequence; not thread-safe itself.
class StreamDecoder {
public:
  explicit StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});

  std::string push(TokenId id);  // the text completed by this token (often "")
  std::string finish();          // what is left at the end (an unfinished character as U+FFFD)

private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace strata
