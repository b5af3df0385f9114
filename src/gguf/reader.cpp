// GGUF reader. Layout of a version 2/3 file (all little-endian):
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x   (string key, u32 value type, value)
//   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset)
//   padding to general.alignment (default 32) | data section (tensor offsets are relative to it)
// A string is a u64 length and that many bytes; an array is a u32 element type, a u64 count
// and the elements.
#include "gguf/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "gguf/parse.h"

namespace strata::gguf {

using detail::Cursor;
using detail::printable;

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxInt64 = uint64_t(std::numeric_limits<int64_t>::max());
// The fewest bytes a key-value pair and a tensor info can take; counts read from the header
// are checked against the bytes left with these before anything is allocated.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;               // key length, 1-byte key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name length, 1-byte name, n_dims, ne0,
                                                                 // type, offset

struct Parsed {
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<KeyValue> metadata;
  std::vector<TensorInfo> tensors;
};

uint32_t read_version(Cursor& c) {
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    std::string seen(4, '\0');
    std::memcpy(seen.data(), &magic, 4);
    c.fail("bad magic '{}' at offset 0 (not a GGUF file; expected 'GGUF')", printable(seen));
  }
  const uint32_t version = c.read<uint32_t>("version");
  if (version == 2 || version == 3) return version;
  if (version == 1) c.fail("GGUF version 1 is not supported (only versions 2 and 3) at offset 4");
  if ((version & 0xFFFF) == 0 && version != 0) {
    c.fail("big-endian GGUF file (version field {:#010x} at offset 4 is byte-swapped {}) is not supported", version,
           __builtin_bswap32(version));
  }
  c.fail("unsupported GGUF version {} at offset 4 (only versions 2 and 3)", version);
}

// Reads both counts and checks that they can fit in the rest of the file.
void read_counts(Cursor& c, uint64_t& n_tensors, uint64_t& n_kv) {
  n_tensors = c.read<uint64_t>("tensor count");
  n_kv = c.read<uint64_t>("metadata kv count");
  const uint64_t left = c.left();
  if (n_tensors > left / kMinTensorInfoBytes) {
    c.fail("tensor count {} at offset 8 cannot fit in the {} bytes left (a tensor info takes at least {} bytes)",
           n_tensors, left, kMinTensorInfoBytes);
  }
  if (n_kv > left / kMinKvBytes) {
    c.fail("metadata kv count {} at offset 16 cannot fit in the {} bytes left (a key-value pair takes at least {} bytes)",
           n_kv, left, kMinKvBytes);
  }
  if (n_kv * kMinKvBytes > left - n_tensors * kMinTensorInfoBytes) {
    c.fail("tensor count {} and metadata kv count {} at offset 8 cannot fit together in the {} bytes left", n_tensors,
           n_kv, left);
  }
}

uint64_t read_alignment(Cursor& c, const std::vector<KeyValue>& metadata, const std::vector<uint64_t>& offsets) {
  for (size_t i = 0; i < metadata.size(); ++i) {
    const KeyValue& kv = metadata[i];
    if (kv.key != "general.alignment") continue;
    c.set_context("metadata key 'general.alignment'");
    const auto* a = std::get_if<uint32_t>(&kv.value.data);
    if (!a) c.fail("alignment must be a u32, got {} at offset {}", value_type_name(kv.value.type()), offsets[i]);
    if (*a == 0 || (*a & (*a - 1)) != 0) c.fail("alignment {} at offset {} is not a power of two", *a, offsets[i]);
    return *a;
  }
  return kDefaultAlignment;
}

uint64_t checked_mul(Cursor& c, uint64_t a, uint64_t b, std::string_view what, uint64_t shape_at) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) c.fail("{} overflows ({} x {}; shape at offset {})", what, a, b, shape_at);
  return r;
}

// Reads the shape at the cursor; returns the element count (< 2^63).
uint64_t read_shape(Cursor& c, std::vector<int64_t>& shape) {
  const uint64_t at = c.pos();
  const uint32_t n_dims = c.read<uint32_t>("n_dims");
  if (n_dims == 0 || n_dims > kMaxDims) c.fail("n_dims {} at offset {} is out of range (1 to {})", n_dims, at, kMaxDims);
  uint64_t n = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t dim_at = c.pos();
    const uint64_t ne = c.read<uint64_t>("dimension");
    if (ne == 0) c.fail("dimension {} is 0 at offset {}", d, dim_at);
    if (ne > kMaxInt64) c.fail("dimension {} = {} at offset {} is larger than 2^63-1", d, ne, dim_at);
    if (__builtin_mul_overflow(n, ne, &n) || n > kMaxInt64) {
      c.fail("element count overflows at dimension {} = {} at offset {}", d, ne, dim_at);
    }
    shape.push_back(int64_t(ne));
  }
  return n;
}

