// Responses from engine outputs: the whole objects, the server-sent events, logprobs in both
// APIs' shapes, usage, errors, and the Prometheus text.
#include "server/api_response.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/reader.h"
#include "server/metrics.h"

namespace strata::server {
namespace {

using Json = nlohmann::ordered_json;

const std::string kVocab = std::string(STRATA_SHARED_FIXTURES) + "/vocab/ggml-vocab-gpt-2.gguf";

class ApiResponse : public ::testing::Test {
protected:
  void SetUp() override {
    if (!std::filesystem::exists(kVocab)) GTEST_SKIP() << "no vocab fixture " << kVocab;
    tok_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(gguf::File::open(kVocab)));
  }

  // The outputs of generating `ids` (one per token, then the final one).
  std::vector<EngineOutput> outputs(const std::vector<TokenId>& ids, StopReason stop) const {
    std::vector<EngineOutput> outs;
    for (const TokenId id : ids) {
      EngineOutput o;
      o.token = id;
      o.text = tok_->token_to_piece(id);
      o.logprob = {id, -0.5f};
      o.top = {{id, -0.5f}, {TokenId(id + 1), -1.5f}};
      outs.push_back(o);
    }
    EngineOutput last;
    last.finished = true;
    last.stop = stop;
    last.n_prompt = 5;
    last.n_cached = 2;
    last.n_generated = int64_t(ids.size());
    outs.push_back(last);
    return outs;
  }

  ResponseMeta meta(ApiKind kind, bool logprobs, bool usage = false) const {
    return {.kind = kind, .id = "id-1", .created = 7, .model = "m", .logprobs = logprobs, .include_usage = usage};
  }

  // The JSON objects of `data:` events; "[DONE]" ends them.
  static std::vector<Json> events(const std::string& sse, bool& done) {
    std::vector<Json> out;
    done = false;
    size_t pos = 0;
    while (pos < sse.size()) {
      const size_t end = sse.find("\n\n", pos);
      EXPECT_NE(end, std::string::npos) << "event not ended by a blank line";
      if (end == std::string::npos) break;
      const std::string event = sse.substr(pos, end - pos);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      const std::string data = event.substr(6);
      EXPECT_FALSE(done) << "event after [DONE]";
      if (data == "[DONE]") {
        done = true;
      } else {
        out.push_back(Json::parse(data));
      }
      pos = end + 2;
    }
    return out;
  }

  std::unique_ptr<Tokenizer> tok_;
  std::vector<TokenId> ids_ = {15496, 11, 995};  // "Hello", ",", " world"
};

TEST_F(ApiResponse, ChatWholeObject) {
  Completion c(meta(ApiKind::chat, false), *tok_);
  for (const EngineOutput& o : outputs(ids_, StopReason::end_of_generation)) c.add(o);
  ASSERT_TRUE(c.finished());
  const Json r = c.response();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["id"], "id-1");
  EXPECT_EQ(r["model"], "m");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "Hello, world");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);
  EXPECT_EQ(r["usage"]["total_tokens"], 8);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST_F(ApiResponse, ChatLogprobs) {
  Completion c(meta(ApiKind::chat, true), *tok_);
  for (const EngineOutput& o : outputs(ids_, StopReason::token_limit)) c.add(o);
  const Json r = c.response();
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  const Json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[2]["token"], " world");
  EXPECT_FLOAT_EQ(content[2]["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(content[2]["bytes"], Json::array({32, 119, 111, 114, 108, 100}));
  ASSERT_EQ(content[2]["top_logprobs"].size(), 2u);
  EXPECT_FLOAT_EQ(content[2]["top_logprobs"][1]["logprob"].get<float>(), -1.5f);
}

TEST_F(ApiResponse, CompletionLogprobsWithOffsets) {
  Completion c(meta(ApiKind::completion, true), *tok_);
  for (const EngineOutput& o : outputs(ids_, StopReason::stop_string)) c.add(o);
  const Json r = c.response();
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], "Hello, world");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  const Json& lp = r["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], Json::array({"Hello", ",", " world"}));
  EXPECT_EQ(lp["text_offset"], Json::array({0, 5, 6}));
  EXPECT_EQ(lp["token_logprobs"].size(), 3u);
  EXPECT_TRUE(lp["top_logprobs"][0].contains("Hello"));
}

