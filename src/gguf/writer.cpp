// GGUF writer: version 3, little-endian. The header (metadata and tensor infos) is built in
// memory and written by begin_data(); tensor data then streams to the file, each tensor at
// an offset that is a multiple of the alignment, zero padding between and after them (the
// data section ends on an alignment boundary, as llama.cpp and the gguf package write it).
#include "gguf/writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <type_traits>
#include <variant>

#include "core/error.h"
#include "gguf/parse.h"

namespace strata::gguf {
namespace {

constexpr uint32_t kVersion = 3;
constexpr size_t kMaxTensorName = 63;  // llama.cpp cannot load longer names (GGML_MAX_NAME - 1)
constexpr uint64_t kMaxInt64 = uint64_t(std::numeric_limits<int64_t>::max());

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool valid_alignment(uint64_t a) { return a != 0 && (a & (a - 1)) == 0 && a <= std::numeric_limits<uint32_t>::max(); }

// Byte buffer of the header, appended in file order.
class Buffer {
public:
  template <typename T>
  void put(T v) {
    append(&v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    append(s.data(), s.size());
  }
  void put_value(const Value& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            put<uint32_t>(uint32_t(x.elem_type));
            put<uint64_t>(x.items.size());
            for (const Value& item : x.items) put_value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.data);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

private:
  void append(const void* p, size_t n) {
    const size_t old = bytes_.size();
    bytes_.resize(old + n);
    if (n > 0) std::memcpy(bytes_.data() + old, p, n);
  }
  std::vector<uint8_t> bytes_;
};

// Arrays must hold items of their element type, nested no deeper than the reader accepts.
void check_value(const Value& v, std::string_view key, int depth) {
  const auto* a = std::get_if<Array>(&v.data);
  if (!a) return;
  if (depth >= detail::kMaxArrayDepth) fail("metadata key '{}': arrays nested deeper than {}", key, depth);
  for (size_t i = 0; i < a->items.size(); ++i) {
    if (a->items[i].type() != a->elem_type) {
      fail("metadata key '{}': array item {} has type {}, the array's element type is {}", key, i,
           value_type_name(a->items[i].type()), value_type_name(a->elem_type));
    }
    check_value(a->items[i], key, depth + 1);
  }
}

void check_name(std::string_view name, std::string_view what) {
  if (name.empty()) fail("{}: empty", what);
  if (!detail::is_valid_utf8(name)) fail("{} '{}': not valid UTF-8", what, detail::printable(name));
}

// Bytes of a tensor of `shape`, validated as the reader validates it.
uint64_t tensor_bytes(std::string_view name, DType type, const std::vector<int64_t>& shape) {
  if (shape.empty() || shape.size() > 4) fail("tensor '{}': {} dimensions (must be 1 to 4)", name, shape.size());
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) fail("tensor '{}': dimension {} is not positive", name, d);
    if (__builtin_mul_overflow(n, uint64_t(d), &n) || n > kMaxInt64) fail("tensor '{}': element count overflows", name);
  }
  const TypeTraits& t = type_traits(type);
  const uint64_t ne0 = uint64_t(shape[0]);
  if (ne0 % uint64_t(t.block_size) != 0) {
    fail("tensor '{}': ne0 = {} is not a multiple of the {} block size {}", name, ne0, t.name, t.block_size);
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(ne0 / uint64_t(t.block_size) * t.type_size, n / ne0, &bytes)) {
    fail("tensor '{}': size in bytes overflows", name);
  }
  return bytes;
}

}  // namespace

Writer::Writer(std::string path) : path_(std::move(path)) {}

Writer::~Writer() {
  if (out_) {
    std::fclose(out_);
    if (!finished_) std::remove(path_.c_str());  // an incomplete file is worse than none
  }
}

void Writer::set(std::string key, Value value) {
  if (data_started_) fail("{}: metadata key '{}' set after begin_data()", path_, key);
  check_name(key, "metadata key");
  for (const auto& kv : metadata_) {
    if (kv.key == key) fail("{}: duplicate metadata key '{}'", path_, detail::printable(key));
  }
  check_value(value, key, 0);
  if (key == "general.alignment") {
    const auto* a = std::get_if<uint32_t>(&value.data);
    if (!a) fail("{}: general.alignment must be a u32, got {}", path_, value_type_name(value.type()));
    if (!valid_alignment(*a)) fail("{}: general.alignment {} is not a power of two", path_, *a);
    alignment_ = *a;
  }
  metadata_.push_back(KeyValue{std::move(key), std::move(value)});
}

