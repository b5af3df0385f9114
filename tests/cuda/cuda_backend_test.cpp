// The CUDA backend's behaviour around the ops: device tensors, errors with clear messages,
// and (without a GPU) a clean refusal to start.
#include "backend/cuda/cuda_backend.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <iostream>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/op_cases_basic.h"
#include "backend/op_harness.h"
#include "core/error.h"

namespace strata::test {
namespace {

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
  std::vector<float> read(6);
  backend_->read_f32(t, read);  // straight into the caller's memory
  EXPECT_EQ(read, values);
  std::vector<float> short_read(5);
  EXPECT_NE(error_of([&] { backend_->read_f32(t, short_read); }).find("has 6 elements"), std::string::npos);
}

TEST_F(CudaDevice, WeightsStayQuantized) {
  std::vector<float> values(64 * 4, 0.5f);
  const Tensor host = Tensor::from_f32(values, {64, 4}, DType::Q4_0, "w");
  const Tensor w = backend_->upload(host);
  EXPECT_EQ(w.dtype(), DType::Q4_0);
  EXPECT_EQ(w.n_bytes(), host.n_bytes());
}

// Q4_0 and Q6_K rows of whole runs of 8 blocks are regrouped at upload (kernels.h: RowFormat);
// every way back to values (to_host_f32, get_rows, the copy of a device tensor, a view of rows)
// gives the reference dequantization's bits, as for the rows kept as in the file.
TEST_F(CudaDevice, WeightsAreRegroupedAndReadBackExactly) {
  struct Case {
    DType type;
    int64_t k;
    cuda::RowFormat format;
  };
  for (const Case c :
       {Case{DType::Q4_0, 512, cuda::RowFormat::grouped8}, Case{DType::Q4_0, 96, cuda::RowFormat::blocks},
        Case{DType::Q4_0, 1056, cuda::RowFormat::blocks}, Case{DType::Q4_K, 512, cuda::RowFormat::blocks},
        Case{DType::Q4_0, 4096, cuda::RowFormat::grouped8}, Case{DType::Q6_K, 2048, cuda::RowFormat::grouped8},
        Case{DType::Q6_K, 6144, cuda::RowFormat::grouped8}, Case{DType::Q6_K, 1792, cuda::RowFormat::blocks}}) {
    const std::string what = fmt::format("{} k{}", dtype_name(c.type), c.k);
    const int64_t n = 37;
    const Tensor host = Tensor::from_f32(random_values(size_t(c.k * n), uint32_t(c.k)), {c.k, n}, c.type, "w");
    const Tensor w = backend_->upload(host);
    EXPECT_EQ(weight_type(w).format, c.format) << what;
    EXPECT_EQ(w.n_bytes(), host.n_bytes()) << what;
    const Tensor want = host.to_f32();
    const auto values = [](const Tensor& t) {
      const auto* p = reinterpret_cast<const float*>(t.data());
      return std::vector<float>(p, p + t.n_elements());
    };
    EXPECT_EQ(values(backend_->to_host_f32(w)), values(want)) << what;
    const Tensor copy = backend_->upload(w);
    EXPECT_EQ(weight_type(copy).format, c.format) << what;
    EXPECT_EQ(values(backend_->to_host_f32(copy)), values(want)) << what;
    EXPECT_EQ(values(backend_->to_host_f32(w.slice(1, 5, 3))), values(want.slice(1, 5, 3).contiguous())) << what;
    const std::vector<int32_t> ids = {36, 0, 7};
    Tensor rows = backend_->alloc(DType::F32, {c.k, 3}, "rows");
    backend_->get_rows(w, ids, rows);
    std::vector<float> expected;
    for (int32_t id : ids) {
      const std::vector<float> row = values(want.slice(1, id, 1).contiguous());
      expected.insert(expected.end(), row.begin(), row.end());
    }
    EXPECT_EQ(values(backend_->to_host_f32(rows)), expected) << what;
  }
}

TEST_F(CudaDevice, RegroupingRefusesRowsItCannotGroup) {
  void* buffer = nullptr;
  ASSERT_EQ(cudaMalloc(&buffer, 8192), cudaSuccess);
  auto* half = static_cast<uint8_t*>(buffer) + 4096;
  EXPECT_EQ(cuda::launch_group_rows(DType::Q4_0, buffer, half, 96, 1, 54, nullptr),
            cudaErrorInvalidValue);  // not whole runs of 8 blocks
  EXPECT_EQ(cuda::launch_group_rows(DType::Q6_K, buffer, half, 1792, 1, 1472, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::launch_group_rows(DType::Q4_0, buffer, half, 256, 1, 100, nullptr),
            cudaErrorInvalidValue);  // rows shorter than their blocks
  EXPECT_EQ(cuda::launch_group_rows(DType::Q4_0, buffer, half + 2, 256, 1, 144, nullptr),
            cudaErrorInvalidValue);  // unaligned destination
  EXPECT_EQ(cuda::launch_group_rows(DType::Q4_K, buffer, half, 256, 1, 144, nullptr),
            cudaErrorInvalidValue);  // a type that is not regrouped
  EXPECT_EQ(cuda::launch_group_rows(DType::Q4_0, buffer, half, 256, 2, 144, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::launch_group_rows(DType::Q6_K, buffer, half, 2048, 2, 1680, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(buffer);
}

TEST_F(CudaDevice, HostTensorsAreRefused) {
  const std::vector<float> values(8, 1.0f);
  const Tensor host = Tensor::from_f32(values, {8}, DType::F32, "x");
  Tensor out = backend_->alloc(DType::F32, {8}, "out");
  const std::string message = error_of([&] { backend_->add(host, host, out); });
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
  EXPECT_NE(error_of([&] { backend_->store_kv(src, k, DenseKvLayout(3, 2, 4)); }).find("token 1 at position 4"),
            std::string::npos);
}

// CudaOptions::gemm picks the prefill GEMM's operands: f32 (no rounding) agrees with cpu_ref
// far more tightly than the default f16 and than tf32.
TEST_F(CudaDevice, GemmModeF32KeepsPrefillAtF32Precision) {
  const int64_t k = 1024, n = 300, m = 64;  // m > kMaxVecColumns: the GEMM path
  const Tensor w_host = Tensor::from_f32(random_values(size_t(k * n), 11), {k, n}, DType::Q4_K, "w");
  const std::vector<float> x_values = random_values(size_t(k * m), 12);
  auto product = [&](Backend& b) {
    const Tensor w = b.upload(w_host);
    const Tensor x = b.upload(Tensor::from_f32(x_values, {k, m}, DType::F32, "x"));
    Tensor out = b.alloc(DType::F32, {n, m}, "out");
    b.matmul(w, x, out);
    return download(b, out);
  };
  CpuRefBackend reference(Accumulation::f64);
  const std::vector<double> want = to_double(product(reference));
  const double nmse_f16 = nmse(want, product(*backend_));
  const double nmse_f32 = nmse(want, product(*make_cuda_backend(0, {.gemm = CudaOptions::Gemm::f32})));
  const double nmse_tf32 = nmse(want, product(*make_cuda_backend(0, {.gemm = CudaOptions::Gemm::tf32})));
  EXPECT_LT(nmse_f32, 1e-12);
  EXPECT_LT(nmse_f32 * 1000, nmse_f16);
  EXPECT_LT(nmse_f32 * 1000, nmse_tf32);
  EXPECT_LE(nmse_tf32, kNmsePlainMatmul);
}

// A toy decode step on the ops whose arguments change per step: the embedding of `token`
// roped at `pos` is the query, its first n_kv heads are stored as key and value at `pos`, and
// attention runs over positions 0..pos.
struct ToyStep {
  static constexpr int64_t kHeadDim = 64, kHeads = 4, kKvHeads = 2, kCtx = 300, kVocab = 50;
  Backend& backend;
  Tensor table, x, out, k_cache, v_cache;
  RopeConfig rope{int(kHeadDim), 10000.0f, 1.0f, false, {}};

  explicit ToyStep(Backend& b)
      : backend(b),
        table(b.upload(Tensor::from_f32(random_values(size_t(kHeadDim * kHeads * kVocab), 7),
                                        {kHeadDim * kHeads, kVocab}, DType::F32, "table"))),
        x(b.alloc(DType::F32, {kHeadDim * kHeads, 1}, "x")),
        out(b.alloc(DType::F32, {kHeadDim, kHeads, 1}, "out")),
        k_cache(b.alloc(DType::F16, {kHeadDim, kKvHeads, kCtx}, "k")),
        v_cache(b.alloc(DType::F16, {kHeadDim, kKvHeads, kCtx}, "v")) {}

  void queue(int32_t token, int64_t pos, int32_t rope_pos) {
    backend.get_rows(table, {&token, 1}, x);
    Tensor q = x.reshape({kHeadDim, kHeads, 1});
    backend.rope(q, {&rope_pos, 1}, rope);
    const Tensor kv = q.slice(1, 0, kKvHeads);
    const DenseKvLayout layout(pos, 1, kCtx);
    backend.store_kv(kv, k_cache, layout);
    backend.store_kv(kv, v_cache, layout);
    backend.attention(q, k_cache, v_cache, layout, 0.125f, 0, out);
  }
  std::vector<float> result() {
    const Tensor host = backend.to_host_f32(out);
    const auto* p = reinterpret_cast<const float*>(host.data());
    return {p, p + host.n_elements()};
  }
};

// Steps recorded once (run_step) and replayed with new tokens and positions compute exactly
// what the same ops compute one by one, across several attention splits (128 keys each).
TEST_F(CudaDevice, RecordedDecodeStepsEqualOpByOp) {
  ToyStep direct(*backend_), recorded(*backend_);
  StepRecording recording;
  int queued = 0;
  for (int64_t pos = 0; pos < 260; ++pos) {
    const int32_t token = int32_t((pos * 7) % ToyStep::kVocab);
    direct.queue(token, pos, int32_t(pos));
    backend_->run_step(recording, token, pos, [&] {
      ++queued;
      recorded.queue(token, pos, int32_t(pos));
    });
    ASSERT_EQ(recorded.result(), direct.result()) << "position " << pos;
  }
  EXPECT_EQ(queued, 2);  // sized op by op, then captured; every later step replayed the graph
}

TEST_F(CudaDevice, RecordingRefusesOtherStepArguments) {
  ToyStep toy(*backend_);
  StepRecording recording;
  backend_->run_step(recording, 3, 0, [&] { toy.queue(3, 0, 0); });
  const std::string message =
      error_of([&] { backend_->run_step(recording, 4, 1, [&] { toy.queue(4, 1, 2); }); });  // rope at 2, not 1
  EXPECT_NE(message.find("during the recording of the decode step of token 4 at position 1"), std::string::npos)
      << message;
  toy.queue(4, 1, 1);  // the stream works op by op again
  EXPECT_EQ(toy.result().size(), size_t(ToyStep::kHeadDim * ToyStep::kHeads));
}

}  // namespace
}  // namespace strata::test
