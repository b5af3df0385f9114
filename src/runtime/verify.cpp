#include "runtime/verify.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "sampling/stages.h"

namespace strata {
namespace {

TokenId argmax(std::span<const float> logits) {
  return TokenId(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Appends n greedy tokens from `session` (which it leaves empty again).
std::vector<TokenId> greedy_extend(Session& session, std::span<const TokenId> prompt, int64_t n) {
  std::vector<TokenId> tokens(prompt.begin(), prompt.end());
  std::span<const float> logits = session.eval(prompt);
  for (int64_t i = 0; i < n && session.n_past() < session.n_ctx(); ++i) {
    tokens.push_back(argmax(logits));
    const TokenId next[1] = {tokens.back()};
    if (i + 1 < n) logits = session.eval(next);
  }
  session.rewind(0);
  return tokens;
}

// The logits of every position of `tokens` ([n_tokens * n_vocab]): the first n_prompt in one
// pass (the prompt path), then each further token by a decode step of its own (the path that
// generates text), every named intermediate recorded into `rec`.
std::vector<float> tapped_logits(Session& session, std::span<const TokenId> tokens, size_t n_prompt, Recording& rec) {
  const Tap tap = recording_tap(session.backend(), rec);
  const std::span<const float> first = session.eval(tokens.first(n_prompt), true, tap);
  std::vector<float> logits(first.begin(), first.end());
  for (size_t i = n_prompt; i < tokens.size(); ++i) {
    const std::span<const float> step = session.eval(tokens.subspan(i, 1), false, tap);
    logits.insert(logits.end(), step.begin(), step.end());
  }
  return logits;
}

}  // namespace

bool VerifyResult::pass() const {
  return first_failure() == nullptr;
}

const TensorDiff* VerifyResult::first_failure() const {
  for (const auto& d : diffs) {
    if (!d.pass) return &d;
  }
  return nullptr;
}

VerifyResult verify(Session& test, Session& reference, std::span<const TokenId> prompt, int64_t n_greedy) {
  if (prompt.empty()) fail("verify: the prompt is empty");
  if (test.n_vocab() != reference.n_vocab()) fail("verify: the two models have different vocabularies");
  VerifyResult r;
  r.tokens = greedy_extend(reference, prompt, n_greedy);
  if (int64_t(r.tokens.size()) > std::min(test.n_ctx(), reference.n_ctx())) {
    fail("verify: {} tokens do not fit the context (--ctx-size)", r.tokens.size());
  }
  Recording rec_test, rec_ref;
  const std::vector<float> logits_test = tapped_logits(test, r.tokens, prompt.size(), rec_test);
  const std::vector<float> logits_ref = tapped_logits(reference, r.tokens, prompt.size(), rec_ref);
  r.diffs = diff_recordings(rec_test, rec_ref);

  const size_t n_vocab = size_t(test.n_vocab());
  r.n_positions = int64_t(r.tokens.size());
  for (int64_t p = 0; p < r.n_positions; ++p) {
    const auto a = std::span(logits_test).subspan(size_t(p) * n_vocab, n_vocab);
    const auto b = std::span(logits_ref).subspan(size_t(p) * n_vocab, n_vocab);
    const TokenId ta = argmax(a), tb = argmax(b);
    if (ta == tb) {
      ++r.n_top1_agree;
    } else {
      r.disagreements.push_back({p, ta, tb, top2_margin(b)});
    }
    if (p + 1 >= int64_t(prompt.size()) && p + 1 < r.n_positions) {  // predicts greedy token p + 1
      const double margin = top2_margin(b);
      if (r.closest_position < 0 || margin < r.closest_margin) r.closest_position = p, r.closest_margin = margin;
    }
  }
  return r;
}

}  // namespace strata
