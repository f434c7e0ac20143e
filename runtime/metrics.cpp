#include "runtime/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.h"

namespace veto {

double auroc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  VETO_CHECK(scores.size() == positive.size(), "AUROC: ", scores.size(), " scores for ", positive.size(), " labels");
  for (size_t i = 0; i < scores.size(); ++i) VETO_CHECK(!std::isnan(scores[i]), "AUROC: score ", i, " is NaN");
  const auto pos = static_cast<double>(std::count(positive.begin(), positive.end(), true));
  const double neg = static_cast<double>(positive.size()) - pos;
  VETO_CHECK(pos > 0 && neg > 0, "AUROC needs both classes: ", pos, " positives and ", neg, " negatives");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the positives' ranks (1-based), tied scores sharing their mean rank.
  double rank_sum = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double mid = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k)
      if (positive[order[k]]) rank_sum += mid;
    i = j;
  }
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

}  // namespace veto
