// The communicator of the CPU simulation: ranks whose buffers are host memory (cpu_ref and cpu
// parts), summed in rank order ((b0 + b1) + b2) + ... in f32, so a result never depends on
// thread timing and every rank gets the same bits.
#pragma once

#include "backend/tensor_parallel/communicator.h"

namespace strata {

class InProcessCommunicator : public Communicator {
public:
  explicit InProcessCommunicator(int k);
  std::string_view name() const override { return "in-process"; }
  int size() const override { return k_; }
  void all_reduce_sum(std::span<const Tensor> bufs) override;
  void all_gather(std::span<const Tensor> send, std::span<const Tensor> recv) override;

private:
  int k_;
};

}  // namespace strata
