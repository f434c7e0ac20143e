// veto evaluate: every signal of a features file (each softmax score, LCR, conductance, and
// the combinations) on one seeded stratified split, with every error-detection metric; a
// Markdown table on stdout and a report folder (JSON, Markdown, ROC and risk-coverage SVGs).
#include <iostream>

#include "runtime/cli/common.h"
#include "runtime/cli/report.h"
#include "runtime/error.h"

namespace veto::cli {

int cmd_evaluate(const std::vector<std::string>& words) {
  std::vector<OptionSpec> specs{{"features", OptionSpec::Value, "FILE", "features file (veto features), labelled"},
                                {"report", OptionSpec::Value, "DIR", "write report.json, report.md, roc.svg, risk_coverage.svg"},
                                {"format", OptionSpec::Value, "F", "markdown | json", "markdown"}};
  for (auto& s : detection_options()) specs.push_back(s);
  Args args("evaluate", specs);
  if (!args.parse(words)) {
    std::cout << args.help("--features FILE [--report DIR] [--split 0.6,0.2] [--seed S]",
                           "Splits the labelled inputs (stratified, seeded) into train / validation / test, trains the\n"
                           "detectors on train, picks each signal's threshold (Youden's J) on validation, and reports\n"
                           "AUROC with a bootstrap 95% CI, AUPR-error, FPR at 95% of right predictions kept, AURC,\n"
                           "E-AURC, and at the threshold the accepted accuracy, the share cancelled and the recalls.");
    return 0;
  }
  const std::string format = args.get_choice("format", "markdown", {"markdown", "json"});
  const EvaluationOptions options = read_detection_options(args);
  const std::string path = args.require("features");
  const FeatureSet f = load_features(path);
  const Evaluation e = evaluate_signals(f, options);
  if (args.has("report")) write_report(e, f, args.get("report"));
  std::cout << (format == "json" ? evaluation_json(e, f).dump(2) + "\n" : evaluation_markdown(e, f));
  return 0;
}

}  // namespace veto::cli
