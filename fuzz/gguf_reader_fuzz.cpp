// libFuzzer target for the GGUF reader: parses the input as a whole file and walks every
// metadata value and tensor (reading each tensor's first and last byte), so that anything
// the reader accepts is also safe to use. Malformed input must end in strata::Error; any
// other exception, crash or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "gguf/reader.h"

namespace {

using strata::gguf::Value;

// Touches every byte of every value (strings included) so ASan sees any bad view.
uint64_t walk(const Value& v, int depth) {
  uint64_t h = uint64_t(v.type()) + uint64_t(depth);
  if (const auto* s = std::get_if<std::string>(&v.data)) {
    for (char c : *s) h = h * 31 + uint8_t(c);
  } else if (const auto* a = std::get_if<strata::gguf::Array>(&v.data)) {
    for (const Value& item : a->items) {
      if (item.type() != a->elem_type) __builtin_trap();  // the reader must keep arrays homogeneous
      h += walk(item, depth + 1);
    }
  } else {
    try {
      const double d = v.as_double("fuzz");
      h += d > 0 ? 1 : d < 0 ? 2 : 3;
    } catch (const strata::Error&) {
      h += 1;  // bool
    }
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = strata::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    volatile uint64_t sink = file.version() + file.alignment();
    for (const auto& kv : file.metadata()) {
      sink = sink + walk(kv.value, 0) + kv.key.size();
      if (file.find(kv.key) != &kv.value) __builtin_trap();
    }
    for (const auto& t : file.tensors()) {
      if (file.find_tensor(t.name) != &t) __builtin_trap();
      if (t.data < data || t.data + t.nbytes > data + size || t.nbytes == 0) __builtin_trap();
      sink = sink + t.data[0] + t.data[t.nbytes - 1] + uint64_t(t.n_elements());
    }
    (void)sink;
  } catch (const strata::Error&) {
    // Rejected input: the expected outcome for most of it.
  }
  return 0;
}
