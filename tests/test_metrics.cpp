// Error-detection metrics (runtime/metrics.h) on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "runtime/metrics.h"
#include "runtime/softmax_scores.h"

namespace veto {
namespace {

TEST(Auroc, HandComputedCases) {
  // sklearn's roc_auc_score docstring example: 3 of the 4 (positive, negative) pairs ordered.
  EXPECT_DOUBLE_EQ(auroc({0.1, 0.4, 0.35, 0.8}, {false, false, true, true}), 0.75);
  EXPECT_DOUBLE_EQ(auroc({0.1, 0.2, 0.8, 0.9}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({0.9, 0.8, 0.2, 0.1}, {false, false, true, true}), 0.0);
  // Ties count one half: pairs (0.5+, 0.5-) 0.5, (0.5+, 0.2-) 1, (0.9+, 0.5-) 1, (0.9+, 0.2-) 1.
  EXPECT_DOUBLE_EQ(auroc({0.5, 0.5, 0.2, 0.9}, {false, true, false, true}), 3.5 / 4);
  EXPECT_DOUBLE_EQ(auroc({1, 1, 1, 1, 1}, {true, false, false, true, false}), 0.5);
  // A discrete score (LCR-like, many ties): 2 positives at 0.3 and 0.1, 3 negatives at 0, 0, 0.1:
  // (0.3: 3 wins) + (0.1: 2 wins, 1 tie) = 5.5 of 6.
  EXPECT_DOUBLE_EQ(auroc({0.3, 0.1, 0.0, 0.0, 0.1}, {true, true, false, false, false}), 5.5 / 6);
}

TEST(DetectionMetrics, HandComputedCases) {
  // Two right (false) and two wrong (true) predictions.
  const std::vector<double> s{0.1, 0.4, 0.35, 0.8};
  const std::vector<bool> wrong{false, false, true, true};
  // sklearn's average_precision_score docstring example: 0.5 x 1 + 0.5 x 2/3.
  EXPECT_NEAR(average_precision(s, wrong), 0.5 + 0.5 * 2 / 3.0, 1e-15);
  // ROC at each distinct threshold, cancelling scores >= t.
  const std::vector<RocPoint> roc = roc_curve(s, wrong);
  ASSERT_EQ(roc.size(), 5u);
  const double want[5][2] = {{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(roc[i].fpr, want[i][0]) << i;
    EXPECT_DOUBLE_EQ(roc[i].tpr, want[i][1]) << i;
  }
  EXPECT_DOUBLE_EQ(roc[1].threshold, 0.8);
  // J = 0.5 at t = 0.8 and at t = 0.35: the first maximum along the curve.
  EXPECT_DOUBLE_EQ(youden_threshold(s, wrong), 0.8);
  // J at 0.9, 0.25, 0.2, 0.1: -0.5, 0, 0.5, 0.
  EXPECT_DOUBLE_EQ(youden_threshold({0.1, 0.2, 0.25, 0.9}, {false, true, true, false}), 0.2);
  // Keeping 95% of the 2 right ones needs both (t = 0.4): the wrong one at 0.35 is accepted.
  EXPECT_DOUBLE_EQ(fpr_at_negatives_kept(s, wrong), 0.5);
  EXPECT_DOUBLE_EQ(fpr_at_negatives_kept(s, wrong, 0.5), 0.0);
  // Risk at coverage 1/4 .. 4/4: 0, 1/2, 1/3, 2/4.
  EXPECT_NEAR(aurc(s, wrong), (0 + 0.5 + 1 / 3.0 + 0.5) / 4, 1e-15);
  const std::vector<RiskCoveragePoint> rc = risk_coverage_curve(s, wrong);
  ASSERT_EQ(rc.size(), 4u);
  EXPECT_DOUBLE_EQ(rc[1].coverage, 0.5);
  EXPECT_DOUBLE_EQ(rc[1].risk, 0.5);
  EXPECT_DOUBLE_EQ(rc[3].risk, 0.5);
  // A tied group spreads its errors evenly: k = 1: 0; k = 2: (1/2)/2; k = 3: 1/3.
  EXPECT_NEAR(aurc({1, 1, 0}, {true, false, false}), (0 + 0.25 + 1 / 3.0) / 3, 1e-15);
  EXPECT_NEAR(optimal_aurc(0.1), 0.1 + 0.9 * std::log(0.9), 1e-15);
  EXPECT_EQ(optimal_aurc(0.0), 0.0);
}

TEST(DetectionMetrics, BootstrapIntervalOfTheAuroc) {
  std::vector<double> s;
  std::vector<bool> wrong;
  for (int i = 0; i < 300; ++i) {
    wrong.push_back(i % 5 == 0);
    s.push_back((i * 37 % 101) / 101.0 + (wrong.back() ? 0.4 : 0.0));
  }
  const double point = auroc(s, wrong);
  const Interval ci = auroc_bootstrap(s, wrong, 500, 0.95, 3);
  EXPECT_LT(ci.low, point);
  EXPECT_GT(ci.high, point);
  EXPECT_GT(ci.low, point - 0.1);
  EXPECT_LT(ci.high, point + 0.1);
  const Interval again = auroc_bootstrap(s, wrong, 500, 0.95, 3);
  EXPECT_EQ(ci.low, again.low);
  EXPECT_EQ(ci.high, again.high);
  const Interval perfect = auroc_bootstrap({0, 0, 1, 1}, {false, false, true, true}, 100);
  EXPECT_EQ(perfect.low, 1.0);
  EXPECT_EQ(perfect.high, 1.0);
}

TEST(SoftmaxScores, HandComputedCases) {
  // z = (ln 1, ln 2, ln 5): p = (0.125, 0.25, 0.625).
  const float z[3] = {0.0f, static_cast<float>(std::log(2.0)), static_cast<float>(std::log(5.0))};
  const auto s = softmax_scores(z, 3);
  EXPECT_NEAR(s[kMsp], 0.625, 1e-7);
  EXPECT_NEAR(s[kMaxLogit], std::log(5.0), 1e-7);
  EXPECT_NEAR(s[kMargin], 0.625 - 0.25, 1e-7);
  EXPECT_NEAR(s[kEntropy], -(0.125 * std::log(0.125) + 0.25 * std::log(0.25) + 0.625 * std::log(0.625)), 1e-7);
  EXPECT_NEAR(s[kEnergy], std::log(8.0), 1e-7);
  const double g = 1 - (0.125 * 0.125 + 0.25 * 0.25 + 0.625 * 0.625);
  EXPECT_NEAR(s[kDoctor], g / (1 - g), 1e-7);
  // Huge logits stay finite (shifted by the max); ties give a zero margin.
  const float big[3] = {1000.0f, 1000.0f, -1000.0f};
  const auto t = softmax_scores(big, 3);
  EXPECT_NEAR(t[kMsp], 0.5, 1e-12);
  EXPECT_NEAR(t[kMargin], 0.0, 1e-12);
  EXPECT_NEAR(t[kEnergy], 1000 + std::log(2.0), 1e-9);
  EXPECT_TRUE(std::isfinite(t[kDoctor]));
  const float bad[2] = {0.0f, std::nanf("")};
  EXPECT_THROW(softmax_scores(bad, 2), Error);
  EXPECT_EQ(std::string(softmax_score_name(kDoctor)), "doctor");
  EXPECT_EQ(softmax_score_error_sign(kMsp), -1);
  EXPECT_EQ(softmax_score_error_sign(kEntropy), 1);
}

TEST(Auroc, RejectsWhatHasNoAnswer) {
  EXPECT_THROW(auroc({0.1, 0.2}, {true, true}), Error);
  EXPECT_THROW(auroc({0.1, 0.2}, {false, false}), Error);
  EXPECT_THROW(auroc({0.1}, {true, false}), Error);
  EXPECT_THROW(auroc({std::nan(""), 0.2}, {true, false}), Error);
  EXPECT_THROW(aurc({0.1, 0.2}, {true, true}), Error);
  EXPECT_THROW(average_precision({0.1, 0.2}, {false, false}), Error);
  EXPECT_THROW(fpr_at_negatives_kept({0.1, 0.2}, {true, false}, 0.0), Error);
}

}  // namespace
}  // namespace veto
