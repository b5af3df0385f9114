// Every case of every vocabulary fixture exact (ids produced by each model's Hugging Face
// tokenizer, without BOS), and decode(encode(s)) == s on each case.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>

#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_cases.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> dirs = {fs::path(STRATA_SHARED_FIXTURES) / "vocab", fs::path(STRATA_TEST_DATA) / "tokenizer"};
  // More vocabularies (e.g. ones too large to commit) can be tested from a folder of one's own.
  if (const char* extra = std::getenv("STRATA_EXTRA_VOCAB_DIR")) dirs.emplace_back(extra);
  return dirs;
}

void check_vocab(const fs::path& path) {
  SCOPED_TRACE(path.string());
  const auto cases = test::read_vocab_cases(path);
  ASSERT_FALSE(cases.empty());
  const auto file = gguf::File::open(path.string());
  const auto tok = Tokenizer::from_gguf(file);
  int exact = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto ids = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/true);
    if (ids == c.ids) ++exact;
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(c.ids)) << "case " << i << ": '" << c.text << "'";
    const auto plain = tok.encode(c.text, false, false);
    EXPECT_EQ(tok.decode(plain), c.text) << "round trip of case " << i;
  }
  std::printf("[ vocab    ] %s: %d/%zu cases exact\n", path.filename().c_str(), exact, cases.size());
}

TEST(TokenizerFixtures, EveryCaseExact) {
  const auto files = test::vocab_files(fixture_dirs());
  if (files.empty()) GTEST_SKIP() << "no vocabulary fixtures found (" << STRATA_SHARED_FIXTURES << "/vocab)";
  for (const auto& f : files) check_vocab(f);
}

// Random text: valid UTF-8 from many scripts, and arbitrary bytes (invalid UTF-8 included).
// decode(encode(s)) == s for both, and nothing throws. Two things no tokenizer can give back
// are left out: SentencePiece reads U+2581 in the input as a space (as SentencePiece itself
// does), and some byte-level vocabularies have no token for some bytes (e.g. starcoder's
// lacks 0xC0, 0xC1 and 0xF5-0xFF, which valid UTF-8 never contains): those bytes become
// U+FFFD (invalid_utf8_test.cpp); deepseek-coder's byte tokens for them are also added tokens
// ("ù" for 0xF9), which decode as the text that matches them.
std::string random_utf8(std::mt19937& rng, size_t n) {
  static const std::pair<char32_t, char32_t> ranges[] = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x370, 0x52F}, {0x590, 0x6FF}, {0x900, 0x97F},
      {0xE00, 0xE7F}, {0x1100, 0x11FF}, {0x2000, 0x206F}, {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
      {0xFF00, 0xFFEF}, {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const auto& [lo, hi] = ranges[rng() % std::size(ranges)];
    char32_t c = lo + char32_t(rng() % (hi - lo + 1));
    if (c == 0x2581) c = 'x';
    unicode::append_utf8(s, c);
  }
  return s;
}

TEST(TokenizerFixtures, RandomTextRoundTrips) {
  const auto files = test::vocab_files(fixture_dirs());
  if (files.empty()) GTEST_SKIP() << "no vocabulary fixtures found";
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const auto file = gguf::File::open(path.string());
    const auto tok = Tokenizer::from_gguf(file);
    std::array<bool, 256> representable{};
    for (int b = 0; b < 256; ++b) {
      const std::string byte(1, char(b));
      representable[size_t(b)] = tok.decode(tok.encode(byte, false)) == byte;
    }
    auto all_representable = [&](const std::string& t) {
      return std::all_of(t.begin(), t.end(), [&](char c) { return representable[uint8_t(c)]; });
    };
    std::mt19937 rng(42);
    for (int i = 0; i < 100; ++i) {
      std::string text = random_utf8(rng, rng() % 80);
      while (!all_representable(text)) text = random_utf8(rng, rng() % 80);
      EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text);
      const auto with_special = tok.encode(text, true, true);
      EXPECT_EQ(tok.decode(with_special, {.skip_special = true}), text);
      std::string bytes(rng() % 80, '\0');
      for (char& c : bytes) c = char(rng() % 256);
      EXPECT_NO_THROW(tok.decode(tok.encode(bytes, false, false)));
      for (char& c : bytes)
        if (!representable[uint8_t(c)]) c = 'x';
      for (size_t p; (p = bytes.find("\xE2\x96\x81")) != std::string::npos;) bytes[p] = 'x';
      EXPECT_EQ(tok.decode(tok.encode(bytes, false, false)), bytes);
      EXPECT_NO_THROW(tok.encode(bytes, true, true));
    }
  }
}

TEST(TokenizerFixtures, SharedFixturesPresent) {
  const fs::path dir = fs::path(STRATA_SHARED_FIXTURES) / "vocab";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is missing";
  EXPECT_TRUE(fs::exists(dir / "ggml-vocab-llama-spm.gguf"));
  EXPECT_TRUE(fs::exists(dir / "ggml-vocab-gpt-2.gguf"));
}

}  // namespace
}  // namespace strata
