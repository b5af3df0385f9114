// Tensors in a backend's device memory: shape and views work, host element access refuses.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace strata {
namespace {

// A fake device address: never dereferenced, which is what the test checks.
void* fake_device_pointer() {
  static char byte;
  return &byte;
}

TEST(DeviceTensor, KeepsShapeAndViews) {
  const Tensor t = Tensor::device(DType::F32, {4, 3}, fake_device_pointer(), nullptr, "t");
  EXPECT_TRUE(t.is_device());
  EXPECT_TRUE(t.is_writable());
  EXPECT_EQ(t.n_bytes(), 48u);
  const Tensor v = t.slice(1, 1, 2).reshape({8});
  EXPECT_TRUE(v.is_device());
  EXPECT_EQ(v.data(), t.data() + 16);
}

TEST(DeviceTensor, HostAccessThrowsNamingTheTensor) {
  const Tensor t = Tensor::device(DType::Q4_0, {32, 2}, fake_device_pointer(), nullptr, "w");
  std::vector<float> row(32);
  for (auto f : {+[](const Tensor& x) { (void)x.row(0); }, +[](const Tensor& x) { (void)x.to_f32(); },
                 +[](const Tensor& x) { (void)x.to_type(DType::F32); }}) {
    try {
      f(t);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("device memory"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(t.dequantize_row(row.data(), 0), Error);
}

TEST(DeviceTensor, NullDataIsRefused) {
  EXPECT_THROW(Tensor::device(DType::F32, {4}, nullptr, nullptr), Error);
  EXPECT_NO_THROW(Tensor::device(DType::F32, {0}, nullptr, nullptr));
}

}  // namespace
}  // namespace strata
