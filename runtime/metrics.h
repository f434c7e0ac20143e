// Metrics for error detection: how well a score separates wrong predictions (positives)
// from right ones.
#pragma once

#include <vector>

namespace veto {

// Area under the ROC curve of `scores` for `positive` (true: a positive, e.g. a wrong
// prediction; a higher score should mean positive). Ties count one half, as in
// sklearn.metrics.roc_auc_score (the Mann-Whitney U statistic with midranks). Throws when
// the sizes differ, a score is NaN, or one of the two classes is empty.
double auroc(const std::vector<double>& scores, const std::vector<bool>& positive);

}  // namespace veto