TensorInfo read_tensor_info(Cursor& c, uint64_t index, uint64_t alignment,
                            std::unordered_map<std::string_view, size_t>& seen) {
  const uint64_t at = c.pos();
  c.set_context(fmt::format("tensor info {}", index));
  TensorInfo t;
  t.name = c.read_string("tensor name");
  if (t.name.empty()) c.fail("empty tensor name at offset {}", at);
  if (!detail::is_valid_utf8(t.name)) c.fail("tensor name at offset {} is not valid UTF-8", at);
  c.set_context(fmt::format("tensor '{}'", printable(t.name)));
  if (auto it = seen.find(t.name); it != seen.end()) {
    c.fail("duplicate tensor name at offset {} (first defined by tensor info {})", at, it->second);
  }
  const uint64_t shape_at = c.pos();
  const uint64_t n = read_shape(c, t.shape);

  const uint64_t type_at = c.pos();
  const uint32_t type_id = c.read<uint32_t>("tensor type");
  const TypeTraits* traits = find_type_traits(type_id);
  if (!traits) c.fail("unknown tensor type id {} at offset {}", type_id, type_at);
  t.type = traits->type;
  const uint64_t ne0 = uint64_t(t.shape[0]);
  if (ne0 % uint64_t(traits->block_size) != 0) {
    c.fail("ne0 = {} at offset {} is not a multiple of the {} block size {}", ne0, shape_at + 4, traits->name,
           traits->block_size);
  }
  const uint64_t row = checked_mul(c, ne0 / uint64_t(traits->block_size), traits->type_size, "row size in bytes", shape_at);
  t.nbytes = checked_mul(c, row, n / ne0, "tensor size in bytes", shape_at);

  const uint64_t offset_at = c.pos();
  t.offset = c.read<uint64_t>("tensor data offset");
  if (t.offset % alignment != 0) {
    c.fail("data offset {} at offset {} is not a multiple of the alignment {}", t.offset, offset_at, alignment);
  }
  return t;
}

// Every tensor's data inside the file, and no two overlapping.
void check_tensor_data(Cursor& c, Parsed& p, std::span<const uint8_t> bytes) {
  const uint64_t size = bytes.size();
  for (auto& t : p.tensors) {
    c.set_context(fmt::format("tensor '{}'", printable(t.name)));
    uint64_t start;
    if (__builtin_add_overflow(p.data_offset, t.offset, &start) || start > size) {
      c.fail("data offset {} is past end of file (data section at {}, file size {})", t.offset, p.data_offset, size);
    }
    if (t.nbytes > size - start) {
      c.fail("data extends past end of file (offset {} + {} > {})", start, t.nbytes, size);
    }
    t.data = bytes.data() + start;
  }
  std::vector<size_t> order(p.tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.tensors[a].offset < p.tensors[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& prev = p.tensors[order[i - 1]];
    const TensorInfo& cur = p.tensors[order[i]];
    if (prev.offset + prev.nbytes > cur.offset) {
      c.set_context(fmt::format("tensor '{}'", printable(cur.name)));
      c.fail("data [{}, {}) overlaps tensor '{}' [{}, {}) (offsets relative to the data section at {})", cur.offset,
             cur.offset + cur.nbytes, printable(prev.name), prev.offset, prev.offset + prev.nbytes, p.data_offset);
    }
  }
}

Parsed parse_bytes(std::span<const uint8_t> bytes, const std::string& name,
                   std::unordered_map<std::string_view, size_t>& key_index,
                   std::unordered_map<std::string_view, size_t>& tensor_index) {
  Cursor c(bytes, name);
  Parsed p;
  p.version = read_version(c);
  uint64_t n_tensors, n_kv;
  read_counts(c, n_tensors, n_kv);
  std::vector<uint64_t> value_offsets;
  p.metadata = detail::read_metadata(c, n_kv, value_offsets);
  for (size_t i = 0; i < p.metadata.size(); ++i) key_index.emplace(p.metadata[i].key, i);
  p.alignment = read_alignment(c, p.metadata, value_offsets);

  p.tensors.reserve(size_t(n_tensors));  // checked against the bytes left by read_counts
  for (uint64_t i = 0; i < n_tensors; ++i) {
    p.tensors.push_back(read_tensor_info(c, i, p.alignment, tensor_index));
    tensor_index.emplace(p.tensors.back().name, size_t(i));  // stable: reserved, never reallocates
  }
  // Data section: after the tensor infos, rounded up to the alignment (pos <= size < 2^63).
  p.data_offset = (c.pos() + p.alignment - 1) / p.alignment * p.alignment;
  check_tensor_data(c, p, bytes);
  return p;
}

}  // namespace

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct File::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, size);
  }
};

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  auto mapping = std::make_unique<Mapping>();
  mapping->size = size_t(st.st_size);
  if (mapping->size > 0) {
    void* addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("{}: cannot map {} bytes: {}", path, mapping->size, std::strerror(err));
    }
    mapping->addr = addr;
  }
  ::close(fd);
  File f = parse({static_cast<const uint8_t*>(mapping->addr), mapping->size}, path);
  f.mapping_ = std::move(mapping);
  return f;
}

void File::release_pages(const void* data, size_t size) const {
  if (!mapping_ || mapping_->addr == nullptr) return;
  const auto begin = reinterpret_cast<uintptr_t>(data), end = begin + size;
  const auto map_begin = reinterpret_cast<uintptr_t>(mapping_->addr), map_end = map_begin + mapping_->size;
  if (begin < map_begin || end > map_end) return;
  const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  // A private read-only file mapping: dropped pages read the file again when touched.
  if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

File File::parse(std::span<const uint8_t> bytes, std::string name) {
  File f;
  f.name_ = std::move(name);
  f.bytes_ = bytes;
  Parsed p = parse_bytes(bytes, f.name_, f.key_index_, f.tensor_index_);
  // The indexes hold views into p's strings; moving the vectors keeps their buffers.
  f.version_ = p.version;
  f.alignment_ = p.alignment;
  f.data_offset_ = p.data_offset;
  f.metadata_ = std::move(p.metadata);
  f.tensors_ = std::move(p.tensors);
  return f;
}

const Value* File::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const Value& File::get(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail("{}: metadata key '{}' is missing", name_, printable(key));
  return *v;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace strata::gguf
