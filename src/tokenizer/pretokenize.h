// Pre-tokenizers of byte-level BPE models: text is cut into words by a sequence of
// regular expressions (PCRE2, UTF + Unicode properties, JIT). Each expression splits
// every piece left by the one before it; matches and the text between them both become
// pieces ("isolated" splitting, as Hugging Face's Split/ByteLevel pre-tokenizers do).
// BPE merges never cross a piece boundary.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

// What tokenizer.ggml.pre selects.
struct PreTokenizerSpec {
  std::string family;                 // e.g. "gpt2", "llama3", "qwen2": names the regex set
  std::vector<std::string> patterns;  // applied in order
  bool ignore_merges = false;         // a word that is itself a token is not merged (Llama 3)
};

// The spec for a tokenizer.ggml.pre value; throws strata::Error naming the value and the
// supported ones if it is unknown. "" (absent) gives the "default" set.
PreTokenizerSpec pre_tokenizer_spec(std::string_view pre);

// Every pre value pre_tokenizer_spec accepts.
std::vector<std::string> supported_pre_tokenizers();

class PreTokenizer {
public:
  // Compiles the patterns once (throws strata::Error naming a pattern that fails).
  explicit PreTokenizer(const std::vector<std::string>& patterns);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Appends the pieces of `text` (views into it, in order, covering it exactly) to `out`.
  // Thread-safe; invalid UTF-8 bytes never match a pattern and end up between matches.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> regexes_;
};

// `\s` and `\S` in a pattern rewritten to Unicode White_Space, as Hugging Face's regex
// engine (Oniguruma) reads them (PCRE2's \s leaves out U+0085).
std::string rewrite_whitespace_classes(std::string_view pattern);

}  // namespace strata
