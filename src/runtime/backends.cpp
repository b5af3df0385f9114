#include "runtime/backends.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_ref/cpu_ref_backend.h"
#ifdef STRATA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/error.h"
#include "core/thread_pool.h"

namespace strata {

cpu::Isa cpu_isa_from_option(std::string_view name, cpu::Isa detected) {
  std::string have;  // the paths up to `detected`, for messages
  for (int level = 0; level <= int(detected); ++level) {
    have += (have.empty() ? "" : ", ") + std::string(cpu::isa_name(cpu::Isa(level)));
  }
  if (name.empty()) return detected;
  const std::optional<cpu::Isa> isa = cpu::isa_from_name(name);
  if (!isa) fail("--cpu-isa: unknown CPU path '{}' (this CPU has: {})", name, have);
  if (*isa > detected) fail("--cpu-isa: this CPU cannot run the '{}' path (it has: {})", name, have);
  return *isa;
}

std::unique_ptr<Backend> make_backend(std::string_view name, int threads, const CpuOptions& cpu) {
  const int n_threads = threads > 0 ? threads : ThreadPool::physical_cores();
#ifdef STRATA_HAVE_CUDA
  if (name == "cuda") return make_cuda_backend(0, CudaOptions::from_environment());
  if (name == "auto" && cuda_device_available()) return make_cuda_backend(0, CudaOptions::from_environment());
#else
  if (name == "cuda")
    fail("backend 'cuda': this build of Strata has no CUDA backend (nvcc was not found at build time)");
#endif
  if (name == "cpu" || name == "auto") {
    return std::make_unique<CpuBackend>(n_threads, cpu_isa_from_option(cpu.isa), cpu.f32_activations, cpu.one_term_q8);
  }
  if (name == "cpu_ref") return std::make_unique<CpuRefBackend>(Accumulation::f32, n_threads);
  if (name == "cpu_ref64") return std::make_unique<CpuRefBackend>(Accumulation::f64, n_threads);
  fail("unknown backend '{}' (expected cpu, cpu_ref, cpu_ref64, cuda or auto)", name);
}

std::string describe_backend(const Backend& backend) {
  if (const auto* cpu = dynamic_cast<const CpuBackend*>(&backend)) return cpu->describe();
  return std::string(backend.name());
}

}  // namespace strata
