// The step-dependent values of a recorded decode step (CudaBackend::run_step), written on the
// stream before the recording is replayed.
#include <cstdlib>
#include <string_view>

#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

__global__ void set_step_kernel(int32_t* values, int32_t token, int32_t pos) {
  values[0] = token;
  values[1] = pos;
}

}  // namespace

bool dependent_launch_enabled() {
  static const bool enabled = [] {
    const char* v = bench_switch("STRATA_CUDA_PDL");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return enabled;
}

cudaError_t launch_set_step(int32_t* values, int32_t token, int32_t pos, cudaStream_t stream) {
  set_step_kernel<<<1, 1, 0, stream>>>(values, token, pos);
  return cudaGetLastError();
}

}  // namespace strata::cuda
