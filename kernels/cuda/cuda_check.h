// Check macros for CUDA runtime, cuDNN and cuBLAS calls: a failure throws veto::Error naming
// the failing statement, its file:line and the library's own error string.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "runtime/error.h"

#define VETO_CUDA_CHECK(stmt)                                                                          \
  do {                                                                                                 \
    const cudaError_t veto_cuda_status_ = (stmt);                                                      \
    if (veto_cuda_status_ != cudaSuccess)                                                              \
      ::veto::fail("CUDA call `", #stmt, "` failed at ", __FILE__, ":", __LINE__, ": ",                \
                   cudaGetErrorName(veto_cuda_status_), " (", cudaGetErrorString(veto_cuda_status_), ")"); \
  } while (0)

#define VETO_CUDNN_CHECK(stmt)                                                                 \
  do {                                                                                         \
    const cudnnStatus_t veto_cudnn_status_ = (stmt);                                           \
    if (veto_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                            \
      ::veto::fail("cuDNN call `", #stmt, "` failed at ", __FILE__, ":", __LINE__, ": ",       \
                   cudnnGetErrorString(veto_cudnn_status_));                                   \
  } while (0)

#define VETO_CUBLAS_CHECK(stmt)                                                                \
  do {                                                                                         \
    const cublasStatus_t veto_cublas_status_ = (stmt);                                         \
    if (veto_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::veto::fail("cuBLAS call `", #stmt, "` failed at ", __FILE__, ":", __LINE__, ": ",      \
                   cublasGetStatusString(veto_cublas_status_));                                \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once, naming the kernel (errors
// inside the kernel surface at the next synchronizing call, through VETO_CUDA_CHECK there).
#define VETO_CUDA_CHECK_LAUNCH(kernel_name)                                                        \
  do {                                                                                             \
    const cudaError_t veto_launch_status_ = cudaGetLastError();                                   \
    if (veto_launch_status_ != cudaSuccess)                                                        \
      ::veto::fail("CUDA kernel launch `", kernel_name, "` failed at ", __FILE__, ":", __LINE__, ": ", \
                   cudaGetErrorName(veto_launch_status_), " (", cudaGetErrorString(veto_launch_status_), ")"); \
  } while (0)
