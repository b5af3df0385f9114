#include "server/api_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace strata::server {
namespace {

using Json = nlohmann::json;

constexpr int32_t kMaxTopLogprobs = 20;
constexpr size_t kMaxStopStrings = 16;

std::string_view type_name(const Json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

[[noreturn]] void wrong_type(const std::string& name, std::string_view wanted, const Json& v) {
  bad_request(fmt::format("'{}' must be {}, got {}", name, wanted, type_name(v)), name);
}

Json parse_object(std::string_view body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {
    std::string what = e.what();
    if (const size_t end = what.find("] "); what.starts_with("[json.exception") && end != std::string::npos) {
      what.erase(0, end + 2);
    }
    bad_request("the request body is not valid JSON: " + what, "", "invalid_json");
  }
  if (!j.is_object()) bad_request(fmt::format("the request body must be a JSON object, got {}", type_name(j)));
  return j;
}

// The field's value, or nullptr when it is absent or null (null means "not given" in OpenAI's API).
const Json* find(const Json& obj, const char* name) {
  const auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const Json& obj, const char* name, bool fallback) {
  const Json* v = find(obj, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

// A finite number in [lo, hi].
float get_float(const Json& obj, const char* name, float fallback, double lo, double hi, std::string_view range) {
  const Json* v = find(obj, name);
  if (v == nullptr) return fallback;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad_request(fmt::format("'{}' must be {}, got {}", name, range, x), name);
  return float(x);
}

int64_t to_int64(const std::string& name, const Json& v) {
  if (!v.is_number_integer()) wrong_type(name, "an integer", v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
    bad_request(fmt::format("'{}' is too large: {}", name, v.get<uint64_t>()), name);
  }
  return v.get<int64_t>();
}

int64_t get_int(const Json& obj, const char* name, int64_t fallback, int64_t lo, int64_t hi, std::string_view range) {
  const Json* v = find(obj, name);
  if (v == nullptr) return fallback;
  const int64_t x = to_int64(name, *v);
  if (x < lo || x > hi) bad_request(fmt::format("'{}' must be {}, got {}", name, range, x), name);
  return x;
}

std::string get_string(const Json& obj, const char* name) {
  const Json* v = find(obj, name);
  if (v == nullptr) return {};
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

// A message's content: a string, or an array of text parts ({"type": "text", "text": ...}),
// joined with newlines.
std::string message_content(const Json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(where, "a string or an array of text parts", content);
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!part.is_object()) wrong_type(at, "an object", part);
    const std::string type = get_string(part, "type");
    if (type != "text") {
      bad_request(fmt::format("{}: only text content parts are supported, got type '{}'", at, type), at);
    }
    const Json* t = find(part, "text");
    if (t == nullptr || !t->is_string()) wrong_type(at + ".text", "a string", t == nullptr ? Json() : *t);
    if (i > 0) text += '\n';
    text += t->get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const Json& obj) {
  const Json* list = find(obj, "messages");
  if (list == nullptr) bad_request("'messages' is required", "messages");
  if (!list->is_array()) wrong_type("messages", "an array", *list);
  if (list->empty()) bad_request("'messages' must hold at least one message", "messages");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& m = (*list)[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(at, "an object", m);
    const Json* role = find(m, "role");
    if (role == nullptr || !role->is_string()) wrong_type(at + ".role", "a string", role == nullptr ? Json() : *role);
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant") {
      bad_request(fmt::format("{}.role must be system, developer, user or assistant, got '{}'", at, r), at + ".role");
    }
    if (find(m, "tool_calls") != nullptr) bad_request(at + ": tool calls are not supported", at + ".tool_calls");
    const Json* content = find(m, "content");
    if (content == nullptr) bad_request(at + ".content is required", at + ".content");
    messages.push_back({std::move(r), message_content(*content, at + ".content")});
  }
  return messages;
}

// Token ids in a JSON array: each an integer in [0, 2^31).
std::vector<TokenId> token_array(const Json& list, const std::string& name) {
  std::vector<TokenId> ids;
  ids.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", name, i);
    const int64_t id = to_int64(at, list[i]);
    if (id < 0 || id > std::numeric_limits<TokenId>::max()) {
      bad_request(fmt::format("{} must be a token id >= 0, got {}", at, id), at);
    }
    ids.push_back(TokenId(id));
  }
  return ids;
}

// The completion prompt: a string, or token ids, or a list of one of either.
void parse_prompt(const Json& obj, ApiRequest& r) {
  const Json* p = find(obj, "prompt");
  if (p == nullptr) bad_request("'prompt' is required", "prompt");
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    r.prompt_text = p->get<std::string>();
    return;
  }
  if (!p->is_array()) wrong_type("prompt", "a string or an array of token ids", *p);
  if (!p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) {
    bad_request(fmt::format("'prompt' holds {} prompts; this server takes one per request", p->size()), "prompt");
  }
  r.prompt_tokens = token_array(*p, "prompt");
  r.prompt_is_tokens = true;
}

std::vector<std::string> parse_stop(const Json& obj) {
  const Json* s = find(obj, "stop");
  if (s == nullptr) return {};
  std::vector<std::string> stops;
  if (s->is_string()) {
    stops.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    if (s->size() > kMaxStopStrings) {
      bad_request(fmt::format("'stop' holds {} strings, at most {} are allowed", s->size(), kMaxStopStrings), "stop");
    }
    for (size_t i = 0; i < s->size(); ++i) {
      if (!(*s)[i].is_string()) wrong_type(fmt::format("stop[{}]", i), "a string", (*s)[i]);
      stops.push_back((*s)[i].get<std::string>());
    }
  } else {
    wrong_type("stop", "a string or an array of strings", *s);
  }
  std::erase_if(stops, [](const std::string& x) { return x.empty(); });
  return stops;
}

void parse_sampling(const Json& obj, ApiRequest& r) {
  SamplingParams& p = r.sampling;
  p.temperature = get_float(obj, "temperature", p.temperature, 0, 1e6, "a number >= 0 (0 = greedy)");
  p.top_p = get_float(obj, "top_p", p.top_p, 0, 1, "in (0, 1]");
  if (p.top_p <= 0) bad_request(fmt::format("'top_p' must be in (0, 1], got {}", p.top_p), "top_p");
  p.top_k =
      int32_t(get_int(obj, "top_k", p.top_k, 0, std::numeric_limits<int32_t>::max(), "an integer >= 0 (0 = off)"));
  p.min_p = get_float(obj, "min_p", p.min_p, 0, 1, "in [0, 1]");
  p.presence_penalty = get_float(obj, "presence_penalty", p.presence_penalty, -2, 2, "in [-2, 2]");
  p.frequency_penalty = get_float(obj, "frequency_penalty", p.frequency_penalty, -2, 2, "in [-2, 2]");
  p.repeat_penalty = get_float(obj, "repeat_penalty", p.repeat_penalty, 0, 1e6, "a number > 0 (1 = off)");
  if (p.repeat_penalty <= 0) bad_request("'repeat_penalty' must be > 0 (1 = off)", "repeat_penalty");
  if (const Json* seed = find(obj, "seed")) {
    if (!seed->is_number_integer()) wrong_type("seed", "an integer", *seed);
    if (seed->is_number_unsigned()) {
      p.seed = seed->get<uint64_t>();
      r.seed_given = true;
    } else if (seed->get<int64_t>() >= 0) {
      p.seed = uint64_t(seed->get<int64_t>());
      r.seed_given = true;
    } else if (seed->get<int64_t>() != -1) {
      bad_request(fmt::format("'seed' must be -1 (random) or an integer >= 0, got {}", seed->get<int64_t>()), "seed");
    }
  }
  try {
    validate(p);
  } catch (const Error& e) {  // what the checks above let through (a server default, say)
    bad_request(e.what());
  }
}

void parse_logprobs(const Json& obj, ApiRequest& r) {
  const Json* lp = find(obj, "logprobs");
  if (r.kind == ApiKind::completion) {  // legacy: logprobs is the number of alternatives
    if (lp == nullptr) return;
    if (lp->is_boolean()) {
      r.logprobs = lp->get<bool>();
      return;
    }
    r.top_logprobs = int32_t(get_int(obj, "logprobs", 0, 0, kMaxTopLogprobs, "an integer in [0, 20]"));
    r.logprobs = true;
    return;
  }
  r.logprobs = get_bool(obj, "logprobs", false);
  if (find(obj, "top_logprobs") != nullptr) {
    r.top_logprobs = int32_t(get_int(obj, "top_logprobs", 0, 0, kMaxTopLogprobs, "an integer in [0, 20]"));
    if (!r.logprobs) bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  }
}

// Fields that ask for what this server does not do: refused rather than ignored.
void refuse_unsupported(const Json& obj) {
  get_int(obj, "n", 1, 1, 1, "1 (one choice per request)");
  get_int(obj, "best_of", 1, 1, 1, "1 (one choice per request)");
  if (get_bool(obj, "echo", false)) bad_request("'echo' is not supported", "echo");
  if (const Json* tools = find(obj, "tools"); tools != nullptr && !(tools->is_array() && tools->empty())) {
    bad_request("'tools' are not supported", "tools");
  }
  if (const Json* f = find(obj, "functions"); f != nullptr) bad_request("'functions' are not supported", "functions");
  if (const Json* bias = find(obj, "logit_bias"); bias != nullptr && !(bias->is_object() && bias->empty())) {
    bad_request("'logit_bias' is not supported", "logit_bias");
  }
  if (const Json* suffix = find(obj, "suffix"); suffix != nullptr && !(suffix->is_string() && suffix->empty())) {
    bad_request("'suffix' is not supported", "suffix");
  }
  if (const Json* format = find(obj, "response_format")) {
    if (!format->is_object()) wrong_type("response_format", "an object", *format);
    const std::string type = get_string(*format, "type");
    if (type != "text")
      bad_request(fmt::format("'response_format' type '{}' is not supported", type), "response_format");
  }
}

int64_t parse_max_tokens(const Json& obj) {
  constexpr std::string_view range = "an integer >= 1, or -1 (until the end)";
  int64_t n = get_int(obj, "max_tokens", -1, -1, std::numeric_limits<int64_t>::max(), range);
  if (n == 0) bad_request("'max_tokens' must be an integer >= 1, or -1 (until the end), got 0", "max_tokens");
  if (find(obj, "max_completion_tokens") != nullptr) {
    n = get_int(obj, "max_completion_tokens", -1, -1, std::numeric_limits<int64_t>::max(), range);
    if (n == 0) {
      bad_request("'max_completion_tokens' must be an integer >= 1, or -1 (until the end), got 0",
                  "max_completion_tokens");
    }
  }
  return n;
}

}  // namespace

