#include "runtime/detector.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.h"
#include "runtime/random.h"

namespace veto {
namespace {

double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }

// A dot product the compiler may vectorize (a fixed reassociation: deterministic per build).
double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

}  // namespace

Detector Detector::train(const Matrix& x, const std::vector<bool>& y, const DetectorConfig& config) {
  const int64_t n = x.rows, d = x.cols;
  VETO_CHECK(n > 0 && d > 0 && static_cast<int64_t>(x.values.size()) == n * d, "detector: empty or malformed training data");
  VETO_CHECK(static_cast<int64_t>(y.size()) == n, "detector: ", y.size(), " labels for ", n, " rows");
  const auto pos = std::count(y.begin(), y.end(), true);
  VETO_CHECK(pos > 0 && pos < n, "detector: the training split needs both right and wrong predictions (", pos,
             " wrong of ", n, ")");
  VETO_CHECK(config.kind == "logistic" || config.kind == "mlp", "detector: unknown kind '", config.kind,
             "' (logistic, mlp)");
  VETO_CHECK(config.epochs > 0 && config.batch > 0 && config.learning_rate > 0 && config.dropout >= 0 &&
                 config.dropout < 1 && config.l2 >= 0,
             "detector: bad training settings");
  for (double v : x.values) VETO_CHECK(std::isfinite(v), "detector: a training feature is not finite");

  Detector det;
  det.config_ = config;
  // Standardization from the training rows (a constant feature is ignored).
  det.mean_.assign(static_cast<size_t>(d), 0.0);
  det.inv_std_.assign(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < d; ++c) det.mean_[static_cast<size_t>(c)] += x.row(r)[c] / static_cast<double>(n);
  for (int64_t c = 0; c < d; ++c) {
    double var = 0;
    for (int64_t r = 0; r < n; ++r) {
      const double e = x.row(r)[c] - det.mean_[static_cast<size_t>(c)];
      var += e * e / static_cast<double>(n);
    }
    det.inv_std_[static_cast<size_t>(c)] = var > 1e-24 ? 1 / std::sqrt(var) : 0.0;
  }

  // Layers with Glorot-uniform weights and zero biases (Keras' defaults).
  Rng rng(config.seed);
  std::vector<int64_t> sizes{d};
  if (config.kind == "mlp")
    for (int h : config.hidden) {
      VETO_CHECK(h > 0, "detector: hidden widths must be positive");
      sizes.push_back(h);
    }
  sizes.push_back(1);
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    Layer layer;
    layer.in = sizes[l];
    layer.out = sizes[l + 1];
    const double limit = std::sqrt(6.0 / static_cast<double>(layer.in + layer.out));
    layer.w.resize(static_cast<size_t>(layer.in * layer.out));
    for (double& w : layer.w) w = (2 * rng.uniform() - 1) * limit;
    layer.b.assign(static_cast<size_t>(layer.out), 0.0);
    det.layers_.push_back(std::move(layer));
  }

  const double w_pos = config.class_weight ? static_cast<double>(n) / (2.0 * static_cast<double>(pos)) : 1.0;
  const double w_neg = config.class_weight ? static_cast<double>(n) / (2.0 * static_cast<double>(n - pos)) : 1.0;
  const size_t L = det.layers_.size();
  // Adam state per layer (Keras' defaults: beta 0.9 / 0.999, epsilon 1e-7).
  std::vector<std::vector<double>> mw(L), vw(L), mb(L), vb(L), gw(L), gb(L);
  for (size_t l = 0; l < L; ++l) {
    mw[l] = vw[l] = gw[l] = std::vector<double>(det.layers_[l].w.size(), 0.0);
    mb[l] = vb[l] = gb[l] = std::vector<double>(det.layers_[l].b.size(), 0.0);
  }
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-7;
  int64_t step = 0;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  // Per sample: the activations of every layer (after ReLU and dropout) and their gradients.
  std::vector<std::vector<double>> act(L + 1), grad(L + 1);
  std::vector<std::vector<bool>> kept(L);
  const double keep = 1 - config.dropout, scale = 1 / keep;
  for (int epoch = 0; epoch < config.epochs; ++epoch) {
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[rng.below(static_cast<uint64_t>(i + 1))]);
    for (int64_t start = 0; start < n; start += config.batch) {
      const int64_t end = std::min(n, start + config.batch);
      for (size_t l = 0; l < L; ++l) {
        std::fill(gw[l].begin(), gw[l].end(), 0.0);
        std::fill(gb[l].begin(), gb[l].end(), 0.0);
      }
      for (int64_t s = start; s < end; ++s) {
        const int64_t r = order[static_cast<size_t>(s)];
        act[0].resize(static_cast<size_t>(d));
        for (int64_t c = 0; c < d; ++c)
          act[0][static_cast<size_t>(c)] = (x.row(r)[c] - det.mean_[static_cast<size_t>(c)]) * det.inv_std_[static_cast<size_t>(c)];
        for (size_t l = 0; l < L; ++l) {
          const Layer& ly = det.layers_[l];
          act[l + 1].assign(static_cast<size_t>(ly.out), 0.0);
          for (int64_t o = 0; o < ly.out; ++o) {
            act[l + 1][static_cast<size_t>(o)] = ly.b[static_cast<size_t>(o)] + dot(ly.w.data() + o * ly.in, act[l].data(), ly.in);
          }
          if (l + 1 < L) {  // hidden: ReLU, then dropout (inverted: kept units scaled by 1/keep)
            kept[l].assign(static_cast<size_t>(ly.out), true);
            for (int64_t o = 0; o < ly.out; ++o) {
              double& a = act[l + 1][static_cast<size_t>(o)];
              a = std::max(a, 0.0);
              if (config.dropout > 0) {
                kept[l][static_cast<size_t>(o)] = rng.uniform() < keep;
                a = kept[l][static_cast<size_t>(o)] ? a * scale : 0.0;
              }
            }
          }
        }
        // Weighted binary cross-entropy: d loss / d logit = w (p - y).
        const bool wrong = y[static_cast<size_t>(r)];
        const double p = sigmoid(act[L][0]);
        grad[L].assign(1, (wrong ? w_pos : w_neg) * (p - (wrong ? 1.0 : 0.0)));
        for (size_t l = L; l-- > 0;) {
          const Layer& ly = det.layers_[l];
          grad[l].assign(static_cast<size_t>(ly.in), 0.0);
          for (int64_t o = 0; o < ly.out; ++o) {
            const double g = grad[l + 1][static_cast<size_t>(o)];
            if (g == 0) continue;
            gb[l][static_cast<size_t>(o)] += g;
            double* gwo = gw[l].data() + o * ly.in;
            const double* w = ly.w.data() + o * ly.in;
            for (int64_t k = 0; k < ly.in; ++k) {
              gwo[k] += g * act[l][static_cast<size_t>(k)];
              grad[l][static_cast<size_t>(k)] += g * w[k];
            }
          }
          if (l > 0)  // through the previous hidden layer's dropout and ReLU
            for (int64_t k = 0; k < ly.in; ++k) {
              double& g = grad[l][static_cast<size_t>(k)];
              if (act[l][static_cast<size_t>(k)] <= 0) g = 0;
              else if (config.dropout > 0) g *= scale;
            }
        }
      }
      ++step;
      const double count = static_cast<double>(end - start);
      const double c1 = 1 - std::pow(beta1, static_cast<double>(step)), c2 = 1 - std::pow(beta2, static_cast<double>(step));
      auto adam = [&](std::vector<double>& p, const std::vector<double>& g, std::vector<double>& m,
                      std::vector<double>& v, bool decay) {
        for (size_t i = 0; i < p.size(); ++i) {
          const double gi = g[i] / count + (decay ? config.l2 * p[i] : 0.0);
          m[i] = beta1 * m[i] + (1 - beta1) * gi;
          v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
          p[i] -= config.learning_rate * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
        }
      };
      for (size_t l = 0; l < L; ++l) {
        adam(det.layers_[l].w, gw[l], mw[l], vw[l], true);
        adam(det.layers_[l].b, gb[l], mb[l], vb[l], false);
      }
    }
  }
  // The detector file stores float32: round now, so a saved and reloaded detector scores
  // exactly as this one.
  auto round = [](std::vector<double>& v) {
    for (double& x : v) x = static_cast<float>(x);
  };
  round(det.mean_);
  round(det.inv_std_);
  for (Layer& l : det.layers_) {
    round(l.w);
    round(l.b);
  }
  return det;
}

