// The communicator of tensor parallelism over CUDA GPUs: NCCL collectives (one communicator per
// GPU from ncclCommInitAll, one process driving them all, each call a group over the ranks) on
// the streams the parts queue their ops on, so a collective follows the ops before it on each
// GPU. Built only where CMake finds NCCL (STRATA_HAVE_NCCL). Plain C++ header.
//
// NVLink SHARP multicast (NVLS) is never enabled: NCCL_NVLS_ENABLE=0 is set before the first
// communicator is made (the lent GPU machines must not create multicast objects).
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/tensor_parallel/communicator.h"

namespace strata {

// Ranks 0..K-1 on the GPUs and streams of `parts` (CUDA backends, one per GPU, in rank order).
std::unique_ptr<Communicator> make_nccl_communicator(const std::vector<std::unique_ptr<Backend>>& parts);

}  // namespace strata
