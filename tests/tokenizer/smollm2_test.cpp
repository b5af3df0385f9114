// The default model's tokenizer (SmolLM2-135M-Instruct, byte-level BPE, pre "smollm") on our
// own cases, against ids from Hugging Face tokenizers (tests/data/tokenizer/smollm2.*, made by
// make_smollm2_cases.py). Skips when the model is not in the cache (scripts/fetch-model).
#include <gtest/gtest.h>

#include <cstdlib>

#include "gguf/reader.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_cases.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

fs::path model_path() {
  const char* dir = std::getenv("STRATA_MODEL_DIR");
  const char* home = std::getenv("HOME");
  const fs::path base = dir ? fs::path(dir) : fs::path(home ? home : "") / ".cache" / "strata" / "models";
  return base / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

// Cases from smollm2.inp with the ids of `out_name`.
std::vector<test::VocabCase> cases(const std::string& out_name) {
  const fs::path dir = fs::path(STRATA_TEST_DATA) / "tokenizer";
  return test::read_cases(dir / "smollm2.inp", dir / out_name);
}

class SmolLM2 : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (!fs::exists(model_path())) return;
    file_ = new gguf::File(gguf::File::open(model_path().string()));
    tok_ = new Tokenizer(Tokenizer::from_gguf(*file_));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
  }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << model_path() << " not found (run scripts/fetch-model)";
  }
  static gguf::File* file_;
  static Tokenizer* tok_;
};
gguf::File* SmolLM2::file_ = nullptr;
Tokenizer* SmolLM2::tok_ = nullptr;

TEST_F(SmolLM2, VocabularyAsExpected) {
  EXPECT_EQ(tok_->n_tokens(), 49152);
  EXPECT_EQ(tok_->pre_tokenizer()->family, "starcoder");
  EXPECT_FALSE(tok_->vocab().add_bos);
  EXPECT_TRUE(tok_->is_eog(2));  // <|im_end|>
  EXPECT_TRUE(tok_->is_eog(0));  // <|endoftext|>
  EXPECT_EQ(tok_->token_to_piece(1), "<|im_start|>");
}

TEST_F(SmolLM2, MatchesHuggingFaceWithSpecialTokens) {
  const auto all = cases("smollm2.out");
  ASSERT_GE(all.size(), 12u);
  for (const auto& c : all) {
    EXPECT_EQ(test::ids_to_string(tok_->encode(c.text, true, true)), test::ids_to_string(c.ids)) << c.text;
    EXPECT_EQ(tok_->decode(c.ids), c.text);  // special tokens rendered: lossless too
  }
}

TEST_F(SmolLM2, MatchesHuggingFaceWithoutSpecialTokens) {
  for (const auto& c : cases("smollm2.nospecial.out")) {
    EXPECT_EQ(test::ids_to_string(tok_->encode(c.text, true, false)), test::ids_to_string(c.ids)) << c.text;
    EXPECT_EQ(tok_->decode(c.ids), c.text);
  }
}

TEST_F(SmolLM2, StreamDecoderGivesTheSameText) {
  for (const auto& c : cases("smollm2.out")) {
    StreamDecoder stream(*tok_);
    std::string text;
    for (TokenId id : c.ids) text += stream.push(id);
    text += stream.finish();
    EXPECT_EQ(text, c.text);
  }
}

}  // namespace
}  // namespace strata
