#include "runtime/cli/args.h"

#include <cerrno>
#include <cstdlib>

#include "runtime/error.h"

namespace veto::cli {

const OptionSpec* Args::find(const std::string& name) const {
  for (const OptionSpec& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

bool Args::parse(const std::vector<std::string>& words) {
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--help" || w == "-h") return false;
    VETO_CHECK(w.size() > 2 && w.compare(0, 2, "--") == 0, "unexpected argument '", w, "' for 'veto ", command_,
               "' (see veto ", command_, " --help)");
    std::string name = w.substr(2), inline_value;
    const size_t eq = name.find('=');
    const bool has_inline = eq != std::string::npos;
    if (has_inline) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = find(name);
    VETO_CHECK(spec, "unknown option '--", name, "' for 'veto ", command_, "' (see veto ", command_, " --help)");
    VETO_CHECK(!values_.count(name), "option '--", name, "' given twice");
    auto& out = values_[name];
    if (spec->kind == OptionSpec::Flag) {
      VETO_CHECK(!has_inline, "option '--", name, "' takes no value");
      continue;
    }
    if (has_inline) {
      out.push_back(inline_value);
    } else if (spec->kind == OptionSpec::Value) {
      VETO_CHECK(i + 1 < words.size() && words[i + 1].compare(0, 2, "--") != 0, "option '--", name, "' needs a value (",
                 spec->metavar, ")");
      out.push_back(words[++i]);
    } else {
      while (i + 1 < words.size() && words[i + 1].compare(0, 2, "--") != 0) out.push_back(words[++i]);
    }
    VETO_CHECK(!out.empty() && !out[0].empty(), "option '--", name, "' needs a value (", spec->metavar, ")");
  }
  return true;
}

std::string Args::help(const std::string& usage, const std::string& description) const {
  std::string s = "usage: veto " + command_ + " " + usage + "\n\n" + description + "\n\noptions:\n";
  for (const OptionSpec& o : specs_) {
    std::string left = "  --" + o.name + (o.metavar.empty() ? "" : " " + o.metavar);
    if (o.kind == OptionSpec::List) left += "...";
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    s += left + o.help + (o.default_value.empty() ? "" : " (default: " + o.default_value + ")") + "\n";
  }
  return s + "  --help                      this text\n";
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? fallback : it->second[0];
}

std::string Args::require(const std::string& name) const {
  VETO_CHECK(has(name), "'veto ", command_, "' needs --", name, " (see veto ", command_, " --help)");
  return get(name);
}

const std::vector<std::string>& Args::list(const std::string& name) const {
  static const std::vector<std::string> empty;
  auto it = values_.find(name);
  return it == values_.end() ? empty : it->second;
}

int64_t Args::get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  VETO_CHECK(errno == 0 && end && *end == '\0' && !v.empty(), "option '--", name, "' expects an integer, got '", v,
             "'");
  VETO_CHECK(x >= min && x <= max, "option '--", name, "' must be in [", min, ", ", max, "], got ", x);
  return x;
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  VETO_CHECK(errno == 0 && end && *end == '\0' && !v.empty() && x == x, "option '--", name,
             "' expects a number, got '", v, "'");
  VETO_CHECK(x >= min && x <= max, "option '--", name, "' must be in [", min, ", ", max, "], got ", v);
  return x;
}

std::string Args::get_choice(const std::string& name, const std::string& fallback,
                             const std::vector<std::string>& choices) const {
  const std::string v = get(name, fallback);
  std::string all;
  for (const auto& c : choices) {
    if (c == v) return v;
    all += (all.empty() ? "" : "|") + c;
  }
  fail("option '--", name, "' must be one of ", all, ", got '", v, "'");
}

}  // namespace veto::cli
