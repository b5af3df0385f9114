#include "runtime/generate.h"

#include <chrono>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::string_view stop_reason_text(StopReason reason) {
  switch (reason) {
    case StopReason::end_of_generation: return "end of generation";
    case StopReason::token_limit: return "token limit";
    case StopReason::context_full: return "context full";
    case StopReason::interrupted: return "interrupted";
    case StopReason::stop_string: return "stop string";
  }
  return "?";
}

GenerationStats generate(Session& session, const Tokenizer& tokenizer, Sampler& sampler,
                         const GenerationRequest& request) {
  GenerationStats stats;
  stats.n_prompt = int64_t(request.prompt.size());
  if (request.prompt.empty()) fail("the prompt is empty: nothing to continue");
  for (const TokenId t : request.prompt) sampler.accept(t);

  auto start = Clock::now();
  std::span<const float> logits = session.eval(request.prompt, false, request.tap);
  stats.prompt_seconds = seconds_since(start);

  StreamDecoder decoder(tokenizer, {.skip_special = true, .strip_space_prefix = false});
  StopStrings stop_strings(request.stop_strings);
  auto emit = [&](const std::string& text) {
    const std::string shown = stop_strings.push(text);
    if (!shown.empty() && request.on_text != nullptr) (*request.on_text)(shown);
  };
  std::vector<TokenId> eog;  // masked with ignore_eos
  std::vector<float> masked;
  if (request.ignore_eos) {
    for (TokenId id = 0; id < tokenizer.n_tokens(); ++id)
      if (tokenizer.is_eog(id)) eog.push_back(id);
  }
  start = Clock::now();
  stats.stop = StopReason::token_limit;
  for (bool more = request.n_predict != 0; more;) {
    if (request.stop != nullptr && request.stop->load()) {
      stats.stop = StopReason::interrupted;
      break;
    }
    if (!eog.empty()) {
      masked.assign(logits.begin(), logits.end());
      for (const TokenId id : eog)
        if (size_t(id) < masked.size()) masked[size_t(id)] = -std::numeric_limits<float>::infinity();
      logits = masked;
    }
    const TokenId id = sampler.sample(logits);
    sampler.accept(id);
    stats.last_token = id;
    if (tokenizer.is_eog(id) && !request.ignore_eos) {
      stats.stop = StopReason::end_of_generation;
      break;
    }
    ++stats.n_generated;
    stats.tokens.push_back(id);
    emit(decoder.push(id));
    if (stop_strings.found()) {
      stats.stop = StopReason::stop_string;
      break;
    }
    if (request.n_predict >= 0 && stats.n_generated >= request.n_predict) break;  // token limit
    if (session.n_past() >= session.n_ctx()) {
      stats.stop = StopReason::context_full;
      break;
    }
    const TokenId next[1] = {id};
    logits = session.eval(next, false, request.tap);
  }
  emit(decoder.finish());
  if (stop_strings.found()) stats.stop = StopReason::stop_string;
  if (!stop_strings.found() && request.on_text != nullptr) {
    if (const std::string rest = stop_strings.finish(); !rest.empty()) (*request.on_text)(rest);
  }
  stats.generation_seconds = seconds_since(start);
  return stats;
}

std::string format_stats(const GenerationStats& s) {
  auto rate = [](int64_t n, double sec) { return sec > 0 ? double(n) / sec : 0.0; };
  return fmt::format(
      "prompt: {} tokens in {:.2f} s ({:.1f} tok/s) | generation: {} tokens in {:.2f} s ({:.1f} tok/s) | "
      "stop: {} | peak RSS {:.0f} MiB",
      s.n_prompt, s.prompt_seconds, rate(s.n_prompt, s.prompt_seconds), s.n_generated, s.generation_seconds,
      rate(s.n_generated, s.generation_seconds), stop_reason_text(s.stop), double(peak_rss_bytes()) / (1 << 20));
}

size_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return size_t(std::stoull(line.substr(6))) * 1024;
  }
  return 0;
}

}  // namespace strata
