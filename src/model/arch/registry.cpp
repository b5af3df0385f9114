// The table of supported architectures.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>

#include "model/arch/architecture.h"

namespace strata {
namespace {

const std::array<const Architecture*, 6> kAll = {&kLlama, &kQwen2, &kQwen3, &kGemma3, &kPhi3, &kQwen3Moe};

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture* a : kAll) {
    if (a->name == name) return a;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::vector<std::string_view> names;
  for (const Architecture* a : kAll) names.push_back(a->name);
  std::sort(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace strata
