// A small strict command-line parser: `--name value`, `--name=value`, boolean `--flag`, and
// list options that take every following word up to the next `--option`. Anything it does
// not know is an error naming the word and the command.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace veto::cli {

struct OptionSpec {
  std::string name;  // without the dashes
  enum Kind { Value, Flag, List } kind = Value;
  std::string metavar;  // "FILE", "N"
  std::string help;
  std::string default_value;  // shown in help; empty = none
};

class Args {
 public:
  Args(std::string command, std::vector<OptionSpec> specs) : command_(std::move(command)), specs_(std::move(specs)) {}
  // Parses argv words after the command name; returns false when --help was asked.
  bool parse(const std::vector<std::string>& words);
  std::string help(const std::string& usage, const std::string& description) const;

  bool has(const std::string& name) const;
  bool flag(const std::string& name) const { return has(name); }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;
  const std::vector<std::string>& list(const std::string& name) const;
  // Strictly parsed numbers, range-checked; the error names the option.
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;
  // One of `choices`.
  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const;

 private:
  const OptionSpec* find(const std::string& name) const;
  std::string command_;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace veto::cli
