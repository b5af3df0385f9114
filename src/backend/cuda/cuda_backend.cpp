// The CUDA backend: the device, memory, uploads and copies back to the host.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string_view>

#include "backend/cuda/bench_switches.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

#ifndef STRATA_CUDA_ARCHITECTURES
#define STRATA_CUDA_ARCHITECTURES "unknown"
#endif

namespace strata {
namespace cuda {
namespace {

// "cudaMalloc(&p, n)" -> "cudaMalloc"; "src/backend/cuda/x.cpp" from an absolute path.
std::string_view function_name(const char* call) {
  const std::string_view s(call);
  return s.substr(0, s.find('('));
}
std::string_view source_path(const char* file) {
  const std::string_view s(file);
  const size_t at = s.rfind("src/");
  return at == std::string_view::npos ? s : s.substr(at);
}

// The deleter of device allocations: frees the memory and counts it out of what the backend
// holds. It also carries the format of a weight's rows (kernels.h: RowFormat), which
// weight_type reads back from any tensor on the allocation (std::get_deleter).
struct DeviceMemory {
  std::shared_ptr<const void> held;  // keeps the counter alive: tensors may outlive the backend
  std::atomic<size_t>* counter;
  size_t bytes;
  RowFormat format;
  void operator()(void* p) const {
    *counter -= bytes;
    (void)cudaFree(p);
  }
};

// Rows per staging copy of a grouped upload (upload_grouped).
constexpr size_t kStagingBytes = size_t(32) << 20;

}  // namespace

void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  fail("CUDA error in {} ({}:{}): {} ({})", function_name(call), source_path(file), line, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuBLAS error in {} ({}:{}): {} ({})", function_name(call), source_path(file), line,
       cublasGetStatusString(status), cublasGetStatusName(status));
}

}  // namespace cuda

namespace {

double mib(size_t bytes) {
  return double(bytes) / (1024.0 * 1024.0);
}

// Bytes of a packed tensor of shape ne, with overflow checks (Tensor::device checks the
// shape itself).
size_t packed_bytes(DType type, ShapeRef shape) {
  const std::span<const int64_t> ne = shape.dims();
  if (ne.empty()) return 0;
  for (int64_t d : ne) {
    if (d < 0) fail("cuda: negative dimension in a tensor shape");
  }
  size_t bytes = row_bytes(type, ne[0]);
  for (size_t i = 1; i < ne.size(); ++i) {
    if (__builtin_mul_overflow(bytes, size_t(ne[i]), &bytes)) fail("cuda: tensor byte size overflows");
  }
  return bytes;
}

}  // namespace

struct CudaBackend::Held {
  std::atomic<size_t> weights{0}, other{0};
};

cuda::RowLayout row_layout(const Tensor& t) {
  return cuda::RowLayout{t.ne(1), t.ne(2), int64_t(t.nb(1)), int64_t(t.nb(2)), int64_t(t.nb(3))};
}

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();  // clear the error for later calls
    return false;
  }
  return cuda::probe_kernel_image() == cudaSuccess;
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

CudaQueue cuda_queue_of(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) fail("backend '{}' is not a CUDA backend", backend.name());
  return {cuda->device(), cuda->stream()};
}

void CudaBackend::make_current() {
  STRATA_CUDA_CHECK(cudaSetDevice(device_));
}

CudaOptions CudaOptions::from_environment() {
  CudaOptions o;
  auto read = [](const char* name, std::initializer_list<std::string_view> allowed) -> std::string_view {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return {};
    for (std::string_view a : allowed) {
      if (a == v) return a;
    }
    fail("backend 'cuda': {}={} is not one of {}", name, v, fmt::join(allowed, ", "));
  };
  const std::string_view gemm = read("STRATA_CUDA_GEMM", {"f16", "tf32", "f32"});
  if (gemm == "tf32") o.gemm = Gemm::tf32;
  if (gemm == "f32") o.gemm = Gemm::f32;
  if (read("STRATA_CUDA_MATVEC", {"q8", "f32"}) == "f32") o.matvec = Matvec::f32;
  o.graphs = read("STRATA_CUDA_GRAPHS", {"0", "1"}) != "0";
  o.profile = read("STRATA_CUDA_PROFILE", {"0", "1"}) == "1";
  return o;
}

std::unique_ptr<Backend> make_cuda_backend(int device, const CudaOptions& options) {
  return std::make_unique<CudaBackend>(device, options);
}

