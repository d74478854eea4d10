// A run directory's safety net: one owner at a time, proven writable before any compute, no leftovers
// of killed writers. Plain POSIX, no HDF5 or LibTorch.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace repsearch::io {

inline constexpr const char* kRunLockName = "repsearch.lock";

// Exclusive ownership of `dir` (or, with another `name`, of the outputs `<dir>/<stem of name>.*`) for
// this process: an fcntl write lock on `<dir>/<name>`, which the kernel releases when the process dies
// (kill -9 never blocks a later resume). The lock file holds the owner's host, pid, start time and
// `what`, and is removed when the owner releases it. A second owner is refused with an OutputError
// naming them.
class RunLock {
 public:
  RunLock(const std::string& dir, const std::string& what, const std::string& name = kRunLockName);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  void lock_or_throw(const std::string& dir, const std::string& name);
  std::string path_;
  int fd_ = -1;
};

// Creates `dir` (and parents) and proves it writable: writes, fsyncs and removes a small probe file.
// Error naming `option` (e.g. "out"), the directory and the system's reason.
void ensure_writable_dir(const std::string& dir, const std::string& option);

// Removes `<dir>/<name>.tmp-<pid>` files left by killed writers, for each of `names`; returns how
// many. Only for files whose writer holds the RunLock that guards them (no live writer can own them).
int remove_stale_temporaries(const std::string& dir, const std::vector<std::string>& names);

// open + fsync + close of `path`: 0, or the errno of what failed (callers word the error).
int fsync_path(const std::string& path);

// A file that is never seen half-written, for files HDF5 does not write (JSON, TorchScript): `write`
// fills `<path>.tmp-<pid>` (the name remove_stale_temporaries knows), which is fsync'ed and renamed
// onto `path`; on any failure the temporary goes and `path` stays as it was (OutputError).
void replace_file(const std::string& path, const std::function<void(const std::string& tmp)>& write);

}  // namespace repsearch::io
