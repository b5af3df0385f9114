#include "runtime/backends.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/tensor_parallel/tensor_parallel_backend.h"
#ifdef STRATA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#ifdef STRATA_HAVE_NCCL
#include "backend/tensor_parallel/nccl/nccl_communicator.h"
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

namespace {

std::unique_ptr<Backend> make_split_backend(std::string_view name, int threads, const CpuOptions& cpu, int k) {
#ifdef STRATA_HAVE_CUDA
  if (name == "cuda" || (name == "auto" && cuda_device_available())) {
    const int present = cuda_device_count();
    if (present < k) fail("--tensor-parallel {} needs {} GPUs, {} present", k, k, present);
#ifdef STRATA_HAVE_NCCL
    std::vector<std::unique_ptr<Backend>> parts;
    for (int r = 0; r < k; ++r) parts.push_back(make_cuda_backend(r, CudaOptions::from_environment()));
    auto comm = make_nccl_communicator(parts);
    return std::make_unique<TensorParallelBackend>(std::move(parts), std::move(comm));
#else
    fail(
        "--tensor-parallel {} over GPUs needs NCCL, which this build did not find (install libnccl-dev or the "
        "CUDA toolkit's NCCL and rebuild)",
        k);
#endif
  }
#endif
  if (name == "cuda") return make_backend(name, threads, cpu);  // the build's error
  return make_in_process_tensor_parallel(k, [&] { return make_backend(name, threads, cpu); });
}

}  // namespace

std::unique_ptr<Backend> make_backend(std::string_view name, int threads, const CpuOptions& cpu, int tensor_parallel) {
  if (tensor_parallel < 1) fail("--tensor-parallel must be 1 or more, got {}", tensor_parallel);
  if (tensor_parallel > 1) return make_split_backend(name, threads, cpu, tensor_parallel);
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
  if (const auto* tp = dynamic_cast<const TensorParallelBackend*>(&backend)) {
    return fmt::format("{} x {} (tensor parallel, {})", tp->n_parts(), describe_backend(tp->part(0)),
                       tp->communicator().name());
  }
  return std::string(backend.name());
}

std::string describe_split(const Backend& backend) {
  const auto* tp = dynamic_cast<const TensorParallelBackend*>(&backend);
  if (tp == nullptr) return "";
  const auto mib = [](size_t bytes) { return double(bytes) / double(1 << 20); };
  const TensorParallelBackend::WeightBytes w = tp->weight_bytes();
  return fmt::format("tensor parallel: {} parts, weights per part: {:.1f} MiB split + {:.1f} MiB whole", tp->n_parts(),
                     mib(w.split), mib(w.whole));
}

}  // namespace strata
