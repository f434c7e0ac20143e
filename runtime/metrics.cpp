#include "runtime/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.h"
#include "runtime/random.h"

namespace veto {
namespace {

// Checks the inputs; returns the number of positives.
size_t check(const std::vector<double>& scores, const std::vector<bool>& positive, const char* what) {
  VETO_CHECK(scores.size() == positive.size(), what, ": ", scores.size(), " scores for ", positive.size(), " labels");
  for (size_t i = 0; i < scores.size(); ++i) VETO_CHECK(!std::isnan(scores[i]), what, ": score ", i, " is NaN");
  const auto pos = static_cast<size_t>(std::count(positive.begin(), positive.end(), true));
  VETO_CHECK(pos > 0 && pos < positive.size(), what, " needs both classes: ", pos, " positives and ",
             positive.size() - pos, " negatives");
  return pos;
}

// Indices sorted by score (ascending or descending), and the tied groups as [begin, end).
struct Ordered {
  std::vector<size_t> order;
  std::vector<std::pair<size_t, size_t>> groups;
};
Ordered ordered(const std::vector<double>& scores, bool descending) {
  Ordered o;
  o.order.resize(scores.size());
  std::iota(o.order.begin(), o.order.end(), size_t{0});
  std::stable_sort(o.order.begin(), o.order.end(),
                   [&](size_t a, size_t b) { return descending ? scores[a] > scores[b] : scores[a] < scores[b]; });
  for (size_t i = 0; i < o.order.size();) {
    size_t j = i;
    while (j < o.order.size() && scores[o.order[j]] == scores[o.order[i]]) ++j;
    o.groups.push_back({i, j});
    i = j;
  }
  return o;
}

double auroc_unchecked(const std::vector<double>& scores, const std::vector<bool>& positive, double pos) {
  const double neg = static_cast<double>(positive.size()) - pos;
  const Ordered o = ordered(scores, false);
  // Sum of the positives' ranks (1-based), tied scores sharing their mean rank.
  double rank_sum = 0;
  for (const auto& [b, e] : o.groups) {
    const double mid = (static_cast<double>(b + 1) + static_cast<double>(e)) / 2;
    for (size_t k = b; k < e; ++k)
      if (positive[o.order[k]]) rank_sum += mid;
  }
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

}  // namespace

double auroc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  return auroc_unchecked(scores, positive, static_cast<double>(check(scores, positive, "AUROC")));
}

Interval auroc_bootstrap(const std::vector<double>& scores, const std::vector<bool>& positive, int resamples,
                         double level, uint64_t seed) {
  check(scores, positive, "AUROC");
  VETO_CHECK(resamples > 0 && level > 0 && level < 1, "bootstrap: bad resamples or level");
  Rng rng(seed);
  const size_t n = scores.size();
  std::vector<double> values, s(n);
  std::vector<bool> p(n);
  for (int r = 0, attempts = 0; r < resamples; ++attempts) {
    VETO_CHECK(attempts < 100 * resamples, "bootstrap: resamples keep missing a class");
    size_t pos = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t j = rng.below(n);
      s[i] = scores[j];
      p[i] = positive[j];
      pos += p[i];
    }
    if (pos == 0 || pos == n) continue;
    values.push_back(auroc_unchecked(s, p, static_cast<double>(pos)));
    ++r;
  }
  std::sort(values.begin(), values.end());
  // numpy.percentile's default (linear interpolation between order statistics).
  auto quantile = [&](double q) {
    const double at = q * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(at));
    const size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
  };
  return {quantile((1 - level) / 2), quantile((1 + level) / 2)};
}

std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const double pos = static_cast<double>(check(scores, positive, "ROC curve"));
  const double neg = static_cast<double>(positive.size()) - pos;
  const Ordered o = ordered(scores, true);
  std::vector<RocPoint> curve{{0, 0, HUGE_VAL}};
  double tp = 0, fp = 0;
  for (const auto& [b, e] : o.groups) {
    for (size_t k = b; k < e; ++k) (positive[o.order[k]] ? tp : fp) += 1;
    curve.push_back({fp / neg, tp / pos, scores[o.order[b]]});
  }
  return curve;
}

double youden_threshold(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const std::vector<RocPoint> curve = roc_curve(scores, positive);
  size_t best = 1;
  for (size_t i = 1; i < curve.size(); ++i)
    if (curve[i].tpr - curve[i].fpr > curve[best].tpr - curve[best].fpr) best = i;
  return curve[best].threshold;
}

double average_precision(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const double pos = static_cast<double>(check(scores, positive, "average precision"));
  const Ordered o = ordered(scores, true);
  double tp = 0, seen = 0, recall = 0, ap = 0;
  for (const auto& [b, e] : o.groups) {
    for (size_t k = b; k < e; ++k) tp += positive[o.order[k]];
    seen += static_cast<double>(e - b);
    ap += (tp / pos - recall) * (tp / seen);
    recall = tp / pos;
  }
  return ap;
}

double fpr_at_negatives_kept(const std::vector<double>& scores, const std::vector<bool>& positive, double keep) {
  const size_t pos = check(scores, positive, "FPR");
  VETO_CHECK(keep > 0 && keep <= 1, "FPR: the share of negatives kept must be in (0, 1], got ", keep);
  std::vector<double> negatives;
  for (size_t i = 0; i < scores.size(); ++i)
    if (!positive[i]) negatives.push_back(scores[i]);
  std::sort(negatives.begin(), negatives.end());
  const auto need = static_cast<size_t>(std::ceil(keep * static_cast<double>(negatives.size()) - 1e-9));
  const double t = negatives[std::max<size_t>(need, 1) - 1];
  size_t accepted = 0;
  for (size_t i = 0; i < scores.size(); ++i) accepted += positive[i] && scores[i] <= t;
  return static_cast<double>(accepted) / static_cast<double>(pos);
}

std::vector<RiskCoveragePoint> risk_coverage_curve(const std::vector<double>& scores, const std::vector<bool>& positive) {
  check(scores, positive, "risk-coverage curve");
  const Ordered o = ordered(scores, false);
  const double n = static_cast<double>(scores.size());
  std::vector<RiskCoveragePoint> curve;
  double errors = 0;
  for (const auto& [b, e] : o.groups) {
    for (size_t k = b; k < e; ++k) errors += positive[o.order[k]];
    curve.push_back({static_cast<double>(e) / n, errors / static_cast<double>(e)});
  }
  return curve;
}

double aurc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  check(scores, positive, "AURC");
  const Ordered o = ordered(scores, false);
  double errors_before = 0, sum = 0;
  for (const auto& [b, e] : o.groups) {
    double group_errors = 0;
    for (size_t k = b; k < e; ++k) group_errors += positive[o.order[k]];
    const double g = static_cast<double>(e - b);
    for (size_t j = 1; j <= e - b; ++j) {
      const double accepted = static_cast<double>(b + j);
      sum += (errors_before + static_cast<double>(j) * group_errors / g) / accepted;
    }
    errors_before += group_errors;
  }
  return sum / static_cast<double>(scores.size());
}

double optimal_aurc(double r) {
  VETO_CHECK(r >= 0 && r < 1, "optimal AURC: error rate must be in [0, 1), got ", r);
  return r + (1 - r) * std::log1p(-r);
}

}  // namespace veto
