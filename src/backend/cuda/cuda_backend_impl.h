// The CUDA backend class (host code). Tensors it makes live in device memory
// (Tensor::device); every op queues kernels on one stream, so ops run in the order they are
// called and synchronize() waits for them. Argument checks are those of cpu_ref (same
// messages), plus: tensors must be on this device, norm weights and biases f32.
//
// Files: cuda_backend.cpp (device, memory, upload, copies to the host), cuda_ops.cpp (the
// ops but matmul), cuda_matmul.cpp (matmul: matrix-vector kernels for m <= 8 columns,
// dequantized tiles + cuBLAS GEMM above).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace strata {

class CudaBackend : public Backend {
public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }

  Tensor alloc(DType type, ShapeRef ne, std::string name) override;
  Tensor upload(const Tensor& host) override;
  Tensor to_host_f32(const Tensor& t) override;
  void synchronize() override;

  void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void matmul(const Tensor& w, const Tensor& x, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void scale(const Tensor& x, float s, Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void softmax(Tensor& x) override;
  void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) override;
  void store_kv(const Tensor& src, Tensor& cache, int64_t pos) override;
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
                 Tensor& out) override;

private:
  // A device allocation of `bytes`, freed when the last owner is gone; out-of-memory throws
  // with the sizes (requested, free, total, and what Strata holds). `what` names it.
  std::shared_ptr<void> device_alloc(size_t bytes, const std::string& what, bool weight);
  // A device scratch buffer of at least `bytes`, kept between calls (grows, never shrinks).
  void* scratch(std::shared_ptr<void>& buffer, size_t& capacity, size_t bytes, const char* what);
  // Copies host ints to the device (ids, positions) and returns the device copy.
  const int32_t* upload_ints(std::span<const int32_t> values);
  const double* rope_table(const RopeConfig& config);
  void gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m);

  int device_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  struct Held;  // bytes held now: uploaded weights, and everything else (for out-of-memory messages)
  std::shared_ptr<Held> held_;

  std::shared_ptr<void> ints_, rope_, gemm_;
  size_t ints_capacity_ = 0, rope_capacity_ = 0, gemm_capacity_ = 0;
  std::vector<double> rope_key_;  // the table now in rope_ (theta scales), to skip re-uploads
};

// The row layout of a tensor for the kernels (kernels.h).
cuda::RowLayout row_layout(const Tensor& t);

}  // namespace strata
