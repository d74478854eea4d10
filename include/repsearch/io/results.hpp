// Results of one trained network (`repsearch learn` / `repsearch sgd`): learn-<uid>.h5, sgd-<seed>.h5.
// Written atomically like archives. Readable by h5py/h5dump without our code.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <string>
#include <vector>

namespace repsearch::io {

inline constexpr const char* kResultsFormat = "repsearch-results";
inline constexpr std::int64_t kResultsFormatVersion = 1;

struct EpochRow {
  std::int64_t epoch = 0;        // 1-based; phase "regress" | "head" | "sgd"
  double loss = 0;               // mean training loss of the epoch (MSE for regress, CE otherwise)
  double train_accuracy = 0;     // NaN where not measured (regression epochs)
  double val_accuracy = 0;       // sgd: on H (V is in its training data); NaN where not measured (learn)
  double examples_per_s = 0;
  double seconds = 0;            // cumulative
};

// /model: what a reader needs to rebuild the network without repsearch (analysis/repsearch_h5.py
// load_network). The network is f(x) = logit_scale * head(encoder((x - mean[c]) / std[c])), x the
// data set's uint8 images / 255 [N, C, H, W]; the encoder and head are core/models.cpp's layers.
struct ModelSpec {
  std::string arch;                      // "mlp" | "cnn" (resolved, never "auto"); "" = not recorded
  std::vector<std::int64_t> hidden;      // mlp: widths before the cut layer (empty for cnn)
  std::vector<std::int64_t> channels;    // cnn: conv3x3-ReLU-maxpool2 blocks (empty for mlp)
  std::int64_t cut = 0, classes = 0;
  std::vector<std::int64_t> input_shape; // [C, H, W]
  at::Tensor normalisation_mean;         // [C] float32, training-set statistics of the [0, 1] images
  at::Tensor normalisation_std;          // [C] float32
  double logit_scale = 1.0;              // test_probabilities = softmax(logit_scale * head(encoder(x)))
  std::string head;                      // how the head was fitted: "ridge" | "ce" (learn), "end-to-end" (sgd)
  bool present() const { return !arch.empty(); }
};

struct Results {
  // root attrs
  std::string kind;              // "learn" | "sgd"
  std::string repsearch_version, git_commit, created, command_line;
  std::string config;            // resolved INI text used
  std::string config_sha256;
  std::string archive_path;      // learn: the archive the target came from ("" for sgd)
  std::string archive_sha256;    // learn: that archive's config_sha256
  std::uint64_t seed = 0;
  std::uint64_t elite_uid = 0;   // learn only
  std::int64_t elite_rank = -1;  // learn only: position in the archive's elites
  std::string model, train_data; // e.g. "mlp 784-256-64-10", "search+val"
  std::string model_path;        // torch::save file beside the results
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
  // /predictions
  at::Tensor test_probabilities; // [n_test, C] float32 softmax outputs (for ensembles)
  at::Tensor test_labels;        // [n_test] int32
};

void write_results(const std::string& path, const Results& results);
// Refuses non-results files with a clear error naming the path and what is missing.
Results read_results(const std::string& path);

}  // namespace repsearch::io
