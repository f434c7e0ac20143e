// The one place that knows which backends this build has.
#include "runtime/backends.h"
#include "runtime/distributed.h"
#include "runtime/error.h"

namespace veto {

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (name == precision_name(p)) return p;
  fail("unknown precision '", name, "' (expected fp32, tf32 or bf16)");
}

namespace {
std::unique_ptr<Backend> host_backend(const std::string& kind, Precision precision) {
  VETO_CHECK(precision == Precision::FP32, "precision ", precision_name(precision), " needs the cuda backend (the ",
             kind, " backend computes in fp32 only)");
  return kind == "cpu" ? make_cpu_backend() : make_reference_backend();
}
}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& kind, Precision precision) {
  if (kind == "cpu" || kind == "reference") return host_backend(kind, precision);
  if (kind == "auto") return make_best_backend(precision);
  if (kind == "cuda") {
#ifdef VETO_HAVE_CUDA
    VETO_CHECK(cuda_device_available(), "backend 'cuda': no CUDA device is available on this machine");
    return make_cuda_backend(Communicator::world().local_rank(), precision);
#else
    fail("backend 'cuda': this veto was built without CUDA (rebuild with nvcc and cuDNN installed)");
#endif
  }
  fail("unknown backend '", kind, "' (expected cpu, cuda, auto or reference)");
}

std::unique_ptr<Backend> make_best_backend(Precision precision) {
#ifdef VETO_HAVE_CUDA
  if (cuda_device_available()) return make_cuda_backend(Communicator::world().local_rank(), precision);
#endif
  return host_backend("cpu", precision);
}

}  // namespace veto
