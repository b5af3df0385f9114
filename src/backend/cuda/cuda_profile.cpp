#include "backend/cuda/cuda_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_check.h"

namespace strata::cuda {

Profiler::Profiler(bool enabled) : enabled_(enabled) {}

Profiler::~Profiler() {
  if (!enabled_) return;
  print();
  for (cudaEvent_t e : free_) (void)cudaEventDestroy(e);
  for (const Pending& p : pending_) {
    (void)cudaEventDestroy(p.start);
    (void)cudaEventDestroy(p.stop);
  }
}

cudaEvent_t Profiler::event() {
  if (!free_.empty()) {
    cudaEvent_t e = free_.back();
    free_.pop_back();
    return e;
  }
  cudaEvent_t e;
  STRATA_CUDA_CHECK(cudaEventCreate(&e));
  return e;
}

void Profiler::begin(const std::string& label, cudaStream_t stream) {
  pending_.push_back({label, event(), nullptr});
  STRATA_CUDA_CHECK(cudaEventRecord(pending_.back().start, stream));
}

void Profiler::end(cudaStream_t stream) {
  pending_.back().stop = event();
  STRATA_CUDA_CHECK(cudaEventRecord(pending_.back().stop, stream));
}

void Profiler::collect() {
  if (!enabled_) return;
  for (const Pending& p : pending_) {
    float ms = 0;
    STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
    Total& t = totals_[p.label];
    t.ms += ms;
    ++t.calls;
    free_.push_back(p.start);
    free_.push_back(p.stop);
  }
  pending_.clear();
}

void Profiler::print() const {
  std::vector<std::pair<std::string, Total>> rows(totals_.begin(), totals_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  double all = 0;
  for (const auto& r : rows) all += r.second.ms;
  std::fprintf(stderr, "cuda profile (GPU time between each op's events)\n%-28s %10s %12s %10s %6s\n", "op", "calls",
               "total ms", "avg us", "%");
  for (const auto& [label, t] : rows) {
    std::fprintf(stderr, "%-28s %10ld %12.3f %10.2f %6.1f\n", label.c_str(), t.calls, t.ms,
                 1e3 * t.ms / double(t.calls), 100.0 * t.ms / all);
  }
}

}  // namespace strata::cuda
