// GGUF writer (version 3). Streams: the header and tensor table are written first, then
// each tensor's data in the order the tensors were added, so a 7B model never sits in memory.
// Files read back with our reader, the `gguf` Python package and llama.cpp.
//
//   Writer w("out.gguf");
//   w.set("general.architecture", Value{std::string("llama")});
//   w.add_tensor("token_embd.weight", DType::Q8_0, {n_embd, n_vocab});  // ne0 first
//   w.begin_data();                        // creates the file, writes header and tensor table
//   w.write_tensor_data(bytes_of_tensor_0);  // one call per tensor, in add order
//   w.finish();                            // pads, flushes, closes; throws on I/O errors
//
// A Writer destroyed before finish() succeeded removes the incomplete file.
// Nested arrays are valid GGUF (our reader and the gguf package read them) but llama.cpp's
// reader rejects them; no model file uses them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/dtype.h"
#include "gguf/value.h"

namespace strata::gguf {

class Writer {
public:
  explicit Writer(std::string path);  // the file is created by begin_data()
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Metadata and tensor infos, before begin_data(). Everything is validated as the reader
  // validates it: keys and names non-empty UTF-8 and unique, arrays of one element type,
  // 1 to 4 dims > 0, ne0 a multiple of the block size; tensor names at most 63 bytes.
  // Setting "general.alignment" (a u32 power of two) also sets the alignment.
  void set(std::string key, Value value);
  void set_alignment(uint64_t alignment);  // also written as general.alignment (u32)
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape);

  uint64_t alignment() const { return alignment_; }
  size_t n_tensors() const { return tensors_.size(); }
  uint64_t tensor_nbytes(size_t i) const { return tensors_.at(i).nbytes; }

  // Creates the file and writes the header and tensor table.
  void begin_data();
  // Data of the next tensor in add order; `bytes.size()` must equal its size.
  void write_tensor_data(std::span<const uint8_t> bytes);
  // Checks every tensor was written, pads, flushes and closes; throws on I/O errors.
  void finish();

private:
  struct Pending {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    uint64_t offset;  // from the data section, set by begin_data()
  };
  void write(const void* data, size_t n);
  void pad_to(uint64_t position);  // zero bytes up to an absolute file position

  std::string path_;
  std::FILE* out_ = nullptr;
  uint64_t alignment_ = kDefaultAlignment;
  std::vector<KeyValue> metadata_;
  std::vector<Pending> tensors_;
  std::unordered_set<std::string> tensor_names_;
  size_t next_tensor_ = 0;
  uint64_t data_start_ = 0;  // absolute offset of the data section
  uint64_t position_ = 0;    // bytes written so far
  bool data_started_ = false;
  bool finished_ = false;
};

// Convenience: the whole file at once, tensor data from memory. An `alignment` other than
// the default is written as general.alignment (and overrides one in `metadata`).
struct TensorData {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};
void write_file(const std::string& path, const std::vector<KeyValue>& metadata,
                const std::vector<TensorData>& tensors, uint64_t alignment = kDefaultAlignment);

}  // namespace strata::gguf
