// The table strata verify and strata compare print: one row per named tensor.
#pragma once

#include <vector>

#include "runtime/tensor_diff.h"

namespace strata::cli {

// Prints the rows and a line naming the first failure; returns the number of failures.
int print_diff_table(const std::vector<TensorDiff>& diffs);

}  // namespace strata::cli
