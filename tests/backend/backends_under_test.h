// The registry of backends that the generic suite (backend_*_test.cpp) runs on: every case of
// the op table, the error cases, the fused cases and the forward-pass test are instantiated
// once per name here. A backend joins the suite with one line in backend_factories().
//
// Instances are made once per test binary and shared (a CUDA context is costly); a backend
// that cannot run here (cuda without a GPU) is listed all the same and its tests skip.
#pragma once

#include <cctype>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/tensor_parallel/tensor_parallel_backend.h"
#ifdef STRATA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#ifdef STRATA_HAVE_NCCL
#include "backend/tensor_parallel/nccl/nccl_communicator.h"
#endif

namespace strata::test {

using BackendFactory = std::pair<std::string, std::function<std::unique_ptr<Backend>()>>;

// name -> a new backend, or nullptr where it cannot run on this machine. The fast CPU backend
// joins once per ISA path this CPU has ("cpu/avx2", ...; the portable path always).
inline const std::vector<BackendFactory>& backend_factories() {
  static const std::vector<BackendFactory> factories = [] {
    std::vector<BackendFactory> f = {
        {"cpu_ref", [] { return std::make_unique<CpuRefBackend>(Accumulation::f32, 2); }},
        {"cpu_ref64", [] { return std::make_unique<CpuRefBackend>(Accumulation::f64, 2); }},
    };
    // cpu_ref split over 2 in-process parts (the CPU simulation of tensor parallelism): what the
    // suite uploads and allocates has no placement, so its ops run whole on each part; the split
    // paths are tests/backend/tensor_parallel_test.cpp's and the forward pass's (weights and the
    // KV cache placed by the model).
    f.emplace_back("tp2/cpu_ref", [] {
      return make_in_process_tensor_parallel(2, [] { return std::make_unique<CpuRefBackend>(Accumulation::f32, 1); });
    });
    for (cpu::Isa isa : cpu::available_isas()) {
      f.emplace_back("cpu/" + std::string(cpu::isa_name(isa)), [isa] { return std::make_unique<CpuBackend>(2, isa); });
    }
#ifdef STRATA_HAVE_CUDA
    f.emplace_back(
        "cuda", []() -> std::unique_ptr<Backend> { return cuda_device_available() ? make_cuda_backend() : nullptr; });
#endif
#ifdef STRATA_HAVE_NCCL
    // GPUs 0 and 1 over NCCL, where a machine has two.
    f.emplace_back("tp2/cuda", []() -> std::unique_ptr<Backend> {
      if (!cuda_device_available() || cuda_device_count() < 2) return nullptr;
      std::vector<std::unique_ptr<Backend>> parts;
      for (int device : {0, 1}) parts.push_back(make_cuda_backend(device));
      auto comm = make_nccl_communicator(parts);
      return std::make_unique<TensorParallelBackend>(std::move(parts), std::move(comm));
    });
#endif
    return f;
  }();
  return factories;
}

inline std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : backend_factories()) names.push_back(name);
  return names;
}

// The shared instance of backend `name`; nullptr where it cannot run here.
inline Backend* backend_under_test(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Backend>> made;
  if (auto it = made.find(name); it != made.end()) return it->second.get();
  for (const auto& [n, make] : backend_factories()) {
    if (n == name) return (made[name] = make()).get();
  }
  return nullptr;
}

// Whether backend `name` multiplies activations rounded to 8 bits (the cpu backend's default
// mode). A matmul case with a single output is then one dot product whose relative error is
// that of the rounding over how much the sum cancels, which the per-op NMSE bar does not
// describe (tests/backend/cpu_ops_test.cpp: bar_applies); the kernels are held to the bar on
// many outputs per type by the cpu kernel tests.
inline bool rounds_activations(const std::string& name) {
  return name.starts_with("cpu/");
}

// Whether op case `op`'s NMSE bar applies to an output of n_outputs values from a backend that
// does (rounds) or does not round activations to 8 bits: all but that single dot product.
inline bool nmse_bar_applies(const std::string& op, bool rounds, size_t n_outputs) {
  return !rounds || op != "matmul" || n_outputs > 1;
}

// The reference every backend is compared with: cpu_ref in f64 accumulation.
inline Backend& reference_backend() {
  return *backend_under_test("cpu_ref64");
}

// A parameter name gtest accepts ("cpu/avx2" -> "cpu_avx2").
inline std::string test_name_of(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

}  // namespace strata::test

// In a test (gtest included first): Backend& b = the backend named `name`, or the test skips.
#define STRATA_BACKEND_OR_SKIP(b, name)                                 \
  Backend* b##_ptr = ::strata::test::backend_under_test(name);          \
  if (b##_ptr == nullptr) GTEST_SKIP() << (name) << " cannot run here"; \
  Backend& b = *b##_ptr
