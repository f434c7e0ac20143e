#include "runtime/dataset.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>

#include "runtime/error.h"
#include "runtime/io/cifar.h"
#include "runtime/io/npy.h"

namespace veto {
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

class CifarDataset : public Dataset {
 public:
  CifarDataset(const std::string& path, const Preprocess& pre, int64_t limit)
      : Dataset(pre), set_(read_cifar(path, limit)), path_(path) {
    VETO_CHECK(set_.channels == pre.channels && set_.height == pre.height && set_.width == pre.width, path,
               ": CIFAR images are ", set_.height, "x", set_.width, " but the model takes ", pre.height, "x",
               pre.width);
  }
  int64_t size() const override { return set_.count; }
  int label(int64_t i) const override { return set_.labels[static_cast<size_t>(i)]; }
  std::string name(int64_t i) const override { return path_ + "#" + std::to_string(i); }
  void load(int64_t i, float* out) const override {
    const int64_t n = set_.channels * set_.height * set_.width;
    normalize_chw(set_.pixels.data() + i * n, set_.channels, set_.height, set_.width, pre_, out);
  }

 private:
  ImageSet set_;
  std::string path_;
};

// One sample: an image file, or sample k of a .npy tensor.
struct FileSample {
  size_t file;
  int64_t index;  // -1 for an image
  int label;      // -1 when unknown
};

bool is_image_name(const std::string& name) {
  for (const char* ext : {".png", ".jpg", ".jpeg", ".bmp"})
    if (has_suffix(name, ext)) return true;
  return false;
}

// The image files directly inside `dir`, sorted by name.
std::vector<std::string> images_in(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && is_image_name(e.path().filename().string())) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// Expands folders: a folder with class subfolders (Keras flow_from_directory layout) gives
// labelled images, the subfolder name being a class name of the model; a flat folder gives
// its images, unlabelled. Files stay as they are.
std::vector<std::pair<std::string, int>> expand_inputs(const std::vector<std::string>& inputs,
                                                       const std::vector<std::string>& classes) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, int>> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (!fs::is_directory(in, ec)) {
      out.push_back({in, -1});
      continue;
    }
    std::vector<fs::path> subdirs;
    for (const auto& e : fs::directory_iterator(in))
      if (e.is_directory()) subdirs.push_back(e.path());
    std::sort(subdirs.begin(), subdirs.end());
    if (subdirs.empty()) {
      const auto files = images_in(in);
      VETO_CHECK(!files.empty(), in, ": folder holds no images (.png, .jpg, .jpeg, .bmp)");
      for (const auto& f : files) out.push_back({f, -1});
      continue;
    }
    for (const fs::path& d : subdirs) {
      const std::string name = d.filename().string();
      const auto it = std::find(classes.begin(), classes.end(), name);
      VETO_CHECK(it != classes.end(), in, ": class folder '", name, "' is not one of the model's ", classes.size(),
                 " class names");
      for (const auto& f : images_in(d)) out.push_back({f, static_cast<int>(it - classes.begin())});
    }
  }
  return out;
}

