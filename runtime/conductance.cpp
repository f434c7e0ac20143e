#include "runtime/conductance.h"

#include <cmath>

#include "runtime/error.h"

namespace veto {
namespace {

const std::vector<std::pair<ConductanceRule, std::string>>& rule_table() {
  static const std::vector<std::pair<ConductanceRule, std::string>> table{
      {ConductanceRule::Paper, "paper"},
      {ConductanceRule::RiemannLeft, "riemann_left"},
      {ConductanceRule::RiemannRight, "riemann_right"},
      {ConductanceRule::RiemannMiddle, "riemann_middle"},
      {ConductanceRule::RiemannTrapezoid, "riemann_trapezoid"},
      {ConductanceRule::GaussLegendre, "gausslegendre"}};
  return table;
}

// In double. Captum's nodes come from torch.linspace in float32 (0.1 becomes 0.10000000149):
// a difference of one float ulp in alpha, far below what the comparisons resolve.
std::vector<double> linspace(double start, double end, int count) {
  std::vector<double> v(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) v[static_cast<size_t>(i)] = count == 1 ? start : start + (end - start) * i / (count - 1);
  return v;
}

// One forward (and maybe backward) row of a pass: image `image` at path node `node`
// (-1: the input itself, run only for the prediction when the path does not reach 1).
struct Row {
  int64_t image;
  double alpha;
  int node;
  bool gradient;
  bool predicts;
};

}  // namespace

std::vector<std::string> conductance_rule_names() {
  std::vector<std::string> names;
  for (const auto& [rule, name] : rule_table()) names.push_back(name);
  return names;
}

ConductanceRule parse_conductance_rule(const std::string& name) {
  std::string known;
  for (const auto& [rule, n] : rule_table()) {
    if (n == name) return rule;
    known += (known.empty() ? "" : ", ") + n;
  }
  fail("unknown conductance rule '", name, "' (known: ", known, ")");
}

std::string conductance_rule_name(ConductanceRule rule) {
  for (const auto& [r, n] : rule_table())
    if (r == rule) return n;
  fail("internal: unnamed conductance rule");
}

std::vector<double> gauss_legendre_nodes(int n) {
  VETO_CHECK(n >= 1, "Gauss-Legendre needs at least one node, got ", n);
  std::vector<double> nodes(static_cast<size_t>(n));
  const double pi = std::acos(-1.0);
  for (int i = 0; i < n; ++i) {
    // Newton's method on P_n from the classic initial guess; roots come out descending.
    double x = std::cos(pi * (i + 0.75) / (n + 0.5));
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1, p1 = x;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      const double dp = n * (x * p1 - p0) / (x * x - 1);
      const double dx = p1 / dp;
      x -= dx;
      if (std::fabs(dx) < 1e-15) break;
    }
    nodes[static_cast<size_t>(n - 1 - i)] = x;
  }
  return nodes;
}

IntegrationPath integration_path(ConductanceRule rule, int steps) {
  VETO_CHECK(steps >= 1, "the number of steps must be at least 1, got ", steps);
  const int m1 = steps + 1;  // nodes
  IntegrationPath p;
  switch (rule) {
    case ConductanceRule::Paper:
      p.alphas = linspace(0, 1, m1);
      p.gradient_at_upper = true;
      break;
    case ConductanceRule::RiemannLeft: p.alphas = linspace(0, 1 - 1.0 / m1, m1); break;
    case ConductanceRule::RiemannRight: p.alphas = linspace(1.0 / m1, 1, m1); break;
    case ConductanceRule::RiemannMiddle: p.alphas = linspace(0.5 / m1, 1 - 0.5 / m1, m1); break;
    case ConductanceRule::RiemannTrapezoid: p.alphas = linspace(0, 1, m1); break;
    case ConductanceRule::GaussLegendre:
      for (double x : gauss_legendre_nodes(m1)) p.alphas.push_back(0.5 * (1 + x));
      break;
  }
  return p;
}

