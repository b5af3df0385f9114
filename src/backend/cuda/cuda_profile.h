// Per-op GPU times of the CUDA backend, for finding where the time goes (CudaOptions::profile: STRATA_CUDA_PROFILE=1):
// each op records a CUDA event before and after its kernels; at every synchronize() the
// finished pairs are added up per label ("matmul q4_0 vec", "attention", ...), and the table
// is printed to stderr when the backend is destroyed. Off by default: then a scope is one
// branch.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

namespace strata::cuda {

class Profiler {
public:
  explicit Profiler(bool enabled);  // CudaOptions::profile
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  bool enabled() const { return enabled_; }
  void begin(const std::string& label, cudaStream_t stream);
  void end(cudaStream_t stream);
  void collect();  // after the stream has been synchronized
  void print() const;

private:
  struct Pending {
    std::string label;
    cudaEvent_t start, stop;
  };
  struct Total {
    double ms = 0;
    long calls = 0;
  };
  cudaEvent_t event();
  bool enabled_ = false;
  std::vector<cudaEvent_t> free_;
  std::vector<Pending> pending_;
  std::map<std::string, Total> totals_;
};

// Records the op's kernels between construction and destruction.
class ProfileScope {
public:
  ProfileScope(Profiler& p, cudaStream_t stream, const std::string& label) : p_(p), stream_(stream) {
    if (p_.enabled()) p_.begin(label, stream_);
  }
  ProfileScope(Profiler& p, cudaStream_t stream, const char* label) : p_(p), stream_(stream) {
    if (p_.enabled()) p_.begin(label, stream_);
  }
  ~ProfileScope() {
    if (p_.enabled()) p_.end(stream_);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

private:
  Profiler& p_;
  cudaStream_t stream_;
};

}  // namespace strata::cuda