std::vector<double> Detector::score(const Matrix& x) const {
  VETO_CHECK(x.cols == inputs(), "detector: rows have ", x.cols, " features, the detector takes ", inputs());
  std::vector<double> out(static_cast<size_t>(x.rows));
  std::vector<double> a, next;
  for (int64_t r = 0; r < x.rows; ++r) {
    a.resize(static_cast<size_t>(x.cols));
    for (int64_t c = 0; c < x.cols; ++c) {
      VETO_CHECK(std::isfinite(x.row(r)[c]), "detector: feature ", c, " of row ", r, " is not finite");
      a[static_cast<size_t>(c)] = (x.row(r)[c] - mean_[static_cast<size_t>(c)]) * inv_std_[static_cast<size_t>(c)];
    }
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& ly = layers_[l];
      next.assign(static_cast<size_t>(ly.out), 0.0);
      for (int64_t o = 0; o < ly.out; ++o) {
        const double z = ly.b[static_cast<size_t>(o)] + dot(ly.w.data() + o * ly.in, a.data(), ly.in);
        next[static_cast<size_t>(o)] = l + 1 < layers_.size() ? std::max(z, 0.0) : z;
      }
      a.swap(next);
    }
    out[static_cast<size_t>(r)] = sigmoid(a[0]);
  }
  return out;
}

