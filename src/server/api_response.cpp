#include "server/api_response.h"

namespace strata::server {
namespace {

using Json = nlohmann::ordered_json;

std::string sse(const Json& j) {
  return "data: " + dump_json(j) + "\n\n";
}

Json bytes_of(const std::string& s) {
  Json bytes = Json::array();
  for (const char c : s) bytes.push_back(int(static_cast<unsigned char>(c)));
  return bytes;
}

Json null_if_empty(const std::string& s) {
  return s.empty() ? Json(nullptr) : Json(s);
}

}  // namespace

std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string error_body(const ApiError& e) {
  return dump_json({{"error",
                     {{"message", e.what()},
                      {"type", e.type},
                      {"param", null_if_empty(e.param)},
                      {"code", null_if_empty(e.code)}}}});
}

std::string_view finish_reason(StopReason reason) {
  switch (reason) {
    case StopReason::end_of_generation:
    case StopReason::stop_string:
      return "stop";
    case StopReason::token_limit:
    case StopReason::context_full:
    case StopReason::interrupted:
      return "length";
  }
  return "stop";
}

Json Completion::chunk(Json choice) const {
  Json j = {{"id", meta_.id},
            {"object", meta_.kind == ApiKind::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", meta_.created},
            {"model", meta_.model},
            {"choices", Json::array({std::move(choice)})}};
  if (meta_.include_usage) j["usage"] = nullptr;
  return j;
}

Json Completion::usage() const {
  return {{"prompt_tokens", n_prompt_},
          {"completion_tokens", n_generated_},
          {"total_tokens", n_prompt_ + n_generated_},
          {"prompt_tokens_details", {{"cached_tokens", n_cached_}}}};
}

Json Completion::empty_logprobs() const {
  if (meta_.kind == ApiKind::chat) return {{"content", Json::array()}};
  return {{"tokens", Json::array()},
          {"token_logprobs", Json::array()},
          {"top_logprobs", Json::array()},
          {"text_offset", Json::array()}};
}

void Completion::add_logprob(const EngineOutput& out, Json& into) {
  if (!meta_.logprobs || out.token < 0) return;
  if (into.is_null()) into = empty_logprobs();
  const std::string& piece = tokenizer_->token_to_piece(out.token);
  if (meta_.kind == ApiKind::chat) {
    Json top = Json::array();
    for (const TokenLogprob& t : out.top) {
      const std::string& p = tokenizer_->token_to_piece(t.token);
      top.push_back({{"token", p}, {"logprob", t.logprob}, {"bytes", bytes_of(p)}});
    }
    into["content"].push_back(
        {{"token", piece}, {"logprob", out.logprob.logprob}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}});
    return;
  }
  Json top = Json::object();
  for (const TokenLogprob& t : out.top) top[tokenizer_->token_to_piece(t.token)] = t.logprob;
  into["tokens"].push_back(piece);
  into["token_logprobs"].push_back(out.logprob.logprob);
  into["top_logprobs"].push_back(top);
  into["text_offset"].push_back(text_offset_);
}

std::string Completion::stream_start() const {
  if (meta_.kind != ApiKind::chat) return "";
  return sse(chunk({{"index", 0},
                    {"delta", {{"role", "assistant"}, {"content", ""}}},
                    {"logprobs", nullptr},
                    {"finish_reason", nullptr}}));
}

std::string Completion::stream_events(const EngineOutput& out) {
  Json logprobs;  // this chunk's
  add_logprob(out, logprobs);
  text_offset_ += int64_t(out.text.size());
  std::string events;
  if (!out.text.empty() || !logprobs.is_null()) {
    Json choice = {{"index", 0}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
    if (meta_.kind == ApiKind::chat) {
      choice["delta"] = {{"content", out.text}};
    } else {
      choice["text"] = out.text;
    }
    events += sse(chunk(std::move(choice)));
  }
  if (!out.finished) return events;
  finished_ = true;
  stop_ = out.stop;
  n_prompt_ = out.n_prompt;
  n_cached_ = out.n_cached;
  n_generated_ = out.n_generated;
  Json last = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason(out.stop)}};
  if (meta_.kind == ApiKind::chat) {
    last["delta"] = Json::object();
  } else {
    last["text"] = "";
  }
  events += sse(chunk(std::move(last)));
  if (meta_.include_usage) {
    Json u = chunk(Json());
    u["choices"] = Json::array();
    u["usage"] = usage();
    events += sse(u);
  }
  return events + "data: [DONE]\n\n";
}

void Completion::add(const EngineOutput& out) {
  add_logprob(out, logprobs_);
  text_ += out.text;
  text_offset_ += int64_t(out.text.size());
  if (!out.finished) return;
  finished_ = true;
  stop_ = out.stop;
  n_prompt_ = out.n_prompt;
  n_cached_ = out.n_cached;
  n_generated_ = out.n_generated;
  if (meta_.logprobs && logprobs_.is_null()) logprobs_ = empty_logprobs();
}

Json Completion::response() const {
  Json choice = {{"index", 0}, {"logprobs", logprobs_}, {"finish_reason", finish_reason(stop_)}};
  if (meta_.kind == ApiKind::chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text_}};
  } else {
    choice["text"] = text_;
  }
  return {{"id", meta_.id},
          {"object", meta_.kind == ApiKind::chat ? "chat.completion" : "text_completion"},
          {"created", meta_.created},
          {"model", meta_.model},
          {"choices", Json::array({std::move(choice)})},
          {"usage", usage()}};
}

}  // namespace strata::server