CudaBackend::CudaBackend(int device, const CudaOptions& options)
    : device_(device), held_(std::make_shared<Held>()), options_(options), profiler_(options.profile) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    fail("backend 'cuda': no CUDA GPU is available ({})",
         status != cudaSuccess ? cudaGetErrorString(status) : "the driver reports 0 devices");
  }
  if (device < 0 || device >= count) fail("backend 'cuda': GPU {} does not exist ({} found)", device, count);
  STRATA_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp props{};
  STRATA_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
  device_name_ = props.name;
  const cudaError_t probe = cuda::probe_kernel_image();
  if (probe != cudaSuccess) {
    (void)cudaGetLastError();
    fail(
        "backend 'cuda': GPU {} '{}' has compute capability {}.{}, but this build of Strata has kernels only for "
        "CUDA architectures {} ({}); rebuild with -DCMAKE_CUDA_ARCHITECTURES={}{}",
        device, device_name_, props.major, props.minor, STRATA_CUDA_ARCHITECTURES, cudaGetErrorString(probe),
        props.major, props.minor);
  }
  STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  STRATA_CUBLAS_CHECK(cublasCreate(&cublas_));
  STRATA_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  const char* fused_rope = cuda::bench_switch("STRATA_CUDA_FUSED_ROPE");
  fused_rope_ = fused_rope == nullptr || std::string_view(fused_rope) != "0";
}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  try {
    profiler_.collect();
  } catch (const Error&) {  // a destructor must not throw; the table is only diagnostics
  }
  free_ints(ids_);
  free_ints(positions_);
  for (IntBuffer* b : {&kv_rows_, &kv_positions_, &kv_seq_, &kv_table_}) free_ints(*b);
  rope_.reset();
  gemm_.reset();
  x_q8_.reset();
  gemm_x_.reset();
  if (cublas_ != nullptr) (void)cublasDestroy(cublas_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
}

std::optional<size_t> CudaBackend::device_free_memory() const {
  size_t free = 0, total = 0;
  if (cudaSetDevice(device_) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess) {
    (void)cudaGetLastError();
    return std::numeric_limits<size_t>::max();  // unknown: no limit to check against
  }
  return free;
}

std::shared_ptr<void> CudaBackend::device_alloc(size_t bytes, const std::string& what, bool weight,
                                                cuda::RowFormat format) {
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free = 0, total = 0;
    (void)cudaMemGetInfo(&free, &total);
    fail(
        "backend 'cuda': out of device memory on GPU {} '{}': cannot allocate {:.1f} MiB for {}; {:.1f} MiB free "
        "of {:.1f} MiB; Strata holds {:.1f} MiB of model weights and {:.1f} MiB of KV cache, activations and scratch",
        device_, device_name_, mib(bytes), what, mib(free), mib(total), mib(held_->weights), mib(held_->other));
  }
  STRATA_CUDA_CHECK(status);
  std::atomic<size_t>& counter = weight ? held_->weights : held_->other;
  counter += bytes;
  return std::shared_ptr<void>(p, cuda::DeviceMemory{held_, &counter, bytes, format});
}

cuda::WeightType weight_type(const Tensor& t) {
  const auto* memory = std::get_deleter<cuda::DeviceMemory>(t.keep_alive());
  return {t.dtype(), memory != nullptr ? memory->format : cuda::RowFormat::blocks};
}

void* CudaBackend::scratch(std::shared_ptr<void>& buffer, size_t& capacity, size_t bytes, const char* what) {
  if (bytes > capacity || !buffer) {
    buffer.reset();  // cudaFree waits for the kernels that may still use the old buffer
    const size_t grown = std::max(bytes, capacity * 2);
    buffer = device_alloc(grown, what, false);
    capacity = grown;
    ++scratch_generation_;
  }
  return buffer.get();
}

const int32_t* CudaBackend::upload_ints(IntBuffer& b, std::span<const int32_t> values, const char* what) {
  if (values.empty()) return nullptr;
  if (b.device && std::equal(values.begin(), values.end(), b.values.begin(), b.values.end())) {
    return static_cast<const int32_t*>(b.device.get());
  }
  if (b.copied != nullptr) STRATA_CUDA_CHECK(cudaEventSynchronize(b.copied));  // `pinned` is free again
  if (values.size() > b.pinned_capacity) {
    if (b.pinned != nullptr) STRATA_CUDA_CHECK(cudaFreeHost(b.pinned));
    b.pinned = nullptr;
    const size_t n = std::max(values.size(), 2 * b.pinned_capacity);
    STRATA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&b.pinned), n * sizeof(int32_t)));
    b.pinned_capacity = n;
  }
  void* d = scratch(b.device, b.capacity, values.size_bytes(), what);
  std::memcpy(b.pinned, values.data(), values.size_bytes());
  STRATA_CUDA_CHECK(cudaMemcpyAsync(d, b.pinned, values.size_bytes(), cudaMemcpyHostToDevice, stream_));
  if (b.copied == nullptr) STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&b.copied, cudaEventDisableTiming));
  STRATA_CUDA_CHECK(cudaEventRecord(b.copied, stream_));
  b.values.assign(values.begin(), values.end());
  return static_cast<const int32_t*>(d);
}

void CudaBackend::free_ints(IntBuffer& b) {
  if (b.pinned != nullptr) (void)cudaFreeHost(b.pinned);
  if (b.copied != nullptr) (void)cudaEventDestroy(b.copied);
  b = IntBuffer{};
}

