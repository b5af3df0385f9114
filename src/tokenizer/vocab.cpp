#include "tokenizer/vocab.h"

#include <fmt/format.h>

#include "core/error.h"
#include "gguf/reader.h"

namespace strata {

namespace {

constexpr std::string_view kModel = "tokenizer.ggml.model";
constexpr std::string_view kPre = "tokenizer.ggml.pre";
constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kScores = "tokenizer.ggml.scores";
constexpr std::string_view kTypes = "tokenizer.ggml.token_type";
constexpr std::string_view kMerges = "tokenizer.ggml.merges";

std::string where(const gguf::File& file, std::string_view key) { return fmt::format("{}: {}", file.name(), key); }

const gguf::Array* find_array(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.find(key);
  return v ? &v->as_array(where(file, key)) : nullptr;
}

std::vector<std::string> read_strings(const gguf::File& file, std::string_view key, const gguf::Array& arr) {
  std::vector<std::string> out;
  out.reserve(arr.items.size());
  const std::string what = where(file, key);
  for (const auto& item : arr.items) out.push_back(item.as_string(what));
  return out;
}

// An optional special token id: ignored with a warning when out of range.
void read_special(const gguf::File& file, Vocab& vocab, std::string_view key, TokenId& id) {
  const gguf::Value* v = file.find(key);
  if (!v) return;
  const int64_t value = v->as_int(where(file, key));
  if (value < 0 || value >= vocab.size()) {
    vocab.warnings.push_back(fmt::format("{}: {} = {} is not a token id (vocabulary of {}); ignored", file.name(), key,
                                         value, vocab.size()));
    return;
  }
  id = TokenId(value);
}

void read_flag(const gguf::File& file, std::string_view key, bool& flag) {
  if (const gguf::Value* v = file.find(key)) flag = v->as_bool(where(file, key));
}

void read_scores_and_types(const gguf::File& file, Vocab& vocab) {
  const size_t n = vocab.tokens.size();
  vocab.scores.assign(n, 0.0f);
  vocab.types.assign(n, TokenType::Normal);
  if (const gguf::Array* arr = find_array(file, kScores)) {
    if (arr->items.size() != n)
      fail("{}: {} has {} entries for {} tokens", file.name(), kScores, arr->items.size(), n);
    const std::string what = where(file, kScores);
    for (size_t i = 0; i < n; ++i) vocab.scores[i] = float(arr->items[i].as_double(what));
  }
  if (const gguf::Array* arr = find_array(file, kTypes)) {
    if (arr->items.size() != n)
      fail("{}: {} has {} entries for {} tokens", file.name(), kTypes, arr->items.size(), n);
    const std::string what = where(file, kTypes);
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = arr->items[i].as_int(what);
      // Unknown type numbers are read as Undefined (treated like Normal text).
      vocab.types[i] = (t >= 0 && t <= 6) ? TokenType(t) : TokenType::Undefined;
    }
  }
}

}  // namespace

Vocab Vocab::from_gguf(const gguf::File& file) {
  Vocab vocab;
  vocab.model = file.get(kModel).as_string(where(file, kModel));
  if (vocab.model == "llama") {
    vocab.kind = VocabKind::Spm;
    vocab.add_space_prefix = true;
  } else if (vocab.model == "gpt2") {
    vocab.kind = VocabKind::Bpe;
  } else {
    fail("{}: {} = '{}' is not supported (supported: 'llama' (SentencePiece BPE), 'gpt2' (byte-level BPE))",
         file.name(), kModel, vocab.model);
  }
  if (const gguf::Value* v = file.find(kPre)) vocab.pre = v->as_string(where(file, kPre));

  const gguf::Value& tokens = file.get(kTokens);
  vocab.tokens = read_strings(file, kTokens, tokens.as_array(where(file, kTokens)));
  if (vocab.tokens.empty()) fail("{}: {} is empty", file.name(), kTokens);
  if (vocab.tokens.size() > size_t(INT32_MAX)) fail("{}: {} has too many tokens", file.name(), kTokens);
  read_scores_and_types(file, vocab);
  if (vocab.kind == VocabKind::Spm && vocab.size() > 2) {
    vocab.unk = 0;  // SentencePiece conventions, overridden by the keys below
    vocab.bos = 1;
    vocab.eos = 2;
    vocab.add_bos = true;
  }

  if (vocab.kind == VocabKind::Bpe) {
    const gguf::Array* merges = find_array(file, kMerges);
    if (!merges) fail("{}: {} is missing (needed by a 'gpt2' vocabulary)", file.name(), kMerges);
    vocab.merges = read_strings(file, kMerges, *merges);
  }

  read_special(file, vocab, "tokenizer.ggml.bos_token_id", vocab.bos);
  read_special(file, vocab, "tokenizer.ggml.eos_token_id", vocab.eos);
  read_special(file, vocab, "tokenizer.ggml.eot_token_id", vocab.eot);
  read_special(file, vocab, "tokenizer.ggml.eom_token_id", vocab.eom);
  read_special(file, vocab, "tokenizer.ggml.unknown_token_id", vocab.unk);
  read_special(file, vocab, "tokenizer.ggml.seperator_token_id", vocab.sep);  // sic, as written by gguf-py
  read_special(file, vocab, "tokenizer.ggml.padding_token_id", vocab.pad);

  // Byte-level BPE models of the Llama 3 and Tekken families add BOS unless told otherwise.
  if (vocab.kind == VocabKind::Bpe) {
    for (std::string_view p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "tekken"})
      if (vocab.pre == p) vocab.add_bos = true;
  }
  read_flag(file, "tokenizer.ggml.add_bos_token", vocab.add_bos);
  read_flag(file, "tokenizer.ggml.add_eos_token", vocab.add_eos);
  read_flag(file, "tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);

  vocab.validate(file.name());
  return vocab;
}

void Vocab::validate(std::string_view where) const {
  const size_t n = tokens.size();
  if (n == 0) fail("{}: vocabulary has no tokens", where);
  if (n > size_t(INT32_MAX)) fail("{}: vocabulary has too many tokens ({})", where, n);
  if (scores.size() != n || types.size() != n)
    fail("{}: vocabulary has {} tokens but {} scores and {} types", where, n, scores.size(), types.size());
  for (TokenId id : {bos, eos, eot, eom, unk, sep, pad})
    if (id != kNoToken && !valid_id(id)) fail("{}: special token id {} is out of range (vocabulary of {})", where, id, n);
  if (add_bos && bos == kNoToken) fail("{}: add_bos_token is set but there is no BOS token id", where);
  if (add_eos && eos == kNoToken) fail("{}: add_eos_token is set but there is no EOS token id", where);
}

}  // namespace strata
