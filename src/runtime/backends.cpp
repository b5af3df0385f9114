#include "runtime/backends.h"

#include <thread>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "core/error.h"

namespace strata {

std::unique_ptr<Backend> make_backend(std::string_view name, int threads) {
  const int n_threads = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  if (name == "cpu_ref" || name == "cpu" || name == "auto") {
    return std::make_unique<CpuRefBackend>(Accumulation::f32, n_threads);
  }
  if (name == "cpu_ref64") return std::make_unique<CpuRefBackend>(Accumulation::f64, n_threads);
  if (name == "cuda") fail("backend 'cuda': the CUDA backend is not built yet");
  fail("unknown backend '{}' (expected cpu, cpu_ref, cpu_ref64, cuda or auto)", name);
}

}  // namespace strata
