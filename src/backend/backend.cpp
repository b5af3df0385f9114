// The default implementations of Backend's non-pure methods.
#include "backend/backend.h"

#include <cstring>

#include "core/error.h"

namespace strata {

void Backend::read_f32(const Tensor& t, std::span<float> out) {
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_f32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  const Tensor host = to_host_f32(t);
  std::memcpy(out.data(), host.data(), out.size_bytes());
}

}  // namespace strata
