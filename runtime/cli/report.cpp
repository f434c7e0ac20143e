#include "runtime/cli/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "runtime/cli/common.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace veto::cli {
namespace {

std::string label(const SignalReport& s) { return s.method == "raw score" ? s.name : s.name + " (" + s.method + ")"; }

// A line chart over [0, 1] x [0, y_max] with a legend; `points(s)` gives a signal's (x, y).
template <class Points>
std::string line_chart(const Evaluation& e, const std::string& title, const std::string& x_label,
                       const std::string& y_label, double y_max, Points points) {
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8", "#ffbb78"};
  const double w = 720, h = 480, left = 60, top = 40, plot_w = 400, plot_h = 380;
  std::ostringstream os;
  char buf[160];
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << left << "\" y=\"24\" font-size=\"15\">" << title << "</text>\n";
  std::snprintf(buf, sizeof buf, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n",
                left, top, plot_w, plot_h);
  os << buf;
  for (int t = 0; t <= 4; ++t) {
    const double fx = left + plot_w * t / 4, fy = top + plot_h * (1 - t / 4.0);
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.2f</text>\n", fx, top + plot_h + 16, t / 4.0);
    os << buf;
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n", left - 6, fy + 4, y_max * t / 4);
    os << buf;
  }
  os << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << top + plot_h + 34 << "\" text-anchor=\"middle\">" << x_label
     << "</text>\n<text x=\"16\" y=\"" << top + plot_h / 2 << "\" transform=\"rotate(-90 16 " << top + plot_h / 2
     << ")\" text-anchor=\"middle\">" << y_label << "</text>\n";
  for (size_t i = 0; i < e.signals.size(); ++i) {
    const char* color = colors[i % (sizeof colors / sizeof *colors)];
    os << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : points(e.signals[i])) {
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", left + plot_w * x, top + plot_h * (1 - std::min(y / y_max, 1.0)));
      os << buf;
    }
    os << "\"/>\n";
    const double ly = top + 10 + 18 * static_cast<double>(i);
    std::snprintf(buf, sizeof buf, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                  left + plot_w + 20, ly, left + plot_w + 40, ly, color);
    os << buf << "<text x=\"" << left + plot_w + 46 << "\" y=\"" << ly + 4 << "\">" << label(e.signals[i]) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace

std::vector<OptionSpec> detection_options() {
  return {{"split", OptionSpec::Value, "T,V", "train and validation shares (stratified; test gets the rest)", "0.6,0.2"},
          {"seed", OptionSpec::Value, "S", "seed of the split, the detectors and the bootstrap", "0"},
          {"epochs", OptionSpec::Value, "E", "detector training epochs", "40"},
          {"hidden", OptionSpec::Value, "H,H", "MLP hidden widths (the paper: 200,200)", "200,200"},
          {"dropout", OptionSpec::Value, "P", "MLP dropout", "0.5"},
          {"no-class-weight", OptionSpec::Flag, "", "do not weight the rare wrong predictions up"}};
}

EvaluationOptions read_detection_options(const Args& args) {
  EvaluationOptions o;
  const std::string split = args.get("split", "0.6,0.2");
  char* end = nullptr;
  o.train_share = std::strtod(split.c_str(), &end);
  VETO_CHECK(*end == ',', "--split takes two shares like 0.6,0.2, got '", split, "'");
  const char* second = end + 1;
  o.validation_share = std::strtod(second, &end);
  VETO_CHECK(*end == '\0' && end != second, "--split takes two shares like 0.6,0.2, got '", split, "'");
  VETO_CHECK(o.train_share > 0 && o.validation_share > 0 && o.train_share + o.validation_share < 1,
             "--split: the shares must be positive and leave a test part, got '", split, "'");
  o.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  o.config.seed = o.seed;
  o.config.epochs = static_cast<int>(args.get_int("epochs", 40, 1, 100000));
  o.config.dropout = args.get_double("dropout", 0.5, 0, 0.95);
  o.config.class_weight = !args.flag("no-class-weight");
  o.config.hidden.clear();
  const std::string hidden = args.get("hidden", "200,200");
  size_t start = 0;
  while (start <= hidden.size()) {
    const size_t comma = hidden.find(',', start);
    const std::string part = hidden.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const long v = std::strtol(part.c_str(), &end, 10);
    VETO_CHECK(!part.empty() && *end == '\0' && v > 0 && v <= 4096, "--hidden takes widths like 200,200, got '", hidden, "'");
    o.config.hidden.push_back(static_cast<int>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return o;
}

nlohmann::json evaluation_json(const Evaluation& e, const FeatureSet& f) {
  nlohmann::json signals = nlohmann::json::array();
  for (const SignalReport& s : e.signals)
    signals.push_back({{"signal", s.name},
                       {"method", s.method},
                       {"auroc", s.auroc},
                       {"auroc_ci95", {s.auroc_ci.low, s.auroc_ci.high}},
                       {"aupr_error", s.aupr_error},
                       {"fpr_at_95_right_kept", s.fpr_at_95},
                       {"aurc", s.aurc},
                       {"eaurc", s.eaurc},
                       {"threshold", s.threshold},
                       {"accepted_accuracy", s.accepted_accuracy},
                       {"cancelled", s.cancelled},
                       {"right_recall", s.right_recall},
                       {"wrong_recall", s.wrong_recall},
                       {"mean_recall", s.mean_recall}});
  return {{"model", f.metadata.count("model") ? f.metadata.at("model") : ""},
          {"data", f.metadata.count("data") ? f.metadata.at("data") : ""},
          {"inputs", f.count()},
          {"layers", f.layers},
          {"mutant_count", f.metadata.count("mutant_count") ? f.metadata.at("mutant_count") : "0"},
          {"split", {{"train", e.split.train.size()}, {"validation", e.split.validation.size()}, {"test", e.split.test.size()}}},
          {"errors", {{"train", e.errors_train}, {"validation", e.errors_validation}, {"test", e.errors_test}}},
          {"signals", signals}};
}

std::string evaluation_markdown(const Evaluation& e, const FeatureSet& f) {
  std::ostringstream os;
  const double test = static_cast<double>(e.split.test.size());
  os << "Model `" << (f.metadata.count("model") ? f.metadata.at("model") : "?") << "` on " << f.count()
     << " inputs; split train / validation / test = " << e.split.train.size() << " / " << e.split.validation.size()
     << " / " << e.split.test.size() << " with " << e.errors_train << " / " << e.errors_validation << " / "
     << e.errors_test << " wrong predictions (test accuracy " << fixed(1 - static_cast<double>(e.errors_test) / test, 4)
     << "). Metrics on the test part; threshold by Youden's J on the validation part.\n\n";
  os << "| signal | method | AUROC [95% CI] | AUPR-error | FPR@95 | AURC | E-AURC | accepted acc. | cancelled | right / wrong / mean recall |\n";
  os << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const SignalReport& s : e.signals)
    os << "| " << s.name << " | " << s.method << " | " << fixed(s.auroc, 4) << " [" << fixed(s.auroc_ci.low, 3) << ", "
       << fixed(s.auroc_ci.high, 3) << "] | " << fixed(s.aupr_error, 3) << " | " << fixed(s.fpr_at_95, 3) << " | "
       << fixed(s.aurc, 4) << " | " << fixed(s.eaurc, 4) << " | " << fixed(s.accepted_accuracy, 4) << " | "
       << fixed(s.cancelled, 3) << " | " << fixed(s.right_recall, 3) << " / " << fixed(s.wrong_recall, 3) << " / "
       << fixed(s.mean_recall, 3) << " |\n";
  os << "\nFPR@95: share of wrong predictions still accepted when 95% of the right ones are kept. "
        "AURC / E-AURC: area under the risk-coverage curve, and its excess over a perfect ordering.\n";
  return os.str();
}

std::string roc_svg(const Evaluation& e) {
  return line_chart(e, "ROC (test part): cancelled wrong vs cancelled right", "false positive rate (right cancelled)",
                    "true positive rate (wrong cancelled)", 1.0, [](const SignalReport& s) {
                      std::vector<std::pair<double, double>> p;
                      for (const RocPoint& r : s.roc) p.push_back({r.fpr, r.tpr});
                      return p;
                    });
}

std::string risk_coverage_svg(const Evaluation& e) {
  double y_max = 0;
  for (const SignalReport& s : e.signals)
    for (const RiskCoveragePoint& r : s.risk_coverage) y_max = std::max(y_max, r.risk);
  return line_chart(e, "Risk-coverage (test part)", "coverage (share accepted)", "risk (error rate of the accepted)",
                    std::max(y_max, 1e-6), [](const SignalReport& s) {
                      std::vector<std::pair<double, double>> p;
                      for (const RiskCoveragePoint& r : s.risk_coverage) p.push_back({r.coverage, r.risk});
                      return p;
                    });
}

void write_report(const Evaluation& e, const FeatureSet& f, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VETO_CHECK(!ec && std::filesystem::is_directory(dir), "cannot create the report folder '", dir, "'",
             ec ? ": " + ec.message() : "");
  write_file_atomic(dir + "/report.json", evaluation_json(e, f).dump(2) + "\n");
  write_file_atomic(dir + "/report.md", evaluation_markdown(e, f));
  write_file_atomic(dir + "/roc.svg", roc_svg(e));
  write_file_atomic(dir + "/risk_coverage.svg", risk_coverage_svg(e));
}

}  // namespace veto::cli
