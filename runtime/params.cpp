#include "runtime/params.h"

#include "runtime/error.h"

namespace veto {

ParamArena::ParamArena(const std::vector<ParamSpec>& specs) {
  int64_t offset = 0;
  for (const ParamSpec& s : specs) {
    VETO_CHECK(index_.count(s.name) == 0, "parameter '", s.name, "' declared twice");
    index_[s.name] = views_.size();
    views_.push_back({s.name, s.shape, offset});
    offset += s.shape.numel();
  }
  data_.assign(static_cast<size_t>(offset), 0.0f);
}

const ParamArena::View& ParamArena::view(const std::string& name) const {
  auto it = index_.find(name);
  VETO_CHECK(it != index_.end(), "model has no parameter '", name, "'");
  return views_[it->second];
}

}  // namespace veto
