// User-facing failures: every one is an Error (the CLI prints what() and exits non-zero); the kinds
// below also carry their parts as fields, so callers and tests can act on them without parsing text.
// The message names the file/option, the expected form and what was found.
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

// An option's value that the command cannot take (from the command line, a config file or an archive's config).
struct OptionError : Error {
  // message: the whole text of what(); by default "option OPTION: must be EXPECTED, found VALUE".
  OptionError(std::string option_, std::string value_, std::string expected_, const std::string& message = "")
      : Error(message.empty() ? "option " + option_ + ": must be " + expected_ + ", found " + value_ : message),
        option(std::move(option_)), value(std::move(value_)), expected(std::move(expected_)) {}
  std::string option;    // its name without dashes, e.g. "population"
  std::string value;     // as given ("" when it was missing)
  std::string expected;  // what it may be, e.g. ">= 2", "one of ga, de"
};

// A file (or directory) that cannot be read as what it should be: missing, unreadable, damaged, another kind.
struct InputError : Error {
  // message: the whole text of what(); by default "FILE: REASON".
  InputError(std::string file_, std::string reason_, const std::string& message = "")
      : Error(message.empty() ? file_ + ": " + reason_ : message), file(std::move(file_)), reason(std::move(reason_)) {}
  std::string file;    // the path as given
  std::string reason;  // what is wrong with it (the message without the file's name)
};

// A file or directory that cannot be written (or the data given to a writer that does not fit the format).
struct OutputError : Error {
  OutputError(std::string file_, std::string reason_, const std::string& message = "")
      : Error(message.empty() ? file_ + ": " + reason_ : message), file(std::move(file_)), reason(std::move(reason_)) {}
  std::string file;
  std::string reason;
};

namespace detail {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
// The text after "<file>: " or "<file>': " in message, else after its first ": ".
inline std::string reason_after(const std::string& message, const std::string& file) {
  if (!file.empty())
    for (const std::string& mark : {file + ": ", file + "': "}) {
      const auto at = message.find(mark);
      if (at != std::string::npos) return message.substr(at + mark.size());
    }
  const auto at = message.find(": ");
  return at == std::string::npos ? message : message.substr(at + 2);
}
}  // namespace detail

// fail("file ", path, ": expected ", x, ", found ", y)
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::cat(std::forward<Args>(args)...));
}

// fail_input(path, "archive ", path, ": missing dataset /x"): the reason is the text after "<path>: "
// (or after the first ": " when the path is quoted or absent from the text).
template <class... Args>
[[noreturn]] void fail_input(const std::string& file, Args&&... args) {
  const std::string message = detail::cat(std::forward<Args>(args)...);
  throw InputError(file, detail::reason_after(message, file), message);
}

// fail_option("dim", d, "positive"): OptionError with the default message "option dim: must be
// positive, found <d>"; message parts after `expected` replace that message.
template <class Value, class... Args>
[[noreturn]] void fail_option(const std::string& option, const Value& value, const std::string& expected,
                              Args&&... message) {
  const std::string v = detail::cat(value);
  if constexpr (sizeof...(Args) == 0) throw OptionError(option, v, expected);
  else throw OptionError(option, v, expected, detail::cat(std::forward<Args>(message)...));
}

template <class... Args>
[[noreturn]] void fail_output(const std::string& file, Args&&... args) {
  const std::string message = detail::cat(std::forward<Args>(args)...);
  throw OutputError(file, detail::reason_after(message, file), message);
}

}  // namespace repsearch
