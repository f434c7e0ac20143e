// One flat float arena per model holding every parameter tensor, with named views. The flat
// index space is what makes a mutant a sparse delta (indices + values) applied in place.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/ops.h"

namespace veto {

class ParamArena {
 public:
  struct View {
    std::string name;
    Shape shape;
    int64_t offset = 0;  // into the flat arena
  };

  ParamArena() = default;
  // Zero-filled arena laid out in the order of `specs`.
  explicit ParamArena(const std::vector<ParamSpec>& specs);

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  const std::vector<View>& views() const { return views_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const View& view(const std::string& name) const;
  float* get(const std::string& name) { return data_.data() + view(name).offset; }
  const float* get(const std::string& name) const { return data_.data() + view(name).offset; }

 private:
  std::vector<float> data_;
  std::vector<View> views_;
  std::map<std::string, size_t> index_;
};

}  // namespace veto
