// Helpers shared by the GGUF tests.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace strata::gguf::test {

// A path in the test temporary directory, unique to this process.
inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "strata_gguf_" + std::to_string(::getpid()) + "_" + name;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Removes the file when the test ends.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name) : path(temp_path(name)) {}
  ~TempFile() { ::unlink(path.c_str()); }
};

}  // namespace strata::gguf::test
