// Networks f = head ∘ encoder with a cut layer of width d, and the training loops of the method:
// regression of the encoder onto searched representations, the head fitted on top, and end-to-end
// SGD as the baseline. The header needs ATen only (the torch::nn modules live behind a pimpl).
#pragma once
#include <ATen/ATen.h>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace repsearch {

struct ModelConfig {
  std::string arch = "auto";                  // mlp | cnn | auto (cnn for 3-channel images, else mlp)
  std::vector<std::int64_t> hidden = {256};   // mlp: widths before the cut layer
  std::vector<std::int64_t> channels = {32, 64, 128};  // cnn: conv3x3-ReLU-maxpool blocks
  std::int64_t cut = 64;                      // d: the cut layer (the encoder's output, linear)
  std::int64_t classes = 10;
  std::vector<std::int64_t> input_shape;      // [C, H, W]
};

class Network {
 public:
  Network(const ModelConfig& config, std::uint64_t seed, const at::Device& device);
  at::Tensor encode(const at::Tensor& x) const;  // [n, d]
  at::Tensor logits(const at::Tensor& x) const;  // [n, C]
  std::string describe() const;                  // e.g. "mlp 784-256-64-10"
  const ModelConfig& config() const { return config_; }  // arch resolved: mlp | cnn, never auto
  const at::Device& device() const { return device_; }
  void save(const std::string& path) const;      // torch::save of encoder and head; OutputError naming path
  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  ModelConfig config_;
  at::Device device_;
  std::shared_ptr<Impl> impl_;
};

struct TrainConfig {
  std::string optimizer = "adam";   // adam | sgd (with momentum)
  double lr = 1e-3;
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::int64_t epochs = 30;
  std::int64_t batch = 128;
  std::string schedule = "cosine";  // constant | cosine (per step, to 0)
  std::uint64_t seed = 0;           // minibatch order
  std::int64_t trajectory_points = 16;  // log-spaced steps at which probe activations are recorded
  std::int64_t eval_batch = 2048;
};

// One epoch of a training loop; also a row of a results file's /metrics (io::EpochRow).
struct TrainEpoch {
  std::int64_t epoch = 0;      // 1-based
  double loss = 0;             // mean training loss of the epoch (MSE for regress, CE otherwise)
  double train_accuracy = NAN;  // NaN where not measured (regression epochs)
  double val_accuracy = NAN;    // sgd: on the held-out split H it is given; NaN where not measured
  double examples_per_s = 0;
  double seconds = 0;          // cumulative
};

struct Trajectory {
  std::vector<std::int64_t> steps;
  at::Tensor activations;  // [T, n_probe, d] float32 CPU
};

struct TrainResult {
  std::vector<TrainEpoch> epochs;
  Trajectory trajectory;
};

using EpochCallback = std::function<void(const TrainEpoch&)>;

// The steps (0 = before training) at which trajectories are recorded: `points` log-spaced in [1, total].
std::vector<std::int64_t> trajectory_steps(std::int64_t total_steps, std::int64_t points);

// Trains the encoder to regress (MSE) its cut-layer output onto z [n, d] for inputs x [n, ...].
TrainResult regress_encoder(Network& net, const at::Tensor& x, const at::Tensor& z, const TrainConfig& config,
                            const at::Tensor& probe_x, const EpochCallback& on_epoch = {});
// Fits the head in closed form: ridge (relative strength `ridge`) from the encoder's outputs to
// one-hot labels, with bias.
void fit_head_ridge(Network& net, const at::Tensor& x, const at::Tensor& y, double ridge);
// Trains the head alone with cross-entropy (the encoder frozen).
TrainResult train_head(Network& net, const at::Tensor& x, const at::Tensor& y, const TrainConfig& config,
                       const EpochCallback& on_epoch = {});
// End-to-end cross-entropy training of the whole network (the SGD baseline). x_val/y_val may be
// undefined; when given, each epoch reports validation accuracy.
TrainResult train_end_to_end(Network& net, const at::Tensor& x, const at::Tensor& y, const TrainConfig& config,
                             const at::Tensor& probe_x, const at::Tensor& x_val, const at::Tensor& y_val,
                             const EpochCallback& on_epoch = {});

double accuracy(const Network& net, const at::Tensor& x, const at::Tensor& y, std::int64_t batch = 2048);
// softmax(logit_scale * logits): logit_scale is an inverse temperature (learn passes beta for a ridge head).
at::Tensor probabilities(const Network& net, const at::Tensor& x, double logit_scale = 1.0, std::int64_t batch = 2048);
// Accuracy of the mean of several networks' probabilities [M, n, C] against labels [n].
double ensemble_accuracy(const at::Tensor& probabilities, const at::Tensor& labels);

}  // namespace repsearch