std::vector<Detector::Tensor1> Detector::parameters() const {
  auto f32 = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  std::vector<Tensor1> out{{"mean", {inputs()}, f32(mean_)}, {"inv_std", {inputs()}, f32(inv_std_)}};
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = "layer" + std::to_string(l);
    out.push_back({p + ".weight", {layers_[l].out, layers_[l].in}, f32(layers_[l].w)});
    out.push_back({p + ".bias", {layers_[l].out}, f32(layers_[l].b)});
  }
  return out;
}

Detector Detector::from_parameters(const DetectorConfig& config, const std::vector<Tensor1>& params,
                                   const std::string& source) {
  auto find = [&](const std::string& name) -> const Tensor1& {
    for (const Tensor1& t : params)
      if (t.name == name) return t;
    fail(source, ": detector tensor '", name, "' is missing");
  };
  auto f64 = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  Detector d;
  d.config_ = config;
  const Tensor1& mean = find("mean");
  VETO_CHECK(mean.shape.size() == 1 && mean.shape[0] > 0, source, ": detector tensor 'mean' must be 1-D");
  d.mean_ = f64(mean.values);
  const Tensor1& inv = find("inv_std");
  VETO_CHECK(inv.shape == mean.shape, source, ": detector tensors 'mean' and 'inv_std' differ in shape");
  d.inv_std_ = f64(inv.values);
  const size_t layers = config.kind == "mlp" ? config.hidden.size() + 1 : 1;
  int64_t in = mean.shape[0];
  for (size_t l = 0; l < layers; ++l) {
    const std::string p = "layer" + std::to_string(l);
    const Tensor1& w = find(p + ".weight");
    const Tensor1& b = find(p + ".bias");
    const int64_t out = l + 1 < layers ? config.hidden[l] : 1;
    VETO_CHECK(w.shape == std::vector<int64_t>({out, in}) && b.shape == std::vector<int64_t>({out}), source,
               ": detector layer ", l, " has the wrong shape for ", in, " -> ", out);
    Layer ly;
    ly.in = in;
    ly.out = out;
    ly.w = f64(w.values);
    ly.b = f64(b.values);
    d.layers_.push_back(std::move(ly));
    in = out;
  }
  VETO_CHECK(params.size() == 2 + 2 * layers, source, ": the detector file holds ", params.size(),
             " tensors, a ", config.kind, " of this shape has ", 2 + 2 * layers);
  for (const Tensor1& t : params)
    for (float v : t.values) VETO_CHECK(std::isfinite(v), source, ": detector tensor '", t.name, "' is not finite");
  return d;
}

}  // namespace veto
