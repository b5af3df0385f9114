// The CUDA backend (src/backend/cuda/): the ops of backend.h as CUDA kernels, checked against
// cpu_ref by tests/cuda. This header is plain C++ (no CUDA headers), for the code that picks
// backends by name.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace strata {

// The CUDA backend's switches, for checks and profiling (README: CUDA switches). Read once,
// where the backend is made, and passed down.
struct CudaOptions {
  enum class Gemm { f16, tf32, f32 };  // the prompt GEMM's operands (cuda_matmul.cpp)
  enum class Matvec { q8, f32 };       // decode's activations on the integer kernels' matrices
  Gemm gemm = Gemm::f16;
  Matvec matvec = Matvec::q8;
  bool graphs = true;    // decode steps recorded as CUDA graphs and replayed
  bool profile = false;  // per-op GPU times printed at exit (turns graphs off)

  // From STRATA_CUDA_GEMM=f16|tf32|f32, STRATA_CUDA_MATVEC=q8|f32, STRATA_CUDA_GRAPHS=0|1,
  // STRATA_CUDA_PROFILE=0|1; an unknown value throws naming the variable and what it takes.
  static CudaOptions from_environment();
};

// The backend on GPU `device`. Throws strata::Error with a clear message when there is no
// GPU, when this build has no kernels for its compute capability, or when CUDA fails.
std::unique_ptr<Backend> make_cuda_backend(int device = 0, const CudaOptions& options = {});

// Whether a CUDA GPU is present and usable by this build (no error when not).
bool cuda_device_available();

// The number of CUDA GPUs present (0 when none or the driver fails; no error).
int cuda_device_count();

// The GPU and the stream (a cudaStream_t) that a backend made by make_cuda_backend queues its
// ops on, for collectives over several of them (NCCL); fails for another backend.
struct CudaQueue {
  int device = 0;
  void* stream = nullptr;
};
CudaQueue cuda_queue_of(Backend& backend);

}  // namespace strata
