// Backends by name, as the command line names them.
#pragma once

#include <memory>
#include <string_view>

#include "backend/backend.h"

namespace strata {

// "cpu_ref" (the f32 reference), "cpu_ref64" (the reference accumulating in f64),
// "cpu" (the fastest CPU backend; the reference until a faster one exists), "cuda" (GPU 0;
// only in builds with nvcc) and "auto" (cuda when a usable GPU is present, else cpu).
// `threads` 0 = all cores.
std::unique_ptr<Backend> make_backend(std::string_view name, int threads = 0);

}  // namespace strata
