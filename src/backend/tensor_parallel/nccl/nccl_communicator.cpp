#include "backend/tensor_parallel/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace strata {
namespace {

void check_nccl(ncclResult_t status, const char* call) {
  if (status != ncclSuccess) fail("NCCL: {} failed: {}", call, ncclGetErrorString(status));
}

#define STRATA_NCCL_CHECK(call) check_nccl((call), #call)

class NcclCommunicator : public Communicator {
public:
  explicit NcclCommunicator(const std::vector<std::unique_ptr<Backend>>& parts) {
    ::setenv("NCCL_NVLS_ENABLE", "0", 1);  // before NCCL reads its environment (header comment)
    std::vector<int> devices;
    for (const auto& p : parts) {
      const CudaQueue q = cuda_queue_of(*p);
      devices.push_back(q.device);
      streams_.push_back(static_cast<cudaStream_t>(q.stream));
    }
    comms_.resize(parts.size());
    STRATA_NCCL_CHECK(ncclCommInitAll(comms_.data(), int(comms_.size()), devices.data()));
  }
  ~NcclCommunicator() override {
    for (ncclComm_t c : comms_) (void)ncclCommDestroy(c);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string_view name() const override { return "NCCL"; }
  int size() const override { return int(comms_.size()); }

  void all_reduce_sum(std::span<const Tensor> bufs) override {
    const int64_t n = bufs.empty() ? 0 : bufs[0].n_elements();
    check_collective_buffers("all_reduce_sum", size(), bufs, n);
    STRATA_NCCL_CHECK(ncclGroupStart());
    for (size_t r = 0; r < bufs.size(); ++r) {
      void* data = bufs[r].mutable_data();
      STRATA_NCCL_CHECK(ncclAllReduce(data, data, size_t(n), ncclFloat, ncclSum, comms_[r], streams_[r]));
    }
    STRATA_NCCL_CHECK(ncclGroupEnd());
  }

  void all_gather(std::span<const Tensor> send, std::span<const Tensor> recv) override {
    const int64_t n = send.empty() ? 0 : send[0].n_elements();
    check_collective_buffers("all_gather", size(), send, n);
    check_collective_buffers("all_gather", size(), recv, n * size());
    STRATA_NCCL_CHECK(ncclGroupStart());
    for (size_t r = 0; r < send.size(); ++r) {
      STRATA_NCCL_CHECK(
          ncclAllGather(send[r].data(), recv[r].mutable_data(), size_t(n), ncclFloat, comms_[r], streams_[r]));
    }
    STRATA_NCCL_CHECK(ncclGroupEnd());
  }

private:
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const std::vector<std::unique_ptr<Backend>>& parts) {
  return std::make_unique<NcclCommunicator>(parts);
}

}  // namespace strata
