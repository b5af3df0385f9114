// Checks of CUDA and cuBLAS calls (host code): a failed call throws strata::Error naming the
// call, the source file:line and CUDA's own description of the error.
//
//   STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream));
//   STRATA_CUDA_CHECK(cuda::launch_add(...));      // launchers return cudaGetLastError()
//   STRATA_CUBLAS_CHECK(cublasGemmEx(...));
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace strata::cuda {

// `call` is the stringified call; the message keeps its function name.
void check_cuda(cudaError_t status, const char* call, const char* file, int line);
void check_cublas(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace strata::cuda

#define STRATA_CUDA_CHECK(call) ::strata::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define STRATA_CUBLAS_CHECK(call) ::strata::cuda::check_cublas((call), #call, __FILE__, __LINE__)
