#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "gguf/reader.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace strata {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'

// Token texts that end generation in the chat models that use them.
constexpr std::string_view kEndOfGeneration[] = {
    "<|eot_id|>", "<|im_end|>",   "<|end|>",       "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<|eom_id|>", "<EOT>",        "<|return|>",    "<|call|>",      "<end_of_utterance>",
};

std::string escape_spaces(std::string_view text, bool prefix) {
  std::string out;
  out.reserve(text.size() + text.size() / 4 + 3);
  if (prefix) out += kSpaceMark;
  for (char c : text) {
    if (c == ' ') out += kSpaceMark;
    else out += c;
  }
  return out;
}

// `text` with every '▁' written as ' '.
std::string unescape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    if (text.substr(pos, kSpaceMark.size()) == kSpaceMark) {
      out += ' ';
      pos += kSpaceMark.size();
    } else {
      out += text[pos++];
    }
  }
  return out;
}

std::string make_piece(const Vocab& vocab, TokenId id) {
  const std::string& text = vocab.tokens[size_t(id)];
  switch (vocab.type(id)) {
    case TokenType::Control:
    case TokenType::Unknown:
    case TokenType::UserDefined: return text;
    case TokenType::Byte:
      if (int b = unicode::byte_token_value(text); b >= 0) return std::string(1, char(b));
      return text;
    default: break;
  }
  if (vocab.kind == VocabKind::Spm) {
    return unescape_spaces(text);
  }
  std::string raw;
  if (unicode::ByteMap::get().decode(text, raw)) return raw;
  return text;  // characters outside the byte alphabet: the text as it is
}

}  // namespace

struct Tokenizer::State {
  Vocab vocab;
  std::vector<std::string> pieces;  // [n_tokens]
  std::unordered_set<TokenId> eog;
  SpecialSplitter special;
  std::optional<PreTokenizerSpec> pre_spec;
  std::optional<PreTokenizer> pre;
  std::optional<BpeEncoder> bpe;
  std::optional<SpmEncoder> spm;
  std::vector<std::string> warnings;
  // Byte-level BPE: whether each byte has a token of its own, and whether U+FFFD (what a
  // character without one becomes) has all of its bytes.
  std::array<bool, 256> byte_ok{};
  bool replacement_ok = false;

  explicit State(Vocab v) : vocab(std::move(v)), special(vocab) {}

  void encode_bpe(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const;
  void encode_words(std::string_view text, std::vector<TokenId>& out) const;
};

// Raw bytes go through the byte alphabet, so that invalid UTF-8 is kept where the
// vocabulary has a token for each byte (GPT-2's has all 256). A character with a byte that
// has no token (e.g. 0xFF in a vocabulary trained on valid UTF-8 only) becomes U+FFFD, as
// Hugging Face and llama.cpp give it; failing that, the unknown token.
void Tokenizer::State::encode_bpe(std::string_view text, std::vector<TokenId>& out, size_t& replaced) const {
  if (std::all_of(text.begin(), text.end(), [this](char c) { return byte_ok[uint8_t(c)]; })) {
    encode_words(text, out);
    return;
  }
  std::string kept;
  kept.reserve(text.size() + 8);
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = unicode::char_length(text, pos);
    const std::string_view c = text.substr(pos, n);
    pos += n;
    if (std::all_of(c.begin(), c.end(), [this](char b) { return byte_ok[uint8_t(b)]; })) {
      kept += c;
      continue;
    }
    ++replaced;
    if (replacement_ok) {
      kept += "\xEF\xBF\xBD";
      continue;
    }
    if (vocab.unk == kNoToken) {
      fail(
          "tokenize: byte 0x{:02X} at offset {} has no token in the vocabulary, and neither has U+FFFD nor an "
          "unknown token",
          uint8_t(c[0]), pos - n);
    }
    encode_words(kept, out);
    kept.clear();
    out.push_back(vocab.unk);
  }
  encode_words(kept, out);
}

void Tokenizer::State::encode_words(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<std::string_view> words;
  pre->split(text, words);
  // Words repeat: each distinct word is merged once per call, later copies are copied
  // from the ids already written to `out` (word -> {offset in out, count}).
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  BpeEncoder::Scratch scratch;
  for (std::string_view word : words) {
    if (auto it = seen.find(word); it != seen.end()) {
      const auto [offset, count] = it->second;
      for (size_t k = 0; k < count; ++k) out.push_back(out[offset + k]);
      continue;
    }
    const size_t offset = out.size();
    bpe->encode_word(word, out, scratch);
    if (word.size() <= 256) seen.emplace(word, std::pair{offset, out.size() - offset});
  }
}

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
  Vocab vocab = Vocab::from_gguf(file);
  try {
    return from_vocab(std::move(vocab));
  } catch (const Error& e) {
    fail("{}: {}", file.name(), e.what());
  }
}