void bad_request(std::string message, std::string param, std::string code) {
  throw ApiError(400, "invalid_request_error", std::move(message), std::move(param), std::move(code));
}

ApiRequest parse_api_request(std::string_view body, ApiKind kind, const SamplingParams& defaults) {
  const Json obj = parse_object(body);
  ApiRequest r;
  r.kind = kind;
  r.sampling = defaults;
  r.model = get_string(obj, "model");
  if (kind == ApiKind::chat) {
    r.messages = parse_messages(obj);
  } else {
    parse_prompt(obj, r);
  }
  refuse_unsupported(obj);
  parse_sampling(obj, r);
  r.max_tokens = parse_max_tokens(obj);
  r.stop = parse_stop(obj);
  r.stream = get_bool(obj, "stream", false);
  if (const Json* options = find(obj, "stream_options")) {
    if (!options->is_object()) wrong_type("stream_options", "an object", *options);
    r.include_usage = get_bool(*options, "include_usage", false);
  }
  parse_logprobs(obj, r);
  r.ignore_eos = get_bool(obj, "ignore_eos", false);
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  const Json obj = parse_object(body);
  TokenizeRequest r;
  const Json* content = find(obj, "content");
  if (content == nullptr) bad_request("'content' is required", "content");
  if (!content->is_string()) wrong_type("content", "a string", *content);
  r.content = content->get<std::string>();
  r.add_special = get_bool(obj, "add_special", r.add_special);
  r.parse_special = get_bool(obj, "parse_special", r.parse_special);
  r.with_pieces = get_bool(obj, "with_pieces", r.with_pieces);
  return r;
}

std::vector<TokenId> parse_detokenize_request(std::string_view body) {
  const Json obj = parse_object(body);
  const Json* tokens = find(obj, "tokens");
  if (tokens == nullptr) bad_request("'tokens' is required", "tokens");
  if (!tokens->is_array()) wrong_type("tokens", "an array of token ids", *tokens);
  return token_array(*tokens, "tokens");
}

std::vector<ChatMessage> parse_template_request(std::string_view body) {
  return parse_messages(parse_object(body));
}

}  // namespace strata::server
