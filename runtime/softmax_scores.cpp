#include "runtime/softmax_scores.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/error.h"

namespace veto {

const char* softmax_score_name(int score) {
  static const char* names[kSoftmaxScoreCount] = {"msp", "max_logit", "margin", "entropy", "energy", "doctor"};
  VETO_CHECK(score >= 0 && score < kSoftmaxScoreCount, "no softmax score ", score);
  return names[score];
}

int softmax_score_error_sign(int score) { return (score == kEntropy || score == kDoctor) ? 1 : -1; }

std::array<double, kSoftmaxScoreCount> softmax_scores(const float* logits, int64_t classes) {
  VETO_CHECK(classes >= 2, "softmax scores need at least 2 classes, got ", classes);
  double top = -HUGE_VAL, second = -HUGE_VAL;
  for (int64_t k = 0; k < classes; ++k) {
    const double z = logits[k];
    VETO_CHECK(std::isfinite(z), "logit ", k, " is not finite (", z, ")");
    if (z > top) {
      second = top;
      top = z;
    } else if (z > second) {
      second = z;
    }
  }
  double sum = 0;
  for (int64_t k = 0; k < classes; ++k) sum += std::exp(logits[k] - top);
  double entropy = 0, squares = 0;
  for (int64_t k = 0; k < classes; ++k) {
    const double p = std::exp(logits[k] - top) / sum;
    if (p > 0) entropy -= p * std::log(p);
    squares += p * p;
  }
  const double g = 1 - squares;
  std::array<double, kSoftmaxScoreCount> s{};
  s[kMsp] = 1 / sum;  // exp(top - top) / sum
  s[kMaxLogit] = top;
  s[kMargin] = (1 - std::exp(second - top)) / sum;
  s[kEntropy] = entropy;
  s[kEnergy] = top + std::log(sum);
  s[kDoctor] = g / (1 - g);
  return s;
}

}  // namespace veto
