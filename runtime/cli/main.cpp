// The veto command line: one binary, one subcommand per job.
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <new>
#include <set>

#include "runtime/cli/common.h"
#include "runtime/distributed.h"
#include "runtime/error.h"

namespace {

const char* kUsage =
    "usage: veto COMMAND [options]\n"
    "\n"
    "veto runs CNN classifiers and tells when a prediction is probably wrong.\n"
    "\n"
    "commands:\n"
    "  run       the whole job: mutants, features, detectors, evaluation report (bundled defaults)\n"
    "  predict   the class of every input (CIFAR-10 file, images or .npy)\n"
    "  eval      accuracy, errors, confusion matrix and images/s on a labeled dataset\n"
    "  info      a model's metadata and layers (the names other commands select)\n"
    "  bench     forward-pass throughput on given inputs\n"
    "  preprocess  write the preprocessed inputs as .npy (what the model sees)\n"
    "  attribute   layer conductance of every input at chosen layers (features, maps)\n"
    "  mutants     build an accepted set of model mutants (build), or describe one (info)\n"
    "  lcr         label change rate of every input under a mutant set\n"
    "  features    logits, softmax scores, conductance and LCR of every input (the detector's inputs)\n"
    "  evaluate    every error-detection signal and detector on a features file (metrics, report)\n"
    "  train-detector  train one error detector on a features file and save it\n"
    "  detect      per input: prediction, detector score, accept or cancel\n"
    "  import-onnx  an ONNX CNN classifier as a veto model file (--model X.onnx also works directly)\n"
    "\n"
    "`veto COMMAND --help` documents each command's options. Started by mpirun or srun, attribute,\n"
    "detect, features, lcr and mutants build run as one job over the MPI ranks (README: MPI).\n";

// The commands that shard their inputs over MPI ranks.
const std::set<std::string> kSharded = {"attribute", "detect", "features", "lcr", "mutants build"};

using Command = int (*)(const std::vector<std::string>&);
const std::map<std::string, Command> kCommands = {
    {"run", veto::cli::cmd_run},           {"predict", veto::cli::cmd_predict},
    {"eval", veto::cli::cmd_eval},         {"info", veto::cli::cmd_info},
    {"bench", veto::cli::cmd_bench},       {"preprocess", veto::cli::cmd_preprocess},
    {"attribute", veto::cli::cmd_attribute}, {"mutants", veto::cli::cmd_mutants},
    {"lcr", veto::cli::cmd_lcr},           {"features", veto::cli::cmd_features},
    {"evaluate", veto::cli::cmd_evaluate}, {"train-detector", veto::cli::cmd_train_detector},
    {"detect", veto::cli::cmd_detect},     {"import-onnx", veto::cli::cmd_import_onnx}};

int dispatch(const std::string& command, const std::vector<std::string>& words) {
  const auto it = kCommands.find(command);
  VETO_CHECK(it != kCommands.end(), "unknown command '", command, "' (see veto --help)");
  return it->second(words);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    veto::start_distributed(&argc, &argv);
  } catch (const veto::Error& e) {
    veto::abort_job(e.what());  // after MPI_Init the other ranks must not be left waiting
  }
  const veto::Communicator& world = veto::Communicator::world();
  // Under MPI one rank speaks: rank 0 prints the tables and writes the files.
  if (!world.root()) std::cout.rdbuf(nullptr);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::cout << kUsage;
    veto::stop_distributed();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> words(argv + 2, argv + argc);
  int code = 1;
  try {
    const std::string job = command == "mutants" && !words.empty() ? command + " " + words[0] : command;
    VETO_CHECK(world.size() == 1 || kSharded.count(job), "veto ", job,
               " does not run as several MPI ranks (those that do: attribute, detect, features, lcr, mutants build);"
               " run it as one process");
    code = dispatch(command, words);
  } catch (const veto::Error& e) {
    veto::abort_job(e.what());
  } catch (const std::bad_alloc&) {
    veto::abort_job("out of memory");
  } catch (const std::exception& e) {
    veto::abort_job(e.what());
  }
  veto::stop_distributed();
  return code;
}
