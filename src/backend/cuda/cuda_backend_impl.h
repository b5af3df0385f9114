// The CUDA backend class (host code). Tensors it makes live in device memory
// (Tensor::device); every op queues kernels on one stream, so ops run in the order they are
// called and synchronize() waits for them. Argument checks are those of cpu_ref (same
// messages), plus: tensors must be on this device, norm weights and biases f32.
//
// Files: cuda_backend.cpp (device, memory, upload, copies to the host), cuda_ops.cpp (the
// ops but matmul), cuda_matmul.cpp (matmul: matrix-vector kernels for m <= 8 columns,
// dequantized tiles + cuBLAS GEMM above), cuda_step.cpp (decode steps recorded as CUDA graphs),
// cuda_profile.cpp (per-op GPU times on request).
//
// Options: CudaOptions (cuda_backend.h), read once where the backend is made; the
// measurement-only variants in bench_switches.h.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_profile.h"
#include "backend/cuda/kernels.h"

namespace strata {

// The add and rms_norm kernels read b / weight as packed f32 (a TypeCheck, cuda_ops.cpp).
void check_packed_f32(std::string_view op, std::string_view role, const Tensor& t);

// ---- matmul's argument helpers, shared by matmul and matmul_fused (cuda_matmul.cpp) -------
// The stride in floats between consecutive flat rows of an f32 tensor, if evenly spaced.
std::optional<int64_t> even_column_stride(const Tensor& t);
// The same, which must exist (else fails naming op and role).
int64_t column_stride(std::string_view op, std::string_view role, const Tensor& t);
// Fails naming op and role for a tensor with elements in host memory.
void check_in_device_memory(std::string_view op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors);
// A weight type the matrix-vector kernels take (a TypeCheck).
void check_matvec_supported(std::string_view op, std::string_view role, const Tensor& t);
// x as the fused decode ops hand it to the fast matrix-vector kernels: m <= kMaxVecColumns
// columns, 16-byte aligned, evenly spaced; nullopt where they take the ops instead.
struct VecInput {
  const float* x;
  int64_t stride;
  int m;
};
std::optional<VecInput> vec_input(const Tensor& x);
// The fused kernels' job for w and out (and acc), or nullopt where matmul would refuse w or
// out or not take the fast kernels.
std::optional<cuda::VecJob> vec_job(const Tensor& w, Tensor& out, Tensor* acc);
// rms_norm folded into the first matrix-vector launch (single-column x), or nullopt.
std::optional<cuda::VecNorm> vec_norm(std::string_view op, const Tensor& x, const Tensor& weight, float eps,
                                      Tensor& normed);

class CudaBackend : public Backend {
public:
  CudaBackend(int device, const CudaOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }
  void make_current() override;
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  std::optional<size_t> device_free_memory() const override;

  Tensor alloc(DType type, ShapeRef ne, std::string name) override;
  Tensor upload(const Tensor& host) override;
  Tensor to_host_f32(const Tensor& t) override;
  void read_f32(const Tensor& t, std::span<float> out) override;
  void synchronize() override;

  void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void matmul(const Tensor& w, const Tensor& x, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void geglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void scale(const Tensor& x, float s, Tensor& out) override;
  void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) override;
  // A layout that is one sequence in a dense cache (dense_kv_start) takes the dense kernels
  // (and may be recorded in a step); others the paged ones, their arrays uploaded once per
  // distinct layout (upload_ints keeps the last).
  void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) override;
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                 int64_t window, Tensor& out) override;
  // The mixture-of-experts ops (cuda_experts.cpp).
  void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) override;
  void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) override;
  void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) override;
  void read_i32(const Tensor& t, std::span<int32_t> out) override;

  // Decode (x of m <= kMaxVecColumns columns, 16-byte aligned, on the fast kernels' types): the
  // shapes below in one matrix-vector launch with the epilogue, the norm or the attention's q8
  // output folded in (cuda_fused.cpp); other shapes and prompts by the pieces, as Backend does.
  void matmul_fused(const FusedMatmul& op) override;

  // The first step of a recording runs op by op (it sizes the scratch buffers), the second is
  // captured as a CUDA graph and launched, later ones launch the graph after writing their
  // token and position to the device (cuda_step.cpp).
  void run_step(StepRecording& recording, int32_t token, int64_t pos, const std::function<void()>& queue) override;

