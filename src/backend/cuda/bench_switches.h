// Measurement-only switches of the CUDA backend: kernel variants kept to measure the shipped
// path against (docs/benchmarks.md says which). Their environment variables are read only in
// a build configured with -DSTRATA_CUDA_BENCH_SWITCHES=ON; in every other build bench_switch
// is the constant nullptr, so each variant folds to its default and is not shipped.
//   STRATA_MATVEC_EXACT=1        Q4_0/Q4_K matvec in the exact (unfactored) form
//   STRATA_MATVEC_Q4_0_UNROLL=N  the Q4_0 matvec's block-loop unrolling (1, 2; default 4)
//   STRATA_MATVEC_SLAB=0         matvec rows read directly instead of staged in shared memory
//   STRATA_CUDA_PDL=0            no programmatic dependent launch
//   STRATA_CUDA_ATTENTION=scalar prompt attention without tensor cores
//   STRATA_CUDA_FUSED_ROPE=0     decode ropes and stores q, k, v by a launch of its own
#pragma once

#include <cstdlib>

namespace strata::cuda {

#ifdef STRATA_CUDA_BENCH_SWITCHES
inline const char* bench_switch(const char* name) {
  return std::getenv(name);
}
#else
constexpr const char* bench_switch(const char*) {
  return nullptr;
}
#endif

}  // namespace strata::cuda
