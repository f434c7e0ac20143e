// Error-detection metrics (runtime/metrics.h) on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "runtime/metrics.h"

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

TEST(Auroc, RejectsWhatHasNoAnswer) {
  EXPECT_THROW(auroc({0.1, 0.2}, {true, true}), Error);
  EXPECT_THROW(auroc({0.1, 0.2}, {false, false}), Error);
  EXPECT_THROW(auroc({0.1}, {true, false}), Error);
  EXPECT_THROW(auroc({std::nan(""), 0.2}, {true, false}), Error);
}

}  // namespace
}  // namespace veto
