// The CLI's option parser: the input is split into words at whitespace and parsed with a
// spec list like `veto predict`'s (values, a list, a flag), then every getter runs.
#include <cstdint>
#include <limits>

#include "runtime/cli/args.h"
#include "tests/fuzz/fuzz_common.h"

using namespace veto;
using veto::cli::Args;
using veto::cli::OptionSpec;

namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

const std::vector<OptionSpec>& specs() {
  static const std::vector<OptionSpec> s = {
      {"model", OptionSpec::Value, "M", "model file or bundled name"},
      {"backend", OptionSpec::Value, "B", "cpu | cuda | auto | reference", "cpu"},
      {"threads", OptionSpec::Value, "T", "CPU threads", "0"},
      {"batch", OptionSpec::Value, "B", "images per forward pass", "256"},
      {"data", OptionSpec::Value, "FILE", "CIFAR-10 binary file"},
      {"input", OptionSpec::List, "FILE", "image files"},
      {"limit", OptionSpec::Value, "N", "use only the first N inputs"},
      {"alpha", OptionSpec::Value, "X", "a real number"},
      {"format", OptionSpec::Value, "F", "table | json | csv", "table"},
      {"quiet", OptionSpec::Flag, "", "less output"},
  };
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> words = split_words(fuzz::as_string(data, size));
  Args args("predict", specs());
  bool parsed = false;
  if (!fuzz::expect_ok_or_error([&] { parsed = args.parse(words); })) return 0;
  if (!parsed) {  // --help
    VETO_FUZZ_ASSERT(!args.help("--model M ...", "Predicts.").empty());
    return 0;
  }
  for (const OptionSpec& s : specs()) {
    const bool has = args.has(s.name);
    VETO_FUZZ_ASSERT(has == args.flag(s.name));
    fuzz::expect_ok_or_error([&] { args.require(s.name); });
    // Every value an option holds is non-empty (an empty value is a parse error).
    for (const std::string& v : args.list(s.name)) VETO_FUZZ_ASSERT(!v.empty());
    VETO_FUZZ_ASSERT(!has || s.kind == OptionSpec::Flag || !args.get(s.name).empty());
  }
  fuzz::expect_ok_or_error([&] { args.get_int("limit", -1, 0, std::numeric_limits<int64_t>::max()); });
  fuzz::expect_ok_or_error([&] { args.get_int("batch", 256, 1, 65536); });
  fuzz::expect_ok_or_error([&] { args.get_int("threads", 0, std::numeric_limits<int64_t>::min(), 1024); });
  fuzz::expect_ok_or_error([&] { args.get_double("alpha", 0.5, -1e300, 1e300); });
  fuzz::expect_ok_or_error([&] { args.get_choice("backend", "cpu", {"cpu", "cuda", "auto", "reference"}); });
  fuzz::expect_ok_or_error([&] { args.get_choice("format", "table", {"table", "json", "csv"}); });
  return 0;
}
