// Results of one trained network (`repsearch learn` / `repsearch sgd`): learn-<uid>.h5, sgd-<seed>.h5.
// Written atomically like archives. Readable by h5py/h5dump without our code.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "repsearch/core/models.hpp"
#include "repsearch/io/provenance.hpp"

namespace repsearch::io {

inline constexpr const char* kResultsFormat = "repsearch-results";
inline constexpr std::int64_t kResultsFormatVersion = 1;

// One row of /metrics: a training epoch as core's loops report it (phase "regress" | "head" | "sgd" beside it).
using EpochRow = TrainEpoch;

// /model: what a reader needs to rebuild the network without repsearch (analysis/repsearch_h5.py
// load_network). The network is f(x) = logit_scale * head(encoder((x - mean[c]) / std[c])), x the
// data set's uint8 images / 255 [N, C, H, W]; the encoder and head are core/models.cpp's layers.
// The example space's networks (arch "convgroups", core/learner.hpp): f(x) = head(blocks(x)) on the
// standardised images, channels = the three block widths, depth = ConvGroups per block, cut unused (0).
struct ModelSpec {
  std::string arch;                      // "mlp" | "cnn" | "convgroups" (resolved, never "auto"); "" = not recorded
  std::vector<std::int64_t> hidden;      // mlp: widths before the cut layer (empty for cnn)
  std::vector<std::int64_t> channels;    // cnn: conv3x3-ReLU-maxpool2 blocks (empty for mlp); convgroups: block widths
  std::int64_t depth = 0;                // convgroups: ConvGroups per block
  std::string head_input;                // convgroups: "normalised" | "raw" (what the head reads)
  std::int64_t cut = 0, classes = 0;
  std::vector<std::int64_t> input_shape; // [C, H, W]
  at::Tensor normalisation_mean;         // [C] float32, training-set statistics of the [0, 1] images
  at::Tensor normalisation_std;          // [C] float32
  double logit_scale = 1.0;              // test_probabilities = softmax(logit_scale * head(encoder(x)))
  std::string head;                      // how the head was fitted: "ridge" | "ce" (learn), "end-to-end" (sgd)
  bool present() const { return !arch.empty(); }
};

// An example-space network's training as the paper measures it (learn and sgd on an example archive):
// per epoch 0..E (0: before training) on the held-out searched examples. Stored in /trajectory beside
// its (then empty) steps, probe_indices and activations; absent (variant "") for dataset-space networks.
struct ExampleTrajectory {
  std::string variant;               // learn: "all" | "skip-block0"; sgd: "end-to-end"; "" = none
  std::int64_t depth = 0, selected_epoch = -1;
  double kl_weight = NAN;            // learn's lambda (NaN for sgd)
  std::int64_t island = -1;          // learn --targets islands: the island whose targets (-1: each example's best)
  at::Tensor heldout_rows;           // [h] int64: rows of the archive held out for model selection
  at::Tensor heldout_accuracy;       // [E+1] float64
  at::Tensor cosine_distance;        // [E+1, 3] float64: mean over the trajectory rows of 1 - cos(output, target), per block
  at::Tensor entropy_within, entropy_between;  // [E+1, 3] float64: collision entropy (nats), per block
  at::Tensor target_entropy_within, target_entropy_between;  // [3]: of the targets themselves
  bool present() const { return !variant.empty(); }
};

struct Results : Origin {  // root attrs: the Origin's, and
  std::string kind;              // "learn" | "sgd"
  std::string archive_path;      // learn: the archive the target came from ("" for sgd)
  std::string archive_sha256;    // learn: that archive's config_sha256
  std::uint64_t elite_uid = 0;   // learn only
  std::int64_t elite_rank = -1;  // learn only: position in the archive's elites
  std::string model, train_data; // e.g. "mlp 784-256-64-10", "search+val"
  std::string model_path;        // torch::save file beside the results
  std::int64_t model_bytes = -1; // its size and CRC-32 (zlib) when written (-1: files written before they were
  std::uint64_t model_crc32 = 0; //   recorded); readers refuse a network file that differs (check_model_file)
  // /data/identity (Origin::data): the data set the network was trained and evaluated on
  // /model (optional: files written before it have none, and read back with spec.present() false)
  ModelSpec spec;
  // /metrics: one row per epoch, `phase` per row
  std::vector<std::string> phase;
  std::vector<EpochRow> epochs;
  // /accuracy attrs
  double val_accuracy = 0, heldout_accuracy = 0, test_accuracy = 0;
  double regression_mse = 0;     // learn: final MSE of the encoder against Z on S (NaN for sgd)
  // /trajectory
  at::Tensor steps;              // [T] int64 optimisation steps at which activations were recorded
  at::Tensor probe_indices;      // [n_probe] int64 indices into the test set
  at::Tensor activations;        // [T, n_probe, d] float32 cut-layer activations
                                 // (may be left undefined when T = 0: written as [0, n_probe, 0])
  ExampleTrajectory example;     // /trajectory attrs variant, depth, ... and datasets (example space only)
  // /predictions
  at::Tensor test_probabilities; // [n_test, C] float32 softmax outputs (for ensembles)
  at::Tensor test_labels;        // [n_test] int32
};

void write_results(const std::string& path, const Results& results);
// Refuses non-results files with a clear error naming the path and what is missing.
Results read_results(const std::string& path);

// A network file and its results as one pair (learn-<uid>.pt + learn-<uid>.h5, r.model_path + path):
// `save(tmp)` writes the network to `<r.model_path>.tmp-<pid>`, whose size and CRC-32 go into `r`;
// the results go to their own temporary; then the old results file is removed, the network file
// renamed into place, and the results file renamed last. After a crash at any moment a reader finds
// the old pair, a network file without results, or the new pair, and never results beside a network
// file they do not describe. On failure both temporaries are removed (OutputError naming the file).
void write_results_with_model(const std::string& path, Results& r, const std::function<void(const std::string& tmp)>& save);

// The network file of results `r` read from `results_path`: `<stem>.pt` beside it, else r.model_path.
std::string model_file(const std::string& results_path, const Results& r);
// "" when the network file is the one written with `r` (same size and CRC-32), else why not (missing,
// another size or checksum: a mismatched pair). Results written before the checksum: "" (unchecked).
std::string check_model_file(const std::string& results_path, const Results& r);

}  // namespace repsearch::io
