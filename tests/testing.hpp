// Helpers shared by the suites that run whole programs: temporary directories, commands, archives.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace testing {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag = "repsearch") {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() /
           (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(stamp) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct Result {
  int status = -1;  // exit code, or 128 + signal
  std::string output;  // stdout and stderr together
};

inline Result run(const std::string& command) {
  Result r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline std::string binary() { return std::string(REPSEARCH_BINARY_DIR) + "/repsearch"; }
inline std::string config(const std::string& name) { return std::string(REPSEARCH_SOURCE_DIR) + "/configs/" + name; }
// CI runs as root; --oversubscribe lets 3 ranks share 2 cores.
inline std::string mpirun(int ranks) {
  return "mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) + " ";
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A command run in the background through `sh -c` (its own process group, so a test can signal it
// and everything it started), stdout and stderr to `log`.
struct Background {
  pid_t pid = -1;
  std::string log;
  Background(const std::string& command, std::string log_path) : log(std::move(log_path)) {
    std::vector<std::string> args = {"/bin/sh", "-c", "exec " + command};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    if (posix_spawn(&pid, argv[0], &fa, &at, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
  }
  ~Background() {
    if (running()) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  std::string output() const { return read_text(log); }
  // Reaps the process if it ended (its status is kept in `status`).
  bool running() {
    if (pid <= 0 || status >= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) != pid) return true;
    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  // Waits until the log holds `text` (true) or `seconds` pass or the process ends (false).
  bool wait_for(const std::string& text, double seconds = 120) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (output().find(text) != std::string::npos) return true;
      if (!running()) return output().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // Exit status (or 128 + signal), waiting at most `seconds` (then -1).
  int wait(double seconds = 120) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (running() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return status;
  }
  int status = -1;
};

// The processes `parent` started (e.g. mpirun's ranks), in pgrep's order.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::istringstream in(run("pgrep -P " + std::to_string(parent)).output);
  for (pid_t p; in >> p;)
    if (p != parent) out.push_back(p);
  return out;
}

}  // namespace testing
