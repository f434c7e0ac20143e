#include "runtime/host_backend.h"

#include <omp.h>

#include "runtime/error.h"

namespace veto {

// Both host backends parallelize with OpenMP, and oneDNN uses the same OpenMP runtime.
void HostBackend::set_threads(int threads) {
  VETO_CHECK(threads >= 0, "thread count must be >= 0, got ", threads);
  omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
}

namespace {
class HostRecording : public RecordedWork {
 public:
  explicit HostRecording(std::function<void()> work) : work_(std::move(work)) {}
  bool replay() override {
    work_();
    return true;
  }

 private:
  std::function<void()> work_;
};
}  // namespace

std::unique_ptr<RecordedWork> HostBackend::record(const std::function<void()>& work) {
  return std::make_unique<HostRecording>(work);
}

}  // namespace veto
