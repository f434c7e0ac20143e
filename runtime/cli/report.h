// The evaluation report of `veto evaluate` and `veto run`: a JSON document, a Markdown
// table, and SVG plots of the ROC and risk-coverage curves of every signal.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/cli/args.h"
#include "runtime/detection.h"

namespace veto::cli {

// --split, --seed, --epochs, --hidden, --dropout, --no-class-weight: how detectors are trained
// and evaluated (shared by evaluate, train-detector and run).
std::vector<OptionSpec> detection_options();
EvaluationOptions read_detection_options(const Args& args);

nlohmann::json evaluation_json(const Evaluation& e, const FeatureSet& f);
std::string evaluation_markdown(const Evaluation& e, const FeatureSet& f);
// Curves of the test part, one polyline per signal.
std::string roc_svg(const Evaluation& e);
std::string risk_coverage_svg(const Evaluation& e);
// Writes report.json, report.md, roc.svg and risk_coverage.svg into `dir` (created), each atomically.
void write_report(const Evaluation& e, const FeatureSet& f, const std::string& dir);

}  // namespace veto::cli