private:
  // ---- the shapes matmul_fused takes in one launch (cuda_fused.cpp, cuda_matmul.cpp) -----
  // product = w x; acc += product.
  void matmul_add(const Tensor& w, const Tensor& x, Tensor& product, Tensor& acc);
  // gate = w_gate x; up = w_up x; out = silu(gate) * up; with norm: x = rms_norm(norm_input)
  // first (x is then normed).
  struct NormArgs {
    const Tensor* input;
    const Tensor* weight;
    float eps;
  };
  void matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, Tensor& x, Tensor& gate, Tensor& up, Tensor& out,
                     const NormArgs* norm);
  // out = w x for every job (no epilogues); with norm: x = rms_norm(norm_input) first.
  void matmul_batch(Tensor& x, std::span<const MatmulJob> jobs, const NormArgs* norm);
  // Decode on the integer kernels (takes_q8 of w): the attention kernel writes out's q8 form
  // too, so the projection needs no launch that rounds it.
  void attention_matmul_add(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
                            Tensor& out, const Tensor& w, Tensor& product, Tensor& acc);
  // Jobs whose epilogues are rope and KV stores (no bias, no residual) after an rms_norm of a
  // single column, rope's pairs (2i, 2i + 1): the jobs' launches also rope and store
  // (kernels.h: VecRole). False where that does not apply (nothing done).
  bool norm_rope_store(const FusedMatmul& f);
  // The epilogues bias, rope and store of jobs whose products are computed: the q/k/v pattern
  // (rope; rope and store; store) in one rope_store_kv launch, else op by op.
  void job_epilogues(const FusedMatmul& f);
  // rope(q), rope(k), store_kv(k, k_cache, pos), store_kv(v, v_cache, pos) in one launch.
  void rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, std::span<const int32_t> positions,
                     const RopeConfig& config, Tensor& k_cache, Tensor& v_cache, int64_t pos);

  // While a step is captured, the ops read their step-dependent arguments (token id,
  // position, n_past) from step_values_ = int32 {token, pos} on the device instead of taking
  // them by value; step_value() checks that the argument is the step's and returns its address.
  struct Capture {
    bool active = false;
    int32_t token = 0;
    int64_t pos = 0;
  };
  const int32_t* step_value(std::string_view op, std::span<const int32_t> values, int index);
  // Small int arrays (token ids, positions) copied to the device through pinned memory, so
  // the copy does not wait for the GPU; a repeat of the last values reuses the device copy
  // (every layer ropes with the same positions).
  struct IntBuffer {
    std::shared_ptr<void> device;
    size_t capacity = 0;
    int32_t* pinned = nullptr;
    size_t pinned_capacity = 0;
    cudaEvent_t copied = nullptr;  // the last copy out of `pinned` has been done
    std::vector<int32_t> values;   // what `device` holds
  };

  // A device allocation of `bytes`, freed when the last owner is gone; out-of-memory throws
  // with the sizes (requested, free, total, and what Strata holds). `what` names it.
  // format: that of a weight's rows (kernels.h), which weight_type reads back.
  std::shared_ptr<void> device_alloc(size_t bytes, const std::string& what, bool weight,
                                     cuda::RowFormat format = cuda::RowFormat::blocks);
  void upload_grouped(const Tensor& src, void* dst);
  // A device scratch buffer of at least `bytes`, kept between calls (grows, never shrinks).
  void* scratch(std::shared_ptr<void>& buffer, size_t& capacity, size_t bytes, const char* what);
  const int32_t* upload_ints(IntBuffer& buffer, std::span<const int32_t> values, const char* what);
  void free_ints(IntBuffer& buffer);
  const double* rope_table(const RopeConfig& config);
  void check_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                       int64_t window, const Tensor& out) const;
  // store_kv and attention (arguments checked) of one sequence in a dense cache at pos / n_past,
  // and of a paged layout.
  void store_kv_dense(const Tensor& src, Tensor& cache, int64_t pos);
  void attention_dense(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
                       int64_t window, Tensor& out);
  void store_kv_paged(const Tensor& src, Tensor& cache, const KvLayout& kv);
  void attention_paged(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                       int64_t window, Tensor& out);
  cudaError_t attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                               float scale, Tensor& out, cuda::XQ8 q8);
  void gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m);
  void gemm_f16(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m);
  // Decode on the fast kernels (cuda_matmul.cpp): whether the integer ones take every one of
  // the weights ws at m columns; x's q8 form in the scratch (with norm: rms_norm first, normed
  // written, one launch); gate/up + SwiGLU in one launch (false: not taken); and the jobs of a
  // matmul_batch, a launch per weight type and kernel family.
  bool takes_q8(std::span<const Tensor* const> ws, int64_t m) const;
  cuda::XQ8 quantized_x(const float* x, int64_t k, const cuda::VecNorm* norm);
  bool swiglu_launch(std::string_view op, const Tensor& w_gate, const Tensor& w_up, const Tensor& x, Tensor& gate,
                     Tensor& up, Tensor& out, const cuda::VecNorm* norm);
  // rms_norm still to run before batch_groups' first launch (folded into it where the f32
  // kernels take the norm): x its input, normed its output (batch_groups' x).
  struct PendingNorm {
    const Tensor* x;
    const Tensor* weight;
    float eps;
    Tensor* normed;
    cuda::VecNorm args;
  };
  // rms_norm_qkv_rope_store_kv's rope and KV store, by the q, k and v jobs' launches, or by the
  // rope and store_kv ops for a job the fast kernels do not take (apply_role).
  struct JobRoles {
    std::span<const cuda::VecRole> role;  // one per job
    cuda::VecRope args;
    std::span<const int32_t> positions;
    const RopeConfig* config;
    Tensor* k_cache;
    Tensor* v_cache;
    int64_t pos;
  };
  void batch_groups(const Tensor& x, std::span<const MatmulJob> jobs, const float* xd, int64_t x_stride, int m,
                    std::optional<cuda::XQ8> q8, const PendingNorm* norm, const JobRoles* roles);
  void norm_batch(std::string_view op, const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                  std::span<const MatmulJob> jobs, const JobRoles* roles);
  void apply_role(const JobRoles& roles, cuda::VecRole role, const Tensor& out);

  int device_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  struct Held;  // bytes held now: uploaded weights, and everything else (for out-of-memory messages)
  std::shared_ptr<Held> held_;
  CudaOptions options_;
  bool fused_rope_ = true;  // bench_switches.h: STRATA_CUDA_FUSED_ROPE
  cuda::Profiler profiler_;

  Capture capture_;
  // The first cache position that the latest KV-cache store wrote (INT64_MAX: none yet).
  // Decode attention loads the keys before n_past ahead of waiting for the previous kernel
  // only where that kernel cannot have written them: where this is >= n_past.
  int64_t kv_stored_from_ = INT64_MAX;
  std::shared_ptr<void> step_values_;
  // Changes whenever a scratch buffer moves or the rope table changes: recorded steps read
  // those buffers, so a step recorded before is recorded again.
  uint64_t scratch_generation_ = 0;
  IntBuffer ids_, positions_;
  IntBuffer kv_rows_, kv_positions_, kv_seq_, kv_table_;  // a paged layout's arrays
  std::shared_ptr<void> rope_, gemm_, gemm_x_, attention_partials_, attention_done_, x_q8_;
  size_t rope_capacity_ = 0, gemm_capacity_ = 0, gemm_x_capacity_ = 0, attention_partials_capacity_ = 0,
         attention_done_capacity_ = 0, x_q8_capacity_ = 0;
  std::vector<double> rope_key_;  // the table now in rope_ (theta scales), to skip re-uploads
};

// The row layout of a tensor for the kernels (kernels.h).
cuda::RowLayout row_layout(const Tensor& t);
// The type and row format of a tensor's elements (the format upload gave a weight; blocks for
// every other tensor).
cuda::WeightType weight_type(const Tensor& t);

}  // namespace strata
