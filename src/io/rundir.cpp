#include "repsearch/io/rundir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "repsearch/core/error.hpp"

namespace repsearch::io {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string read_all(int fd) {
  std::string text;
  char buf[512];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

void make_dirs(const std::string& dir, const std::string& option) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw OutputError(dir, "cannot create run directory: " + ec.message(),
                      detail::cat("option ", option, ": cannot create run directory ", dir, ": ", ec.message()));
  if (!fs::is_directory(dir, ec))
    throw OutputError(dir, "exists but is not a directory",
                      detail::cat("option ", option, ": ", dir, " exists but is not a directory"));
}

}  // namespace

RunLock::RunLock(const std::string& dir, const std::string& what, const std::string& name)
    : path_((fs::path(dir) / name).string()) {
  make_dirs(dir, "out");
  for (int attempt = 0; fd_ < 0; ++attempt) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_output(path_, "option out: cannot open the lock file ", path_, ": ", std::strerror(errno));
    lock_or_throw(dir, name);
    // An owner removes its lock file as it releases it: if that happened between our open and our lock,
    // we hold a file that is no longer `path_`, and must take the one that is.
    struct stat held {}, named {};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino)
      break;
    ::close(fd_);
    fd_ = -1;
    if (attempt == 100) fail_output(path_, "option out: cannot take the lock file ", path_, ": it keeps being replaced");
  }
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const std::string text = "host " + host_name() + ", pid " + std::to_string(::getpid()) + ", since " + stamp + ", " + what + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    const int error = errno;
    ::unlink(path_.c_str());  // ours: locked, so no other owner can hold it
    ::close(fd_);
    fd_ = -1;
    fail_output(path_, "option out: cannot write the lock file ", path_, ": ", std::strerror(error));
  }
}

// fcntl write lock on fd_; when another process holds it, OutputError naming the holder.
void RunLock::lock_or_throw(const std::string& dir, const std::string& name) {
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  if (::fcntl(fd_, F_SETLK, &lk) != 0) {
    const int error = errno;
    std::string holder = read_all(fd_);
    if (error == EACCES || error == EAGAIN) {
      // The holder writes its line just after it locks: wait for the line of the pid the kernel names.
      struct flock who {};
      who.l_type = F_WRLCK;
      who.l_whence = SEEK_SET;
      const pid_t pid = ::fcntl(fd_, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? who.l_pid : 0;
      const std::string want = "pid " + std::to_string(pid) + ",";
      for (int i = 0; i < 50 && pid > 0 && holder.find(want) == std::string::npos; ++i) {
        ::usleep(10000);
        holder = read_all(fd_);
      }
      if (holder.empty() && pid > 0) holder = "pid " + std::to_string(pid);
    }
    ::close(fd_);
    fd_ = -1;
    if (error == EACCES || error == EAGAIN) {
      const std::string reason = detail::cat("in use by another repsearch process (", holder.empty() ? "unknown" : holder,
                                             "; lock ", path_, ")");
      // The directory's lock guards all of it; another names the output it guards (`<output>.lock`).
      const std::string subject = name == kRunLockName ? "run directory " + dir
                                                       : (fs::path(dir) / fs::path(name).stem()).string() + " (its files)";
      throw OutputError(dir, reason, detail::cat(subject, " is ", reason, ": wait for it to end, or choose another --out"));
    }
    fail_output(path_, "option out: cannot lock ", path_, ": ", std::strerror(error),
         " (the file system must support fcntl locks)");
  }
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // before the release: a process that locks this file later sees it is gone
  ::close(fd_);
}

void ensure_writable_dir(const std::string& dir, const std::string& option) {
  make_dirs(dir, option);
  const std::string probe = (fs::path(dir) / (".repsearch-probe-" + host_name() + "-" + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw OutputError(dir, std::string("not writable: ") + std::strerror(errno),
                      detail::cat("option ", option, ": run directory ", dir, " is not writable: ", std::strerror(errno)));
  const char bytes[4096] = {0};
  const bool ok = ::write(fd, bytes, sizeof bytes) == static_cast<ssize_t>(sizeof bytes) && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok)
    throw OutputError(dir, std::string("cannot write to it: ") + std::strerror(error),
                      detail::cat("option ", option, ": cannot write to run directory ", dir, ": ", std::strerror(error)));
}

int remove_stale_temporaries(const std::string& dir, const std::vector<std::string>& names) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    for (const auto& name : names) {
      const std::string prefix = name + ".tmp-";
      if (file.rfind(prefix, 0) == 0 && file.size() > prefix.size() &&
          file.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
        std::error_code rm;
        if (fs::remove(entry.path(), rm)) ++removed;
      }
    }
  }
  return removed;
}

int fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  const int error = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return error;
}

void replace_file(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const auto tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    write(tmp);
    if (const int error = fsync_path(tmp)) fail_output(path, "cannot sync ", tmp, ": ", std::strerror(error));
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) fail_output(path, "cannot rename ", tmp, " onto ", path, ": ", ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace repsearch::io
