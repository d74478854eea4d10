// The example space's files (layouts in README.md, "Archive"):
//   <out>/units/b<batch>-i<island>.h5  one island's search of one example batch (core's IslandUnit),
//                                      written atomically by the rank that searched it: the run's
//                                      progress, which a resume never searches again;
//   <out>/archive.h5                   every searched example's targets per layer and searched softmax,
//                                      each island's targets for the first examples (diversity), the
//                                      frozen network, and the search's summary; assembled from the
//                                      units a batch at a time, so no process ever holds more than one
//                                      batch of every island.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/io/provenance.hpp"

namespace repsearch::io {

inline constexpr const char* kUnitFormat = "repsearch-unit";
inline constexpr std::int64_t kUnitFormatVersion = 1;
inline constexpr std::int64_t kExampleArchiveVersion = 2;  // format=repsearch-archive, space=example

std::string unit_path(const std::string& out_dir, std::int64_t batch, std::int64_t island);

// One unit file: the island's results with the training indices of its examples and the config hash of
// the run (a resume never takes a unit searched with another config). Atomic, every dataset checksummed.
void write_unit(const std::string& path, const IslandUnit& unit, const at::Tensor& indices, const std::string& config_sha256);
IslandUnit read_unit(const std::string& path, at::Tensor* indices = nullptr, std::string* config_sha256 = nullptr);
// Whether `path` holds the finished unit (batch, island) of a run with this config hash (reads the
// header only; a damaged body is found by the archive's assembly, which reads every checksum).
bool unit_finished(const std::string& path, std::int64_t batch, std::int64_t island, const std::string& config_sha256);

// What the archive stores beside the units.
struct ExampleArchiveSpec {
  Provenance provenance;
  std::string unit_hash;                      // the config hash every unit must carry (write_unit's)
  std::string dataset, data_dir, normalisation;
  at::Tensor indices, labels;                 // [n] int64 training indices, int64 labels: archive row order
  std::int64_t example_batch = 32, islands = 1;
  std::vector<std::int64_t> layers;            // searched layers
  NetConfig net;
  NetParameters net_parameters;
  std::vector<std::int64_t> input_shape;       // [C, H, W]
  std::string targets_dtype = "float32";       // float32 | float16 (targets only; the softmax stays float32)
  std::int64_t diversity_examples = 1000;      // each island's targets kept for the first rows
  bool neff_centre = false, neff_pooled = false;
};

// The search's numbers, also stored as attributes of /summary.
struct ExampleSummary {
  std::int64_t examples = 0, islands = 1;
  std::vector<double> mean_best_ce;            // per layer (4): mean over examples of the archived target's CE
  double mean_initial_ce = 0;                  // the untrained network's own
  double logit_accuracy = 0;                   // share of examples whose archived logits pick the true label
  std::vector<double> n_eff;                   // per block (3): N_eff with every island (NaN with one island)
  std::vector<std::vector<double>> n_eff_by_islands;  // [R][3]: with islands 0..r-1
  std::string neff_variant;                    // "per-example" | "pooled", "centred" or not
  std::int64_t evaluations = 0;
  double seconds = 0, forward_seconds = 0, operator_seconds = 0;  // summed over units
};

// Assembles `<out>/archive.h5` from `<out>/units/` (every unit's checksums read), atomically.
ExampleSummary write_example_archive(const std::string& path, const std::string& out_dir, const ExampleArchiveSpec& spec);

// An example-space archive, opened for reading: metadata at once, targets a block of rows at a time.
class ExampleArchive {
 public:
  explicit ExampleArchive(const std::string& path);
  const std::string& path() const { return path_; }
  Provenance provenance;
  std::string dataset, data_dir, normalisation, targets_dtype;
  at::Tensor indices, labels;                  // [n] int64
  std::int64_t example_batch = 0, islands = 1;
  std::vector<std::int64_t> layers;
  NetConfig net;
  NetParameters net_parameters;
  std::vector<std::int64_t> input_shape;
  ExampleSummary summary;
  std::vector<std::vector<double>> history;    // per layer: mean best CE per generation (empty when not searched)
  std::int64_t examples() const { return indices.size(0); }
  std::vector<std::int64_t> layer_shape(std::int64_t layer) const;  // one row of /targets/<layer>
  // Rows [first, first + count) of layer 0..3's targets (block0, block1, block2, logits) or of the
  // searched softmax (layer 4), as float32.
  at::Tensor targets(std::int64_t layer, std::int64_t first, std::int64_t count) const;
  at::Tensor ce(std::int64_t first, std::int64_t count) const;  // [count, 4] float64
  // The diversity rows: each island's targets [m, R, ...] of `layer` and their CE [m, R, 4].
  at::Tensor diversity(std::int64_t layer) const;
  at::Tensor diversity_ce() const;

 private:
  std::string path_;
};

// "example" for an archive of the example space, "dataset" for the dataset space's; Error when not an archive.
std::string archive_space(const std::string& path);

}  // namespace repsearch::io
