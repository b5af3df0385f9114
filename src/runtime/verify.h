// strata verify: the same tokens through two backends, every named intermediate compared.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "runtime/tensor_diff.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct TokenDisagreement {
  int64_t position;  // index in the token sequence whose next-token prediction differs
  TokenId test_top1;
  TokenId reference_top1;
  double reference_margin;  // top-1 minus top-2 logit of the reference at that position
};

struct VerifyResult {
  std::vector<TokenId> tokens;    // prompt plus the reference's greedy continuation
  std::vector<TensorDiff> diffs;  // execution order
  int64_t n_positions = 0;
  int64_t n_top1_agree = 0;
  std::vector<TokenDisagreement> disagreements;
  // The reference's nearest tie over the greedy tokens (the positions whose prediction is a
  // greedy token): where its top-2 margin is smallest, the first place a backend's greedy
  // decode may part from the reference's without either being wrong. -1: no greedy tokens.
  int64_t closest_position = -1;
  double closest_margin = 0;
  bool pass() const;
  const TensorDiff* first_failure() const;
};

// Extends `prompt` by `n_greedy` tokens chosen greedily by the reference, then evaluates the
// sequence on each session (both must be empty), the prompt in one pass and each greedy token
// by a decode step of its own (so both the prompt path and the decode path are compared), and
// compares every tap and the logits of every position.
VerifyResult verify(Session& test, Session& reference, std::span<const TokenId> prompt, int64_t n_greedy);

}  // namespace strata
