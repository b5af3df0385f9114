// Tensors: a dtype, a shape of up to 4 dims, byte strides and shared storage.
//
// Layout follows GGUF/ggml: ne[0] is the innermost dimension, unused dims are 1, and
// nb[i] is the byte stride of dim i. A "row" is the ne[0] elements at fixed (i1, i2, i3).
//   plain types:     nb[0] = type size,       nb[1] = ne[0] * type size
//   quantized types: nb[0] = bytes per block, nb[1] = ne[0] / block_size * nb[0]
// (ne[0] of a quantized tensor is a multiple of the block size; rows are whole blocks).
//
// Storage is either owned (a 64-byte aligned, zero-filled buffer shared by all views of
// it) or external (a read-only pointer into memory owned by someone else, e.g. an mmapped
// GGUF file, kept alive by a shared_ptr<const void> handle) or device memory of a backend
// (e.g. CUDA): an address host code must not dereference. Views, reshape and permute never
// copy; to_f32 / to_type / contiguous make new owned tensors (host tensors only).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ranges>
#include <span>
#include <string>

#include "core/dtype.h"

namespace strata {

inline constexpr int kMaxDims = 4;
inline constexpr size_t kTensorAlignment = 64;

// An owned, kTensorAlignment-aligned, zero-filled byte buffer. One of 2 MiB or more is mapped
// on its own, its whole 2 MiB pages offered to the kernel as transparent huge pages (fewer TLB
// misses where kernels stream through weights or a KV cache); std::bad_alloc when the memory
// is not there, as for a smaller one.
class Storage {
public:
  explicit Storage(size_t n_bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

private:
  uint8_t* data_;
  size_t size_;
};

// A shape argument, ne[0] first: `{4096, 32000}`, a std::vector<int64_t>, a std::array, a span.
// It refers to the caller's values and is meant only as a by-value parameter.
class ShapeRef {
public:
  ShapeRef(std::initializer_list<int64_t> ne) : ne_(ne.begin(), ne.size()) {}
  template <std::ranges::contiguous_range R>
  requires std::same_as<std::ranges::range_value_t<R>, int64_t> ShapeRef(const R& ne)
      : ne_(std::ranges::data(ne), std::ranges::size(ne)) {}
  std::span<const int64_t> dims() const { return ne_; }

private:
  std::span<const int64_t> ne_;
};

class Tensor {
public:
  using Dims = std::array<int64_t, kMaxDims>;    // ne, elements per dim
  using Strides = std::array<size_t, kMaxDims>;  // nb, bytes per step of each dim

  Tensor() = default;  // an empty f32 tensor of shape [0] with no storage

  // A new owned, zero-filled, contiguous tensor. `ne` has 1..4 dims, each >= 0.
  static Tensor empty(DType type, ShapeRef ne, std::string name = {});
  // A read-only contiguous view of `size` bytes at `data` owned elsewhere; `keep_alive`
  // (e.g. the file mapping) is held until the last tensor using the memory is gone.
  static Tensor external(DType type, ShapeRef ne, const void* data, size_t size, std::shared_ptr<const void> keep_alive,
                         std::string name = {});
  // A writable contiguous tensor in a backend's device memory: `data` is a device address
  // (never dereferenced on the host) and `keep_alive` frees it when the last view is gone.
  // Host-side element access (row, mutable_row, dequantize_row, to_f32, to_type, contiguous)
  // refuses device tensors with an error; Backend::to_host_f32 copies them to the host.
  static Tensor device(DType type, ShapeRef ne, void* data, std::shared_ptr<const void> keep_alive,
                       std::string name = {});
  // An owned tensor of `type` made from f32 values in contiguous order, quantizing each row.
  static Tensor from_f32(std::span<const float> values, ShapeRef ne, DType type, std::string name = {});

  DType dtype() const { return type_; }
  const TypeTraits& traits() const { return type_traits(type_); }
  const Dims& ne() const { return ne_; }
  int64_t ne(int dim) const { return ne_.at(size_t(dim)); }
  const Strides& nb() const { return nb_; }
  size_t nb(int dim) const { return nb_.at(size_t(dim)); }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  int n_dims() const;          // 1 + the last dim with ne != 1 (at least 1)
  int64_t n_elements() const;  // ne0 * ne1 * ne2 * ne3
  int64_t n_rows() const;      // ne1 * ne2 * ne3
  size_t row_bytes() const;    // bytes of one packed row of ne0 elements
  size_t n_bytes() const;      // bytes of the elements when packed: row_bytes() * n_rows()
  bool is_contiguous() const;  // packed in order, no gaps (strides of dims with ne == 1 ignored)
  bool is_writable() const { return writable_; }
  bool is_device() const { return device_; }  // data() is a device address (see device())
  std::string shape_string() const;  // "[4096, 32000]"
  std::string describe() const;      // "tensor 'w' q4_0 [4096, 32000]" for messages

  // The first element; mutable_data() throws for read-only (external) storage.
  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const;
  // Start of row (i1, i2, i3), bounds-checked.
  const uint8_t* row(int64_t i1, int64_t i2 = 0, int64_t i3 = 0) const;
  uint8_t* mutable_row(int64_t i1, int64_t i2 = 0, int64_t i3 = 0) const;
  // Dequantizes row (i1, i2, i3) into `dst` (ne0 floats) with the type's reference code.
  void dequantize_row(float* dst, int64_t i1, int64_t i2 = 0, int64_t i3 = 0) const;
  // The keep-alive handle of the storage (owned Storage or the external owner).
  const std::shared_ptr<const void>& keep_alive() const { return owner_; }

  // Views sharing the storage (no copy).
  // Elements [start, start + count) of `dim`; for dim 0 of a quantized type both are
  // multiples of the block size.
  Tensor slice(int dim, int64_t start, int64_t count) const;
  Tensor view_rows(int64_t first, int64_t count) const { return slice(1, first, count); }
  // Same elements, new shape; the tensor must be contiguous and n_elements must match.
  Tensor reshape(ShapeRef ne) const;
  // Result dim i is source dim perm[i] (ne and nb move together). Quantized types keep dim 0.
  Tensor permute(const std::array<int, kMaxDims>& perm) const;
  Tensor transpose(int dim_a = 0, int dim_b = 1) const;

  // Copies into new owned, contiguous tensors.
  Tensor to_f32() const;             // dequantized f32 of the same shape
  Tensor to_type(DType type) const;  // via f32, quantizing each row
  Tensor contiguous() const;         // same dtype, packed; *this when already contiguous

private:
  void set_packed_strides();
  void check_row_index(int64_t i1, int64_t i2, int64_t i3) const;
  void check_host(const char* what) const;  // throws for device tensors

  DType type_ = DType::F32;
  Dims ne_ = {0, 1, 1, 1};
  Strides nb_ = {4, 0, 0, 0};
  std::string name_;
  std::shared_ptr<const void> owner_;  // keeps the memory alive: a Storage or the external owner
  uint8_t* data_ = nullptr;            // first element
  bool writable_ = true;
  bool device_ = false;
};

}  // namespace strata
