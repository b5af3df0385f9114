// The CUDA backend (src/backend/cuda/): the ops of backend.h as CUDA kernels, checked against
// cpu_ref by tests/cuda. This header is plain C++ (no CUDA headers), for the code that picks
// backends by name.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace strata {

// The backend on GPU `device`. Throws strata::Error with a clear message when there is no
// GPU, when this build has no kernels for its compute capability, or when CUDA fails.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

// Whether a CUDA GPU is present and usable by this build (no error when not).
bool cuda_device_available();

}  // namespace strata