ConductanceEngine::ConductanceEngine(const Model& model, Backend& backend, ConductanceOptions options)
    : model_(model), backend_(backend), options_(std::move(options)) {
  VETO_CHECK(!options_.layers.empty(), "conductance: no target layers given");
  VETO_CHECK(options_.steps >= 1 && options_.steps <= 100000, "conductance: steps must be in [1, 100000], got ",
             options_.steps);
  path_ = integration_path(options_.rule, options_.steps);
  const Graph& g = model_.graph;
  for (const std::string& layer : options_.layers) {
    g.find(layer);  // throws listing the model's layers
    plan_options_.gradients.insert(layer);
  }
  const Shape& in = g.node(0).shape;
  sample_ = in.numel();

  // Per-row memory of a pass, from a batch-1 plan (every buffer scales with the batch).
  baseline_plan_ = std::make_unique<Plan>(model_, backend_, 1, plan_options_);
  for (const std::string& layer : options_.layers) {
    const Shape& s = baseline_plan_->shape(layer);
    VETO_CHECK(s.rank() >= 2, "conductance: layer '", layer, "' has shape ", s.str(), ", not (N, C, ...)");
    channels_.push_back(s[1]);
    spatial_.push_back(s.numel() / s[1]);
  }
  const size_t row_bytes = baseline_plan_->arena_bytes() + static_cast<size_t>(sample_) * sizeof(float);
  if (options_.chunk_rows > 0) {
    chunk_rows_ = options_.chunk_rows;
  } else {
    VETO_CHECK(row_bytes <= options_.max_memory, "conductance needs ", (row_bytes + (1 << 20) - 1) >> 20,
               " MiB per image and step (activations and gradients); the memory bound is ",
               options_.max_memory >> 20, " MiB");
    chunk_rows_ = static_cast<int64_t>(options_.max_memory / row_bytes);
  }

  // The baseline's activations and logits, once.
  const Tensor base = options_.baseline.numel() ? options_.baseline : Tensor(in);
  VETO_CHECK(base.numel() == sample_, "conductance: the baseline has shape ", base.shape().str(),
             ", the model's input is ", in.str());
  for (int64_t i = 0; i < base.numel(); ++i)
    VETO_CHECK(std::isfinite(base[i]), "conductance: the baseline holds a non-finite value at index ", i);
  baseline_ = backend_.allocate(static_cast<size_t>(sample_));
  backend_.upload(base.data(), baseline_->data(), static_cast<size_t>(sample_));
  backend_.copy(baseline_->data(), baseline_plan_->input(), static_cast<size_t>(sample_));
  baseline_plan_->forward();
  baseline_logits_ = baseline_plan_->logits();
}

ConductanceEngine::~ConductanceEngine() = default;

Plan& ConductanceEngine::plan_for(int64_t rows) {
  auto it = plans_.find(rows);
  if (it != plans_.end()) return *it->second;
  // Keep the full-chunk plan and at most one tail plan.
  for (auto p = plans_.begin(); p != plans_.end();)
    p = p->first == chunk_rows_ ? std::next(p) : plans_.erase(p);
  return *(plans_[rows] = std::make_unique<Plan>(model_, backend_, rows, plan_options_));
}

