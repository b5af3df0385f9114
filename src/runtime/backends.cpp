#include "runtime/backends.h"

#include <thread>

#include "backend/cpu_ref/cpu_ref_backend.h"
#ifdef STRATA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/error.h"

namespace strata {

std::unique_ptr<Backend> make_backend(std::string_view name, int threads) {
  const int n_threads = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
#ifdef STRATA_HAVE_CUDA
  if (name == "cuda") return make_cuda_backend(0, CudaOptions::from_environment());
  if (name == "auto" && cuda_device_available()) return make_cuda_backend(0, CudaOptions::from_environment());
#else
  if (name == "cuda")
    fail("backend 'cuda': this build of Strata has no CUDA backend (nvcc was not found at build time)");
#endif
  if (name == "cpu_ref" || name == "cpu" || name == "auto") {
    return std::make_unique<CpuRefBackend>(Accumulation::f32, n_threads);
  }
  if (name == "cpu_ref64") return std::make_unique<CpuRefBackend>(Accumulation::f64, n_threads);
  fail("unknown backend '{}' (expected cpu, cpu_ref, cpu_ref64, cuda or auto)", name);
}

}  // namespace strata
