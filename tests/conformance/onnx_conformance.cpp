// Runs the ONNX backend test cases (Debian's libonnx-testdata: node, pytorch-converted,
// pytorch-operator and simple cases) whose ops veto imports, on a veto backend, and compares
// every output with the expected one at ONNX's tolerances (|got - want| <= 1e-7 + 1e-3 |want|).
//
//   veto_onnx_conformance DATA_DIR EXCLUSIONS_FILE [--backend cpu|reference|cuda] [--verbose]
//
// A case is one folder with model.onnx and test_data_set_*/{input,output}_*.pb. Cases that
// use an op veto does not import are not run. Every other case must pass or be listed in
// EXCLUSIONS_FILE ("case_name  reason" per line) - an excluded case that passes is an error
// too, so the file stays true. Prints a table per op; exits 1 on any unexpected result.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <onnx/onnx_pb.h>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/io/atomic_file.h"
#include "runtime/onnx_import.h"

namespace fs = std::filesystem;
using namespace veto;

namespace {

std::string slurp(const fs::path& p) { return read_file(p.string(), size_t{1} << 31); }

std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    const fs::path f = dir / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(f)) return files;
    files.push_back(f);
  }
}

// "" when every test data set of the case matches, else what went wrong.
std::string run_case(const fs::path& dir, const onnx::ModelProto& proto, const std::string& bytes,
                     Backend& backend) {
  std::set<std::string> initializers;
  for (const auto& t : proto.graph().initializer()) initializers.insert(t.name());
  std::vector<std::string> inputs;
  for (const auto& in : proto.graph().input())
    if (!initializers.count(in.name())) inputs.push_back(in.name());
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test data sets";
  for (const fs::path& set : sets) {
    const std::vector<fs::path> in_files = numbered(set, "input_"), out_files = numbered(set, "output_");
    if (in_files.size() != inputs.size()) return "the data set's inputs do not match the graph's";
    if (out_files.size() != 1) return std::to_string(out_files.size()) + " outputs (veto computes one)";
    std::map<std::string, std::string> constants;
    for (size_t i = 1; i < inputs.size(); ++i) constants[inputs[i]] = slurp(in_files[i]);
    const Model model = import_onnx_graph(bytes, dir.filename().string(), constants);
    const OnnxTensor x = read_onnx_tensor(slurp(in_files[0]), "input_0.pb");
    const OnnxTensor want = read_onnx_tensor(slurp(out_files[0]), "output_0.pb");
    if (x.dims.size() < 2 || !x.is_float) return "input_0 is not a float tensor with a batch dimension";
    Plan plan(model, backend, x.dims[0]);
    plan.forward(x.values.data());
    const Tensor got = plan.logits();
    if (got.numel() != static_cast<int64_t>(want.values.size()))
      return "output has " + std::to_string(got.numel()) + " values, expected " + std::to_string(want.values.size());
    for (int64_t i = 0; i < got.numel(); ++i) {
      const double g = got[i], w = want.values[size_t(i)];
      const bool same = (std::isnan(g) && std::isnan(w)) || std::fabs(g - w) <= 1e-7 + 1e-3 * std::fabs(w);
      if (!same) {
        std::ostringstream os;
        os << set.filename().string() << ": output[" << i << "] = " << g << ", expected " << w;
        return os.str();
      }
    }
  }
  return "";
}

