#include "repsearch/core/frozen_net.hpp"

#include <algorithm>
#include <cmath>

#include "repsearch/core/error.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

const auto kFloat = at::TensorOptions().dtype(at::kFloat);
constexpr std::int64_t kChunk = 250;  // images per pass when fitting (bounded memory)

// PyTorch's default init of conv and linear weights: Kaiming uniform with a = sqrt(5), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on the CPU from (seed, which).
at::Tensor default_init(at::IntArrayRef shape, std::uint64_t seed, std::uint64_t which) {
  std::int64_t fan_in = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  auto gen = make_generator(seed, Stream::network, {which});
  return at::rand(shape, gen, kFloat).mul_(2 * bound).sub_(bound);
}

// airbench's conv: default init, then the first `in` filters an identity (Dirac) path.
at::Tensor dirac_conv(std::int64_t out, std::int64_t in, std::uint64_t seed, std::uint64_t which) {
  auto w = default_init({out, in, 3, 3}, seed, which);
  const auto n = std::min(out, in);
  w.slice(0, 0, n).zero_();
  for (std::int64_t i = 0; i < n; ++i) w[i][i][1][1] = 1.0f;
  return w;
}

at::Tensor cl(const at::Tensor& x) { return x.dim() == 4 ? x.contiguous(at::MemoryFormat::ChannelsLast) : x.contiguous(); }

}  // namespace

std::vector<std::string> batchnorm_names() { return {"identity", "calibrated"}; }
std::vector<std::string> frozen_layer_names() { return {"block0", "block1", "block2", "logits"}; }

at::Tensor whitening_weights(const at::Tensor& images, std::int64_t k, double eps) {
  if (images.dim() != 4 || images.size(0) < 1 || images.size(2) < k || images.size(3) < k)
    fail("whitening: expected images [N, C, H, W] with H, W >= ", k, ", found ", images.sizes());
  const auto c = images.size(1), d = c * k * k;
  auto cov = at::zeros({d, d}, at::TensorOptions().dtype(at::kDouble));
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < images.size(0); i += kChunk) {
    auto x = images.slice(0, i, std::min(images.size(0), i + kChunk)).to(at::kCPU, at::kDouble);
    // [n, C, H', W', k, k] -> one row per patch in (channel, row, column) order, as conv weights are laid out.
    auto p = x.unfold(2, k, 1).unfold(3, k, 1).permute({0, 2, 3, 1, 4, 5}).reshape({-1, d});
    cov.add_(at::mm(p.t(), p));
    count += p.size(0);
  }
  cov.div_(static_cast<double>(count));
  auto eig = at::linalg_eigh(cov, "U");
  auto values = std::get<0>(eig).flip(0), vectors = std::get<1>(eig).t().flip(0);  // largest first
  auto w = (vectors / (values + eps).sqrt().unsqueeze(1)).reshape({d, c, k, k});
  return at::cat({w, -w}).to(at::kFloat).contiguous();
}

FrozenNet::FrozenNet(const NetConfig& config, const at::Tensor& whiten_images, std::int64_t classes,
                     const at::Device& device)
    : config_(config), device_(device) {
  if (config.widths.size() != 3) fail("frozen network: expected 3 block widths, found ", config.widths.size());
  if (whiten_images.dim() != 4) fail("frozen network: expected images [N, C, H, W], found ", whiten_images.sizes());
  input_shape_ = {whiten_images.size(1), whiten_images.size(2), whiten_images.size(3)};
  const auto n = std::min<std::int64_t>(std::max<std::int64_t>(config.whiten_images, 1), whiten_images.size(0));
  const auto fit = whiten_images.slice(0, 0, n);
  params_.whiten_weight = whitening_weights(fit, config.whiten_kernel, config.whiten_eps);
  params_.whiten_bias = at::zeros({params_.whiten_weight.size(0)}, kFloat);
  std::int64_t in = params_.whiten_weight.size(0);
  for (std::int64_t b = 0; b < 3; ++b) {
    const auto w = config.widths[static_cast<std::size_t>(b)];
    params_.conv1.push_back(dirac_conv(w, in, config.seed, static_cast<std::uint64_t>(2 * b)));
    params_.conv2.push_back(dirac_conv(w, w, config.seed, static_cast<std::uint64_t>(2 * b + 1)));
    for (auto* v : {&params_.bn1_mean, &params_.bn2_mean}) v->push_back(at::zeros({w}, kFloat));
    for (auto* v : {&params_.bn1_var, &params_.bn2_var}) v->push_back(at::ones({w}, kFloat));
    in = w;
  }
  const auto last = layer_shape(2);
  params_.head = default_init({classes, last[0] * last[1] * last[2]}, config.seed, 6);
  *this = FrozenNet(config_, params_, input_shape_, device_);
  if (config.batchnorm == "calibrated") calibrate(fit.to(device));
  else if (config.batchnorm != "identity") fail("frozen network: unknown batchnorm '", config.batchnorm, "'");
}

