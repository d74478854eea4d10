#include "memory.hpp"

#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/core/islands.hpp"
#include "repsearch/core/search.hpp"
#include "repsearch/mpi/archipelago.hpp"

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
constexpr double kGiB = 1073741824.0;

// A limit file's value in bytes; negative when the file is absent or says "max" (no limit).
double read_limit(const std::string& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stod(text);
}

// This process's cgroup paths from a /proc/<pid>/cgroup file: {v2 (the "0::" line), v1 memory}; a
// path is empty when that hierarchy is not listed.
std::pair<std::string, std::string> cgroup_paths(const std::string& proc_cgroup) {
  std::ifstream in(proc_cgroup);
  std::string line, v2, v1;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) v2 = path;
    std::stringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');)
      if (c == "memory") v1 = path;
  }
  return {v2, v1};
}

// root + path, then each ancestor up to root itself: a limit set on any of them applies.
std::vector<std::string> up_to_root(const std::string& root, std::string path) {
  std::vector<std::string> dirs;
  while (!path.empty() && path != "/") {
    dirs.push_back(root + path);
    path.erase(path.find_last_of('/'));
  }
  dirs.push_back(root);
  return dirs;
}

// Free memory of a CUDA device through the CUDA runtime LibTorch loaded (no CUDA headers needed, so
// the CPU build compiles the same); negative when unknown.
double gpu_free_bytes(const at::Device& device) {
  if (!device.is_cuda()) return -1;
  using set_fn = int (*)(int);
  using info_fn = int (*)(std::size_t*, std::size_t*);
  auto set = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  auto info = reinterpret_cast<info_fn>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  std::size_t free = 0, total = 0;
  if (!set || !info || set(device.index()) != 0 || info(&free, &total) != 0) return -1;
  return static_cast<double>(free);
}

}  // namespace

MemoryLimit node_memory_limit(const std::string& cgroup_root, const std::string& proc_cgroup) {
  MemoryLimit limit{static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE)),
                    "physical memory"};
  auto consider = [&](const std::string& file) {
    const double bytes = read_limit(file);
    if (bytes > 0 && bytes < limit.bytes) limit = {bytes, "the cgroup limit in " + file};
  };
  auto [v2, v1] = cgroup_paths(proc_cgroup);
  if (v2.empty() && v1.empty()) v2 = v1 = "/";  // no /proc: the roots' own limits (a container's)
  if (!v2.empty()) {
    // The unified hierarchy: at the root, or under unified/ on a hybrid (v1 + v2) host.
    const bool unified_root = std::filesystem::exists(cgroup_root + "/cgroup.controllers");
    for (const auto& dir : up_to_root(unified_root ? cgroup_root : cgroup_root + "/unified", v2))
      consider(dir + "/memory.max");
  }
  if (!v1.empty())
    for (const auto& dir : up_to_root(cgroup_root + "/memory", v1)) consider(dir + "/memory.limit_in_bytes");
  return limit;
}

double address_space_limit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return std::numeric_limits<double>::infinity();
  return static_cast<double>(rl.rlim_cur);
}

std::string gib_text(double bytes) {
  static const char* units[] = {"MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = bytes / 1048576.0;
  int u = 0;
  while (std::fabs(v) >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char text[64];
  std::snprintf(text, sizeof text, std::fabs(v) >= 1e5 ? "%.3e %s" : "%.2f %s", v, units[u]);
  return text;
}

namespace {

MemoryPlan plan_of(const Options& o, const Prepared& p, int rank, int size, MemoryPlanInput* in) {
  in->n_search = p.splits.search.numel();
  in->n_val = p.splits.val.numel();
  in->n_heldout = p.splits.heldout.numel();
  in->input_dim = p.dataset.train_images[0].numel();
  in->n_classes = p.dataset.n_classes;
  in->features = o.get<i64>("features");
  in->learnable = o.get<std::string>("fitness") == "ridge-probe-learnable";
  in->islands_total = o.get<i64>("islands");
  in->islands_here = static_cast<i64>(mpi::islands_of_rank(rank, size, in->islands_total).size());
  in->writer = rank == 0;
  EliteSelection elites;
  elites.mode = o.get<std::string>("elite-selection");
  elites.tolerance = o.get<double>("elite-tolerance");
  in->elites = make_elite_selector(elites).pool(o.get<i64>("elites"));  // candidates per island
  in->dataset_bytes = static_cast<double>(p.dataset.train_images.nbytes() + p.dataset.test_images.nbytes() +
                                          p.dataset.train_labels.nbytes() + p.dataset.test_labels.nbytes());
  return plan_search_memory(o.search(), *in);
}

}  // namespace

void refuse_unless_fits(const MemoryPlan& plan, double data_bytes, const at::Device& device, int ranks_on_node) {
  const MemoryPlan::Item* largest = &plan.items.front();
  for (const auto& item : plan.items)
    if (item.bytes > largest->bytes) largest = &item;
  const std::string shrink = "the largest item is " + largest->what + " (" + gib_text(largest->bytes) + ")" +
                             (largest->lower.empty() ? "" : ": lower " + largest->lower);
  const double overhead = 0.35 * kGiB;  // LibTorch, MPI and the process
  const double need = device.is_cuda() ? data_bytes + overhead : plan.total();
  // The smallest limit wins: the node's (shared by its ranks) or this process's address space.
  const auto node = node_memory_limit();
  const double address_space = address_space_limit();
  if (address_space < node.bytes / ranks_on_node) {
    if (need > address_space)
      fail("memory plan: this rank needs ", gib_text(need), ", and its address-space limit (RLIMIT_AS: ulimit -v, ",
           "prlimit --as) is ", gib_text(address_space), " (raise it, or shrink the run); ", shrink);
  } else if (need * ranks_on_node > node.bytes) {
    fail("memory plan: ", ranks_on_node, " rank(s) on this node need ", gib_text(need * ranks_on_node), ", and ",
         node.source, " is ", gib_text(node.bytes), "; ", shrink);
  }
  const double gpu = gpu_free_bytes(device);
  if (gpu >= 0 && plan.total() - data_bytes - overhead > gpu)
    fail("memory plan: the search needs ", gib_text(plan.total() - data_bytes), " on ", device.str(), ", which has ",
         gib_text(gpu), " free; ", shrink);
}

void check_memory_plan(const Options& o, const Prepared& p, const at::Device& device, int rank, int size,
                       int ranks_on_node) {
  MemoryPlanInput in;
  const auto plan = plan_of(o, p, rank, size, &in);
  if (rank == 0)
    std::cout << "[search] memory plan of rank 0 (" << in.islands_here << " of " << in.islands_total << " islands, n_s "
              << in.n_search << ", " << device.str() << "):\n" << plan.table() << std::endl;
  refuse_unless_fits(plan, in.dataset_bytes, device, ranks_on_node);
}

}  // namespace repsearch::app
