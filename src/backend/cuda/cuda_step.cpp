// Decode steps recorded as CUDA graphs (Backend::run_step): a decode step is ~17 kernel
// launches per layer, each with a few microseconds of fixed cost; replayed as one graph the
// launches cost little. The recorded kernels read the token and the position from a small
// device buffer (step_values_) that a one-thread kernel writes before each replay.
#include <cstdlib>
#include <string_view>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace strata {
namespace {

// What a StepRecording holds on this backend.
struct CudaStep {
  bool sized = false;               // a step ran op by op, sizing the scratch buffers
  cudaGraphExec_t graph = nullptr;  // the captured step
  uint64_t generation = 0;          // the backend's scratch generation when it was captured
  ~CudaStep() {
    if (graph != nullptr) (void)cudaGraphExecDestroy(graph);
  }
};

}  // namespace

const int32_t* CudaBackend::step_value(std::string_view op, std::span<const int32_t> values, int index) {
  const int64_t expected = index == 0 ? int64_t(capture_.token) : capture_.pos;
  if (values.size() != 1 || values[0] != expected) {
    fail(
        "cuda: {} called during the recording of the decode step of token {} at position {} with other {} ({} "
        "values, first {})",
        op, capture_.token, capture_.pos, index == 0 ? "token ids" : "positions", values.size(),
        values.empty() ? -1 : values[0]);
  }
  return static_cast<const int32_t*>(step_values_.get()) + index;
}

void CudaBackend::run_step(StepRecording& recording, int32_t token, int64_t pos, const std::function<void()>& queue) {
  if (!options_.graphs || profiler_.enabled()) {
    queue();
    return;
  }
  if (!recording.state) recording.state = std::make_shared<CudaStep>();
  auto& step = *static_cast<CudaStep*>(recording.state.get());
  if (step.graph != nullptr && step.generation != scratch_generation_) {  // it reads moved buffers
    (void)cudaGraphExecDestroy(step.graph);
    step.graph = nullptr;
    step.sized = false;
  }
  if (step.graph == nullptr && !step.sized) {  // op by op, sizing every scratch buffer
    queue();
    step.sized = true;
    return;
  }
  if (!step_values_) step_values_ = device_alloc(2 * sizeof(int32_t), "decode step values", false);
  STRATA_CUDA_CHECK(cuda::launch_set_step(static_cast<int32_t*>(step_values_.get()), token, int32_t(pos), stream_));
  if (step.graph == nullptr) {
    STRATA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capture_ = Capture{true, token, pos};
    cudaGraph_t graph = nullptr;
    try {
      queue();
    } catch (...) {
      capture_ = {};
      (void)cudaStreamEndCapture(stream_, &graph);
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      throw;
    }
    capture_ = {};
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (ended != cudaSuccess) {
      fail("cuda: recording the decode step as a CUDA graph failed: {} (STRATA_CUDA_GRAPHS=0 runs without graphs)",
           cudaGetErrorString(ended));
    }
    const cudaError_t made = cudaGraphInstantiate(&step.graph, graph, 0);
    (void)cudaGraphDestroy(graph);
    STRATA_CUDA_CHECK(made);
    step.generation = scratch_generation_;
  }
  STRATA_CUDA_CHECK(cudaGraphLaunch(step.graph, stream_));
}

}  // namespace strata
