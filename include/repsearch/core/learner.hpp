// The example space's learning (the paper's Section 4): a deeper copy of the search network trained
// to reproduce every block's searched target, its head fitted to the searched softmax through a KL
// term on the detached last block; and the same network family trained end to end with cross-entropy
// (the SGD baseline). Both are selected on held-out searched examples and measured per epoch against
// the targets (cosine distance, collision entropy within and between classes). The header needs ATen
// only (torch::nn lives behind a pimpl, as in models.hpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "repsearch/core/models.hpp"

namespace repsearch {

// The learner's network: the search network's frozen whitening conv (+ GELU) and block widths, each
// block `depth` ConvGroups (the first pools: conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU;
// the others keep the size: conv3x3 -> BN -> GELU -> conv3x3 -> BN -> GELU), so a block holds 2 x depth
// convs against the search network's 2, and its output has the target's shape; a linear head without
// bias on the flattened last block. Convs: no bias, Dirac first filters (airbench's identity path),
// PyTorch's default init for the rest. BatchNorm: weight frozen at 1, bias trained, eps 1e-12,
// running statistics with PyTorch momentum `bn_momentum` (airbench's 0.6 is PyTorch's 0.4), used in eval.
struct ConvGroupNetConfig {
  std::vector<std::int64_t> widths = {256, 256, 256};
  std::int64_t depth = 2;
  std::int64_t classes = 10;
  std::vector<std::int64_t> input_shape;  // [C, H, W] of the standardised images
  at::Tensor whiten_weight, whiten_bias;  // the search network's (frozen)
  double bn_eps = 1e-12, bn_momentum = 0.4;
  // What the head reads: "normalised" (the last block's output normalised per example over C, H, W, as
  // the search's head reads every normalised block-2 candidate) | "raw" (the block output itself).
  std::string head_input = "normalised";
};
std::vector<std::string> head_input_names();  // normalised | raw

class ConvGroupNet {
 public:
  ConvGroupNet(const ConvGroupNetConfig& config, std::uint64_t seed, const at::Device& device);
  std::vector<at::Tensor> blocks(const at::Tensor& images) const;  // block0, block1, block2 outputs
  at::Tensor head(const at::Tensor& last_block) const;              // [n, classes], of the block output (head_input applied)
  at::Tensor logits(const at::Tensor& images) const;
  void train(bool on);
  std::vector<at::Tensor> body_parameters() const;  // trainable: convs and BatchNorm biases
  std::vector<at::Tensor> head_parameters() const;
  std::vector<at::Tensor> state() const;             // every parameter and buffer, copied (model selection)
  void load_state(const std::vector<at::Tensor>& state);
  std::string describe() const;                      // e.g. "convgroups 1x28x28 w32,32,32 depth 2 (12 convs)"
  const ConvGroupNetConfig& config() const { return config_; }
  const at::Device& device() const { return device_; }
  // torch::save of the modules (names in analysis/repsearch_h5.py); OutputError naming path.
  void save(const std::string& path) const;
  struct Impl;

