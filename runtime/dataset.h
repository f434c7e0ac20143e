// Inputs a command runs on, preprocessed for one model and loaded lazily, batch by batch:
// a CIFAR-10 binary file, image files, or .npy tensors that are already preprocessed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/preprocess.h"

namespace veto {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The true class, or -1 when the input carries none.
  virtual int label(int64_t i) const = 0;
  virtual std::string name(int64_t i) const = 0;
  // Writes sample i, preprocessed, into out (channels x height x width floats).
  virtual void load(int64_t i, float* out) const = 0;

  bool has_labels() const;
  // Samples [start, start + count) into out, in parallel.
  void load_batch(int64_t start, int64_t count, float* out) const;
  int64_t sample_size() const { return pre_.channels * pre_.height * pre_.width; }

 protected:
  explicit Dataset(Preprocess pre) : pre_(std::move(pre)) {}
  Preprocess pre_;
};

// The first `limit` records (all when limit < 0) of a CIFAR-10 binary file.
std::unique_ptr<Dataset> open_cifar_dataset(const std::string& path, const Preprocess& pre, int64_t limit = -1);
// Image files (PNG, JPEG, BMP), .npy files of shape (C,H,W) or (N,C,H,W) holding
// preprocessed float tensors, and folders: a flat folder of images (unlabelled), or a
// folder of class subfolders named after the model's classes (labelled, like Keras'
// flow_from_directory). Files are checked for existence when opened, decoded when loaded.
std::unique_ptr<Dataset> open_file_dataset(const std::vector<std::string>& files, const Preprocess& pre,
                                           int64_t limit = -1, const std::vector<std::string>& classes = {});
// Preprocessed samples already in memory, (N,C,H,W); labels may be empty.
std::unique_ptr<Dataset> open_tensor_dataset(Tensor samples, const Preprocess& pre, std::vector<int> labels = {});

}  // namespace veto
