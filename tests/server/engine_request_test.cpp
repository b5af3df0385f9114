// From API requests to engine requests: model names, chat formatting, prompt checks (never
// truncated: too long is an error naming both lengths), seeds and logprobs.
#include "server/engine_request.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/reader.h"

namespace strata::server {
namespace {

const std::string kVocab = std::string(STRATA_SHARED_FIXTURES) + "/vocab/ggml-vocab-gpt-2.gguf";

class EngineRequestTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!std::filesystem::exists(kVocab)) GTEST_SKIP() << "no vocab fixture " << kVocab;
    tok_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(gguf::File::open(kVocab)));
    model_.id = "tiny.gguf";
    model_.names = {"tiny.gguf", "tiny"};
    model_.tokenizer = tok_.get();
    model_.chat_template = &template_;
    model_.n_ctx = 64;
    model_.n_vocab = tok_->n_tokens();
  }

  ApiRequest completion(const std::string& body) const {
    return parse_api_request(body, ApiKind::completion, SamplingParams{});
  }

  template <typename F>
  static ApiError error_of(F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      return e;
    }
    ADD_FAILURE() << "no ApiError thrown";
    return ApiError(0, "", "");
  }

  std::unique_ptr<Tokenizer> tok_;
  ChatTemplate template_{ChatFamily::chatml, "", ""};
  ServedModel model_;
};

TEST_F(EngineRequestTest, ModelNames) {
  EXPECT_NO_THROW(check_model_name(model_, ""));
  EXPECT_NO_THROW(check_model_name(model_, "tiny"));
  const ApiError e = error_of([&] { check_model_name(model_, "gpt-4"); });
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.code, "model_not_found");
  EXPECT_EQ(e.param, "model");
  EXPECT_NE(std::string(e.what()).find("'gpt-4'"), std::string::npos);
}

TEST_F(EngineRequestTest, ChatIsFormattedWithTheTemplate) {
  const ApiRequest r = parse_api_request(R"({"messages": [{"role": "system", "content": "S"},
                                                          {"role": "user", "content": "U"}]})",
                                         ApiKind::chat, SamplingParams{});
  const std::string text = format_chat(model_, r.messages);
  EXPECT_EQ(text, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(prompt_tokens(r, model_), tokenize_chat_text(*tok_, text, true));
}

TEST_F(EngineRequestTest, ChatWithoutTemplateOrOutOfOrder) {
  const ApiRequest r =
      parse_api_request(R"({"messages": [{"role": "assistant", "content": "A"}]})", ApiKind::chat, SamplingParams{});
  const ApiError order = error_of([&] { prompt_tokens(r, model_); });
  EXPECT_EQ(order.status, 400);
  EXPECT_EQ(order.param, "messages");
  EXPECT_NE(std::string(order.what()).find("chatml"), std::string::npos) << order.what();
  model_.chat_template = nullptr;
  model_.no_template_reason = "no template here";
  const ApiError none = error_of([&] { prompt_tokens(r, model_); });
  EXPECT_EQ(std::string(none.what()), "no template here");
}

TEST_F(EngineRequestTest, TextAndTokenPrompts) {
  EXPECT_EQ(prompt_tokens(completion(R"({"prompt": "Hello, world"})"), model_), tok_->encode("Hello, world"));
  EXPECT_EQ(prompt_tokens(completion(R"({"prompt": [1, 2]})"), model_), (std::vector<TokenId>{1, 2}));
}

TEST_F(EngineRequestTest, BadPrompts) {
  const ApiError empty = error_of([&] { prompt_tokens(completion(R"({"prompt": ""})"), model_); });
  EXPECT_NE(std::string(empty.what()).find("empty"), std::string::npos);
  EXPECT_EQ(empty.param, "prompt");
  const ApiError vocab = error_of([&] { prompt_tokens(completion(R"({"prompt": [1, 99999]})"), model_); });
  EXPECT_NE(std::string(vocab.what()).find("prompt token 1 is 99999"), std::string::npos) << vocab.what();
  std::string words;
  for (int i = 0; i < 70; ++i) words += " a";
  const ApiError longer = error_of([&] { prompt_tokens(completion(R"({"prompt": ")" + words + "\"}"), model_); });
  EXPECT_EQ(longer.status, 400);
  EXPECT_EQ(longer.code, "context_length_exceeded");
  EXPECT_NE(std::string(longer.what()).find("the prompt is 70 tokens and the context holds 64"), std::string::npos)
      << longer.what();
  // 63 tokens leave room for one.
  EXPECT_EQ(prompt_tokens(completion(R"({"prompt": ")" + words.substr(0, 126) + "\"}"), model_).size(), 63u);
}

TEST_F(EngineRequestTest, SeedsAndLogprobs) {
  const ApiRequest given = completion(R"({"prompt": "x", "seed": 5, "logprobs": 2, "stop": "y", "max_tokens": 4})");
  const EngineRequest a = make_engine_request(given, {1}, 99);
  EXPECT_EQ(a.sampling.seed, 5u);
  EXPECT_EQ(a.top_logprobs, 2);
  EXPECT_EQ(a.stop_strings, (std::vector<std::string>{"y"}));
  EXPECT_EQ(a.max_tokens, 4);
  EXPECT_EQ(a.prompt, (std::vector<TokenId>{1}));
  const EngineRequest b = make_engine_request(completion(R"({"prompt": "x", "ignore_eos": true})"), {1}, 99);
  EXPECT_EQ(b.sampling.seed, 99u);
  EXPECT_EQ(b.top_logprobs, -1);
  EXPECT_TRUE(b.ignore_eos);
}

}  // namespace
}  // namespace strata::server