FrozenNet::FrozenNet(const NetConfig& config, NetParameters p, std::vector<std::int64_t> input_shape,
                     const at::Device& device)
    : config_(config), params_(std::move(p)), input_shape_(std::move(input_shape)), device_(device) {
  auto to = [&](at::Tensor& t) { t = cl(t.to(device_, at::kFloat)); };
  to(params_.whiten_weight);
  to(params_.whiten_bias);
  for (auto* list : {&params_.conv1, &params_.conv2, &params_.bn1_mean, &params_.bn1_var, &params_.bn2_mean, &params_.bn2_var})
    for (auto& t : *list) to(t);
  to(params_.head);
}

std::vector<std::int64_t> FrozenNet::input_shape_of(std::int64_t l) const {
  if (l > 0) return layer_shape(l - 1);
  const auto k = config_.whiten_kernel;
  return {2 * input_shape_[0] * k * k, input_shape_[1] - k + 1, input_shape_[2] - k + 1};
}

std::vector<std::int64_t> FrozenNet::layer_shape(std::int64_t l) const {
  if (l < 0 || l >= kLayers) fail("frozen network: no layer ", l, " (0..", kLayers - 1, ")");
  if (l == 3) return {params_.head.size(0)};
  const auto in = input_shape_of(l);
  return {config_.widths[static_cast<std::size_t>(l)], in[1] / 2, in[2] / 2};
}

at::Tensor FrozenNet::batchnorm(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& var) const {
  if (config_.batchnorm == "identity") return x;  // (x - 0) / sqrt(1 + 1e-12) is x in float32
  return (x - mean.view({1, -1, 1, 1})) * (var + config_.batchnorm_eps).rsqrt().view({1, -1, 1, 1});
}

at::Tensor FrozenNet::block(std::int64_t b, const at::Tensor& x) const {
  const auto i = static_cast<std::size_t>(b);
  auto h = at::max_pool2d(at::conv2d(cl(x), params_.conv1[i], {}, 1, 1), 2);
  h = at::gelu(batchnorm(h, params_.bn1_mean[i], params_.bn1_var[i]));
  h = at::conv2d(h, params_.conv2[i], {}, 1, 1);
  return at::gelu(batchnorm(h, params_.bn2_mean[i], params_.bn2_var[i]));
}

at::Tensor FrozenNet::stem(const at::Tensor& images) const {
  return at::gelu(at::conv2d(cl(images.to(device_, at::kFloat)), params_.whiten_weight, params_.whiten_bias));
}

at::Tensor FrozenNet::layer(std::int64_t l, const at::Tensor& input) const {
  if (l == 3) return at::linear(input.flatten(1), params_.head);
  return block(l, input);
}

at::Tensor FrozenNet::logits_from(std::int64_t l, const at::Tensor& h) const {
  auto x = h;
  for (std::int64_t m = l + 1; m < kLayers; ++m) x = layer(m, x);
  return x;
}

std::vector<at::Tensor> FrozenNet::forward_all(const at::Tensor& images) const {
  std::vector<at::Tensor> out;
  auto x = stem(images);
  for (std::int64_t l = 0; l < kLayers; ++l) out.push_back(x = layer(l, x));
  return out;
}

double FrozenNet::flops_from(std::int64_t l) const {
  double total = 0;
  for (std::int64_t m = l + 1; m < kLayers; ++m) {
    const auto in = input_shape_of(m), out = layer_shape(m);
    if (m == 3) total += static_cast<double>(in[0] * in[1] * in[2]) * static_cast<double>(out[0]);
    else total += 9.0 * static_cast<double>(in[0] * out[0] * in[1] * in[2] + out[0] * out[0] * out[1] * out[2]);
  }
  return total;
}

// Each BatchNorm's statistics from the whitening images propagated through the network so far (the
// earlier BatchNorms already calibrated), accumulated over chunks in float64.
void FrozenNet::calibrate(const at::Tensor& images) {
  for (std::int64_t b = 0; b < 3; ++b)
    for (int which = 0; which < 2; ++which) {
      const auto i = static_cast<std::size_t>(b);
      auto& mean = which == 0 ? params_.bn1_mean[i] : params_.bn2_mean[i];
      auto& var = which == 0 ? params_.bn1_var[i] : params_.bn2_var[i];
      auto sum = at::zeros({mean.size(0)}, at::TensorOptions().dtype(at::kDouble).device(device_)), sq = sum.clone();
      double count = 0;
      for (std::int64_t s = 0; s < images.size(0); s += kChunk) {
        auto x = stem(images.slice(0, s, std::min(images.size(0), s + kChunk)));
        for (std::int64_t m = 0; m < b; ++m) x = block(m, x);
        auto h = at::max_pool2d(at::conv2d(x, params_.conv1[i], {}, 1, 1), 2);
        if (which == 1) h = at::conv2d(at::gelu(batchnorm(h, params_.bn1_mean[i], params_.bn1_var[i])), params_.conv2[i], {}, 1, 1);
        auto hd = h.to(at::kDouble);
        sum.add_(hd.sum({0, 2, 3}));
        sq.add_(hd.square().sum({0, 2, 3}));
        count += static_cast<double>(h.numel() / h.size(1));
      }
      mean = (sum / count).to(at::kFloat);
      var = (sq / count - (sum / count).square()).clamp_min(0).to(at::kFloat);
    }
}

}  // namespace repsearch
