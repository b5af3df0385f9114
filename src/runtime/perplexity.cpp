#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace strata {
namespace {

// -log softmax(logits)[target], in double.
double negative_log_likelihood(std::span<const float> logits, TokenId target) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float l : logits) sum += std::exp(double(l) - double(max));
  return std::log(sum) - (double(logits[size_t(target)]) - double(max));
}

}  // namespace

PerplexityResult perplexity(Session& session, const Tokenizer& tokenizer, std::span<const TokenId> tokens,
                            int64_t n_ctx, int64_t max_chunks,
                            const std::function<void(int64_t, double)>& on_chunk, const Tap& tap) {
  if (n_ctx < 4) fail("perplexity: the chunk size must be at least 4 tokens, got {}", n_ctx);
  if (n_ctx > session.n_ctx()) fail("perplexity: chunks of {} do not fit a context of {}", n_ctx, session.n_ctx());
  if (int64_t(tokens.size()) < 2 * n_ctx) {
    fail("perplexity: the text is {} tokens; it needs at least 2 * {} (-c) tokens", tokens.size(), n_ctx);
  }
  PerplexityResult r;
  r.n_chunks = int64_t(tokens.size()) / n_ctx;
  if (max_chunks >= 0) r.n_chunks = std::min(r.n_chunks, max_chunks);
  const bool add_bos = tokenizer.vocab().add_bos && tokenizer.vocab().bos >= 0;
  const int64_t first = n_ctx / 2;
  const int64_t n_vocab = session.n_vocab();
  double nll = 0, nll2 = 0;
  std::vector<TokenId> chunk(static_cast<size_t>(n_ctx));
  for (int64_t c = 0; c < r.n_chunks; ++c) {
    std::copy_n(tokens.begin() + c * n_ctx, n_ctx, chunk.begin());
    if (add_bos) chunk[0] = tokenizer.vocab().bos;
    session.rewind(0);
    const std::span<const float> logits = session.eval(chunk, true, tap);  // [n_ctx][n_vocab]
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const double v = negative_log_likelihood(logits.subspan(size_t(j * n_vocab), size_t(n_vocab)),
                                               tokens[size_t(c * n_ctx + j + 1)]);
      nll += v;
      nll2 += v * v;
      ++r.n_scored;
    }
    r.running.push_back(std::exp(nll / double(r.n_scored)));
    if (on_chunk) on_chunk(c, r.running.back());
  }
  const double mean = nll / double(r.n_scored);
  const double var = nll2 / double(r.n_scored) - mean * mean;
  r.ppl = std::exp(mean);
  r.ppl_error = r.n_scored > 1 && var > 0 ? r.ppl * std::sqrt(var / double(r.n_scored - 1)) : 0.0;
  return r;
}

}  // namespace strata
