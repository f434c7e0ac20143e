// Constructors of the concrete backends (used by the factory in backend_factory.cpp).
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace veto {

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_reference_backend();
#ifdef VETO_HAVE_CUDA
// On the device `local_rank` modulo the device count: ranks of one machine (MPI) spread
// over its GPUs.
std::unique_ptr<Backend> make_cuda_backend(int local_rank = 0, Precision precision = Precision::FP32);
bool cuda_device_available();
#endif

}  // namespace veto
