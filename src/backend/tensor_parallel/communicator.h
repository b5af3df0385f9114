// Collectives over the K parts of a tensor-parallel backend (tensor_parallel_backend.h). One
// thread drives every rank: each call gets all ranks' buffers at once (one process, several
// devices, as ncclCommInitAll and grouped NCCL calls do).
#pragma once

#include <span>
#include <string_view>

#include "core/tensor.h"

namespace strata {

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;
  // The number of ranks K.
  virtual int size() const = 0;
  // bufs[r]: rank r's packed f32 tensor, the same element count on every rank. Afterwards every
  // bufs[r] holds the elementwise sum over the ranks.
  virtual void all_reduce_sum(std::span<const Tensor> bufs) = 0;
  // send[r]: rank r's packed f32 tensor of n elements; recv[r]: K * n elements. Afterwards every
  // recv[r] holds send[0], send[1], ..., send[K-1] one after the other.
  virtual void all_gather(std::span<const Tensor> send, std::span<const Tensor> recv) = 0;
};

// Fails unless `bufs` holds `k` packed f32 tensors of `n_elements` each.
void check_collective_buffers(std::string_view op, int k, std::span<const Tensor> bufs, int64_t n_elements);

}  // namespace strata
