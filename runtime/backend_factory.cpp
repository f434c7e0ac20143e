// The one place that knows which backends this build has.
#include "runtime/backends.h"
#include "runtime/distributed.h"
#include "runtime/error.h"

namespace veto {

std::unique_ptr<Backend> make_backend(const std::string& kind) {
  if (kind == "cpu") return make_cpu_backend();
  if (kind == "reference") return make_reference_backend();
  if (kind == "auto") return make_best_backend();
  if (kind == "cuda") {
#ifdef VETO_HAVE_CUDA
    VETO_CHECK(cuda_device_available(), "backend 'cuda': no CUDA device is available on this machine");
    return make_cuda_backend(Communicator::world().local_rank());
#else
    fail("backend 'cuda': this veto was built without CUDA (rebuild with nvcc and cuDNN installed)");
#endif
  }
  fail("unknown backend '", kind, "' (expected cpu, cuda, auto or reference)");
}

std::unique_ptr<Backend> make_best_backend() {
#ifdef VETO_HAVE_CUDA
  if (cuda_device_available()) return make_cuda_backend(Communicator::world().local_rank());
#endif
  return make_cpu_backend();
}

}  // namespace veto
