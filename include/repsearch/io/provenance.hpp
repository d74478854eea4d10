// Where a repsearch file came from: the root attributes every archive, checkpoint and results file
// carries (src/io/h5_detail.hpp writes and reads them in one place).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace repsearch::io {

// The data a file was computed from (`/data/identity`, written and read in h5_detail.hpp): per split,
// its number of examples and the CRC-32 (zlib) of its labels (int64 little-endian) and of its images
// (the uint8 bytes [n, C, H, W]), both in split order. Splits: search, val, heldout (training rows
// by the stored indices), test (the test set) and train (the whole training set, which gives the
// standardisation). io::data_identity computes it; io::identity_differences compares two.
struct DataIdentity {
  struct Split {
    std::string name;
    std::int64_t examples = 0;
    std::uint64_t labels_crc32 = 0, images_crc32 = 0;
  };
  std::string dataset, data_dir;  // the data set's name and the absolute directory it was read from
  std::vector<Split> splits;      // empty: the file was written before repsearch recorded it
  bool recorded() const { return !splits.empty(); }
};

struct Origin {
  std::string repsearch_version, git_commit, created, command_line;
  std::string config;         // resolved INI text (every option, canonical order)
  std::string config_sha256;  // of `config`
  std::uint64_t seed = 0;     // --seed (an sgd results file: its network's seed)
  DataIdentity data;          // not a root attribute: the /data/identity group
};

struct Provenance : Origin {  // archives and checkpoints: the search's as well
  std::int64_t n_islands = 0, n_ranks = 0;
  std::string hosts, devices;  // comma-separated, one entry per rank
  std::string fitness, fitness_parameters;
};

}  // namespace repsearch::io
