// Backends by name, as the command line names them.
#pragma once

#include <memory>
#include <string_view>

#include "backend/backend.h"

namespace strata {

// "cpu_ref" (the f32 reference), "cpu_ref64" (the reference accumulating in f64),
// "cpu" and "auto" (the fastest available; the reference until a faster one exists),
// "cuda" (not built yet). `threads` 0 = all cores.
std::unique_ptr<Backend> make_backend(std::string_view name, int threads = 0);

}  // namespace strata
