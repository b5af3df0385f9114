// The server's requests, parsed and validated: JSON body -> a request of plain values. Pure
// functions (no model, no I/O), so that they are unit-tested and fuzzed: every field is
// type-checked and range-checked, and anything wrong throws ApiError naming the field.
//
//   ApiRequest r = parse_api_request(body, ApiKind::chat, defaults);   // or throws ApiError (400)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "runtime/chat_template.h"
#include "sampling/params.h"
#include "tokenizer/vocab.h"

namespace strata::server {

// An error answered in OpenAI's shape {"error": {"message", "type", "param", "code"}} with an
// HTTP status. `param` names the request field at fault ("" when none), `code` is a short
// machine-readable reason ("" when none).
struct ApiError : Error {
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : Error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type;
  std::string param;
  std::string code;
};

// A 400 invalid_request_error about `param`.
[[noreturn]] void bad_request(std::string message, std::string param = {}, std::string code = {});

enum class ApiKind { chat, completion };  // POST /v1/chat/completions, POST /v1/completions

struct ApiRequest {
  ApiKind kind = ApiKind::chat;
  std::string model;                   // "" when not given
  std::vector<ChatMessage> messages;   // chat: roles system/user/assistant ("developer" is system)
  std::string prompt_text;             // completion: the prompt as text...
  std::vector<TokenId> prompt_tokens;  // ...or as token ids (then prompt_is_tokens)
  bool prompt_is_tokens = false;
  SamplingParams sampling;        // the server's defaults, overridden by the request
  bool seed_given = false;        // false: the server draws a seed
  int64_t max_tokens = -1;        // max_tokens / max_completion_tokens; -1: until the end
  std::vector<std::string> stop;  // stop strings (empty ones dropped)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int32_t top_logprobs = 0;  // 0..20 alternatives per token (with logprobs)
  bool ignore_eos = false;   // llama.cpp's extension: never end at an end-of-generation token
};

// Throws ApiError (400) when `body` is not a JSON object or a field has the wrong type or an
// out-of-range value; unknown fields are ignored, known ones that ask for something the server
// does not do (n > 1, tools, echo, ...) are refused.
ApiRequest parse_api_request(std::string_view body, ApiKind kind, const SamplingParams& defaults);

// POST /tokenize (llama-server's shape): {"content", "add_special" = false, "parse_special" = true,
// "with_pieces" = false}.
struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body);

// POST /detokenize: {"tokens": [ids]} (ids are checked against the vocabulary by the caller).
std::vector<TokenId> parse_detokenize_request(std::string_view body);

// POST /apply-template: {"messages": [...]} as in a chat request.
std::vector<ChatMessage> parse_template_request(std::string_view body);

}  // namespace strata::server
