#include "cli/diff_table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>

namespace strata::cli {

int print_diff_table(const std::vector<TensorDiff>& diffs) {
  std::printf("%-24s %-18s %12s %12s %10s %10s  %s\n", "tensor", "shape", "max_abs", "nmse", "cosine", "threshold",
              "result");
  int failures = 0;
  const TensorDiff* first = nullptr;
  for (const auto& d : diffs) {
    const std::string shape = fmt::format("[{}]", fmt::join(d.shape, ", "));
    std::printf("%-24s %-18s %12.4e %12.4e %10.7f %10.2e  %s\n", d.name.c_str(), shape.c_str(), d.max_abs, d.nmse,
                d.cosine, d.threshold, d.pass ? "ok" : "FAIL");
    if (d.route_ties > 0) {
      std::printf("%-24s %lld token(s) routed to other experts at a router near-tie: nmse %.4e without them\n", "",
                  (long long)d.route_ties, d.nmse_checked);
    }
    if (!d.pass) {
      ++failures;
      if (first == nullptr) first = &d;
    }
  }
  if (first != nullptr) {
    std::printf("first failure: %s (nmse %.4e > threshold %.2e)\n", first->name.c_str(), first->nmse, first->threshold);
  }
  std::printf("%zu tensors compared, %d failed\n", diffs.size(), failures);
  return failures;
}

}  // namespace strata::cli
