// The request parser: every field's type and range, the errors' status and param, and the
// shapes OpenAI's and llama-server's clients send.
#include "server/api_request.h"

#include <gtest/gtest.h>

#include <limits>

namespace strata::server {
namespace {

ApiRequest chat(const std::string& fields) {
  return parse_api_request(R"({"messages": [{"role": "user", "content": "hi"}])" + fields + "}", ApiKind::chat,
                           SamplingParams{});
}

ApiRequest completion(const std::string& body) {
  return parse_api_request(body, ApiKind::completion, SamplingParams{});
}

// The ApiError a call throws (fails the test when it throws none).
template <typename F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

void expect_bad(const std::string& fields, const std::string& param, const std::string& message_part) {
  const ApiError e = error_of([&] { chat(fields); });
  EXPECT_EQ(e.status, 400) << fields;
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, param) << fields << ": " << e.what();
  EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
}

TEST(ApiRequest, ChatDefaultsComeFromTheServer) {
  SamplingParams defaults;
  defaults.temperature = 0.25f;
  defaults.top_k = 7;
  const ApiRequest r =
      parse_api_request(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})", ApiKind::chat, defaults);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.25f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.seed_given);
  EXPECT_FALSE(r.logprobs);
}

TEST(ApiRequest, ChatFields) {
  const ApiRequest r = chat(
      R"(, "temperature": 0, "top_p": 0.5, "top_k": 3, "min_p": 0.1, "seed": 42, "max_tokens": 9,
         "stop": ["a", "", "bc"], "stream": true, "stream_options": {"include_usage": true},
         "presence_penalty": 0.5, "frequency_penalty": -1.5, "logprobs": true, "top_logprobs": 4,
         "ignore_eos": true, "user": "ignored", "n": 1)");
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -1.5f);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(ApiRequest, MaxCompletionTokensWins) {
  EXPECT_EQ(chat(R"(, "max_tokens": 5, "max_completion_tokens": 7)").max_tokens, 7);
  EXPECT_EQ(chat(R"(, "max_tokens": null)").max_tokens, -1);
  EXPECT_EQ(chat(R"(, "max_tokens": -1)").max_tokens, -1);
}

TEST(ApiRequest, SeedsUpTo64Bits) {
  EXPECT_EQ(chat(R"(, "seed": 18446744073709551615)").sampling.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(chat(R"(, "seed": -1)").seed_given);
  EXPECT_FALSE(chat(R"(, "seed": null)").seed_given);
  expect_bad(R"(, "seed": -2)", "seed", "-1 (random)");
  expect_bad(R"(, "seed": 1.5)", "seed", "must be an integer");
}

TEST(ApiRequest, StopAsOneString) {
  EXPECT_EQ(chat(R"(, "stop": "\n\n")").stop, (std::vector<std::string>{"\n\n"}));
}

TEST(ApiRequest, MessagesOfTextParts) {
  const ApiRequest r = parse_api_request(
      R"({"messages": [{"role": "developer", "content": "be brief"},
                       {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                       {"role": "assistant", "content": "c", "name": "x"}]})",
      ApiKind::chat, SamplingParams{});
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "a\nb");
  EXPECT_EQ(r.messages[2].role, "assistant");
}

TEST(ApiRequest, MalformedJsonAndWrongTypes) {
  for (const char* body : {"", "{", "{\"messages\": [}", "nul", "{\"a\": 1,}", "\xff"}) {
    const ApiError e = error_of([&] { parse_api_request(body, ApiKind::chat, SamplingParams{}); });
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.code, "invalid_json") << body;
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  for (const char* body : {"[]", "3", "\"s\"", "null"}) {
    const ApiError e = error_of([&] { parse_api_request(body, ApiKind::chat, SamplingParams{}); });
    EXPECT_NE(std::string(e.what()).find("must be a JSON object"), std::string::npos) << e.what();
  }
  expect_bad(R"(, "temperature": "hot")", "temperature", "'temperature' must be a number, got a string");
  expect_bad(R"(, "max_tokens": "5")", "max_tokens", "must be an integer");
  expect_bad(R"(, "max_tokens": 2.5)", "max_tokens", "must be an integer");
  expect_bad(R"(, "stream": 1)", "stream", "must be a boolean");
  expect_bad(R"(, "stop": 3)", "stop", "a string or an array");
  expect_bad(R"(, "stop": ["a", 1])", "stop[1]", "must be a string");
  expect_bad(R"(, "stream_options": true)", "stream_options", "an object");
  expect_bad(R"(, "model": 7)", "model", "must be a string");
  expect_bad(R"(, "logprobs": 2)", "logprobs", "must be a boolean");
}

TEST(ApiRequest, OutOfRangeValues) {
  expect_bad(R"(, "temperature": -1)", "temperature", ">= 0");
  expect_bad(R"(, "top_p": 0)", "top_p", "(0, 1]");
  expect_bad(R"(, "top_p": 1.5)", "top_p", "(0, 1]");
  expect_bad(R"(, "min_p": 2)", "min_p", "[0, 1]");
  expect_bad(R"(, "top_k": -1)", "top_k", ">= 0");
  expect_bad(R"(, "top_k": 9999999999)", "top_k", ">= 0");
  expect_bad(R"(, "presence_penalty": 3)", "presence_penalty", "[-2, 2]");
  expect_bad(R"(, "frequency_penalty": -2.5)", "frequency_penalty", "[-2, 2]");
  expect_bad(R"(, "max_tokens": 0)", "max_tokens", ">= 1");
  expect_bad(R"(, "max_tokens": -2)", "max_tokens", ">= 1");
  expect_bad(R"(, "max_tokens": 18446744073709551615)", "max_tokens", "too large");
  expect_bad(R"(, "max_completion_tokens": 0)", "max_completion_tokens", ">= 1");
  expect_bad(R"(, "top_logprobs": 21, "logprobs": true)", "top_logprobs", "[0, 20]");
  expect_bad(R"(, "top_logprobs": 2)", "top_logprobs", "needs 'logprobs'");
  expect_bad(R"(, "temperature": 1e400)", "", "not valid JSON");
}

