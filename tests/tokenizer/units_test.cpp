// Unit tests of the tokenizer parts on small vocabularies built here: UTF-8 helpers, the
// byte alphabet, PCRE2 whitespace, BPE merge order, special-token matching, decoding,
// streaming, loading errors and threads.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata {
namespace {

std::string utf8(char32_t cp) {
  std::string s;
  unicode::append_utf8(s, cp);
  return s;
}

// A byte-level BPE vocabulary: the 256 byte characters, then the result of each merge
// (in order, so merge i has rank i), then `added` tokens of the given types.
Vocab byte_vocab(const std::vector<std::pair<std::string, std::string>>& merges,
                 const std::vector<std::pair<std::string, TokenType>>& added = {}) {
  const auto& bytes = unicode::ByteMap::get();
  Vocab v;
  v.kind = VocabKind::Bpe;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(bytes.to_utf8(uint8_t(b)));
  for (const auto& [l, r] : merges) {
    v.merges.push_back(bytes.encode(l) + " " + bytes.encode(r));
    v.tokens.push_back(bytes.encode(l + r));
  }
  v.types.assign(v.tokens.size(), TokenType::Normal);
  for (const auto& [text, type] : added) {
    v.tokens.push_back(text);
    v.types.push_back(type);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  return v;
}

TEST(Unicode, ValidSequenceLength) {
  EXPECT_EQ(unicode::valid_sequence_length("a", 0), 1u);
  EXPECT_EQ(unicode::valid_sequence_length("\xC3\xA9", 0), 2u);          // é
  EXPECT_EQ(unicode::valid_sequence_length("\xE2\x82\xAC", 0), 3u);      // €
  EXPECT_EQ(unicode::valid_sequence_length("\xF0\x9F\xA6\x99", 0), 4u);  // 🦙
  EXPECT_EQ(unicode::valid_sequence_length("\x80", 0), 0u);              // lone continuation
  EXPECT_EQ(unicode::valid_sequence_length("\xC0\x80", 0), 0u);          // overlong
  EXPECT_EQ(unicode::valid_sequence_length("\xE0\x80\x80", 0), 0u);      // overlong
  EXPECT_EQ(unicode::valid_sequence_length("\xED\xA0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(unicode::valid_sequence_length("\xF4\x90\x80\x80", 0), 0u);  // > U+10FFFF
  EXPECT_EQ(unicode::valid_sequence_length("\xE2\x82", 0), 0u);          // truncated
  EXPECT_EQ(unicode::valid_sequence_length("\xFF", 0), 0u);
}

TEST(Unicode, IncompleteTail) {
  EXPECT_EQ(unicode::incomplete_tail("ab\xE2\x82"), 2u);
  EXPECT_EQ(unicode::incomplete_tail("ab\xF0\x9F\xA6"), 3u);
  EXPECT_EQ(unicode::incomplete_tail("\xE2"), 1u);
  EXPECT_EQ(unicode::incomplete_tail("ab\xE2\x82\xAC"), 0u);
  EXPECT_EQ(unicode::incomplete_tail("ab"), 0u);
  EXPECT_EQ(unicode::incomplete_tail("a\xFF"), 0u);      // can never complete
  EXPECT_EQ(unicode::incomplete_tail("a\xED\xA0"), 0u);  // would be a surrogate
  EXPECT_EQ(unicode::incomplete_tail(""), 0u);
}

TEST(Unicode, ByteTokenValue) {
  EXPECT_EQ(unicode::byte_token_value("<0x0A>"), 0x0A);
  EXPECT_EQ(unicode::byte_token_value("<0xff>"), 0xFF);
  EXPECT_EQ(unicode::byte_token_value("<0x 1>"), -1);
  EXPECT_EQ(unicode::byte_token_value("<0x0A"), -1);
  EXPECT_EQ(unicode::byte_token_value("<0x0AB>"), -1);
  EXPECT_EQ(unicode::byte_token_value("0x0A"), -1);
}

TEST(Unicode, SanitizeReplacesInvalidBytes) {
  EXPECT_EQ(unicode::sanitize("a\xFF" "b\xC3\xA9"), "a\xEF\xBF\xBD" "b\xC3\xA9");
}

TEST(Unicode, ByteMapIsABijectionOfPrintableCharacters) {
  const auto& m = unicode::ByteMap::get();
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = m.to_char(uint8_t(b));
    EXPECT_TRUE(seen.insert(c).second);
    EXPECT_EQ(m.from_char(c), b);
    EXPECT_GT(c, 0x20u);
  }
  EXPECT_EQ(m.to_char(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(m.to_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(m.to_char('A'), char32_t('A'));
  std::string raw;
  EXPECT_TRUE(m.decode(m.encode("any\xFF bytes\n"), raw));
  EXPECT_EQ(raw, "any\xFF bytes\n");
  EXPECT_FALSE(m.decode("\xE2\x82\xAC", raw));  // '€' is not in the alphabet
}

TEST(PreTokenizer, WhitespaceIsUnicodeWhiteSpace) {
  // \s must match exactly Unicode White_Space (as Hugging Face's Oniguruma does).
  const PreTokenizer pre({R"(\s)"});
  const char32_t white[] = {0x9,    0xA,    0xB,    0xC,    0xD,    0x20,   0x85,   0xA0,   0x1680,
                            0x2000, 0x2001, 0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  const char32_t not_white[] = {0x1C, 0x1F, 0x180E, 0x200B, 0xFEFF, 'x'};
  for (char32_t c : white) {
    std::vector<std::string_view> pieces;
    std::string text = "a";
    text += utf8(c);
    text += 'b';
    pre.split(text, pieces);
    EXPECT_EQ(pieces.size(), 3u) << std::hex << uint32_t(c);
  }
  for (char32_t c : not_white) {
    std::vector<std::string_view> pieces;
    std::string text = "a";
    text += utf8(c);
    text += 'b';
    pre.split(text, pieces);
    EXPECT_EQ(pieces.size(), 1u) << std::hex << uint32_t(c);
  }
}

TEST(PreTokenizer, RewriteKeepsOtherEscapes) {
  EXPECT_EQ(rewrite_whitespace_classes(R"(\\s\p{L}\S)").substr(0, 9), R"(\\s\p{L}[)");
  EXPECT_NE(rewrite_whitespace_classes(R"([^\s\p{L}])").find(R"([^\x{9}-\x{D})"), std::string::npos);
}

TEST(PreTokenizer, Gpt2SplitByHand) {
  const PreTokenizer pre(pre_tokenizer_spec("gpt-2").patterns);
  std::vector<std::string_view> pieces;
  pre.split("Hello world's  test 123!!\n\nok ", pieces);
  // "\n\n" before "ok": \s+(?!\S) backs off to the first "\n", \s+ takes the second.
  const std::vector<std::string_view> expected = {"Hello", " world", "'s", " ", " test", " 123",
                                                  "!!",    "\n",     "\n", "ok", " "};
  EXPECT_EQ(pieces, expected);
}

TEST(PreTokenizer, PiecesCoverAnyInput) {
  std::mt19937 rng(7);
  for (const std::string& pre : supported_pre_tokenizers()) {
    const PreTokenizer p(pre_tokenizer_spec(pre).patterns);
    for (int n = 0; n < 20; ++n) {
      std::string text(size_t(rng() % 64), '\0');
      for (char& c : text) c = char(rng() % 256);
      std::vector<std::string_view> pieces;
      p.split(text, pieces);
      std::string joined;
      for (auto s : pieces) {
        EXPECT_FALSE(s.empty()) << pre;
        joined += s;
      }
      EXPECT_EQ(joined, text) << pre;
    }
  }
}

TEST(PreTokenizer, UnknownPreIsAnErrorNamingIt) {
  try {
    pre_tokenizer_spec("frobnicate");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'frobnicate'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pre_tokenizer_spec("").family, "default");
}

TEST(Bpe, LowestRankFirstThenLeftmost) {
  // ranks: 0 "b"+"c", 1 "a"+"b", 2 "a"+"a"
  const auto tok = Tokenizer::from_vocab(byte_vocab({{"b", "c"}, {"a", "b"}, {"a", "a"}}));
  const TokenId a = 'a', bc = 256, ab = 257, aa = 258;
  EXPECT_EQ(tok.encode("abc", false), (std::vector<TokenId>{a, bc}));       // bc (0) beats ab (1)
  EXPECT_EQ(tok.encode("aaa", false), (std::vector<TokenId>{aa, a}));       // leftmost of equal ranks
  EXPECT_EQ(tok.encode("aab", false), (std::vector<TokenId>{a, ab}));       // ab (1) beats aa (2)
  EXPECT_EQ(tok.encode("b\xFF", false), (std::vector<TokenId>{'b', 0xFF}));  // byte tokens
}

// A SentencePiece vocabulary: <unk> <s> </s>, then pieces with scores, optional <0xXX> tokens.
Vocab spm_vocab(bool byte_tokens) {
  Vocab v;
  v.kind = VocabKind::Spm;
  v.model = "llama";
  auto add = [&](std::string text, TokenType type, float score) {
    v.tokens.push_back(std::move(text));
    v.types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::Unknown, 0);                                  // 0
  add("<s>", TokenType::Control, 0);                                    // 1
  add("</s>", TokenType::Control, 0);                                   // 2
  add("\xE2\x96\x81", TokenType::Normal, -1);                          // 3 ▁
  add("a", TokenType::Normal, -2);                                      // 4
  add("b", TokenType::Normal, -3);                                      // 5
  add("c", TokenType::Normal, -4);                                      // 6
  add("ab", TokenType::Normal, -5);                                     // 7
  add("bc", TokenType::Normal, -0.5f);                                  // 8
  add("\xE2\x96\x81" "a", TokenType::Normal, -6);                      // 9 ▁a
  add("abc", TokenType::Normal, -7);                                    // 10
  add("z", TokenType::Normal, -8);                                      // 11
  add("zz", TokenType::Unused, -0.25f);                                 // 12
  add("zzz", TokenType::Normal, -0.1f);                                 // 13
  add("<0x41>", byte_tokens ? TokenType::Byte : TokenType::Normal, 0);  // 14 (A)
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

TEST(Spm, HighestScoreFirstThenSpacePrefixAndFallbacks) {
  const auto tok = Tokenizer::from_vocab(spm_vocab(true));
  // "▁abc": bc (-0.5) first, then ▁a (-6) beats a+bc (-7).
  EXPECT_EQ(tok.encode("abc", false), (std::vector<TokenId>{9, 8}));
  EXPECT_EQ(tok.encode("abc"), (std::vector<TokenId>{1, 9, 8}));  // BOS as the model asks
  EXPECT_EQ(tok.decode(std::vector<TokenId>{9, 8}), "abc");         // the added space is removed
  EXPECT_EQ(tok.decode(std::vector<TokenId>{1, 9, 8}, {.skip_special = true}), "abc");
  EXPECT_EQ(tok.decode(std::vector<TokenId>{9, 8}, {.strip_space_prefix = false}), " abc");
  // An unused piece is merged like any other, then split back into what formed it.
  EXPECT_EQ(tok.encode("zzz", false), (std::vector<TokenId>{3, 13}));
  EXPECT_EQ(tok.encode("zz", false), (std::vector<TokenId>{3, 11, 11}));
  // A character with no piece: byte tokens where the vocabulary has them, else <unk>.
  EXPECT_EQ(tok.encode("A", false), (std::vector<TokenId>{3, 14}));
  EXPECT_EQ(tok.decode(tok.encode("A", false)), "A");
  EXPECT_EQ(tok.encode("q", false), (std::vector<TokenId>{3, 0}));
  // Text after a special token starts a new "word", with its own space.
  EXPECT_EQ(tok.encode("a</s>a", false, true), (std::vector<TokenId>{9, 2, 9}));
  EXPECT_EQ(tok.encode("a</s>a", false, false).size(), 6u);
}

TEST(Special, LeftmostLongestAndParseSpecial) {
  const auto tok = Tokenizer::from_vocab(byte_vocab(
      {}, {{"ab", TokenType::UserDefined}, {"abc", TokenType::UserDefined}, {"bcd", TokenType::UserDefined},
           {"<c>", TokenType::Control}}));
  const TokenId ab = 256, abc = 257, bcd = 258, ctl = 259;
  EXPECT_EQ(tok.encode("xabcd", false), (std::vector<TokenId>{'x', abc, 'd'}));
  EXPECT_EQ(tok.encode("abab", false), (std::vector<TokenId>{ab, ab}));
  EXPECT_EQ(tok.encode("xbcd", false), (std::vector<TokenId>{'x', bcd}));
  EXPECT_EQ(tok.encode("<c>x", false, true), (std::vector<TokenId>{ctl, 'x'}));
  EXPECT_EQ(tok.encode("<c>x", false, false), (std::vector<TokenId>{'<', 'c', '>', 'x'}));
  EXPECT_EQ(tok.encode("ab<c>", false, false), (std::vector<TokenId>{ab, '<', 'c', '>'}));  // added: always
  EXPECT_EQ(tok.decode(tok.encode("xab<c>y", false, true)), "xab<c>y");
  EXPECT_EQ(tok.decode(tok.encode("xab<c>y", false, true), {.skip_special = true}), "xaby");
}

TEST(Decode, BadIdsAreErrors) {
  const auto tok = Tokenizer::from_vocab(byte_vocab({}));
  EXPECT_THROW(tok.token_to_piece(-1), Error);
  EXPECT_THROW(tok.token_to_piece(256), Error);
  const std::vector<TokenId> ids = {'a', 1000};
  EXPECT_THROW(tok.decode(ids), Error);
}

TEST(StreamDecoder, EmitsWholeCharactersOnly) {
  const auto tok = Tokenizer::from_vocab(byte_vocab({}));  // one token per byte
  const std::string text = "a\xF0\x9F\xA6\x99" "b\xC3\xA9\xE2\x82\xAC";
  StreamDecoder stream(tok);
  std::vector<std::string> outs;
  for (TokenId id : tok.encode(text, false)) outs.push_back(stream.push(id));
  EXPECT_EQ(stream.finish(), "");
  const std::vector<std::string> expected = {"a", "", "", "", "\xF0\x9F\xA6\x99", "b", "", "\xC3\xA9", "", "",
                                             "\xE2\x82\xAC"};
  EXPECT_EQ(outs, expected);
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  const auto tok = Tokenizer::from_vocab(byte_vocab({}));
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(0xFF), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.push(0xE2), "");
  EXPECT_EQ(stream.push('a'), "\xEF\xBF\xBD" "a");  // E2 can no longer complete
  EXPECT_EQ(stream.push(0xC3), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // unfinished at the end
}

TEST(Tokenizer, SharedAcrossThreads) {
  const auto tok = Tokenizer::from_vocab(byte_vocab({{"a", "b"}, {"ab", "c"}, {" ", "x"}}));
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) {
    std::string t = "abc xab ";
    t += std::to_string(i);
    t.append(size_t(i), 'a');
    texts.push_back(t);
  }
  std::vector<std::vector<TokenId>> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      const Tokenizer copy = tok;  // copies share one state
      for (int rep = 0; rep < 20; ++rep)
        for (size_t i = 0; i < texts.size(); ++i)
          if (copy.encode(texts[i]) != expected[i] || copy.decode(expected[i]) != texts[i]) ++mismatches;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// --- loading from GGUF files written here ---

class VocabFile : public ::testing::Test {
protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("strata-vocab-" + std::to_string(::getpid()) + ".gguf")).string();
  }
  void TearDown() override { std::filesystem::remove(path_); }

  static gguf::Value strings(const std::vector<std::string>& items) {
    std::vector<gguf::Value> values;
    for (const auto& s : items) values.push_back(gguf::Value{s});
    return gguf::make_array(gguf::ValueType::STRING, std::move(values));
  }
  // A small valid "gpt2" vocabulary, with `edit` applied to its metadata.
  std::string load_error(const std::function<void(std::vector<gguf::KeyValue>&)>& edit) {
    std::vector<std::string> tokens;
    const auto& bytes = unicode::ByteMap::get();
    for (int b = 0; b < 256; ++b) tokens.push_back(bytes.to_utf8(uint8_t(b)));
    std::vector<gguf::KeyValue> md = {
        {"general.architecture", gguf::Value{std::string("gpt2")}},
        {"tokenizer.ggml.model", gguf::Value{std::string("gpt2")}},
        {"tokenizer.ggml.pre", gguf::Value{std::string("gpt-2")}},
        {"tokenizer.ggml.tokens", strings(tokens)},
        {"tokenizer.ggml.merges", strings({})},
    };
    edit(md);
    gguf::write_file(path_, md, {});
    try {
      const auto file = gguf::File::open(path_);
      const auto tok = Tokenizer::from_gguf(file);
      warnings_ = tok.warnings();
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  }
  static void erase(std::vector<gguf::KeyValue>& md, std::string_view key) {
    std::erase_if(md, [&](const gguf::KeyValue& kv) { return kv.key == key; });
  }
  static void set(std::vector<gguf::KeyValue>& md, std::string key, gguf::Value v) {
    erase(md, key);
    md.push_back({std::move(key), std::move(v)});
  }

  std::string path_;
  std::vector<std::string> warnings_;
};

TEST_F(VocabFile, ValidFileLoads) { EXPECT_EQ(load_error([](auto&) {}), ""); }

TEST_F(VocabFile, ErrorsNameWhatIsWrong) {
  auto has = [](const std::string& msg, std::string_view part) { return msg.find(part) != std::string::npos; };
  std::string e = load_error([](auto& md) { erase(md, "tokenizer.ggml.tokens"); });
  EXPECT_TRUE(has(e, "tokenizer.ggml.tokens")) << e;
  e = load_error([](auto& md) { set(md, "tokenizer.ggml.model", gguf::Value{std::string("bert")}); });
  EXPECT_TRUE(has(e, "'bert'")) << e;
  e = load_error([](auto& md) { erase(md, "tokenizer.ggml.merges"); });
  EXPECT_TRUE(has(e, "tokenizer.ggml.merges")) << e;
  e = load_error([](auto& md) { set(md, "tokenizer.ggml.pre", gguf::Value{std::string("nonesuch")}); });
  EXPECT_TRUE(has(e, "'nonesuch'")) << e;
  EXPECT_TRUE(has(e, path_)) << e;
  e = load_error([](auto& md) {
    set(md, "tokenizer.ggml.scores", gguf::make_array(gguf::ValueType::FLOAT32, {gguf::Value{1.0f}}));
  });
  EXPECT_TRUE(has(e, "tokenizer.ggml.scores")) << e;
  e = load_error([](auto& md) { set(md, "tokenizer.ggml.tokens", gguf::Value{std::string("x")}); });
  EXPECT_TRUE(has(e, "tokenizer.ggml.tokens")) << e;
  e = load_error([](auto& md) { set(md, "tokenizer.ggml.add_bos_token", gguf::Value{true}); });
  EXPECT_TRUE(has(e, "BOS")) << e;
}

TEST_F(VocabFile, OddThingsAreWarnings) {
  EXPECT_EQ(load_error([](auto& md) { set(md, "tokenizer.ggml.bos_token_id", gguf::Value{uint32_t(99999)}); }), "");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("bos_token_id"), std::string::npos);
  EXPECT_EQ(load_error([](auto& md) { erase(md, "tokenizer.ggml.pre"); }), "");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("'default'"), std::string::npos);
}

}  // namespace
}  // namespace strata