 private:
  ConvGroupNetConfig config_;
  at::Device device_;
  std::shared_ptr<Impl> impl_;
};

// The paper's loss: the mean over the supervised blocks (block0..2 from `first_supervised`) of the
// mean squared error between the block output (compared_output) and its target, + kl_weight x KL(p || softmax(head(
// stop_gradient(last block)))), mean over the batch: the body learns from the targets alone, the head
// from the KL term alone.
// normalise_outputs: each block output is normalised per example to zero mean and unit variance over
// C, H, W (the search's normalisation of every candidate, so of every target) before the squared error.
struct LearnerLossConfig {
  double kl_weight = 0.03;
  std::int64_t first_supervised = 0;  // 0: every block ("all"); 1: "skip-block0"
  bool normalise_outputs = true;
};
// A block output as the loss and the trajectories compare it with its target.
at::Tensor compared_output(const at::Tensor& output, bool normalise);
struct LearnerLoss {
  at::Tensor total, kl;
  std::vector<at::Tensor> mse;  // per block; undefined where not supervised
  at::Tensor logits;            // head(stop_gradient(last block)), for the training accuracy
};
LearnerLoss learner_loss(const ConvGroupNet& net, const std::vector<at::Tensor>& outputs,
                         const std::vector<at::Tensor>& targets, const at::Tensor& softmax, const LearnerLossConfig& config);
std::vector<std::string> supervise_names();  // all | skip-block0
std::int64_t first_supervised(const std::string& supervise);

// 1 - cosine similarity of each row pair of a, b [n, ...] (flattened), [n] float64 CPU; a zero row is at distance 1.
at::Tensor cosine_distance_rows(const at::Tensor& a, const at::Tensor& b);
// Collision entropy (Section 3's H = log N_eff, cosine kernel, not centred) of outputs x [n, ...] with
// labels [n]: within = mean over the classes with at least 2 rows of H of that class's rows; between =
// H of the class means (one row per class present). NaN where undefined.
struct ClassEntropy {
  double within = NAN, between = NAN;
};
ClassEntropy class_collision_entropy(const at::Tensor& x, const at::Tensor& labels);

// Rows [first, first + count) of the searched examples: standardised images [count, C, H, W] and labels
// [count] int64 on any device; with `targets`, block0..2's targets (3 tensors) and the searched softmax.
struct ExampleChunk {
  at::Tensor images, labels;
  std::vector<at::Tensor> targets;
  at::Tensor softmax;
};
using ExampleReader = std::function<ExampleChunk(std::int64_t first, std::int64_t count, bool targets)>;

struct LearnerTrainConfig {
  std::string objective = "targets";  // targets (the paper's learner) | labels (the SGD baseline)
  LearnerLossConfig loss;
  double lr = 0.2, momentum = 0.85, weight_decay = 0.0;  // PyTorch's SGD with Nesterov momentum, mean losses
  std::string schedule = "cosine";    // constant | cosine (per step, to 0)
  std::int64_t epochs = 40, batch = 100;
  std::int64_t chunk = 4096;          // rows of targets read at once (peak memory); >= the rows: read once
  std::string augment = "none";       // none | flip-crop (horizontal flip, 2-pixel reflect-padded crop)
  double heldout_share = 0.08;        // searched examples kept out of training, for model selection
  std::int64_t trajectory_examples = 500;  // held-out rows the cosine distances and collision entropies use
  std::uint64_t seed = 0;             // minibatch order and augmentation
  std::uint64_t split_seed = 0;       // the held-out rows (one split for every network compared)
};
std::vector<std::string> augment_names();  // none | flip-crop

// The held-out rows of n searched examples: round(share x n) (at least 1, at most n - 1) drawn from
// the seed, sorted; the training rows are the rest.
at::Tensor heldout_rows(std::int64_t n, double share, std::uint64_t seed);

struct LearnerResult {
  std::vector<TrainEpoch> epochs;     // val_accuracy = held-out accuracy
  at::Tensor heldout, train;          // the rows, int64
  // Per epoch 0..E on the held-out rows (0: before training), float64: accuracy [E+1], and per block
  // [E+1, 3] the mean cosine distance to the target and the collision entropies of the outputs.
  at::Tensor heldout_accuracy, cosine_distance, entropy_within, entropy_between;
  at::Tensor target_entropy_within, target_entropy_between;  // [3]: of the targets themselves
  std::int64_t selected_epoch = 0;    // the epoch with the best held-out accuracy (the earliest of ties)
};

// Trains `net` on the n searched examples that `read` returns (the objective decides the loss), one
// chunk of rows at a time in a shuffled chunk order, minibatches shuffled within a chunk; leaves the
// net in eval mode with the selected epoch's weights.
LearnerResult train_learner(ConvGroupNet& net, std::int64_t n, const ExampleReader& read, const LearnerTrainConfig& config,
                            const EpochCallback& on_epoch = {});

// softmax(logits) of images [n, C, H, W] in eval mode, [n, classes] float32 CPU, in batches.
at::Tensor learner_probabilities(const ConvGroupNet& net, const at::Tensor& images, std::int64_t batch = 500);

}  // namespace repsearch
