// token_logprobs (runtime/logprobs.h): log-softmax after temperature, the best tokens in order.
#include "runtime/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace strata {
namespace {

TEST(TokenLogprobs, LogSoftmaxAfterTemperatureAndTheBestInOrder) {
  const std::vector<float> logits = {1.0f, 3.0f, -INFINITY, 3.0f, 0.5f};
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
  token_logprobs(logits, 0.5f, 4, 10, chosen, top);
  double z = 0;
  for (const float l : logits) z += std::exp(double(l) / 0.5);
  EXPECT_EQ(chosen.token, 4);
  EXPECT_NEAR(chosen.logprob, 0.5 / 0.5 - std::log(z), 1e-6);
  ASSERT_EQ(top.size(), logits.size());  // at most the vocabulary
  EXPECT_EQ(top[0].token, 1);            // ties: the lower id first
  EXPECT_EQ(top[1].token, 3);
  EXPECT_EQ(top[2].token, 0);
  EXPECT_EQ(top[3].token, 4);
  EXPECT_EQ(top[4].token, 2);
  EXPECT_EQ(top[4].logprob, -INFINITY);
  double p = 0;
  for (const auto& t : top) p += std::exp(double(t.logprob));
  EXPECT_NEAR(p, 1.0, 1e-6);
  token_logprobs(logits, 1.0f, 1, 0, chosen, top);
  EXPECT_TRUE(top.empty());
}

TEST(TokenLogprobs, RefusesBadArguments) {
  const std::vector<float> logits = {1.0f, 2.0f};
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
  EXPECT_THROW(token_logprobs(logits, 1.0f, 2, 1, chosen, top), Error);
  EXPECT_THROW(token_logprobs(logits, 1.0f, -1, 1, chosen, top), Error);
  EXPECT_THROW(token_logprobs(logits, 0.0f, 0, 1, chosen, top), Error);
}

}  // namespace
}  // namespace strata
