#include "core/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <vector>

#include "core/error.h"

namespace strata {
namespace {

std::string dims_string(std::span<const int64_t> ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Checks a requested shape and pads it to 4 dims: 1..4 dims, none negative, ne0 a whole
// number of blocks, and neither the element count nor the byte size overflowing.
Tensor::Dims checked_dims(DType type, std::span<const int64_t> ne) {
  const TypeTraits& t = type_traits(type);
  if (ne.empty() || ne.size() > size_t(kMaxDims)) {
    fail("a tensor has 1 to {} dims, got {} {}", kMaxDims, ne.size(), dims_string(ne));
  }
  Tensor::Dims d = {1, 1, 1, 1};
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] < 0) fail("{} tensor shape {}: dim {} is negative", t.name, dims_string(ne), i);
    d[i] = ne[i];
  }
  if (d[0] % t.block_size != 0) {
    fail("{} tensor shape {}: ne0 = {} is not a multiple of the block size {}", t.name, dims_string(ne), d[0],
         t.block_size);
  }
  int64_t elements = 1;
  size_t bytes = t.type_size;  // times blocks per row, then rows
  bool overflow = __builtin_mul_overflow(bytes, size_t(d[0] / t.block_size), &bytes);
  for (size_t i = 0; i < d.size(); ++i) {
    overflow |= __builtin_mul_overflow(elements, d[i], &elements);
    if (i > 0) overflow |= __builtin_mul_overflow(bytes, size_t(d[i]), &bytes);
  }
  if (overflow) fail("{} tensor shape {}: element count or byte size overflows", t.name, dims_string(ne));
  return d;
}

}  // namespace

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t round_up(size_t v, size_t to) {
  return (v + to - 1) / to * to;
}

size_t page_size() {
  static const auto page = size_t(::sysconf(_SC_PAGESIZE));
  return page;
}

// n_bytes >= kHugePage of zeros starting at a 2 MiB boundary, the whole huge pages advised as
// such (the tail stays in small pages: no memory is committed past the buffer).
uint8_t* map_huge_aligned(size_t n_bytes) {
  const size_t length = round_up(n_bytes, page_size()), mapped = length + kHugePage;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const auto begin = reinterpret_cast<uintptr_t>(p), start = round_up(begin, kHugePage);
  if (start > begin) ::munmap(p, start - begin);
  if (const uintptr_t end = start + length; end < begin + mapped) {
    ::munmap(reinterpret_cast<void*>(end), begin + mapped - end);
  }
  ::madvise(reinterpret_cast<void*>(start), n_bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
  return reinterpret_cast<uint8_t*>(start);
}

}  // namespace

Storage::Storage(size_t n_bytes) : size_(n_bytes) {
  if (n_bytes >= kHugePage) {
    data_ = map_huge_aligned(n_bytes);  // anonymous memory: zeros already
  } else {
    data_ = static_cast<uint8_t*>(::operator new(n_bytes, std::align_val_t(kTensorAlignment)));
    std::memset(data_, 0, n_bytes);
  }
}

Storage::~Storage() {
  if (size_ >= kHugePage) {
    ::munmap(data_, round_up(size_, page_size()));
  } else {
    ::operator delete(data_, std::align_val_t(kTensorAlignment));
  }
}

// ---- construction ----------------------------------------------------------------------

// Packed strides: nb0 = bytes per block (or element), nb1 = row bytes, nb2 = nb1 * ne1, ...
// checked_dims() has already made sure that none of these products overflows.
void Tensor::set_packed_strides() {
  const TypeTraits& t = traits();
  nb_[0] = t.type_size;
  nb_[1] = t.type_size * size_t(ne_[0] / t.block_size);
  nb_[2] = nb_[1] * size_t(ne_[1]);
  nb_[3] = nb_[2] * size_t(ne_[2]);
}

Tensor Tensor::empty(DType type, ShapeRef shape, std::string name) {
  const std::span<const int64_t> ne = shape.dims();
  Tensor x;
  x.type_ = type;
  x.ne_ = checked_dims(type, ne);
  x.name_ = std::move(name);
  x.set_packed_strides();
  try {
    auto storage = std::make_shared<Storage>(x.n_bytes());
    x.data_ = storage->data();
    x.owner_ = std::move(storage);
  } catch (const std::bad_alloc&) {
    fail("cannot allocate {} bytes for {}", x.n_bytes(), x.describe());
  }
  return x;
}

Tensor Tensor::external(DType type, ShapeRef ne, const void* data, size_t size, std::shared_ptr<const void> keep_alive,
                        std::string name) {
  Tensor x;
  x.type_ = type;
  x.ne_ = checked_dims(type, ne.dims());
  x.name_ = std::move(name);
  x.set_packed_strides();
  if (x.n_bytes() > size) fail("{} needs {} bytes but the external buffer has {}", x.describe(), x.n_bytes(), size);
  if (data == nullptr && x.n_bytes() > 0) fail("{}: external data pointer is null", x.describe());
  x.data_ = const_cast<uint8_t*>(static_cast<const uint8_t*>(data));  // writes are refused: writable_ = false
  x.owner_ = std::move(keep_alive);
  x.writable_ = false;
  return x;
}