struct Tally {
  int cases = 0, passed = 0, excluded = 0, failed = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: veto_onnx_conformance DATA_DIR EXCLUSIONS_FILE [--backend cpu|reference|cuda] [--verbose]\n";
    return 2;
  }
  const fs::path data = argv[1];
  std::string backend_name = "cpu";
  bool verbose = false;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) backend_name = argv[++i];
    else if (a == "--verbose") verbose = true;
    else {
      std::cerr << "veto_onnx_conformance: unknown argument '" << a << "'\n";
      return 2;
    }
  }
  try {
    std::map<std::string, std::string> exclusions;  // case -> reason
    std::ifstream ex(argv[2]);
    VETO_CHECK(ex, argv[2], ": cannot read the exclusion file");
    for (std::string line; std::getline(ex, line);) {
      if (line.empty() || line[0] == '#') continue;
      const size_t space = line.find_first_of(" \t");
      VETO_CHECK(space != std::string::npos, argv[2], ": line '", line, "' has no reason");
      exclusions[line.substr(0, space)] = line.substr(line.find_first_not_of(" \t", space));
    }
    auto backend = make_backend(backend_name);
    const std::vector<std::string> ops = onnx_supported_ops();
    const std::set<std::string> supported(ops.begin(), ops.end());

    std::map<std::string, Tally> per_op;
    Tally total;
    int not_run = 0, stale = 0;
    std::set<std::string> seen;
    for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
      const fs::path root = data / suite;
      if (!fs::is_directory(root)) continue;
      std::vector<fs::path> cases;
      for (const auto& e : fs::directory_iterator(root))
        if (fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
      std::sort(cases.begin(), cases.end());
      for (const fs::path& dir : cases) {
        const std::string name = dir.filename().string();
        const std::string bytes = slurp(dir / "model.onnx");
        onnx::ModelProto proto;
        std::set<std::string> case_ops;
        bool ours = proto.ParseFromString(bytes);
        for (const auto& n : proto.graph().node()) {
          case_ops.insert(n.op_type());
          ours = ours && (n.domain().empty() || n.domain() == "ai.onnx") && supported.count(n.op_type());
        }
        if (!ours || case_ops.empty()) {
          ++not_run;
          continue;
        }
        seen.insert(name);
        std::string problem;
        try {
          problem = run_case(dir, proto, bytes, *backend);
        } catch (const std::exception& e) {
          problem = e.what();
        }
        auto ex_it = exclusions.find(name);
        const bool excluded = ex_it != exclusions.end();
        ++total.cases;
        for (const std::string& op : case_ops) ++per_op[op].cases;
        if (problem.empty() && excluded) {
          ++stale;
          std::cout << "STALE " << suite << "/" << name << ": passes but is excluded (" << ex_it->second << ")\n";
        }
        Tally delta;
        if (problem.empty()) {
          delta.passed = 1;
          if (verbose) std::cout << "pass  " << suite << "/" << name << "\n";
        } else if (excluded) {
          delta.excluded = 1;
          if (verbose) std::cout << "excl  " << suite << "/" << name << ": " << ex_it->second << "\n";
        } else {
          delta.failed = 1;
          std::cout << "FAIL  " << suite << "/" << name << ": " << problem << "\n";
        }
        for (Tally* t : {&total}) t->passed += delta.passed, t->excluded += delta.excluded, t->failed += delta.failed;
        for (const std::string& op : case_ops) {
          Tally& t = per_op[op];
          t.passed += delta.passed, t.excluded += delta.excluded, t.failed += delta.failed;
        }
      }
    }
    for (const auto& [name, reason] : exclusions)
      if (!seen.count(name)) {
        ++stale;
        std::cout << "STALE " << name << ": excluded but not a case veto runs\n";
      }

    std::cout << "\n| op | cases | passed | excluded | failed |\n|---|---|---|---|---|\n";
    for (const auto& [op, t] : per_op)
      std::cout << "| " << op << " | " << t.cases << " | " << t.passed << " | " << t.excluded << " | " << t.failed
                << " |\n";
    std::cout << "| **all** | " << total.cases << " | " << total.passed << " | " << total.excluded << " | "
              << total.failed << " |\n\n"
              << total.cases << " cases run on " << backend->name() << " (" << not_run
              << " not run: they use ops veto does not import), " << total.passed << " passed, " << total.excluded
              << " excluded, " << total.failed << " failed, " << stale << " stale exclusions\n";
    return total.failed == 0 && stale == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "veto_onnx_conformance: error: " << e.what() << "\n";
    return 2;
  }
}