class FileDataset : public Dataset {
 public:
  FileDataset(const std::vector<std::string>& inputs, const Preprocess& pre, int64_t limit,
              const std::vector<std::string>& classes)
      : Dataset(pre) {
    VETO_CHECK(!inputs.empty(), "no input files given");
    std::vector<int> labels;
    for (auto& [file, label] : expand_inputs(inputs, classes)) {
      files_.push_back(file);
      labels.push_back(label);
    }
    VETO_CHECK(!files_.empty(), "the input folders hold no images");
    const std::vector<std::string>& files = files_;
    const Shape sample{pre.channels, pre.height, pre.width};
    tensors_.resize(files.size());
    for (size_t f = 0; f < files.size() && (limit < 0 || static_cast<int64_t>(samples_.size()) < limit); ++f) {
      if (has_suffix(files[f], ".npy")) {
        Tensor t = read_npy(files[f]);
        if (t.shape().rank() == 3) t.reshape(Shape({1, t.shape()[0], t.shape()[1], t.shape()[2]}));
        const bool fits = t.shape().rank() == 4 && Shape({t.shape()[1], t.shape()[2], t.shape()[3]}) == sample;
        VETO_CHECK(fits, files[f],
                   ": tensor of shape ", t.shape().str(), " does not fit the model input (N,", pre.channels, ",",
                   pre.height, ",", pre.width, ")");
        for (int64_t i = 0; i < t.numel(); ++i)
          VETO_CHECK(std::isfinite(t[i]), files[f], ": non-finite value at flat index ", i);
        for (int64_t k = 0; k < t.shape()[0]; ++k) samples_.push_back({f, k, -1});
        tensors_[f] = std::move(t);
      } else {
        std::error_code ec;
        VETO_CHECK(std::filesystem::is_regular_file(files[f], ec), files[f], ": no such file");
        samples_.push_back({f, -1, labels[f]});
      }
    }
    if (limit >= 0 && static_cast<int64_t>(samples_.size()) > limit) samples_.resize(static_cast<size_t>(limit));
  }
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  int label(int64_t i) const override { return samples_[static_cast<size_t>(i)].label; }
  std::string name(int64_t i) const override {
    const FileSample& s = samples_[static_cast<size_t>(i)];
    return s.index < 0 ? files_[s.file] : files_[s.file] + "#" + std::to_string(s.index);
  }
  void load(int64_t i, float* out) const override {
    const FileSample& s = samples_[static_cast<size_t>(i)];
    if (s.index >= 0) {
      const int64_t n = sample_size();
      std::copy(tensors_[s.file].data() + s.index * n, tensors_[s.file].data() + (s.index + 1) * n, out);
      return;
    }
    const Tensor t = preprocess_image(load_image(files_[s.file]), pre_);
    std::copy(t.data(), t.data() + t.numel(), out);
  }

 private:
  std::vector<std::string> files_;
  std::vector<Tensor> tensors_;
  std::vector<FileSample> samples_;
};

class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor samples, const Preprocess& pre, std::vector<int> labels)
      : Dataset(pre), samples_(std::move(samples)), labels_(std::move(labels)) {
    const Shape& s = samples_.shape();
    VETO_CHECK(s.rank() == 4 && s[1] == pre.channels && s[2] == pre.height && s[3] == pre.width, "samples of shape ",
               s.str(), " do not fit the model input (N,", pre.channels, ",", pre.height, ",", pre.width, ")");
    VETO_CHECK(labels_.empty() || static_cast<int64_t>(labels_.size()) == s[0], "got ", labels_.size(),
               " labels for ", s[0], " samples");
  }
  int64_t size() const override { return samples_.shape()[0]; }
  int label(int64_t i) const override { return labels_.empty() ? -1 : labels_[static_cast<size_t>(i)]; }
  std::string name(int64_t i) const override { return "#" + std::to_string(i); }
  void load(int64_t i, float* out) const override {
    const int64_t n = sample_size();
    std::copy(samples_.data() + i * n, samples_.data() + (i + 1) * n, out);
  }

 private:
  Tensor samples_;
  std::vector<int> labels_;
};

}  // namespace

bool Dataset::has_labels() const {
  for (int64_t i = 0; i < size(); ++i)
    if (label(i) < 0) return false;
  return size() > 0;
}

void Dataset::load_batch(int64_t start, int64_t count, float* out) const {
  // Exceptions cannot cross an OpenMP region: keep the first one and rethrow it here.
  // The error of the lowest failing index is reported, so messages do not depend on timing.
  std::exception_ptr error;
  int64_t error_index = count;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; ++i) {
    try {
      load(start + i, out + i * sample_size());
    } catch (...) {
#pragma omp critical
      if (i < error_index) {
        error_index = i;
        error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

std::unique_ptr<Dataset> open_cifar_dataset(const std::string& path, const Preprocess& pre, int64_t limit) {
  return std::make_unique<CifarDataset>(path, pre, limit);
}

std::unique_ptr<Dataset> open_file_dataset(const std::vector<std::string>& files, const Preprocess& pre,
                                           int64_t limit, const std::vector<std::string>& classes) {
  return std::make_unique<FileDataset>(files, pre, limit, classes);
}

std::unique_ptr<Dataset> open_tensor_dataset(Tensor samples, const Preprocess& pre, std::vector<int> labels) {
  return std::make_unique<TensorDataset>(std::move(samples), pre, std::move(labels));
}

}  // namespace veto
