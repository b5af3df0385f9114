// Prints the accuracy of every backend on the shared op table (tests/backend/op_cases.h): per
// op and weight type, the largest NMSE against the double-precision expectation and against
// cpu_ref64, next to the threshold the tests hold it to. The figures that docs/benchmarks.md
// quotes; the tests assert the thresholds, this tool shows the margins.
//
//   build/bin/op_accuracy                 # every backend that can run here
//   build/bin/op_accuracy cuda cpu_ref    # these
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "backend/backends_under_test.h"
#include "backend/op_cases.h"
#include "core/error.h"

namespace strata::test {
namespace {

struct Worst {
  double expect = 0, reference = 0, threshold = 0;
  int cases = 0;
};

// "matmul/q4_K/k64_n7_m3" -> "matmul/q4_K"; other ops by their op name.
std::string key_of(const OpCase& c) {
  if (c.op != "matmul" && c.op != "get_rows" && c.op != "store_kv" && c.op != "attention") return c.op;
  const size_t slash = c.name.find('/');
  return c.op + "/" + c.name.substr(slash + 1, c.name.find('/', slash + 1) - slash - 1);
}

void report(const std::string& name, Backend& b, const std::vector<OpCase>& cases) {
  std::map<std::string, Worst> worst;
  for (const OpCase& c : cases) {
    const std::vector<float> got = c.run(b);
    Worst& w = worst[key_of(c)];
    w.expect = std::max(w.expect, nmse(c.expect(), got));
    w.reference = std::max(w.reference, nmse(to_double(c.run(reference_backend())), got));
    w.threshold = c.max_nmse;
    ++w.cases;
  }
  fmt::print("backend {}\n{:<18} {:>5} {:>12} {:>12} {:>10}\n", name, "op/type", "cases", "vs exact", "vs cpu_ref64",
             "threshold");
  for (const auto& [key, w] : worst) {
    fmt::print("{:<18} {:>5} {:>12.3e} {:>12.3e} {:>10.0e}\n", key, w.cases, w.expect, w.reference, w.threshold);
  }
}

}  // namespace
}  // namespace strata::test

int main(int argc, char** argv) {
  using namespace strata::test;
  std::vector<std::string> names(argv + 1, argv + argc);
  if (names.empty()) names = backend_names();
  const std::vector<OpCase> cases = all_op_cases();
  try {
    for (const std::string& name : names) {
      strata::Backend* b = backend_under_test(name);
      if (b == nullptr) {
        fmt::print("backend {}: cannot run here (or unknown; known: {})\n", name, fmt::join(backend_names(), ", "));
        continue;
      }
      report(name, *b, cases);
    }
  } catch (const strata::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