TEST(ApiRequest, UnsupportedFeaturesAreRefused) {
  expect_bad(R"(, "n": 2)", "n", "1 (one choice");
  expect_bad(R"(, "tools": [{"type": "function"}])", "tools", "not supported");
  expect_bad(R"(, "logit_bias": {"1": 5})", "logit_bias", "not supported");
  expect_bad(R"(, "response_format": {"type": "json_object"})", "response_format", "not supported");
  // Their "off" values pass.
  EXPECT_NO_THROW(chat(R"(, "n": 1, "tools": [], "logit_bias": {}, "response_format": {"type": "text"})"));
}

TEST(ApiRequest, BadMessages) {
  auto bad = [](const std::string& messages, const std::string& param, const std::string& part) {
    const ApiError e =
        error_of([&] { parse_api_request(R"({"messages": )" + messages + "}", ApiKind::chat, SamplingParams{}); });
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, param) << messages << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  };
  bad("[]", "messages", "at least one");
  bad("{}", "messages", "an array");
  bad("[3]", "messages[0]", "an object");
  bad(R"([{"content": "x"}])", "messages[0].role", "a string");
  bad(R"([{"role": "tool", "content": "x"}])", "messages[0].role", "system, developer, user or assistant");
  bad(R"([{"role": "user"}])", "messages[0].content", "required");
  bad(R"([{"role": "user", "content": 5}])", "messages[0].content", "a string or an array of text parts");
  bad(R"([{"role": "user", "content": [{"type": "image_url"}]}])", "messages[0].content[0]", "only text");
  bad(R"([{"role": "user", "content": [{"type": "text"}]}])", "messages[0].content[0].text", "a string");
  const ApiError e = error_of([] { parse_api_request("{}", ApiKind::chat, SamplingParams{}); });
  EXPECT_EQ(e.param, "messages");
}

TEST(ApiRequest, CompletionPrompts) {
  EXPECT_EQ(completion(R"({"prompt": "Once"})").prompt_text, "Once");
  EXPECT_EQ(completion(R"({"prompt": ["Once"]})").prompt_text, "Once");
  const ApiRequest t = completion(R"({"prompt": [1, 2, 3]})");
  EXPECT_TRUE(t.prompt_is_tokens);
  EXPECT_EQ(t.prompt_tokens, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_EQ(completion(R"({"prompt": [[4, 5]]})").prompt_tokens, (std::vector<TokenId>{4, 5}));
  const ApiRequest lp = completion(R"({"prompt": "x", "logprobs": 3})");
  EXPECT_TRUE(lp.logprobs);
  EXPECT_EQ(lp.top_logprobs, 3);
  EXPECT_FALSE(completion(R"({"prompt": "x", "logprobs": null})").logprobs);
}

TEST(ApiRequest, BadCompletionPrompts) {
  auto bad = [](const std::string& body, const std::string& param, const std::string& part) {
    const ApiError e = error_of([&] { completion(body); });
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, param) << body << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  };
  bad("{}", "prompt", "required");
  bad(R"({"prompt": 5})", "prompt", "a string or an array");
  bad(R"({"prompt": ["a", "b"]})", "prompt", "holds 2 prompts");
  bad(R"({"prompt": [1, -2]})", "prompt[1]", ">= 0");
  bad(R"({"prompt": [1, 3000000000]})", "prompt[1]", ">= 0");
  bad(R"({"prompt": [1, "a"]})", "prompt[1]", "an integer");
  bad(R"({"prompt": "x", "logprobs": 21})", "logprobs", "[0, 20]");
  bad(R"({"prompt": "x", "echo": true})", "echo", "not supported");
  bad(R"({"prompt": "x", "suffix": "y"})", "suffix", "not supported");
  bad(R"({"prompt": "x", "best_of": 3})", "best_of", "one choice");
}

TEST(ApiRequest, Tokenize) {
  const TokenizeRequest r = parse_tokenize_request(R"({"content": "a b", "add_special": true, "with_pieces": true})");
  EXPECT_EQ(r.content, "a b");
  EXPECT_TRUE(r.add_special);
  EXPECT_TRUE(r.parse_special);
  EXPECT_TRUE(r.with_pieces);
  EXPECT_EQ(error_of([] { parse_tokenize_request("{}"); }).param, "content");
  EXPECT_EQ(error_of([] { parse_tokenize_request(R"({"content": 1})"); }).param, "content");
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [0, 7]})"), (std::vector<TokenId>{0, 7}));
  EXPECT_EQ(error_of([] { parse_detokenize_request(R"({"tokens": "x"})"); }).param, "tokens");
  EXPECT_EQ(error_of([] { parse_detokenize_request(R"({"tokens": [1, -1]})"); }).param, "tokens[1]");
  EXPECT_EQ(parse_template_request(R"({"messages": [{"role": "user", "content": "q"}]})").size(), 1u);
}

}  // namespace
}  // namespace strata::server
