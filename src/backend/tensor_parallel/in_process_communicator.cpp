#include "backend/tensor_parallel/in_process_communicator.h"

#include <cstring>
#include <vector>

#include "core/error.h"

namespace strata {

void check_collective_buffers(std::string_view op, int k, std::span<const Tensor> bufs, int64_t n_elements) {
  if (int64_t(bufs.size()) != k) fail("{}: {} buffers for {} ranks", op, bufs.size(), k);
  for (const Tensor& b : bufs) {
    if (b.dtype() != DType::F32 || !b.is_contiguous() || b.n_elements() != n_elements) {
      fail("{}: {} is not a packed f32 tensor of {} elements", op, b.describe(), n_elements);
    }
  }
}

InProcessCommunicator::InProcessCommunicator(int k) : k_(k) {
  if (k < 1) fail("in-process communicator: {} ranks (at least 1)", k);
}

namespace {

void check_host(std::string_view op, std::span<const Tensor> bufs) {
  for (const Tensor& b : bufs) {
    if (b.is_device()) fail("{} (in-process): {} is in device memory", op, b.describe());
  }
}

}  // namespace

void InProcessCommunicator::all_reduce_sum(std::span<const Tensor> bufs) {
  const int64_t n = bufs.empty() ? 0 : bufs[0].n_elements();
  check_collective_buffers("all_reduce_sum", k_, bufs, n);
  check_host("all_reduce_sum", bufs);
  std::vector<float*> p;
  for (const Tensor& b : bufs) p.push_back(reinterpret_cast<float*>(b.mutable_data()));
  for (int64_t i = 0; i < n; ++i) {
    float sum = p[0][i];
    for (size_t r = 1; r < p.size(); ++r) sum += p[r][i];
    for (float* rank : p) rank[i] = sum;
  }
}

void InProcessCommunicator::all_gather(std::span<const Tensor> send, std::span<const Tensor> recv) {
  const int64_t n = send.empty() ? 0 : send[0].n_elements();
  check_collective_buffers("all_gather", k_, send, n);
  check_collective_buffers("all_gather", k_, recv, n * k_);
  check_host("all_gather", send);
  check_host("all_gather", recv);
  const size_t part = size_t(n) * sizeof(float);
  for (const Tensor& to : recv) {
    for (size_t r = 0; r < send.size(); ++r) {
      uint8_t* dst = to.mutable_data() + r * part;
      if (dst != send[r].data()) std::memmove(dst, send[r].data(), part);
    }
  }
}

}  // namespace strata
