// The server's responses in OpenAI's shapes, built from the engine's outputs: a whole
// chat.completion / text_completion object, or its server-sent events (chunks, then the usage
// chunk when asked for, then `data: [DONE]`). No I/O: the HTTP layer writes what this returns.
//
//   Completion c(meta, tokenizer);
//   write(c.stream_start());                           // streaming: the assistant's role chunk
//   for each output o: write(c.stream_events(o));      // or c.add(o), then c.response() at the end
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/engine.h"
#include "server/api_request.h"
#include "tokenizer/tokenizer.h"

namespace strata::server {

// JSON text; invalid UTF-8 in strings (a token's piece may be part of a character) becomes U+FFFD.
std::string dump_json(const nlohmann::ordered_json& j);

// {"error": {"message", "type", "param", "code"}} (param and code null when empty).
std::string error_body(const ApiError& e);

// OpenAI's finish_reason: "stop" (end of generation, a stop string), "length" (max_tokens, the
// context, or a request cut short by cancellation).
std::string_view finish_reason(StopReason reason);

struct ResponseMeta {
  ApiKind kind = ApiKind::chat;
  std::string id;       // chatcmpl-... / cmpl-...
  int64_t created = 0;  // unix seconds
  std::string model;
  bool logprobs = false;
  bool include_usage = false;  // streaming: a last chunk with the usage
};

class Completion {
public:
  Completion(ResponseMeta meta, const Tokenizer& tokenizer) : meta_(std::move(meta)), tokenizer_(&tokenizer) {}

  // Streaming: the events to send before any output (chat: the chunk with the assistant's role).
  std::string stream_start() const;
  // Streaming: the events for one output (often "": text held back and no logprobs asked for);
  // after the final output they end with `data: [DONE]`.
  std::string stream_events(const EngineOutput& out);

  // Not streaming: records an output; response() is the whole object once finished().
  void add(const EngineOutput& out);
  nlohmann::ordered_json response() const;

  bool finished() const { return finished_; }

private:
  nlohmann::ordered_json chunk(nlohmann::ordered_json choice) const;
  nlohmann::ordered_json usage() const;
  void add_logprob(const EngineOutput& out, nlohmann::ordered_json& into);
  nlohmann::ordered_json empty_logprobs() const;

  ResponseMeta meta_;
  const Tokenizer* tokenizer_;
  std::string text_;
  nlohmann::ordered_json logprobs_;  // the response's logprobs (not streaming)
  int64_t text_offset_ = 0;          // completions' text_offset of the next token
  bool finished_ = false;
  StopReason stop_ = StopReason::token_limit;
  int64_t n_prompt_ = 0, n_cached_ = 0, n_generated_ = 0;
};

}  // namespace strata::server
