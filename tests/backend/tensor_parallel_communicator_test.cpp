// The in-process communicator (src/backend/tensor_parallel/in_process_communicator.h): sums in
// rank order with the same bits on every rank, gathers in rank order, refuses bad buffers.
#include <gtest/gtest.h>

#include <vector>

#include "backend/op_harness.h"
#include "backend/tensor_parallel/in_process_communicator.h"

namespace strata::test {
namespace {

std::vector<Tensor> rank_buffers(int k, int64_t n, uint32_t seed) {
  std::vector<Tensor> bufs;
  for (int r = 0; r < k; ++r) {
    const std::vector<float> v = random_values(size_t(n), seed + uint32_t(r), 1.0f + float(r));
    bufs.push_back(Tensor::from_f32(v, {n}, DType::F32));
  }
  return bufs;
}

TEST(InProcessCommunicator, AllReduceSumsInRankOrderOnEveryRank) {
  for (int k : {1, 2, 3, 4}) {
    const int64_t n = 37;
    std::vector<Tensor> bufs = rank_buffers(k, n, 11);
    std::vector<std::vector<float>> before;
    for (const Tensor& b : bufs) before.push_back(host_values(b));
    InProcessCommunicator comm(k);
    comm.all_reduce_sum(bufs);
    for (int64_t i = 0; i < n; ++i) {
      float want = before[0][size_t(i)];  // ((b0 + b1) + b2) + ... in f32
      for (int r = 1; r < k; ++r) want += before[size_t(r)][size_t(i)];
      for (int r = 0; r < k; ++r) {
        EXPECT_EQ(host_values(bufs[size_t(r)])[size_t(i)], want) << "k " << k << " rank " << r << " element " << i;
      }
    }
  }
}

TEST(InProcessCommunicator, AllGatherConcatenatesInRankOrder) {
  const int k = 3;
  const int64_t n = 5;
  const std::vector<Tensor> send = rank_buffers(k, n, 3);
  std::vector<Tensor> recv;
  for (int r = 0; r < k; ++r) recv.push_back(Tensor::empty(DType::F32, {n * k}));
  InProcessCommunicator(k).all_gather(send, recv);
  for (int r = 0; r < k; ++r) {
    const std::vector<float> got = host_values(recv[size_t(r)]);
    for (int q = 0; q < k; ++q) {
      const std::vector<float> part = host_values(send[size_t(q)]);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got[size_t(q * n + i)], part[size_t(i)]) << r << " " << q << " " << i;
    }
  }
}

TEST(InProcessCommunicator, AllGatherInPlace) {  // send[r] is rank r's range of recv[r]
  const int k = 2;
  const int64_t n = 4;
  std::vector<Tensor> recv, send;
  for (int r = 0; r < k; ++r) {
    std::vector<float> v(size_t(n * k), 0.0f);
    for (int64_t i = 0; i < n; ++i) v[size_t(r * n + i)] = float(10 * r + i);
    recv.push_back(Tensor::from_f32(v, {n * k}, DType::F32));
    send.push_back(recv.back().slice(0, r * n, n));
  }
  InProcessCommunicator(k).all_gather(send, recv);
  for (int r = 0; r < k; ++r) EXPECT_EQ(host_values(recv[size_t(r)]), (std::vector<float>{0, 1, 2, 3, 10, 11, 12, 13}));
}

TEST(InProcessCommunicator, RefusesBadBuffers) {
  InProcessCommunicator comm(2);
  std::vector<Tensor> one = rank_buffers(1, 4, 1);
  EXPECT_NE(error_of([&] { comm.all_reduce_sum(one); }).find("1 buffers for 2 ranks"), std::string::npos);
  std::vector<Tensor> uneven = {Tensor::empty(DType::F32, {4}), Tensor::empty(DType::F32, {5}, "b")};
  EXPECT_NE(error_of([&] { comm.all_reduce_sum(uneven); }).find("tensor 'b' f32 [5] is not a packed f32 tensor of 4"),
            std::string::npos);
  std::vector<Tensor> f16 = {Tensor::empty(DType::F16, {4}, "h"), Tensor::empty(DType::F16, {4}, "h")};
  EXPECT_NE(error_of([&] { comm.all_reduce_sum(f16); }).find("is not a packed f32"), std::string::npos);
  std::vector<Tensor> send = rank_buffers(2, 4, 1);
  std::vector<Tensor> small = rank_buffers(2, 4, 1);
  EXPECT_NE(error_of([&] { comm.all_gather(send, small); }).find("of 8 elements"), std::string::npos);
  EXPECT_NE(error_of([] { InProcessCommunicator bad(0); }).find("0 ranks"), std::string::npos);
}

}  // namespace
}  // namespace strata::test
