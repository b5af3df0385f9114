// From a parsed API request to what the engine runs: the model name checked, the chat formatted
// with the model's template, the prompt tokenized and checked against the vocabulary and the
// context (a prompt is never truncated: one that does not fit is an error naming both lengths).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "server/api_request.h"
#include "tokenizer/tokenizer.h"

namespace strata::server {

// The model a server serves, as requests see it.
struct ServedModel {
  std::string id;                  // what /v1/models lists
  std::vector<std::string> names;  // what a request's "model" may say (id among them)
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;  // nullptr: chat requests are refused with...
  std::string no_template_reason;               // ...this reason
  int64_t n_ctx = 0;                            // the most tokens one sequence holds
  int64_t n_vocab = 0;                          // token ids are < n_vocab
};

// Throws ApiError 404 (model_not_found) when `requested` is neither "" nor one of model.names.
void check_model_name(const ServedModel& model, const std::string& requested);

// The prompt text of a conversation (ends with the assistant's header); ApiError 400 when the
// model has no template or the roles do not alternate as the template needs.
std::string format_chat(const ServedModel& model, const std::vector<ChatMessage>& messages);

// The prompt's tokens: a chat formatted and tokenized (special-token text becomes those tokens),
// a text prompt tokenized as llama-server does (BOS as the model asks, special text parsed), or
// token ids as given. ApiError 400 when it is empty, holds an id >= n_vocab, or leaves no room in
// the context for one generated token (code context_length_exceeded, naming both lengths).
std::vector<TokenId> prompt_tokens(const ApiRequest& request, const ServedModel& model);

// The engine's request; `random_seed` is the seed used when the request gave none.
EngineRequest make_engine_request(const ApiRequest& request, std::vector<TokenId> prompt, uint64_t random_seed);

}  // namespace strata::server