void Writer::set_alignment(uint64_t alignment) {
  if (data_started_) fail("{}: alignment set after begin_data()", path_);
  if (!valid_alignment(alignment)) fail("{}: alignment {} is not a power of two that fits in a u32", path_, alignment);
  alignment_ = alignment;
  for (auto& kv : metadata_) {
    if (kv.key == "general.alignment") {
      kv.value = Value{uint32_t(alignment)};
      return;
    }
  }
  metadata_.push_back(KeyValue{"general.alignment", Value{uint32_t(alignment)}});
}

void Writer::add_tensor(std::string name, DType type, std::vector<int64_t> shape) {
  if (data_started_) fail("{}: tensor '{}' added after begin_data()", path_, name);
  check_name(name, "tensor name");
  if (name.size() > kMaxTensorName) {
    fail("{}: tensor name '{}' is longer than {} bytes (llama.cpp cannot read it)", path_, detail::printable(name),
         kMaxTensorName);
  }
  if (tensor_names_.count(name)) fail("{}: duplicate tensor name '{}'", path_, detail::printable(name));
  const uint64_t nbytes = tensor_bytes(name, type, shape);
  tensor_names_.insert(name);
  tensors_.push_back(Pending{std::move(name), type, std::move(shape), nbytes, 0});
}

void Writer::begin_data() {
  if (data_started_) fail("{}: begin_data() called twice", path_);
  data_started_ = true;
  Buffer b;
  b.put<uint32_t>(0x46554747);  // "GGUF"
  b.put<uint32_t>(kVersion);
  b.put<uint64_t>(tensors_.size());
  b.put<uint64_t>(metadata_.size());
  for (const auto& kv : metadata_) {
    b.put_string(kv.key);
    b.put<uint32_t>(uint32_t(kv.value.type()));
    b.put_value(kv.value);
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    t.offset = offset;
    offset = align_up(offset + t.nbytes, alignment_);
    b.put_string(t.name);
    b.put<uint32_t>(uint32_t(t.shape.size()));
    for (int64_t d : t.shape) b.put<uint64_t>(uint64_t(d));
    b.put<uint32_t>(uint32_t(t.type));
    b.put<uint64_t>(t.offset);
  }
  out_ = std::fopen(path_.c_str(), "wb");
  if (!out_) fail("{}: cannot create: {}", path_, std::strerror(errno));
  write(b.bytes().data(), b.bytes().size());
  data_start_ = align_up(b.bytes().size(), alignment_);
  pad_to(data_start_);
}

void Writer::write_tensor_data(std::span<const uint8_t> bytes) {
  if (!data_started_ || finished_) fail("{}: tensor data written outside begin_data() .. finish()", path_);
  if (next_tensor_ >= tensors_.size()) fail("{}: more tensor data than tensors ({})", path_, tensors_.size());
  const Pending& t = tensors_[next_tensor_];
  if (bytes.size() != t.nbytes) {
    fail("{}: tensor '{}': {} bytes of data given, its size is {}", path_, t.name, bytes.size(), t.nbytes);
  }
  pad_to(data_start_ + t.offset);
  write(bytes.data(), bytes.size());
  ++next_tensor_;
}

void Writer::finish() {
  if (!data_started_) begin_data();
  if (finished_) return;
  if (next_tensor_ != tensors_.size()) {
    fail("{}: finish() after {} of {} tensors were written", path_, next_tensor_, tensors_.size());
  }
  pad_to(align_up(position_, alignment_));
  std::FILE* f = out_;
  out_ = nullptr;
  const bool flushed = std::fflush(f) == 0 && !std::ferror(f);
  const int flush_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!flushed || !closed) {
    const int err = flushed ? errno : flush_errno;
    std::remove(path_.c_str());
    fail("{}: write failed: {}", path_, std::strerror(err));
  }
  finished_ = true;
}

void Writer::write(const void* data, size_t n) {
  if (n > 0 && std::fwrite(data, 1, n, out_) != n) fail("{}: write failed: {}", path_, std::strerror(errno));
  position_ += n;
}

void Writer::pad_to(uint64_t position) {
  static constexpr uint8_t kZeros[256] = {};
  while (position_ < position) write(kZeros, size_t(std::min<uint64_t>(sizeof(kZeros), position - position_)));
}

void write_file(const std::string& path, const std::vector<KeyValue>& metadata,
                const std::vector<TensorData>& tensors, uint64_t alignment) {
  Writer w(path);
  for (const auto& kv : metadata) w.set(kv.key, kv.value);
  if (alignment != kDefaultAlignment) w.set_alignment(alignment);
  for (const auto& t : tensors) w.add_tensor(t.name, t.type, t.shape);
  w.begin_data();
  for (const auto& t : tensors) w.write_tensor_data(t.bytes);
  w.finish();
}

}  // namespace strata::gguf
