// Routing near-ties in the comparison of two runs of a mixture-of-experts model.
//
// A token's experts are the n_used largest router logits: where the reference's n_used-th and
// (n_used+1)-th logits are closer than the two backends' router logits differ at that token,
// the test may route it to another expert without either backend being wrong, and the
// per-slot expert outputs of that token then differ wholesale. Such tokens are left out of the
// pass/fail NMSE (TensorDiff::nmse_checked) of that layer's expert tensors and ffn_out; a token
// routed differently where its logits' error does not explain it stays in (a routing bug fails).
// The full NMSE still propagates to later tensors' thresholds.
#pragma once

#include <vector>

#include "runtime/tensor_diff.h"

namespace strata {

// Sets route_ties and nmse_checked of the diffs of every layer and pass whose router logits
// (blk.N.ffn_moe_logits[#k], [n_expert, m]) differ in choice between `test` and `reference`
// at near-ties (n_used from blk.N.ffn_moe_weights[#k]).
void mark_route_ties(const Recording& test, const Recording& reference, std::vector<TensorDiff>& diffs);

}  // namespace strata