Tensor Tensor::device(DType type, ShapeRef ne, void* data, std::shared_ptr<const void> keep_alive, std::string name) {
  Tensor x;
  x.type_ = type;
  x.ne_ = checked_dims(type, ne.dims());
  x.name_ = std::move(name);
  x.set_packed_strides();
  if (data == nullptr && x.n_bytes() > 0) fail("{}: device data pointer is null", x.describe());
  x.data_ = static_cast<uint8_t*>(data);
  x.owner_ = std::move(keep_alive);
  x.device_ = true;
  return x;
}

Tensor Tensor::from_f32(std::span<const float> values, ShapeRef shape, DType type, std::string name) {
  const std::span<const int64_t> ne = shape.dims();
  const Dims d = checked_dims(type, ne);
  const int64_t n = d[0] * d[1] * d[2] * d[3];
  if (size_t(n) != values.size()) {
    fail("{} tensor shape {} has {} elements but {} values were given", dtype_name(type), dims_string(ne), n,
         values.size());
  }
  Tensor src = external(DType::F32, ne, values.data(), values.size_bytes(), nullptr, std::move(name));
  Tensor out = src.to_type(type);  // always a copy, so `values` need not outlive it
  out.set_name(src.name());
  return out;
}

// ---- properties ------------------------------------------------------------------------

int Tensor::n_dims() const {
  for (int i = kMaxDims - 1; i > 0; --i) {
    if (ne_[size_t(i)] != 1) return i + 1;
  }
  return 1;
}

int64_t Tensor::n_elements() const {
  return ne_[0] * ne_[1] * ne_[2] * ne_[3];
}
int64_t Tensor::n_rows() const {
  return ne_[1] * ne_[2] * ne_[3];
}
size_t Tensor::row_bytes() const {
  return traits().type_size * size_t(ne_[0] / traits().block_size);
}
size_t Tensor::n_bytes() const {
  return row_bytes() * size_t(n_rows());
}

bool Tensor::is_contiguous() const {
  if (n_elements() == 0) return true;
  size_t expected = traits().type_size;
  for (size_t i = 0; i < ne_.size(); ++i) {
    const int64_t steps = i == 0 ? ne_[0] / traits().block_size : ne_[i];  // blocks along dim 0
    if (steps != 1 && nb_[i] != expected) return false;
    expected *= size_t(steps);
  }
  return true;
}

std::string Tensor::shape_string() const {
  return dims_string(std::span(ne_.data(), size_t(n_dims())));
}

std::string Tensor::describe() const {
  std::string who = name_.empty() ? "tensor" : "tensor '" + name_ + "'";
  return fmt::format("{} {} {}", who, traits().name, shape_string());
}

// ---- element access --------------------------------------------------------------------

uint8_t* Tensor::mutable_data() const {
  if (!writable_) fail("{} is a read-only view of external memory", describe());
  return data_;
}

void Tensor::check_host(const char* what) const {
  if (device_) {
    fail("{}: {} lives in device memory; host code cannot read it (copy it with Backend::to_host_f32)", what,
         describe());
  }
}

void Tensor::check_row_index(int64_t i1, int64_t i2, int64_t i3) const {
  if (i1 < 0 || i1 >= ne_[1] || i2 < 0 || i2 >= ne_[2] || i3 < 0 || i3 >= ne_[3]) {
    fail("row ({}, {}, {}) is out of range for {}", i1, i2, i3, describe());
  }
}

const uint8_t* Tensor::row(int64_t i1, int64_t i2, int64_t i3) const {
  check_host("row");
  check_row_index(i1, i2, i3);
  return data_ + size_t(i1) * nb_[1] + size_t(i2) * nb_[2] + size_t(i3) * nb_[3];
}

uint8_t* Tensor::mutable_row(int64_t i1, int64_t i2, int64_t i3) const {
  mutable_data();  // throws when read-only
  return const_cast<uint8_t*>(row(i1, i2, i3));
}

void Tensor::dequantize_row(float* dst, int64_t i1, int64_t i2, int64_t i3) const {
  check_host("dequantize_row");
  const TypeTraits& t = traits();
  if (t.dequantize == nullptr) fail("{}: Strata cannot compute type {}", describe(), t.name);
  const uint8_t* src = row(i1, i2, i3);
  if (nb_[0] == t.type_size) {
    t.dequantize(src, dst, ne_[0]);  // packed row (always the case for quantized types)
  } else {
    for (int64_t i0 = 0; i0 < ne_[0]; ++i0) t.dequantize(src + size_t(i0) * nb_[0], dst + i0, 1);
  }
}

// ---- views -----------------------------------------------------------------------------

