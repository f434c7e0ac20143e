// The detector (runtime/detector.h): it learns what it should (a linear rule for logistic
// regression, XOR for the MLP only), training is reproducible, standardization comes from
// the training rows, and the saved parameters score exactly as the trained detector.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "runtime/detection.h"
#include "runtime/detector.h"
#include "runtime/error.h"
#include "runtime/metrics.h"
#include "runtime/random.h"

namespace veto {
namespace {

// n rows of 3 features: two informative ones on very different scales, one constant.
struct Data {
  Matrix x;
  std::vector<bool> y;
};
Data make(int64_t n, uint64_t seed, bool xor_rule) {
  Rng rng(seed);
  Data d;
  d.x.rows = n;
  d.x.cols = 3;
  for (int64_t i = 0; i < n; ++i) {
    const double a = rng.normal(), b = rng.normal();
    d.x.values.insert(d.x.values.end(), {1000 * a + 5000, 0.001 * b, 7.0});
    const bool wrong = xor_rule ? (a > 0) != (b > 0) : a + b + 0.3 * rng.normal() > 1.2;  // ~14% positives
    d.y.push_back(wrong);
  }
  return d;
}

TEST(Detector, LogisticRegressionLearnsALinearRule) {
  const Data train = make(2000, 1, false), test = make(1000, 2, false);
  DetectorConfig c;
  c.kind = "logistic";
  c.epochs = 20;
  const Detector d = Detector::train(train.x, train.y, c);
  EXPECT_GT(auroc(d.score(test.x), test.y), 0.95);
}

TEST(Detector, MlpLearnsXorWhereLogisticRegressionCannot) {
  const Data train = make(3000, 3, true), test = make(1000, 4, true);
  DetectorConfig mlp;
  mlp.hidden = {32, 32};
  mlp.dropout = 0.1;
  mlp.epochs = 30;
  DetectorConfig logistic = mlp;
  logistic.kind = "logistic";
  EXPECT_GT(auroc(Detector::train(train.x, train.y, mlp).score(test.x), test.y), 0.95);
  EXPECT_LT(auroc(Detector::train(train.x, train.y, logistic).score(test.x), test.y), 0.65);
}

TEST(Detector, ReproducibleAndSavedExactly) {
  const Data train = make(500, 5, false), test = make(200, 6, false);
  DetectorConfig c;
  c.hidden = {16, 8};
  c.epochs = 5;
  c.seed = 11;
  const Detector a = Detector::train(train.x, train.y, c), b = Detector::train(train.x, train.y, c);
  EXPECT_EQ(a.score(test.x), b.score(test.x));
  c.seed = 12;
  EXPECT_NE(a.score(test.x), Detector::train(train.x, train.y, c).score(test.x));
  c.seed = 11;
  const Detector r = Detector::from_parameters(c, a.parameters(), "d.safetensors");
  EXPECT_EQ(r.score(test.x), a.score(test.x));
  auto params = a.parameters();
  params.pop_back();
  EXPECT_THROW(Detector::from_parameters(c, params, "d.safetensors"), Error);
}

TEST(Detector, RejectsWhatItCannotLearnFrom) {
  Data d = make(50, 7, false);
  std::vector<bool> all_right(50, false);
  EXPECT_THROW(Detector::train(d.x, all_right, DetectorConfig{}), Error);
  DetectorConfig bad;
  bad.kind = "forest";
  EXPECT_THROW(Detector::train(d.x, d.y, bad), Error);
  d.x.values[4] = std::nan("");
  EXPECT_THROW(Detector::train(d.x, d.y, DetectorConfig{}), Error);
  Matrix narrow;
  narrow.rows = 1;
  narrow.cols = 2;
  narrow.values = {0, 0};
  EXPECT_THROW(Detector::train(make(50, 8, false).x, make(50, 8, false).y, DetectorConfig{}).score(narrow), Error);
}

// The fuzz seeds of the detector and features files (tests/fuzz/make_seeds.py): every
// valid-* loads, every bad-* is refused with veto::Error. Two of them were found writing
// fuzz_detector: a configuration number like 1e30 for an int field (nlohmann's get<int>()
// cast it with undefined behaviour) and a two-stage detector without an 'lcr' group (veto
// detect then computed no LCR and the second stage read past the features).
TEST(DetectorFiles, FuzzSeedsLoadOrFailCleanly) {
  const std::string corpus = std::string(VETO_REPO_DIR) + "/tests/fuzz/corpus/";
  int loaded = 0, refused = 0;
  for (const std::string kind : {"detector", "features"})
    for (const auto& entry : std::filesystem::directory_iterator(corpus + kind)) {
      const std::string name = entry.path().filename().string();
      auto load = [&] {
        kind == "detector" ? (void)load_error_detector(entry.path().string()) : (void)load_features(entry.path().string());
      };
      if (name.rfind("valid", 0) == 0) {
        EXPECT_NO_THROW(load()) << name;
        ++loaded;
      } else if (name.rfind("bad", 0) == 0) {
        EXPECT_THROW(load(), Error) << name;
        ++refused;
      }
    }
  EXPECT_GE(loaded, 5);
  EXPECT_GE(refused, 6);
  try {
    load_error_detector(corpus + "detector/bad-epochs");
    ADD_FAILURE() << "bad-epochs loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("epochs is not an integer"), std::string::npos) << e.what();
  }
}

TEST(DetectorFiles, TwoStageScoringNeedsLcr) {
  const ErrorDetector d = load_error_detector(std::string(VETO_REPO_DIR) + "/tests/fuzz/corpus/detector/valid-two-stage");
  FeatureSet f;
  f.classes = 2;
  f.layers = {"conv"};
  f.channels = {4};
  f.conductance = {std::vector<float>(4, 1.0f)};
  f.logits = {0, 1};
  f.prediction = {1};
  f.label = {0};
  f.softmax.assign(6, 0.5f);
  EXPECT_THROW(d.score(f, {0}), Error);
  f.has_lcr = true;
  f.lcr = {0.5f};
  f.lcr_changes = {1};
  const std::vector<double> s = d.score(f, {0});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0] >= 0 && s[0] <= 1);
}

}  // namespace
}  // namespace veto
