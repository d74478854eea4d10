// Where a repsearch file came from: the root attributes every archive, checkpoint and results file
// carries (src/io/h5_detail.hpp writes and reads them in one place).
#pragma once
#include <cstdint>
#include <string>

namespace repsearch::io {

struct Origin {
  std::string repsearch_version, git_commit, created, command_line;
  std::string config;         // resolved INI text (every option, canonical order)
  std::string config_sha256;  // of `config`
  std::uint64_t seed = 0;     // --seed (an sgd results file: its network's seed)
};

struct Provenance : Origin {  // archives and checkpoints: the search's as well
  std::int64_t n_islands = 0, n_ranks = 0;
  std::string hosts, devices;  // comma-separated, one entry per rank
  std::string fitness, fitness_parameters;
};

}  // namespace repsearch::io
