// Invalid UTF-8 and characters the vocabulary cannot spell, per tokenizer family: nothing is
// dropped. Byte-level BPE keeps raw bytes through its byte alphabet and writes U+FFFD (else
// the unknown token) for a byte without a token; SentencePiece uses <0xXX> byte fallback,
// else the unknown token. `replaced` counts what could not be kept.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Byte-level BPE over the bytes for which `has(b)` holds (one token each, in byte order),
// then `extra` tokens (byte-level text).
template <typename Has>
Vocab bpe_vocab(Has has, const std::vector<std::pair<std::string, TokenType>>& extra = {}) {
  const auto& bytes = unicode::ByteMap::get();
  Vocab v;
  v.kind = VocabKind::Bpe;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b)
    if (has(b)) {
      v.tokens.push_back(bytes.to_utf8(uint8_t(b)));
      v.types.push_back(TokenType::Normal);
    }
  for (const auto& [text, type] : extra) {
    v.tokens.push_back(text);
    v.types.push_back(type);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  return v;
}

// Bytes that valid UTF-8 never contains: a vocabulary trained on UTF-8 text lacks them.
bool in_utf8(int b) {
  return b != 0xC0 && b != 0xC1 && b < 0xF5;
}

TokenId id_of(const Tokenizer& tok, std::string_view text) {
  for (TokenId id = 0; id < tok.n_tokens(); ++id)
    if (tok.vocab().tokens[size_t(id)] == text) return id;
  return kNoToken;
}

TEST(InvalidUtf8, ByteLevelBpeKeepsEveryByteWhenAllHaveTokens) {
  const auto tok = Tokenizer::from_vocab(bpe_vocab([](int) { return true; }));
  const std::string text = "a\xFF\xC3 b\x80\xC0";
  size_t replaced = 99;
  const auto ids = tok.encode(text, false, false, &replaced);
  EXPECT_EQ(replaced, 0u);
  EXPECT_EQ(ids.size(), text.size());  // one byte token each (no merges)
  EXPECT_EQ(ids[1], 0xFF);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(InvalidUtf8, ByteLevelBpeWritesReplacementForBytesWithoutTokens) {
  const auto tok = Tokenizer::from_vocab(bpe_vocab(in_utf8));
  size_t replaced = 0;
  const auto ids = tok.encode(
      "a\xFF"
      "b\xFE\xC0",
      false, false, &replaced);
  EXPECT_EQ(replaced, 3u);
  const std::string expected =
      std::string("a") + std::string(kReplacement) + "b" + std::string(kReplacement) + std::string(kReplacement);
  EXPECT_EQ(tok.decode(ids), expected);
  // An invalid byte that has a token (a lone continuation byte) is still kept as it is.
  EXPECT_EQ(tok.decode(tok.encode("x\x80y", false, false, &replaced)), "x\x80y");
  EXPECT_EQ(replaced, 0u);
  // Without the count, the same ids.
  EXPECT_EQ(tok.encode("a\xFF"
                       "b\xFE\xC0",
                       false, false),
            ids);
}

TEST(InvalidUtf8, ByteLevelBpeFallsBackToUnknownThenFails) {
  // No token for 0xFF nor for 0xEF (a byte of U+FFFD): the unknown token stands in.
  auto no_ff_ef = [](int b) { return b != 0xFF && b != 0xEF; };
  Vocab with_unk = bpe_vocab(no_ff_ef, {{"<unk>", TokenType::Unknown}});
  with_unk.unk = with_unk.size() - 1;
  const auto tok = Tokenizer::from_vocab(with_unk);
  size_t replaced = 0;
  const auto ids = tok.encode(
      "a\xFF"
      "b",
      false, false, &replaced);
  EXPECT_EQ(replaced, 1u);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], with_unk.unk);
  EXPECT_EQ(tok.decode(std::vector<TokenId>{ids[0], ids[2]}), "ab");

  const auto bare = Tokenizer::from_vocab(bpe_vocab(no_ff_ef));
  EXPECT_EQ(bare.decode(bare.encode("plain", false)), "plain");
  try {
    bare.encode("a\xFF", false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte 0xFF at offset 1"), std::string::npos) << e.what();
  }
}

// A SentencePiece vocabulary: <unk> <s> </s> ▁ a b, and <0x00>..<0xFF> when `byte_tokens`.
Vocab spm_vocab(bool byte_tokens) {
  Vocab v;
  v.kind = VocabKind::Spm;
  v.model = "llama";
  auto add = [&](std::string text, TokenType type, float score) {
    v.tokens.push_back(std::move(text));
    v.types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::Unknown, 0);
  add("<s>", TokenType::Control, 0);
  add("</s>", TokenType::Control, 0);
  add("\xE2\x96\x81", TokenType::Normal, -1);
  add("a", TokenType::Normal, -2);
  add("b", TokenType::Normal, -3);
  if (byte_tokens) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      add(name, TokenType::Byte, 0);
    }
  }
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_space_prefix = true;
  return v;
}

TEST(InvalidUtf8, SentencePieceUsesByteFallback) {
  const auto tok = Tokenizer::from_vocab(spm_vocab(true));
  size_t replaced = 99;
  const auto ids = tok.encode(
      "a\xFF"
      "b\xC3",
      false, false, &replaced);
  EXPECT_EQ(replaced, 0u);
  EXPECT_NE(std::find(ids.begin(), ids.end(), id_of(tok, "<0xFF>")), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), id_of(tok, "<0xC3>")), ids.end());
  EXPECT_EQ(tok.decode(ids),
            "a\xFF"
            "b\xC3");
}

TEST(InvalidUtf8, SentencePieceWithoutByteTokensUsesUnknown) {
  const auto tok = Tokenizer::from_vocab(spm_vocab(false));
  size_t replaced = 0;
  const auto ids = tok.encode("\xFF \xFF", false, false, &replaced);
  EXPECT_EQ(replaced, 2u);  // each occurrence counts (repeated words are cached)
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 2);

  Vocab no_unk = spm_vocab(false);
  no_unk.types[0] = TokenType::Control;
  no_unk.unk = kNoToken;
  const auto bare = Tokenizer::from_vocab(no_unk);
  EXPECT_THROW(bare.encode("a\xFF", false), Error);
}

}  // namespace
}  // namespace strata
