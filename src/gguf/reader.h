// GGUF reader (versions 2 and 3, little-endian). The file is mmapped, parsed and every
// field validated before use; tensor data is never read until a caller touches it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "gguf/value.h"

namespace strata::gguf {

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> shape;  // ne: shape[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;         // from the start of the data section (a multiple of the alignment)
  uint64_t nbytes = 0;         // inside the file, overlapping no other tensor (checked)
  const uint8_t* data = nullptr;  // into the mapping (or the parsed buffer)

  int64_t n_elements() const;  // product of shape, < 2^63 (checked)
  std::span<const uint8_t> bytes() const { return {data, size_t(nbytes)}; }
};

class File {
public:
  // Maps and parses `path`; throws strata::Error naming the file, the field and the offset.
  static File open(const std::string& path);
  // Parses bytes already in memory (fuzzing, tests); `bytes` must outlive the File.
  // `name` is used in error messages, as the path is by open().
  static File parse(std::span<const uint8_t> bytes, std::string name);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
  uint64_t file_size() const { return bytes_.size(); }

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;  // nullptr if absent
  const Value& get(std::string_view key) const;   // throws naming the file and key if absent

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

  // Gives the memory of the whole pages inside [data, data + size) of an opened (mmapped) file
  // back to the system: a later read maps the file's bytes in again (the values never change).
  // For memory that did not come from open(), or outside the file, nothing happens.
  void release_pages(const void* data, size_t size) const;

private:
  File() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  // Views into the names above (stable: neither vector changes after parsing).
  std::unordered_map<std::string_view, size_t> key_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace strata::gguf