TEST_F(ApiResponse, ChatStreamWithUsage) {
  Completion c(meta(ApiKind::chat, false, true), *tok_);
  std::string sse = c.stream_start();
  for (const EngineOutput& o : outputs(ids_, StopReason::token_limit)) sse += c.stream_events(o);
  bool done = false;
  const std::vector<Json> ev = events(sse, done);
  EXPECT_TRUE(done);
  ASSERT_EQ(ev.size(), 6u);  // role, 3 tokens, finish, usage
  EXPECT_EQ(ev[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(ev[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(ev[i]["usage"].is_null());
    EXPECT_TRUE(ev[i]["choices"][0]["finish_reason"].is_null());
    text += ev[i]["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "Hello, world");
  EXPECT_EQ(ev[4]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(ev[4]["choices"][0]["delta"].empty());
  EXPECT_TRUE(ev[5]["choices"].empty());
  EXPECT_EQ(ev[5]["usage"]["completion_tokens"], 3);
}

TEST_F(ApiResponse, HeldBackTextSendsNothingUnlessLogprobsAreAsked) {
  EngineOutput held;
  held.token = 11;
  held.logprob = {11, -0.1f};
  Completion quiet(meta(ApiKind::completion, false), *tok_);
  EXPECT_EQ(quiet.stream_start(), "");
  EXPECT_EQ(quiet.stream_events(held), "");
  Completion loud(meta(ApiKind::completion, true), *tok_);
  bool done = false;
  const std::vector<Json> ev = events(loud.stream_events(held), done);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["choices"][0]["text"], "");
  EXPECT_EQ(ev[0]["choices"][0]["logprobs"]["tokens"], Json::array({","}));
  EXPECT_FALSE(done);
}

TEST_F(ApiResponse, CompletionStreamEndsWithDone) {
  Completion c(meta(ApiKind::completion, false), *tok_);
  std::string sse;
  for (const EngineOutput& o : outputs({}, StopReason::end_of_generation)) sse += c.stream_events(o);
  bool done = false;
  const std::vector<Json> ev = events(sse, done);
  EXPECT_TRUE(done);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(ev[0].contains("usage"));
}

TEST(ApiResponseText, PartialUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(dump_json(Json("a\xe2\x82")), "\"a\xef\xbf\xbd\"");
}

TEST(ApiResponseText, ErrorShape) {
  const Json e =
      Json::parse(error_body(ApiError(404, "invalid_request_error", "no such model", "model", "model_not_found")));
  EXPECT_EQ(e["error"]["message"], "no such model");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "model");
  EXPECT_EQ(e["error"]["code"], "model_not_found");
  const Json n = Json::parse(error_body(ApiError(400, "invalid_request_error", "x")));
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_TRUE(n["error"]["code"].is_null());
}

TEST(ApiResponseText, FinishReasons) {
  EXPECT_EQ(finish_reason(StopReason::end_of_generation), "stop");
  EXPECT_EQ(finish_reason(StopReason::stop_string), "stop");
  EXPECT_EQ(finish_reason(StopReason::token_limit), "length");
  EXPECT_EQ(finish_reason(StopReason::context_full), "length");
  EXPECT_EQ(finish_reason(StopReason::interrupted), "length");
}

TEST(Metrics, PrometheusText) {
  EngineStats e;
  e.queued = 3;
  e.kv_blocks_used = 17;
  e.kv_blocks_cached = 5;
  e.generated_tokens = 1234;
  HttpCounters counters;
  counters.response(200);
  counters.response(200);
  counters.response(429);
  counters.response(99);  // not a status: ignored
  counters.disconnect();
  const std::string text = render_metrics(e, counters.snapshot());
  for (const char* line : {"strata_requests_queued 3\n", "strata_kv_blocks_used 17\n", "strata_kv_blocks_cached 5\n",
                           "strata_generated_tokens_total 1234\n", "strata_http_responses_total{status=\"2xx\"} 2\n",
                           "strata_http_responses_total{status=\"4xx\"} 1\n", "strata_client_disconnects_total 1\n",
                           "# TYPE strata_kv_blocks_used gauge\n", "# TYPE strata_generated_tokens_total counter\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;
  }
}

}  // namespace
}  // namespace strata::server
