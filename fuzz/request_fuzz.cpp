// libFuzzer target: the server's request parsers on arbitrary bytes. Byte 0 picks the parser
// (chat, completion, tokenize, detokenize, apply-template); the rest is the body. Checks: only
// ApiError is thrown (status 400), and what parses is in range: the sampling parameters pass
// validate(), max_tokens is -1 or >= 1, top_logprobs is 0..20, token ids are >= 0, stop strings
// are not empty, and a chat's messages format with a template or fail with ApiError.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/api_request.h"
#include "server/engine_request.h"

namespace {

using namespace strata;
using namespace strata::server;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_request(const ApiRequest& r) {
  validate(r.sampling);  // throws strata::Error (not ApiError): the fuzzer reports it
  check(r.max_tokens == -1 || r.max_tokens >= 1);
  check(r.top_logprobs >= 0 && r.top_logprobs <= 20);
  for (const auto& s : r.stop) check(!s.empty());
  for (const TokenId id : r.prompt_tokens) check(id >= 0);
  const EngineRequest e = make_engine_request(r, {1}, 7);
  check(e.top_logprobs == (r.logprobs ? r.top_logprobs : -1));
  check(r.seed_given || e.sampling.seed == 7);
}

void format(const std::vector<ChatMessage>& messages) {
  static const ChatTemplate chatml(ChatFamily::chatml, "<s>", "</s>");
  ServedModel model;
  model.chat_template = &chatml;
  format_chat(model, messages);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 5) {
      case 0: {
        const ApiRequest r = parse_api_request(body, ApiKind::chat, SamplingParams{});
        check(!r.messages.empty());
        check_request(r);
        format(r.messages);
        break;
      }
      case 1:
        check_request(parse_api_request(body, ApiKind::completion, SamplingParams{}));
        break;
      case 2:
        parse_tokenize_request(body);
        break;
      case 3:
        for (const TokenId id : parse_detokenize_request(body)) check(id >= 0);
        break;
      default:
        format(parse_template_request(body));
        break;
    }
  } catch (const ApiError& e) {
    check(e.status == 400 && e.type == "invalid_request_error");
  }
  return 0;
}
