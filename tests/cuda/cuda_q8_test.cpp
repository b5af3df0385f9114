// Decode on the integer kernels (kernels.h: XQ8, quantize_x.cu, matmul_vec_q8.cu): x's q8
// form must be exactly what the reference below computes, the rms_norm that writes it must
// keep rms_norm's bits, and the matrix-vector products on it must be the products with the
// dequantized q8 form of x up to f32 rounding (far tighter than the matmul threshold), and
// within the quantized-matmul threshold of the products with x itself.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <vector>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "backend/op_cases_basic.h"
#include "backend/op_harness.h"
#include "core/error.h"

namespace strata::test {
namespace {

constexpr int kBlock = 32;

// The q8 form as kernels.h defines it, computed plainly on the host.
struct HostQ8 {
  std::vector<int8_t> q;
  std::vector<float> d, s;
};
HostQ8 quantize_reference(const std::vector<float>& x) {
  HostQ8 r;
  for (size_t b = 0; b < x.size() / kBlock; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(x[b * kBlock + i]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < kBlock; ++i) {
      const float scaled = x[b * kBlock + i] * inv;
      const int q = int(std::nearbyint(scaled));
      r.q.push_back(int8_t(q));
      sum += q;
    }
    const float d = amax / 127.0f;
    r.d.push_back(d);
    r.s.push_back(d * float(sum));
  }
  return r;
}

// x as the integer kernels see it: d q per element.
std::vector<float> dequantized(const HostQ8& q8) {
  std::vector<float> x(q8.q.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = q8.d[i / kBlock] * float(q8.q[i]);
  return x;
}

bool have_gpu() {
  return cuda_device_available();
}

template <typename T>
struct DeviceBuffer {
  explicit DeviceBuffer(size_t bytes) {
    if (cudaMalloc(&p, bytes) != cudaSuccess) fail("cudaMalloc of {} bytes failed", bytes);
  }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return static_cast<T*>(p); }
  void* p = nullptr;
};

template <typename T>
std::vector<T> to_host(const void* device, size_t n) {
  std::vector<T> out(n);
  EXPECT_EQ(cudaMemcpy(out.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

HostQ8 download_q8(const cuda::XQ8& q8, int64_t k) {
  HostQ8 r;
  r.q = to_host<int8_t>(q8.q, size_t(k));
  for (const float2& ds : to_host<float2>(q8.ds, size_t(k / kBlock))) {
    r.d.push_back(ds.x);
    r.s.push_back(ds.y);
  }
  return r;
}

void expect_same_q8(const HostQ8& got, const HostQ8& want, const std::string& what) {
  ASSERT_EQ(got.q.size(), want.q.size()) << what;
  for (size_t i = 0; i < want.q.size(); ++i) ASSERT_EQ(got.q[i], want.q[i]) << what << ", value " << i;
  for (size_t b = 0; b < want.d.size(); ++b) {
    ASSERT_EQ(got.d[b], want.d[b]) << what << ", scale of block " << b;
    ASSERT_EQ(got.s[b], want.s[b]) << what << ", sum of block " << b;
  }
}

// Random values with awkward blocks: one of zeros, one of a single non-zero, one ~1e4 larger.
std::vector<float> awkward_values(int64_t k, uint32_t seed) {
  std::vector<float> x = random_values(size_t(k), seed);
  for (int i = 0; i < kBlock && i < k; ++i) x[size_t(i)] = 0.0f;
  if (k >= 2 * kBlock) {
    for (int i = 0; i < kBlock; ++i) x[size_t(kBlock + i)] = i == 5 ? -3.0f : 0.0f;
  }
  if (k >= 3 * kBlock) {
    for (int i = 0; i < kBlock; ++i) x[size_t(2 * kBlock + i)] *= 1e4f;
  }
  return x;
}

TEST(CudaQ8, QuantizeMatchesReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  for (int64_t k : {32, 96, 2048, 4128, 11008}) {
    const std::vector<float> x = awkward_values(k, uint32_t(k));
    const DeviceBuffer<float> xd(x);
    const DeviceBuffer<uint8_t> buffer(cuda::x_q8_bytes(k));
    const cuda::XQ8 q8 = cuda::x_q8_view(buffer.p, k);
    ASSERT_EQ(cuda::launch_quantize_x_q8(xd.get(), k, q8, nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expect_same_q8(download_q8(q8, k), quantize_reference(x), "k = " + std::to_string(k));
  }
}

TEST(CudaQ8, QuantizeRefusesRowsNotOfWholeBlocks) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  const DeviceBuffer<float> xd(std::vector<float>(64, 1.0f));
  const DeviceBuffer<uint8_t> buffer(cuda::x_q8_bytes(64));
  EXPECT_EQ(cuda::launch_quantize_x_q8(xd.get(), 40, cuda::x_q8_view(buffer.p, 40), nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::launch_rms_norm_q8(xd.get(), xd.get(), 1e-5f, xd.get(), 40, cuda::x_q8_view(buffer.p, 40), nullptr),
            cudaErrorInvalidValue);
}

// Every path of the rms_norm kernel: 128 threads (n <= 2048), 1024 threads in one pass
// (n <= 8192, also where the threads do not divide n), two launches above.
TEST(CudaQ8, RmsNormQ8KeepsRmsNormBitsAndQuantizesThem) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  for (int64_t n : {64, 2048, 2080, 4096, 5152, 8192, 8224}) {
    const std::string what = "n = " + std::to_string(n);
    const std::vector<float> x = random_values(size_t(n), uint32_t(n) + 1, 3.0f);
    const std::vector<float> w = random_values(size_t(n), uint32_t(n) + 2);
    const DeviceBuffer<float> xd(x), wd(w), normed(size_t(n) * sizeof(float)), plain(size_t(n) * sizeof(float));
    const DeviceBuffer<uint8_t> buffer(cuda::x_q8_bytes(n));
    const cuda::XQ8 q8 = cuda::x_q8_view(buffer.p, n);
    const cuda::RowLayout row{1, 1, n * int64_t(sizeof(float)), 0, 0};
    ASSERT_EQ(cuda::launch_rms_norm_q8(xd.get(), wd.get(), 1e-5f, normed.get(), n, q8, nullptr), cudaSuccess) << what;
    ASSERT_EQ(cuda::launch_rms_norm(xd.get(), row, wd.get(), 1e-5f, plain.get(), row, n, 1, nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = to_host<float>(normed.get(), size_t(n)),
                             want = to_host<float>(plain.get(), size_t(n));
    ASSERT_EQ(got, want) << what;
    expect_same_q8(download_q8(q8, n), quantize_reference(want), what);
  }
}

// The products of the integer kernels (launched directly: the backend's choice of kernel is
// tested below) against cpu_ref's on the dequantized q8 form of x (f32 rounding apart they are
// the same sums) and on x itself (the rounding of x to 8 bits: printed, and under the
// quantized-matmul threshold).
TEST(CudaQ8, MatvecEqualsProductWithQuantizedX) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  const std::unique_ptr<Backend> gpu = make_cuda_backend();
  CpuRefBackend reference(Accumulation::f32, 4);
  struct Shape {
    int64_t k, n;
  };
  uint32_t seed = 900;
  for (DType type : {DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    double worst_exact = 0, worst_q8 = 0;
    // n >= 7 rows: an NMSE of fewer values depends on whether their sums happen to be near 0.
    // Partial last CTAs, partial block steps, 4 rows per CTA (n >= 4096) and fewer. Rows as
    // uploaded (Q4_0 and Q6_K of whole runs of 8 blocks: regrouped, kernels.h: RowFormat) and as
    // in the file.
    for (Shape s :
         {Shape{256, 7}, Shape{768, 1501}, Shape{2304, 4097}, Shape{4096, 33}, Shape{11008, 515}, Shape{6144, 4099}}) {
      for (const cuda::RowFormat format : {cuda::RowFormat::grouped8, cuda::RowFormat::blocks}) {
        if (format == cuda::RowFormat::grouped8 && cuda::device_format(type, s.k) != format) continue;
        const std::string what = fmt::format("{} k{} n{} {}", dtype_name(type), s.k, s.n,
                                             format == cuda::RowFormat::blocks ? "as in the file" : "grouped");
        ASSERT_TRUE(cuda::matvec_q8_supported(type, s.k)) << what;
        const Tensor w = Tensor::from_f32(random_values(size_t(s.k * s.n), ++seed), {s.k, s.n}, type, "w");
        const std::vector<float> x = random_values(size_t(s.k), ++seed);
        const Tensor uploaded = gpu->upload(w);
        ASSERT_EQ(weight_type(uploaded).format, cuda::device_format(type, s.k)) << what;
        const DeviceBuffer<uint8_t> file_rows(std::vector<uint8_t>(w.data(), w.data() + w.n_bytes()));
        const void* rows = format == cuda::RowFormat::grouped8 ? uploaded.data() : file_rows.p;
        Tensor out = gpu->alloc(DType::F32, {s.n, 1}, "out");
        const DeviceBuffer<float> xd(x);
        const DeviceBuffer<uint8_t> buffer(cuda::x_q8_bytes(s.k));
        const cuda::XQ8 q8 = cuda::x_q8_view(buffer.p, s.k);
        gpu->synchronize();
        ASSERT_EQ(cuda::launch_quantize_x_q8(xd.get(), s.k, q8, nullptr), cudaSuccess) << what;
        const cuda::VecJob job{rows, w.nb(1), s.n, reinterpret_cast<float*>(out.mutable_data()), s.n, nullptr, 0};
        ASSERT_EQ(cuda::launch_matvec_q8_jobs({type, format}, &job, 1, s.k, q8, nullptr), cudaSuccess) << what;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        const std::vector<float> got = download(*gpu, out);
        auto product = [&](const std::vector<float>& v) {
          Tensor o = reference.alloc(DType::F32, {s.n, 1}, "o");
          reference.matmul(w, upload_values(reference, v, {s.k, 1}), o);
          return to_double(download(reference, o));
        };
        const double q8_error = nmse(product(dequantized(quantize_reference(x))), got);
        const double exact_error = nmse(product(x), got);
        EXPECT_LE(q8_error, 1e-10) << what;
        EXPECT_LE(exact_error, kNmseQuantMatmul) << what;
        worst_q8 = std::max(worst_q8, q8_error);
        worst_exact = std::max(worst_exact, exact_error);
      }
    }
    std::cout << fmt::format("{:<5} q8 matvec: nmse {:.2e} against x's q8 form, {:.2e} against x\n", dtype_name(type),
                             worst_q8, worst_exact);
  }
}

// The backend's choice: a matmul of 2^23 Q4_0 weights or more takes the integer kernels (its error is then the rounding
// of x), CudaOptions::matvec = f32 keeps x f32 (the product then agrees with cpu_ref's on x to f32 rounding).
TEST(CudaQ8, OptionSelectsThePath) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  const int64_t k = 4096, n = 8192;
  const Tensor w = Tensor::from_f32(random_values(size_t(k * n), 77), {k, n}, DType::Q4_0, "w");
  const std::vector<float> x = random_values(size_t(k), 78);
  CpuRefBackend reference(Accumulation::f32, 4);
  Tensor want = reference.alloc(DType::F32, {n, 1}, "want");
  reference.matmul(w, upload_values(reference, x, {k, 1}), want);
  auto error_with = [&](CudaOptions::Matvec mode) {
    const std::unique_ptr<Backend> gpu = make_cuda_backend(0, {.matvec = mode});
    Tensor out = gpu->alloc(DType::F32, {n, 1}, "out");
    gpu->matmul(gpu->upload(w), upload_values(*gpu, x, {k, 1}), out);
    return nmse(to_double(download(reference, want)), download(*gpu, out));
  };
  const double f32 = error_with(CudaOptions::Matvec::f32), q8 = error_with(CudaOptions::Matvec::q8);
  EXPECT_LE(f32, 1e-10);
  EXPECT_GT(q8, 1e-9);
  EXPECT_LE(q8, kNmseQuantMatmul);
}

}  // namespace
}  // namespace strata::test
