#include "server/metrics.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help, int64_t value) {
  out += fmt::format("# HELP strata_{0} {1}\n# TYPE strata_{0} {2}\nstrata_{0} {3}\n", name, help, type, value);
}

}  // namespace

HttpStats HttpCounters::snapshot() const {
  HttpStats s;
  for (size_t i = 0; i < classes_.size(); ++i) s.responses[i] = classes_[i].load(std::memory_order_relaxed);
  s.disconnects = disconnects_.load(std::memory_order_relaxed);
  return s;
}

std::string render_metrics(const EngineStats& e, const HttpStats& h) {
  std::string out =
      "# HELP strata_http_responses_total HTTP responses by status class.\n"
      "# TYPE strata_http_responses_total counter\n";
  for (size_t c = 2; c <= 5; ++c)
    out += fmt::format("strata_http_responses_total{{status=\"{}xx\"}} {}\n", c, h.responses[c]);
  metric(out, "client_disconnects_total", "counter", "Generations cancelled because the client disconnected.",
         h.disconnects);
  metric(out, "requests_finished_total", "counter", "Generation requests finished (cancelled ones included).",
         e.requests_finished);
  metric(out, "prompt_tokens_total", "counter", "Prompt tokens of the requests.", e.prompt_tokens);
  metric(out, "cached_prompt_tokens_total", "counter", "Prompt tokens found in the prefix cache (not recomputed).",
         e.cached_tokens);
  metric(out, "generated_tokens_total", "counter", "Tokens generated.", e.generated_tokens);
  metric(out, "requests_queued", "gauge", "Requests waiting for a free sequence.", e.queued);
  metric(out, "requests_running", "gauge", "Requests being evaluated.", e.running);
  metric(out, "kv_blocks_used", "gauge", "KV cache blocks in use.", e.kv_blocks_used);
  metric(out, "kv_blocks_cached", "gauge", "KV cache blocks nobody uses, kept for prompts that start the same.",
         e.kv_blocks_cached);
  metric(out, "kv_blocks_total", "gauge", "KV cache blocks in the budget.", e.kv_blocks_total);
  return out;
}

}  // namespace strata::server
