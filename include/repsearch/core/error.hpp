// One exception type for every user-facing failure: its message names the file/option, the
// expected form and what was found. The CLI prints it and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace repsearch {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A wait on other processes that saw no progress for its limit (one stopped, lost or cut off).
struct Stalled : Error {
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// fail("file ", path, ": expected ", x, ", found ", y)
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::cat(std::forward<Args>(args)...));
}

}  // namespace repsearch