Tensor CudaBackend::alloc(DType type, ShapeRef ne, std::string name) {
  const size_t bytes = packed_bytes(type, ne);
  std::shared_ptr<void> memory = device_alloc(bytes, fmt::format("tensor '{}'", name), false);
  STRATA_CUDA_CHECK(cudaMemsetAsync(memory.get(), 0, bytes, stream_));
  void* data = memory.get();
  return Tensor::device(type, ne, data, std::move(memory), std::move(name));
}

// Weights are copied in the format device_format gives them (kernels.h): Q4_0 and Q6_K rows of
// whole runs of 8 blocks are regrouped on the device (upload_grouped); a copy of a device
// tensor keeps its format.
Tensor CudaBackend::upload(const Tensor& host) {
  if (host.is_device()) {
    if (!host.is_contiguous()) fail("cuda upload: {} is a non-contiguous device view", host.describe());
    std::shared_ptr<void> memory = device_alloc(host.n_bytes(), host.describe(), true, weight_type(host).format);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(memory.get(), host.data(), host.n_bytes(), cudaMemcpyDeviceToDevice, stream_));
    void* data = memory.get();
    return Tensor::device(host.dtype(), host.ne(), data, std::move(memory), host.name());
  }
  const Tensor src = host.contiguous();
  const size_t bytes = src.n_bytes();
  const cuda::RowFormat format = cuda::device_format(src.dtype(), src.ne(0));
  std::shared_ptr<void> memory = device_alloc(bytes, src.describe(), true, format);
  if (format == cuda::RowFormat::blocks) {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(memory.get(), src.data(), bytes, cudaMemcpyHostToDevice, stream_));
  } else {
    upload_grouped(src, memory.get());
  }
  void* data = memory.get();
  return Tensor::device(src.dtype(), src.ne(), data, std::move(memory), src.name());
}

// src's rows (packed) copied to a staging buffer on the device, a whole number of rows of at
// most kStagingBytes at a time, and regrouped from there into dst.
void CudaBackend::upload_grouped(const Tensor& src, void* dst) {
  const size_t row_bytes = src.nb(1);
  const int64_t rows = src.n_rows();
  const int64_t per_copy = std::clamp<int64_t>(int64_t(cuda::kStagingBytes / row_bytes), 1, std::max<int64_t>(rows, 1));
  const std::shared_ptr<void> staging =
      device_alloc(size_t(per_copy) * row_bytes, fmt::format("staging for {}", src.describe()), false);
  const auto* from = static_cast<const uint8_t*>(src.data());
  auto* to = static_cast<uint8_t*>(dst);
  for (int64_t first = 0; first < rows; first += per_copy) {
    const int64_t n = std::min(per_copy, rows - first);
    const size_t offset = size_t(first) * row_bytes;
    STRATA_CUDA_CHECK(
        cudaMemcpyAsync(staging.get(), from + offset, size_t(n) * row_bytes, cudaMemcpyHostToDevice, stream_));
    STRATA_CUDA_CHECK(
        cuda::launch_group_rows(src.dtype(), staging.get(), to + offset, src.ne(0), n, row_bytes, stream_));
  }
}

Tensor CudaBackend::to_host_f32(const Tensor& t) {
  if (!t.is_device()) return t.to_f32();
  Tensor out = Tensor::empty(DType::F32, t.ne(), t.name());
  if (t.n_elements() == 0) return out;
  if (t.dtype() == DType::F32 && t.is_contiguous()) {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(out.mutable_data(), t.data(), out.n_bytes(), cudaMemcpyDeviceToHost, stream_));
  } else {
    if (!cuda::convert_supported(t.dtype())) fail("cuda to_host_f32: type of {} is not supported", t.describe());
    if (t.traits().is_quantized && t.nb(0) != t.traits().type_size) {
      fail("cuda to_host_f32: {} has strided blocks", t.describe());
    }
    const std::shared_ptr<void> tmp = device_alloc(out.n_bytes(), "a copy to the host", false);
    STRATA_CUDA_CHECK(cuda::launch_rows_to_f32(weight_type(t), t.data(), row_layout(t), t.nb(0), nullptr, t.ne(0),
                                               t.n_rows(), static_cast<float*>(tmp.get()), t.ne(0), stream_));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(out.mutable_data(), tmp.get(), out.n_bytes(), cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  synchronize();
  return out;
}

void CudaBackend::read_f32(const Tensor& t, std::span<float> out) {
  if (!t.is_device() || t.dtype() != DType::F32 || !t.is_contiguous()) {
    Backend::read_f32(t, out);  // a conversion or a host tensor: through to_host_f32
    return;
  }
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_f32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  STRATA_CUDA_CHECK(cudaMemcpyAsync(out.data(), t.data(), out.size_bytes(), cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

void CudaBackend::synchronize() {
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  profiler_.collect();
}

}  // namespace strata
