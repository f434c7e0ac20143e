// Models the benchmarks share.
#pragma once

#include <cmath>
#include <random>
#include <string>

#include "models/builders.h"
#include "runtime/model.h"

namespace veto {

// InceptionV3 at 299x299 with random weights (speed does not depend on the values; He-scaled
// so activations stay normal floats). No pretrained weights are bundled.
inline Model random_inception_v3() {
  Model m;
  m.arch = "inception_v3";
  m.graph = build_inception_v3(InceptionV3Config{});
  m.params = ParamArena(m.graph.param_specs());
  m.preprocess.height = m.preprocess.width = 299;
  for (int k = 0; k < 1000; ++k) m.classes.push_back("class" + std::to_string(k));
  std::mt19937 rng(7);
  for (const ParamArena::View& v : m.params.views()) {
    float* p = m.params.get(v.name);
    const bool is_var = v.name.size() > 4 && v.name.compare(v.name.size() - 4, 4, "_var") == 0;
    const bool is_gamma = v.shape.rank() == 1 && v.name.find(".bn.weight") != std::string::npos;
    const int64_t fan_in = v.shape.rank() > 1 ? v.shape.numel() / v.shape[0] : 1;
    std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / static_cast<float>(fan_in)));
    for (int64_t i = 0; i < v.shape.numel(); ++i)
      p[i] = (is_var || is_gamma) ? 1.0f : (v.shape.rank() > 1 ? normal(rng) : 0.0f);
  }
  return m;
}

}  // namespace veto
