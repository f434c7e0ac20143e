// veto's single exception type. Library code throws veto::Error with context (what, where,
// which file/tensor/shape); executables turn it into one line on stderr and exit code 1.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace veto {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from streamable pieces: fail("tensor ", name, ": shape ", s).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

}  // namespace veto

#define VETO_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::veto::fail(__VA_ARGS__); \
  } while (0)
