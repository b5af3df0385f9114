// Precision of the sums inside the reference kernels (see cpu_ref_backend.h).
#pragma once

namespace strata {

enum class Accumulation {
  f32,  // sums in float: what a fast backend is expected to match
  f64,  // sums (and the arithmetic around them) in double: the tighter oracle
};

}  // namespace strata
