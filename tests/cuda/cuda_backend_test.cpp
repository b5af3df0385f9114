// The CUDA backend's behaviour around the ops: device tensors, errors with clear messages,
// and (without a GPU) a clean refusal to start.
#include "backend/cuda/cuda_backend.h"

#include <gtest/gtest.h>

#include <functional>
#include <iostream>

#include "core/error.h"

namespace strata::test {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CudaBackend, WithoutGpuRefusesWithClearMessage) {
  if (cuda_device_available()) GTEST_SKIP() << "a GPU is present";
  const std::string message = error_of([] { make_cuda_backend(); });
  EXPECT_NE(message.find("no CUDA GPU"), std::string::npos) << message;
}

class CudaDevice : public ::testing::Test {
protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU";
    backend_ = make_cuda_backend();
  }
  std::unique_ptr<Backend> backend_;
};

TEST_F(CudaDevice, NamesTheBackendAndDevice) {
  EXPECT_EQ(backend_->name(), "cuda");
  EXPECT_FALSE(backend_->device_name().empty());
  std::cout << "device: " << backend_->device_name() << "\n";
}

TEST_F(CudaDevice, TensorsLiveOnTheDeviceAndRefuseHostAccess) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  Tensor t = backend_->upload(Tensor::from_f32(values, {3, 2}, DType::F32, "t"));
  EXPECT_TRUE(t.is_device());
  EXPECT_TRUE(t.is_writable());
  EXPECT_NE(error_of([&] { (void)t.row(0); }).find("device memory"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)t.to_f32(); }).find("device memory"), std::string::npos);
  const Tensor back = backend_->to_host_f32(t.slice(1, 1, 1));  // a view, copied through a kernel
  EXPECT_FALSE(back.is_device());
  const auto* p = reinterpret_cast<const float*>(back.data());
  EXPECT_EQ(std::vector<float>(p, p + 3), std::vector<float>({4, 5, 6}));
}

TEST_F(CudaDevice, WeightsStayQuantized) {
  std::vector<float> values(64 * 4, 0.5f);
  const Tensor host = Tensor::from_f32(values, {64, 4}, DType::Q4_0, "w");
  const Tensor w = backend_->upload(host);
  EXPECT_EQ(w.dtype(), DType::Q4_0);
  EXPECT_EQ(w.n_bytes(), host.n_bytes());
}

TEST_F(CudaDevice, HostTensorsAreRefused) {
  const std::vector<float> values(8, 1.0f);
  const Tensor host = Tensor::from_f32(values, {8}, DType::F32, "x");
  Tensor out = backend_->alloc(DType::F32, {8}, "out");
  const std::string message = error_of([&] { backend_->scale(host, 2.0f, out); });
  EXPECT_NE(message.find("host memory"), std::string::npos) << message;
}

TEST_F(CudaDevice, OutOfMemoryNamesTheSizes) {
  const std::string message = error_of([&] { backend_->alloc(DType::F32, {int64_t(1) << 40}, "huge"); });
  EXPECT_NE(message.find("out of device memory"), std::string::npos) << message;
  EXPECT_NE(message.find("MiB free of"), std::string::npos) << message;
  std::cout << message << "\n";
}

TEST_F(CudaDevice, BadArgumentsThrowLikeCpuRef) {
  Tensor x = backend_->alloc(DType::F32, {8, 2}, "x");
  const std::vector<int32_t> ids = {0, 9};
  Tensor table = backend_->alloc(DType::F32, {8, 4}, "table");
  EXPECT_NE(error_of([&] { backend_->get_rows(table, ids, x); }).find("out of range"), std::string::npos);
  Tensor k = backend_->alloc(DType::F16, {8, 1, 4}, "k");
  Tensor src = backend_->alloc(DType::F32, {8, 1, 2}, "src");
  EXPECT_NE(error_of([&] { backend_->store_kv(src, k, 3); }).find("do not fit"), std::string::npos);
}

}  // namespace
}  // namespace strata::test
