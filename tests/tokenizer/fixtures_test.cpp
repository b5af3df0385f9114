// Every case of every vocabulary fixture exact (ids produced by each model's Hugging Face
// tokenizer, without BOS), and decode(encode(s)) == s on each case.
#include <gtest/gtest.h>

#include <cstdio>

#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"
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

TEST(TokenizerFixtures, SharedFixturesPresent) {
  const fs::path dir = fs::path(STRATA_SHARED_FIXTURES) / "vocab";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is missing";
  EXPECT_TRUE(fs::exists(dir / "ggml-vocab-llama-spm.gguf"));
  EXPECT_TRUE(fs::exists(dir / "ggml-vocab-gpt-2.gguf"));
}

}  // namespace
}  // namespace strata
