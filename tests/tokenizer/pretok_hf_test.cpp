// Every pre-tokenizer against Hugging Face `tokenizers`: the same GPT-2 byte-level BPE
// vocabulary with each tokenizer.ggml.pre value, on 263 cases (llama.cpp's fixture strings,
// edge cases of whitespace, case, digits, scripts and emoji, and seeded random Unicode).
// Expected ids: tests/data/tokenizer/pretok/*.out, made by make_pretok_cases.py.
#include <gtest/gtest.h>

#include <cstdio>

#include "gguf/reader.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_cases.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(STRATA_TEST_DATA) / "tokenizer" / "pretok";
const fs::path kGpt2 = fs::path(STRATA_SHARED_FIXTURES) / "vocab" / "ggml-vocab-gpt-2.gguf";

std::vector<test::VocabCase> read_cases(const std::string& pre) {
  return test::read_cases(kDir / "cases.inp", kDir / (pre + ".out"));
}

class PreTokenizerHf : public ::testing::TestWithParam<std::string> {
protected:
  static void SetUpTestSuite() {
    if (fs::exists(kGpt2)) vocab_ = new Vocab(Vocab::from_gguf(gguf::File::open(kGpt2.string())));
  }
  static void TearDownTestSuite() {
    delete vocab_;
    vocab_ = nullptr;
  }
  static Vocab* vocab_;
};
Vocab* PreTokenizerHf::vocab_ = nullptr;

TEST_P(PreTokenizerHf, MatchesHuggingFace) {
  if (!vocab_) GTEST_SKIP() << kGpt2 << " is missing";
  const std::string pre = GetParam();
  Vocab vocab = *vocab_;
  vocab.pre = pre;
  const auto tok = Tokenizer::from_vocab(std::move(vocab));
  const auto cases = read_cases(pre);
  ASSERT_EQ(cases.size(), 263u);
  int exact = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = tok.encode(cases[i].text, false, true);
    if (ids == cases[i].ids) ++exact;
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(cases[i].ids))
        << pre << " case " << i << ": '" << cases[i].text << "'";
    EXPECT_EQ(tok.decode(tok.encode(cases[i].text, false, false)), cases[i].text) << "round trip of case " << i;
  }
  std::printf("[ pre      ] %s (%s): %d/%zu exact\n", pre.c_str(), tok.pre_tokenizer()->family.c_str(), exact,
              cases.size());
}

std::vector<std::string> pre_names() {
  std::vector<std::string> names;
  if (!fs::is_directory(kDir)) return names;
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().extension() == ".out") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(All, PreTokenizerHf, ::testing::ValuesIn(pre_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return name;
                         });

// Every pre value the issue names has expected ids here, so none is left untested.
TEST(PreTokenizerHfCoverage, ListedPreTokenizersHaveCases) {
  for (const char* pre : {"default", "gpt-2", "llama-bpe", "smollm", "qwen2", "deepseek-llm", "deepseek-coder", "falcon",
                          "starcoder", "refact", "mpt", "gpt-neox", "phi-2", "stablelm2", "olmo", "dbrx", "command-r",
                          "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "tekken"})
    EXPECT_TRUE(fs::exists(kDir / (std::string(pre) + ".out"))) << pre;
}

}  // namespace
}  // namespace strata
