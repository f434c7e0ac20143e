// Block-wide reduction for the row kernels (softmax, global average pool, conductance): every
// thread brings its lane's partial value (element_math.h), the block combines them in shared
// memory. Device only: included by .cu files alone.
#pragma once

#include "kernels/cuda/element_math.h"

namespace veto::cuda {

// Largest block the row kernels launch (reduction_threads_for in cuda_kernels.h).
constexpr int kMaxReductionThreads = 256;

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return cuda_math::max_value(a, b); }
};

// blockDim.x must be a power of two <= kMaxReductionThreads. Every thread of the block must
// call it; all get the result. `shared` holds kMaxReductionThreads values of T (float, or
// double where the reference accumulates in double: conductance).
template <typename T, typename Combine>
__device__ T block_reduce(T value, T* shared, Combine combine) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) shared[threadIdx.x] = combine(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();  // the buffer is reused by the next reduction
  return result;
}

}  // namespace veto::cuda
