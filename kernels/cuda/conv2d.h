// cuDNN convolution with veto's fusions (bias, residual, ReLU) and asymmetric padding.
#pragma once

#include <memory>

#include "kernels/cuda/cuda_context.h"
#include "runtime/backend.h"

namespace veto::cuda {

std::unique_ptr<Conv2dKernel> make_conv2d(std::shared_ptr<CudaContext> context, const Conv2dOp& op,
                                          const Shape& input, const ConvFusion& fusion);

}  // namespace veto::cuda