Tensor Tensor::slice(int dim, int64_t start, int64_t count) const {
  if (dim < 0 || dim >= kMaxDims) fail("slice of {}: dim {} is not in 0..{}", describe(), dim, kMaxDims - 1);
  const size_t d = size_t(dim);
  if (start < 0 || count < 0 || start > ne_[d] || count > ne_[d] - start) {
    fail("slice [{}, {}) of dim {} is out of range for {}", start, start + count, dim, describe());
  }
  const int64_t block = dim == 0 ? traits().block_size : 1;
  if (start % block != 0 || count % block != 0) {
    fail("slice [{}, {}) of dim 0 of {} does not fall on {}-element block boundaries", start, start + count, describe(),
         block);
  }
  Tensor x = *this;
  x.data_ += size_t(start / block) * nb_[d];
  x.ne_[d] = count;
  return x;
}

Tensor Tensor::reshape(ShapeRef shape) const {
  const std::span<const int64_t> ne = shape.dims();
  if (!is_contiguous()) fail("cannot reshape {} to {}: it is not contiguous", describe(), dims_string(ne));
  Tensor x = *this;
  x.ne_ = checked_dims(type_, ne);
  if (x.n_elements() != n_elements()) {
    fail("cannot reshape {} ({} elements) to {} ({} elements)", describe(), n_elements(), dims_string(ne),
         x.n_elements());
  }
  x.set_packed_strides();
  return x;
}

Tensor Tensor::permute(const std::array<int, kMaxDims>& perm) const {
  std::array<bool, kMaxDims> seen = {};
  for (int p : perm) {
    if (p < 0 || p >= kMaxDims || seen[size_t(p)]) {
      fail("permute of {}: ({}, {}, {}, {}) is not a permutation of 0..3", describe(), perm[0], perm[1], perm[2],
           perm[3]);
    }
    seen[size_t(p)] = true;
  }
  if (traits().is_quantized && perm[0] != 0) {
    fail("permute of {}: dim 0 of a quantized type holds whole blocks and cannot move", describe());
  }
  Tensor x = *this;
  for (size_t i = 0; i < perm.size(); ++i) {
    x.ne_[i] = ne_[size_t(perm[i])];
    x.nb_[i] = nb_[size_t(perm[i])];
  }
  return x;
}

Tensor Tensor::transpose(int dim_a, int dim_b) const {
  if (dim_a < 0 || dim_a >= kMaxDims || dim_b < 0 || dim_b >= kMaxDims) {
    fail("transpose of {}: dims ({}, {}) are not in 0..{}", describe(), dim_a, dim_b, kMaxDims - 1);
  }
  std::array<int, kMaxDims> perm = {0, 1, 2, 3};
  std::swap(perm[size_t(dim_a)], perm[size_t(dim_b)]);
  return permute(perm);
}

// ---- copies ----------------------------------------------------------------------------

Tensor Tensor::to_f32() const {
  check_host("to_f32");
  Tensor out = empty(DType::F32, ne_, name_);
  for (int64_t i3 = 0; i3 < ne_[3]; ++i3) {
    for (int64_t i2 = 0; i2 < ne_[2]; ++i2) {
      for (int64_t i1 = 0; i1 < ne_[1]; ++i1) {
        dequantize_row(reinterpret_cast<float*>(out.mutable_row(i1, i2, i3)), i1, i2, i3);
      }
    }
  }
  return out;
}

Tensor Tensor::to_type(DType type) const {
  check_host("to_type");
  if (type == DType::F32) return to_f32();
  const TypeTraits& t = type_traits(type);
  if (t.quantize == nullptr) fail("cannot convert {} to {}: Strata cannot write that type", describe(), t.name);
  if (ne_[0] % t.block_size != 0) {
    fail("cannot convert {} to {}: ne0 = {} is not a multiple of the block size {}", describe(), t.name, ne_[0],
         t.block_size);
  }
  Tensor out = empty(type, ne_, name_);
  std::vector<float> buffer(static_cast<size_t>(ne_[0]));  // one row in f32
  for (int64_t i3 = 0; i3 < ne_[3]; ++i3) {
    for (int64_t i2 = 0; i2 < ne_[2]; ++i2) {
      for (int64_t i1 = 0; i1 < ne_[1]; ++i1) {
        dequantize_row(buffer.data(), i1, i2, i3);
        t.quantize(buffer.data(), out.mutable_row(i1, i2, i3), ne_[0]);
      }
    }
  }
  return out;
}

Tensor Tensor::contiguous() const {
  check_host("contiguous");
  if (is_contiguous()) return *this;
  Tensor out = empty(type_, ne_, name_);
  const size_t elem = traits().type_size;
  for (int64_t i3 = 0; i3 < ne_[3]; ++i3) {
    for (int64_t i2 = 0; i2 < ne_[2]; ++i2) {
      for (int64_t i1 = 0; i1 < ne_[1]; ++i1) {
        const uint8_t* src = row(i1, i2, i3);
        uint8_t* dst = out.mutable_row(i1, i2, i3);
        if (nb_[0] == elem) {
          std::memcpy(dst, src, row_bytes());
        } else {  // plain types only: quantized rows are always packed
          for (int64_t i0 = 0; i0 < ne_[0]; ++i0) std::memcpy(dst + size_t(i0) * elem, src + size_t(i0) * nb_[0], elem);
        }
      }
    }
  }
  return out;
}

}  // namespace strata
