// Pieces every command shares: the standard options, opening the model, the inputs and the
// backend, and writing tables.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cli/args.h"
#include "runtime/dataset.h"
#include "runtime/model.h"

namespace veto::cli {

// --model, --backend, --threads, --batch
std::vector<OptionSpec> model_options();
// --data, --input, --limit
std::vector<OptionSpec> input_options();

Model open_model(const Args& args);
// Exactly one of --data (CIFAR-10 binary) and --input (image / .npy files).
std::unique_ptr<Dataset> open_inputs(const Args& args, const Model& model);
// The backend from --backend (default cpu) with --threads applied.
std::unique_ptr<Backend> open_backend(const Args& args);
int64_t batch_size(const Args& args, int64_t fallback);
// --max-memory MiB (default 2048), as bytes.
OptionSpec max_memory_option(const std::string& help);
size_t max_memory_of(const Args& args);
int threads_of(const Args& args);

// Checks an output path before any work is done: it ends in one of `extensions` and its
// folder exists (the file itself is written atomically at the end).
void check_output_path(const std::string& option, const std::string& path, const std::vector<std::string>& extensions);
bool ends_with(const std::string& s, const std::string& suffix);

// Left-aligned text columns.
std::string format_table(const std::vector<std::vector<std::string>>& rows);
std::string fixed(double value, int digits);

// Entry points; each returns the process exit code.
int cmd_predict(const std::vector<std::string>& words);
int cmd_eval(const std::vector<std::string>& words);
int cmd_info(const std::vector<std::string>& words);
int cmd_bench(const std::vector<std::string>& words);
int cmd_preprocess(const std::vector<std::string>& words);
int cmd_attribute(const std::vector<std::string>& words);
int cmd_mutants(const std::vector<std::string>& words);
int cmd_lcr(const std::vector<std::string>& words);
int cmd_features(const std::vector<std::string>& words);
int cmd_evaluate(const std::vector<std::string>& words);
int cmd_train_detector(const std::vector<std::string>& words);
int cmd_detect(const std::vector<std::string>& words);
int cmd_run(const std::vector<std::string>& words);
int cmd_import_onnx(const std::vector<std::string>& words);

}  // namespace veto::cli
