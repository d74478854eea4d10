// The memory a search may use on this node and its plan against it: physical memory, this process's
// cgroup limits (v1 or v2, its own cgroup and every ancestor: a Slurm job's or a container's),
// RLIMIT_AS, and a CUDA device's free memory.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "commands.hpp"
#include "config.hpp"

namespace repsearch::app {

struct MemoryLimit {
  double bytes = 0;
  std::string source;  // "physical memory" or "the cgroup limit in <file>"
};
// The node's limit for this process: the smallest of physical memory and the cgroup limits found
// under `cgroup_root` for the cgroups listed in `proc_cgroup` (a /proc/<pid>/cgroup file): v2
// memory.max, v1 memory.limit_in_bytes, of the process's cgroup and each ancestor up to the root.
MemoryLimit node_memory_limit(const std::string& cgroup_root = "/sys/fs/cgroup",
                              const std::string& proc_cgroup = "/proc/self/cgroup");
// This process's address-space limit (RLIMIT_AS: ulimit -v, prlimit --as); infinity when unlimited.
double address_space_limit();
// Bytes as GiB, TiB, PiB or EiB with three significant digits or more, at any size.
std::string gib_text(double bytes);

// Refuses (Error) a plan that exceeds the smallest limit this rank lives under, naming the limit and the
// plan's largest item with the options that shrink it. data_bytes: the part that stays on the host
// when `device` is a GPU.
void refuse_unless_fits(const MemoryPlan& plan, double data_bytes, const at::Device& device, int ranks_on_node);

// Prints this rank's memory plan (rank 0) and refuses a run that cannot fit, naming the limit it
// exceeds and what to lower, before any of the search's tensors exist.
void check_memory_plan(const Options& options, const Prepared& prepared, const at::Device& device, int rank, int size,
                       int ranks_on_node);

}  // namespace repsearch::app
