#include "runtime/cli/common.h"

#include <omp.h>

#include <cstdlib>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "runtime/distributed.h"
#include "runtime/error.h"

namespace veto::cli {

std::vector<OptionSpec> model_options() {
  return {{"model", OptionSpec::Value, "M", "model file (.safetensors) or bundled name (resnet20)"},
          {"backend", OptionSpec::Value, "B", "cpu | cuda | auto | reference (slow oracle)", "cpu"},
          {"precision", OptionSpec::Value, "P", "conv and dense math: fp32 | tf32 | bf16 (the last two: cuda)", "fp32"},
          {"threads", OptionSpec::Value, "T", "CPU threads (0 = OMP_NUM_THREADS, else one per core, shared by MPI ranks)", "0"},
          {"batch", OptionSpec::Value, "B", "images per forward pass", "256"}};
}

std::vector<OptionSpec> input_options() {
  return {{"data", OptionSpec::Value, "FILE", "CIFAR-10 binary file (labels give accuracy)"},
          {"input", OptionSpec::List, "FILE", "image files (PNG/JPEG/BMP), folders of them (class subfolders give labels), or preprocessed .npy (N,C,H,W)"},
          {"limit", OptionSpec::Value, "N", "use only the first N inputs"}};
}

Model open_model(const Args& args) { return load_model(args.require("model")); }

std::unique_ptr<Dataset> open_inputs(const Args& args, const Model& model) {
  const bool data = args.has("data"), input = args.has("input");
  VETO_CHECK(data != input, data ? "give either --data or --input, not both" : "no inputs: give --data FILE or --input FILE...");
  const int64_t limit = args.get_int("limit", -1, 1, int64_t{1} << 40);
  auto ds = data ? open_cifar_dataset(args.get("data"), model.preprocess, limit)
                 : open_file_dataset(args.list("input"), model.preprocess, limit, model.classes);
  VETO_CHECK(ds->size() > 0, "the inputs hold no samples");
  return ds;
}

int threads_of(const Args& args) {
  const int t = static_cast<int>(args.get_int("threads", 0, 0, 4096));
  if (t > 0) return t;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  // The cores this process may run on, shared by the MPI ranks on this machine: each rank
  // takes its part, at least one core (a launcher that binds each rank to one core gives 1;
  // one that binds several ranks to a socket gives each a share of the socket).
  return std::max(1, omp_get_num_procs() / Communicator::world().local_size());
}

std::unique_ptr<Backend> open_backend(const Args& args) {
  auto backend = make_backend(args.get_choice("backend", "cpu", {"cpu", "cuda", "auto", "reference"}),
                              parse_precision(args.get_choice("precision", "fp32", {"fp32", "tf32", "bf16"})));
  backend->set_threads(threads_of(args));
  return backend;
}

OptionSpec max_memory_option(const std::string& help) { return {"max-memory", OptionSpec::Value, "MiB", help, "2048"}; }

size_t max_memory_of(const Args& args) {
  return static_cast<size_t>(args.get_int("max-memory", 2048, 1, int64_t{1} << 24)) << 20;
}

int64_t batch_size(const Args& args, int64_t fallback) { return args.get_int("batch", fallback, 1, 65536); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_output_path(const std::string& option, const std::string& path, const std::vector<std::string>& extensions) {
  bool ok = false;
  std::string list;
  for (const std::string& e : extensions) {
    ok = ok || ends_with(path, e);
    list += (list.empty() ? "" : " or ") + e;
  }
  VETO_CHECK(ok, "--", option, " must end in ", list, ", got '", path, "'");
  const auto parent = std::filesystem::path(path).parent_path();
  VETO_CHECK(parent.empty() || std::filesystem::is_directory(parent), "--", option, ": folder '", parent.string(),
             "' does not exist");
}

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::ostringstream os;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    os << line << "\n";
  }
  return os.str();
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

}  // namespace veto::cli
