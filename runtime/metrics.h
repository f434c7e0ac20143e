// Metrics for error detection: how well a score separates wrong predictions (positives)
// from right ones. Convention throughout: a higher score means "more likely wrong"; a
// selective classifier accepts the inputs with the lowest scores and cancels the rest.
// Ties are handled explicitly (a tied group is never split by input order).
#pragma once

#include <cstdint>
#include <vector>

namespace veto {

// Area under the ROC curve of `scores` for `positive` (true: a positive, e.g. a wrong
// prediction). Ties count one half, as in sklearn.metrics.roc_auc_score (the Mann-Whitney U
// statistic with midranks). Throws when the sizes differ, a score is NaN, or one of the two
// classes is empty.
double auroc(const std::vector<double>& scores, const std::vector<bool>& positive);

// Percentile bootstrap interval of the AUROC: `resamples` draws of n inputs with
// replacement (seeded; draws missing a class are redrawn), the (1 - level)/2 and
// (1 + level)/2 quantiles.
struct Interval {
  double low = 0, high = 0;
};
Interval auroc_bootstrap(const std::vector<double>& scores, const std::vector<bool>& positive, int resamples = 1000,
                         double level = 0.95, uint64_t seed = 0);

// Average precision with the positives (errors) as the class to find, as
// sklearn.metrics.average_precision_score: sum over the distinct thresholds, from the
// highest score down, of (recall step) x precision.
double average_precision(const std::vector<double>& scores, const std::vector<bool>& positive);

// The share of positives (errors) still accepted when the threshold keeps `keep` (0.95) of
// the negatives (right predictions): the threshold t is the smallest score with at least
// `keep` of the negatives scoring <= t; inputs scoring <= t are accepted.
double fpr_at_negatives_kept(const std::vector<double>& scores, const std::vector<bool>& positive,
                             double keep = 0.95);

// Area under the risk-coverage curve: accepting inputs by increasing score, the mean over
// k = 1..n of the error rate among the k accepted (Geifman et al.). Within a group of tied
// scores the errors are spread evenly (the expected risk under a random order).
double aurc(const std::vector<double>& scores, const std::vector<bool>& positive);
// AURC of a perfect ordering for the error rate r, continuous form: r + (1 - r) ln(1 - r).
double optimal_aurc(double error_rate);

// The risk-coverage curve at each distinct threshold: coverage (share accepted) and risk
// (error rate among the accepted), accepting inputs by increasing score.
struct RiskCoveragePoint {
  double coverage = 0, risk = 0;
};
std::vector<RiskCoveragePoint> risk_coverage_curve(const std::vector<double>& scores, const std::vector<bool>& positive);

// The ROC curve at each distinct threshold (cancel inputs scoring >= t), from (0, 0) to (1, 1).
struct RocPoint {
  double fpr = 0, tpr = 0, threshold = 0;
};
std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive);

// The threshold maximising Youden's J = TPR - FPR when inputs scoring >= t are cancelled
// (the highest such t on ties of J: the first maximum along the ROC curve, as np.argmax over
// sklearn.metrics.roc_curve).
double youden_threshold(const std::vector<double>& scores, const std::vector<bool>& positive);

}  // namespace veto
