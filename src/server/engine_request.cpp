#include "server/engine_request.h"

#include <algorithm>

namespace strata::server {

void check_model_name(const ServedModel& model, const std::string& requested) {
  if (requested.empty()) return;
  if (std::find(model.names.begin(), model.names.end(), requested) != model.names.end()) return;
  throw ApiError(
      404, "invalid_request_error",
      fmt::format("the model '{}' does not exist: this server serves '{}' (GET /v1/models)", requested, model.id),
      "model", "model_not_found");
}

std::string format_chat(const ServedModel& model, const std::vector<ChatMessage>& messages) {
  if (model.chat_template == nullptr) bad_request(model.no_template_reason, "messages");
  try {
    return model.chat_template->format(messages, true);
  } catch (const Error& e) {
    bad_request(fmt::format("the messages do not fit the {} chat template: {}", model.chat_template->name(), e.what()),
                "messages");
  }
}

std::vector<TokenId> prompt_tokens(const ApiRequest& r, const ServedModel& model) {
  const Tokenizer& tok = *model.tokenizer;
  std::vector<TokenId> ids;
  const char* param = r.kind == ApiKind::chat ? "messages" : "prompt";
  if (r.kind == ApiKind::chat) {
    ids = tokenize_chat_text(tok, format_chat(model, r.messages), true);
  } else if (r.prompt_is_tokens) {
    ids = r.prompt_tokens;
  } else {
    ids = tok.encode(r.prompt_text, true, true);
  }
  if (ids.empty()) bad_request("the prompt is empty: nothing to continue", param);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= model.n_vocab) {
      bad_request(fmt::format("prompt token {} is {}, outside the vocabulary of {} tokens", i, ids[i], model.n_vocab),
                  param);
    }
  }
  if (int64_t(ids.size()) >= model.n_ctx) {
    bad_request(fmt::format("the prompt is {} tokens and the context holds {}: it leaves no room to generate (the "
                            "server's -c sets the context)",
                            ids.size(), model.n_ctx),
                param, "context_length_exceeded");
  }
  return ids;
}

EngineRequest make_engine_request(const ApiRequest& r, std::vector<TokenId> prompt, uint64_t random_seed) {
  EngineRequest e;
  e.prompt = std::move(prompt);
  e.sampling = r.sampling;
  if (!r.seed_given) e.sampling.seed = random_seed;
  e.max_tokens = r.max_tokens;
  e.stop_strings = r.stop;
  e.ignore_eos = r.ignore_eos;
  e.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  return e;
}

}  // namespace strata::server