ConductanceResult ConductanceEngine::run(const float* images, int64_t count, const std::vector<int>& targets) {
  const Graph& g = model_.graph;
  const int64_t classes = g.node(g.output()).shape.numel();
  const int64_t layers = static_cast<int64_t>(options_.layers.size());
  VETO_CHECK(count > 0, "conductance: no images");
  VETO_CHECK(targets.empty() || static_cast<int64_t>(targets.size()) == count, "conductance: ", targets.size(),
             " targets for ", count, " images");
  for (int t : targets) VETO_CHECK(t >= -1 && t < classes, "conductance: target class ", t, " is not in [0, ", classes, ")");
  for (int64_t i = 0; i < count * sample_; ++i)
    VETO_CHECK(std::isfinite(images[i]), "conductance: image ", i / sample_, " holds a non-finite value");

  // The rows, image by image, each image's path walked downwards from alpha = 1: its
  // prediction (hence its target class) is known before any of its gradients is seeded,
  // and every interval meets its two nodes in consecutive rows.
  const int m = static_cast<int>(path_.alphas.size()) - 1;
  const bool reaches_input = path_.alphas[static_cast<size_t>(m)] == 1.0;
  const bool cached_baseline = path_.gradient_at_upper && path_.alphas[0] == 0.0;
  std::vector<Row> rows;
  for (int64_t i = 0; i < count; ++i) {
    if (!reaches_input) rows.push_back({i, 1.0, -1, false, true});
    for (int j = m; j >= (cached_baseline ? 1 : 0); --j) {
      const bool gradient = path_.gradient_at_upper ? j >= 1 : j < m;
      rows.push_back({i, path_.alphas[static_cast<size_t>(j)], j, gradient, reaches_input && j == m});
    }
  }

  ConductanceResult result;
  result.layers = options_.layers;
  result.logits = Tensor(Shape{count, classes});
  result.predictions.assign(static_cast<size_t>(count), -1);
  result.targets.assign(static_cast<size_t>(count), -1);

  auto images_dev = backend_.allocate(static_cast<size_t>(count * sample_));
  backend_.upload(images, images_dev->data(), static_cast<size_t>(count * sample_));
  std::vector<std::unique_ptr<DeviceBuffer>> sums, maps, carry_act, carry_grad;
  for (int64_t l = 0; l < layers; ++l) {
    const int64_t c = channels_[l], hw = spatial_[l];
    sums.push_back(backend_.allocate(static_cast<size_t>(count * c)));
    backend_.upload(std::vector<float>(static_cast<size_t>(count * c)).data(), sums.back()->data(),
                    static_cast<size_t>(count * c));
    if (options_.maps) {
      maps.push_back(backend_.allocate(static_cast<size_t>(count * c * hw)));
      backend_.upload(std::vector<float>(static_cast<size_t>(count * c * hw)).data(), maps.back()->data(),
                      static_cast<size_t>(count * c * hw));
    }
    carry_act.push_back(backend_.allocate(static_cast<size_t>(c * hw)));
    carry_grad.push_back(backend_.allocate(static_cast<size_t>(c * hw)));
  }

  std::vector<float> seed;
  const int64_t total = static_cast<int64_t>(rows.size());
  for (int64_t start = 0; start < total; start += chunk_rows_) {
    const int64_t n = std::min(chunk_rows_, total - start);
    Plan& plan = plan_for(n);
    for (int64_t r = 0; r < n; ++r) {
      const Row& row = rows[static_cast<size_t>(start + r)];
      const float* x = images_dev->data() + row.image * sample_;
      float* dst = plan.input() + r * sample_;
      // The path's ends are the input and the baseline exactly, not b + 1 * (x - b).
      if (row.alpha == 1.0)
        backend_.copy(x, dst, static_cast<size_t>(sample_));
      else if (row.alpha == 0.0)
        backend_.copy(baseline_->data(), dst, static_cast<size_t>(sample_));
      else
        backend_.interpolate(sample_, baseline_->data(), x, static_cast<float>(row.alpha), dst);
    }
    plan.forward();

    bool any_prediction = false, any_gradient = false;
    for (int64_t r = 0; r < n; ++r) {
      any_prediction |= rows[static_cast<size_t>(start + r)].predicts;
      any_gradient |= rows[static_cast<size_t>(start + r)].gradient;
    }
    if (any_prediction) {
      const Tensor logits = plan.logits();
      for (int64_t r = 0; r < n; ++r) {
        const Row& row = rows[static_cast<size_t>(start + r)];
        if (!row.predicts) continue;
        const float* z = logits.data() + r * classes;
        std::copy(z, z + classes, result.logits.data() + row.image * classes);
        int best = 0;
        for (int k = 1; k < classes; ++k)
          if (z[k] > z[best]) best = k;
        result.predictions[static_cast<size_t>(row.image)] = best;
        const int given = targets.empty() ? -1 : targets[static_cast<size_t>(row.image)];
        result.targets[static_cast<size_t>(row.image)] = given >= 0 ? given : best;
      }
    }
    if (any_gradient) {
      seed.assign(static_cast<size_t>(n * classes), 0.0f);
      for (int64_t r = 0; r < n; ++r) {
        const Row& row = rows[static_cast<size_t>(start + r)];
        if (row.gradient) seed[static_cast<size_t>(r * classes + result.targets[static_cast<size_t>(row.image)])] = 1.0f;
      }
      plan.backward_data(seed.data());
    }

    // Intervals: row r at node j closes the interval [alpha_j, alpha_j+1] whose upper node
    // is the previous row (r - 1, or the carried copy of the previous chunk's last row).
    std::vector<const float*> acts, grads, baseline_acts;  // per layer, looked up once per pass
    for (const std::string& layer : options_.layers) {
      acts.push_back(plan.activation(layer));
      grads.push_back(plan.gradient(layer));
      baseline_acts.push_back(baseline_plan_->activation(layer));
    }
    // One call per layer for every interval of the pass, in row order (the rows of an image
    // follow each other, so its sums add up step by step as with one call per interval).
    const Row& last = rows[static_cast<size_t>(start + n - 1)];
    for (int64_t l = 0; l < layers; ++l) {
      const int64_t c = channels_[l], hw = spatial_[l], size = c * hw;
      std::vector<ConductanceTerm> terms;
      for (int64_t r = 0; r < n; ++r) {
        const Row& row = rows[static_cast<size_t>(start + r)];
        if (row.node < 0) continue;
        const float* act = acts[static_cast<size_t>(l)] + r * size;
        const float* grad = grads[static_cast<size_t>(l)] + r * size;
        float* sum = sums[l]->data() + row.image * c;
        float* map = options_.maps ? maps[l]->data() + row.image * size : nullptr;
        if (row.node < m) {
          const float* up_act = r > 0 ? act - size : carry_act[l]->data();
          const float* up_grad = r > 0 ? grad - size : carry_grad[l]->data();
          terms.push_back({path_.gradient_at_upper ? up_grad : grad, up_act, act, sum, map});
        }
        if (cached_baseline && row.node == 1)
          terms.push_back({grad, act, baseline_acts[static_cast<size_t>(l)], sum, map});
      }
      backend_.conductance_accumulate(c, hw, terms);
      if (last.node >= 0) {  // the upper end of the next pass's first interval
        backend_.copy(acts[static_cast<size_t>(l)] + (n - 1) * size, carry_act[l]->data(), static_cast<size_t>(size));
        backend_.copy(grads[static_cast<size_t>(l)] + (n - 1) * size, carry_grad[l]->data(),
                      static_cast<size_t>(size));
      }
    }
  }

  for (int64_t l = 0; l < layers; ++l) {
    const int64_t c = channels_[l], hw = spatial_[l];
    Tensor s(Shape{count, c});
    backend_.download(sums[l]->data(), s.data(), static_cast<size_t>(count * c));
    result.conductance.push_back(s);
    for (float& v : result.conductance.back().values()) v /= static_cast<float>(hw);
    if (options_.maps) {
      Shape shape = baseline_plan_->shape(options_.layers[static_cast<size_t>(l)]);
      shape[0] = count;
      Tensor mt(shape);
      backend_.download(maps[l]->data(), mt.data(), static_cast<size_t>(mt.numel()));
      result.maps.push_back(std::move(mt));
    }
    if (l == 0) result.delta = Tensor(Shape{count, layers});
    for (int64_t i = 0; i < count; ++i) {
      double total_sum = 0;
      for (int64_t k = 0; k < c; ++k) total_sum += s[i * c + k];
      const int t = result.targets[static_cast<size_t>(i)];
      const double change = static_cast<double>(result.logits[i * classes + t]) - baseline_logits_[t];
      result.delta[i * layers + l] = static_cast<float>(total_sum - change);
    }
  }
  return result;
}

}  // namespace veto
