// The free confidence scores of a classifier, from its logits alone (no extra pass):
// p = softmax(z); MSP = max p; max-logit = max z; margin = p(1) - p(2) (the two largest);
// entropy = -sum p log p; energy = logsumexp z; DOCTOR D_alpha = g / (1 - g), g = 1 - sum p^2.
// Every report shows them: MSP is hard to beat at telling wrong predictions from right ones.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace veto {

enum SoftmaxScore { kMsp, kMaxLogit, kMargin, kEntropy, kEnergy, kDoctor, kSoftmaxScoreCount };

// "msp", "max_logit", "margin", "entropy", "energy", "doctor"
const char* softmax_score_name(int score);
// +1 when a higher value means a more likely error (entropy, DOCTOR), -1 otherwise: the
// sign that turns a score into an error score (higher = more likely wrong).
int softmax_score_error_sign(int score);

// The scores of one row of `classes` logits, computed in double (stable: shifted by the max).
std::array<double, kSoftmaxScoreCount> softmax_scores(const float* logits, int64_t classes);

}  // namespace veto