Tokenizer Tokenizer::from_vocab(Vocab vocab) {
  vocab.validate("vocabulary");
  auto state = std::make_shared<State>(std::move(vocab));
  const Vocab& v = state->vocab;
  state->warnings = v.warnings;

  state->pieces.reserve(v.tokens.size());
  for (TokenId id = 0; id < v.size(); ++id) state->pieces.push_back(make_piece(v, id));

  for (TokenId id : {v.eos, v.eot, v.eom})
    if (id != kNoToken) state->eog.insert(id);
  for (TokenId id = 0; id < v.size(); ++id)
    for (std::string_view text : kEndOfGeneration)
      if (v.tokens[size_t(id)] == text) state->eog.insert(id);

  if (v.kind == VocabKind::Bpe) {
    if (v.pre.empty())
      state->warnings.push_back("tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer (the file may "
                                "tokenize differently from its original tokenizer)");
    state->pre_spec = pre_tokenizer_spec(v.pre);
    state->pre.emplace(state->pre_spec->patterns);
    state->bpe.emplace(v, state->pre_spec->ignore_merges);
    for (int b = 0; b < 256; ++b) state->byte_ok[size_t(b)] = state->bpe->byte_token(uint8_t(b)) != kNoToken;
    state->replacement_ok = state->byte_ok[0xEF] && state->byte_ok[0xBF] && state->byte_ok[0xBD];
  } else {
    state->spm.emplace(v);
  }
  return Tokenizer(std::move(state));
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special,
                                       size_t* replaced) const {
  const State& s = *state_;
  const Vocab& v = s.vocab;
  if (text.size() >= (size_t(1) << 31)) fail("tokenize: text of {} bytes is too long (2 GiB at most)", text.size());
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && v.add_bos) out.push_back(v.bos);

  std::vector<Fragment> fragments;
  s.special.split(text, parse_special, fragments);
  size_t n_replaced = 0;
  bool after_special = true;  // SentencePiece: text at the start or after a special token gets a space
  for (const Fragment& f : fragments) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    if (s.spm) {
      s.spm->encode(escape_spaces(f.text, v.add_space_prefix && after_special), out, n_replaced);
    } else {
      s.encode_bpe(f.text, out, n_replaced);
    }
    after_special = false;
  }

  if (add_special && v.add_eos) out.push_back(v.eos);
  if (replaced != nullptr) *replaced = n_replaced;
  return out;
}

const std::string& Tokenizer::token_to_piece(TokenId id) const {
  if (!state_->vocab.valid_id(id))
    fail("token id {} is out of range (vocabulary of {} tokens)", id, state_->vocab.size());
  return state_->pieces[size_t(id)];
}

void Tokenizer::append_decoded(TokenId id, DecodeOptions options, bool& at_start, std::string& out) const {
  const Vocab& v = state_->vocab;
  const std::string& piece = token_to_piece(id);
  if (options.skip_special && v.is_control(id)) return;
  const bool first = at_start;
  at_start = false;
  const TokenType type = v.type(id);
  const bool text_token = type == TokenType::Normal || type == TokenType::Undefined || type == TokenType::Unused;
  if (first && options.strip_space_prefix && v.kind == VocabKind::Spm && v.add_space_prefix && text_token &&
      !piece.empty() && piece[0] == ' ') {
    out.append(piece, 1);
    return;
  }
  out += piece;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, DecodeOptions options) const {
  std::string out;
  bool at_start = true;
  for (TokenId id : ids) append_decoded(id, options, at_start, out);
  return out;
}

const Vocab& Tokenizer::vocab() const { return state_->vocab; }
int32_t Tokenizer::n_tokens() const { return state_->vocab.size(); }
bool Tokenizer::is_control(TokenId id) const { return state_->vocab.valid_id(id) && state_->vocab.is_control(id); }
bool Tokenizer::is_eog(TokenId id) const { return state_->eog.count(id) > 0; }
const PreTokenizerSpec* Tokenizer::pre_tokenizer() const {
  return state_->pre_spec ? &*state_->pre_spec : nullptr;
}
const std::vector<std::string>& Tokenizer::warnings() const { return state_->warnings; }

}  // namespace strata
