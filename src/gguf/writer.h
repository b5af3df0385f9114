// GGUF writer (version 3). Streams: the header and tensor table are written first, then
// each tensor's data in the order the tensors were added, so a 7B model never sits in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "gguf/value.h"

namespace strata::gguf {

class Writer {
public:
  explicit Writer(std::string path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Metadata and tensor infos, before begin_data(). Duplicate keys or names throw.
  void set(std::string key, Value value);
  void set_alignment(uint64_t alignment);  // also written as general.alignment
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape);

  // Writes the header and tensor table.
  void begin_data();
  // Data of the next tensor in add order; `bytes.size()` must equal its size.
  void write_tensor_data(std::span<const uint8_t> bytes);
  // Checks every tensor was written, flushes and closes; throws on I/O errors.
  void finish();

private:
  struct Pending {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    uint64_t offset;
  };
  std::string path_;
  std::FILE* out_ = nullptr;
  uint64_t alignment_ = 32;
  std::vector<KeyValue> metadata_;
  std::vector<Pending> tensors_;
  size_t next_tensor_ = 0;
  bool data_started_ = false;
  bool finished_ = false;
};

// Convenience: the whole file at once, tensor data from memory.
struct TensorData {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};
void write_file(const std::string& path, const std::vector<KeyValue>& metadata,
                const std::vector<TensorData>& tensors, uint64_t alignment = 32);

}  // namespace strata::gguf
