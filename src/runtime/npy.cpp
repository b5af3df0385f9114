#include "runtime/npy.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace strata {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kMaxHeader = 4096;

std::string header_for(const std::vector<int64_t>& shape) {
  std::string dims = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) dims += ",";
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Pad with spaces so that magic + version + length + header (ending in '\n') is a multiple of 64.
  const size_t total = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  return header;
}

// The text of `key`'s value in a .npy header dict: a quoted string, a word, or a tuple.
std::string header_field(const std::string& header, const std::string& key) {
  const std::string tag = "'" + key + "':";
  size_t i = header.find(tag);
  if (i == std::string::npos) return "";
  i += tag.size();
  while (i < header.size() && header[i] == ' ') ++i;
  if (i >= header.size()) return "";
  size_t end;
  if (header[i] == '\'') {
    end = header.find('\'', i + 1);
  } else if (header[i] == '(') {
    end = header.find(')', i);
  } else {
    end = header.find_first_of(",}", i);
    return header.substr(i, end == std::string::npos ? std::string::npos : end - i);
  }
  return end == std::string::npos ? "" : header.substr(i, end - i + 1);
}

}  // namespace

void write_npy(const std::string& path, const Tensor& t, int min_dims) {
  if (t.dtype() != DType::F32 || !t.is_contiguous()) fail("write_npy: {} must be contiguous f32", t.describe());
  std::vector<int64_t> shape;
  for (int d = std::max(t.n_dims(), min_dims) - 1; d >= 0; --d) shape.push_back(t.ne(d));
  const std::string header = header_for(shape);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) fail("{}: cannot open for writing: {}", path, std::strerror(errno));
  const uint8_t version[2] = {1, 0};
  const uint16_t len = uint16_t(header.size());
  const uint8_t len_le[2] = {uint8_t(len & 0xff), uint8_t(len >> 8)};
  bool ok = std::fwrite(kMagic, 1, kMagicLen, f.get()) == kMagicLen && std::fwrite(version, 1, 2, f.get()) == 2 &&
            std::fwrite(len_le, 1, 2, f.get()) == 2 &&
            std::fwrite(header.data(), 1, header.size(), f.get()) == header.size() &&
            std::fwrite(t.data(), 1, t.n_bytes(), f.get()) == t.n_bytes();
  ok = std::fflush(f.get()) == 0 && ok;
  if (!ok) fail("{}: write failed: {}", path, std::strerror(errno));
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0) fail("{}: not a .npy file", path);
  const int major = uint8_t(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("{}: truncated .npy header", path);
    for (int i = 3; i >= 0; --i) header_len = header_len << 8 | uint8_t(bytes[8 + size_t(i)]);
    header_start = 12;
  } else {
    fail("{}: unsupported .npy version {}", path, major);
  }
  if (header_len > kMaxHeader || header_start + header_len > bytes.size()) fail("{}: bad .npy header length", path);
  const std::string header = bytes.substr(header_start, header_len);

  const std::string descr = header_field(header, "descr");
  if (descr != "'<f4'" && descr != "'<f8'" && descr != "'|f4'" && descr != "'|f8'") {
    fail("{}: only little-endian float32/float64 arrays are supported, got {}", path, descr);
  }
  const bool f64 = descr[3] == '8';
  if (header_field(header, "fortran_order") != "False") fail("{}: Fortran-order arrays are not supported", path);
  NpyArray out;
  int64_t count = 1;
  const std::string shape = header_field(header, "shape");
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')') fail("{}: bad shape {}", path, shape);
  for (size_t i = 1; i + 1 < shape.size();) {
    while (i + 1 < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    size_t j = i;
    while (j + 1 < shape.size() && shape[j] >= '0' && shape[j] <= '9') ++j;
    if (j == i) {
      if (i + 1 < shape.size()) fail("{}: bad shape {}", path, shape);
      break;
    }
    if (j - i > 12) fail("{}: dimension {} is too large", path, shape.substr(i, j - i));
    const int64_t d = std::stoll(shape.substr(i, j - i));
    if (d != 0 && count > (int64_t(1) << 40) / d) fail("{}: array is too large", path);
    count *= d;
    out.shape.push_back(d);
    i = j;
  }
  const size_t elem = f64 ? 8 : 4;
  const size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != size_t(count) * elem) {
    fail("{}: data is {} bytes, the shape needs {}", path, bytes.size() - data_start, size_t(count) * elem);
  }
  out.values.resize(size_t(count));
  for (size_t i = 0; i < size_t(count); ++i) {
    if (f64) {
      double d;
      std::memcpy(&d, bytes.data() + data_start + i * 8, 8);
      out.values[i] = float(d);
    } else {
      std::memcpy(&out.values[i], bytes.data() + data_start + i * 4, 4);
    }
  }
  return out;
}

}  // namespace strata
