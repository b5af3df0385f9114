#include "runtime/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace strata {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("strata-npy-" + name)).string();
}

TEST(Npy, RoundTripKeepsShapeInNumpyOrder) {
  Tensor t = Tensor::empty(DType::F32, {3, 2});  // ne0 = 3 innermost: numpy shape (2, 3)
  auto* v = reinterpret_cast<float*>(t.mutable_data());
  for (int i = 0; i < 6; ++i) v[i] = float(i) * 0.5f - 1.0f;
  const std::string path = temp_path("roundtrip.npy");
  write_npy(path, t);
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(a.values.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.values[size_t(i)], v[i]);
  // The header is padded so that the data starts at a multiple of 64 bytes.
  EXPECT_EQ(std::filesystem::file_size(path) % 64, 24u);
  std::remove(path.c_str());
}

TEST(Npy, OneDimensionalShapeHasTrailingComma) {
  Tensor t = Tensor::empty(DType::F32, {5});
  const std::string path = temp_path("vec.npy");
  write_npy(path, t);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("'shape': (5,)"), std::string::npos);
  EXPECT_EQ(read_npy(path).shape, (std::vector<int64_t>{5}));
  std::remove(path.c_str());
}

TEST(Npy, MalformedFilesGiveErrors) {
  const std::string path = temp_path("bad.npy");
  auto write = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  };
  const std::string magic = std::string("\x93NUMPY", 6) + std::string("\x01\x00", 2);
  auto with_header = [&](const std::string& h, const std::string& data) {
    return magic + std::string(1, char(h.size() & 0xff)) + std::string(1, char(h.size() >> 8)) + h + data;
  };
  write("not numpy at all");
  EXPECT_THROW(read_npy(path), Error);
  write(with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n", "abcd"));
  EXPECT_THROW(read_npy(path), Error);
  write(with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", "abcd"));
  EXPECT_THROW(read_npy(path), Error);
  write(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", "abcd"));  // short data
  EXPECT_THROW(read_npy(path), Error);
  write(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999,), }\n", ""));
  EXPECT_THROW(read_npy(path), Error);
  write(magic + "\xff\xff");  // header length past the end
  EXPECT_THROW(read_npy(path), Error);
  EXPECT_THROW(read_npy(temp_path("missing.npy")), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace strata
