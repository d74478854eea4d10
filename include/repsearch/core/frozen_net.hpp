// The example space's frozen network: an untrained airbench-style CNN (a whitening conv fitted on 2x2
// patches of the training inputs, three ConvGroup blocks, a linear head on the flattened last block)
// evaluated with plain ATen ops, no autograd and no modules, so that the search can run "the rest of
// the network" from any layer on large batches of candidates.
//
// Layers, in search order: block0, block1, block2 (ConvGroup outputs) and logits. A ConvGroup is
// conv3x3 -> maxpool2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU; convs have no bias and
// Dirac-initialised first filters (an identity path), the rest PyTorch's default (Kaiming uniform with
// a = sqrt(5)); the head is a linear map without bias, output scale 1.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace repsearch {

struct NetConfig {
  std::vector<std::int64_t> widths = {256, 256, 256};  // channels of block0..2
  std::int64_t whiten_kernel = 2;
  double whiten_eps = 5e-4;                            // added to the patch covariance's eigenvalues
  std::int64_t whiten_images = 5000;                   // first training images whose patches fit the whitening
  // What BatchNorm does in the untrained network: identity (an untrained BatchNorm in eval mode: running
  // mean 0, variance 1, weight 1, bias 0) | calibrated (per-channel statistics of the whitening images
  // propagated through the network, fixed once: every channel starts at zero mean and unit variance).
  std::string batchnorm = "identity";
  double batchnorm_eps = 1e-12;
  std::uint64_t seed = 0;                              // the conv and head weights
};

std::vector<std::string> batchnorm_names();          // identity | calibrated
std::vector<std::string> frozen_layer_names();       // block0, block1, block2, logits

// Every tensor that defines the network, as stored in an archive's /network group.
struct NetParameters {
  at::Tensor whiten_weight, whiten_bias;               // [2 C k^2, C, k, k], [2 C k^2]
  std::vector<at::Tensor> conv1, conv2;                // per block: [out, in, 3, 3]
  std::vector<at::Tensor> bn1_mean, bn1_var, bn2_mean, bn2_var;  // per block [width]; identity: 0 and 1
  at::Tensor head;                                     // [classes, width2 * h2 * w2]
};

class FrozenNet {
 public:
  static constexpr std::int64_t kLayers = 4;  // block0, block1, block2, logits

  // whiten_images: standardised training images [N, C, H, W] (the first whiten_images are used); the
  // network is built on `device` and never changes.
  FrozenNet(const NetConfig& config, const at::Tensor& whiten_images, std::int64_t classes, const at::Device& device);
  FrozenNet(const NetConfig& config, NetParameters parameters, std::vector<std::int64_t> input_shape,
            const at::Device& device);

  const NetConfig& config() const { return config_; }
  const NetParameters& parameters() const { return params_; }
  const at::Device& device() const { return device_; }
  std::int64_t classes() const { return params_.head.size(0); }
  const std::vector<std::int64_t>& input_shape() const { return input_shape_; }  // [C, H, W]
  // Shape of one candidate at layer l: [C, H, W] for blocks, [classes] for logits.
  std::vector<std::int64_t> layer_shape(std::int64_t l) const;
  // Shape of layer l's input: the whitened image for block0, else layer l-1's shape.
  std::vector<std::int64_t> input_shape_of(std::int64_t l) const;

  at::Tensor stem(const at::Tensor& images) const;                    // whitening conv + GELU: block0's input
  at::Tensor layer(std::int64_t l, const at::Tensor& input) const;    // layer l from its input
  // The logits of candidates h [N, layer_shape(l)...] at layer l: layers l+1..logits (h itself for logits;
  // l = -1: h is block0's input, the stem's output).
  at::Tensor logits_from(std::int64_t l, const at::Tensor& h) const;
  // Every layer's output for images [N, C, H, W]: block0, block1, block2, logits.
  std::vector<at::Tensor> forward_all(const at::Tensor& images) const;
  // Multiply-adds of one candidate's logits_from(l): the cost model of the memory plan and benches.
  double flops_from(std::int64_t l) const;

 private:
  at::Tensor block(std::int64_t b, const at::Tensor& x) const;
  at::Tensor batchnorm(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& var) const;
  void calibrate(const at::Tensor& images);
  NetConfig config_;
  NetParameters params_;
  std::vector<std::int64_t> input_shape_;
  at::Device device_;
};

// The whitening conv's weights from images [N, C, H, W]: eigenvectors of the (uncentred) covariance of
// every k x k patch, scaled by 1/sqrt(eigenvalue + eps), largest first, stacked with their negatives.
at::Tensor whitening_weights(const at::Tensor& images, std::int64_t kernel, double eps);

}  // namespace repsearch
