// A tokenizer vocabulary as stored in GGUF metadata (tokenizer.ggml.*): token texts,
// scores, types, merges, the pre-tokenizer name, special token ids and flags.
// Plain data, validated on load; the tokenizers are built from it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::gguf {
class File;
}

namespace strata {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// Numbered as tokenizer.ggml.token_type stores them.
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

enum class VocabKind {
  Spm,  // tokenizer.ggml.model = "llama": SentencePiece BPE with byte fallback
  Bpe,  // tokenizer.ggml.model = "gpt2": byte-level BPE with a pre-tokenizer
};

struct Vocab {
  VocabKind kind = VocabKind::Spm;
  std::string model;  // tokenizer.ggml.model as written
  std::string pre;    // tokenizer.ggml.pre ("" when absent)

  std::vector<std::string> tokens;  // [n_tokens] token texts
  std::vector<float> scores;        // [n_tokens] (0 when the file has none)
  std::vector<TokenType> types;     // [n_tokens] (Normal when the file has none)
  std::vector<std::string> merges;  // BPE merges, "left right", in rank order

  TokenId bos = kNoToken;
  TokenId eos = kNoToken;
  TokenId eot = kNoToken;
  TokenId eom = kNoToken;
  TokenId unk = kNoToken;
  TokenId sep = kNoToken;
  TokenId pad = kNoToken;

  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // SPM: prepend a space to text that starts a fragment

  std::vector<std::string> warnings;  // things that were odd but not fatal

  // Reads tokenizer.ggml.* from a GGUF file (a vocab-only file is enough). Throws
  // strata::Error naming the file and the key that is missing or malformed.
  static Vocab from_gguf(const gguf::File& file);

  // Checks sizes and ids; throws strata::Error naming `where` on failure.
  void validate(std::string_view where) const;

  int32_t size() const { return int32_t(tokens.size()); }
  bool valid_id(TokenId id) const { return id >= 0 && id < size(); }
  TokenType type(TokenId id) const { return types[size_t(id)]; }
  // Control and unknown tokens: not text, parsed from text only when asked.
  bool is_control(TokenId id) const {
    return type(id) == TokenType::Control || type(id) == TokenType::Unknown;
  }
};

}  // namespace strata
