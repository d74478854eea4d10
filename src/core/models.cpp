// The one translation unit of core that includes torch::nn and torch::optim (heavy headers).
#include "repsearch/core/models.hpp"

#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>
#include <sstream>

#include "repsearch/core/error.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/core/rng.hpp"
#include "module_file.hpp"

namespace repsearch {

struct Network::Impl {
  torch::nn::Sequential encoder{nullptr}, head{nullptr};
  std::string description;
};

namespace {

std::string join(const std::vector<std::int64_t>& v, const char* sep) {
  std::ostringstream os;
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? sep : "") << v[i];
  return os.str();
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params, const TrainConfig& c) {
  if (c.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  if (c.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
  fail_option("optimizer", c.optimizer, "adam or sgd", "option optimizer: must be adam or sgd, found '", c.optimizer, "'");
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) {
    if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&g.options())) a->lr(lr);
    else if (auto* s = dynamic_cast<torch::optim::SGDOptions*>(&g.options())) s->lr(lr);
  }
}

at::Tensor batched(const at::Tensor& x, std::int64_t batch, const std::function<at::Tensor(const at::Tensor&)>& f) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (std::int64_t i = 0; i < x.size(0); i += batch) parts.push_back(f(x.slice(0, i, std::min(x.size(0), i + batch))));
  return at::cat(parts);
}

// One optimisation loop for every phase: `step_loss` returns the loss of a minibatch (indices into
// the training rows) and the number it classified correctly (-1 when not a classification).
TrainResult run_loop(Network& net, const std::vector<at::Tensor>& params, std::int64_t n, const TrainConfig& c,
                     const std::function<std::pair<at::Tensor, std::int64_t>(const at::Tensor&)>& step_loss,
                     const at::Tensor& probe_x, const std::function<double()>& val_accuracy,
                     const EpochCallback& on_epoch, std::uint64_t stream_key) {
  if (c.epochs < 0 || c.batch < 1) fail("training: epochs must be >= 0 and batch >= 1, found ", c.epochs, ", ", c.batch);
  auto opt = make_optimizer(params, c);
  const std::int64_t per_epoch = (n + c.batch - 1) / c.batch, total = per_epoch * c.epochs;
  TrainResult result;
  std::vector<at::Tensor> acts;
  const auto record_at = probe_x.defined() ? trajectory_steps(total, c.trajectory_points) : std::vector<std::int64_t>{};
  std::size_t next_record = 0;
  auto record = [&](std::int64_t step) {
    while (next_record < record_at.size() && record_at[next_record] == step) {
      acts.push_back(batched(probe_x, c.eval_batch, [&](const at::Tensor& b) { return net.encode(b); }).cpu());
      result.trajectory.steps.push_back(step);
      ++next_record;
    }
  };
  record(0);
  std::int64_t step = 0;
  const double t0 = now_s();
  for (std::int64_t epoch = 1; epoch <= c.epochs; ++epoch) {
    const double te = now_s();
    auto gen = make_generator(c.seed, Stream::learner, {stream_key, static_cast<std::uint64_t>(epoch)});
    auto order = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)).to(net.device());
    double loss_sum = 0;
    std::int64_t correct = 0, counted = 0;
    for (std::int64_t b = 0; b < n; b += c.batch) {
      auto idx = order.slice(0, b, std::min(n, b + c.batch));
      if (c.schedule == "cosine") set_lr(*opt, c.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total))));
      opt->zero_grad();
      auto [loss, right] = step_loss(idx);
      loss.backward();
      opt->step();
      ++step;
      loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
      if (right >= 0) {
        correct += right;
        counted += idx.size(0);
      }
      record(step);
    }
    TrainEpoch e;
    e.epoch = epoch;
    e.loss = loss_sum / static_cast<double>(n);
    if (counted > 0) e.train_accuracy = static_cast<double>(correct) / static_cast<double>(counted);
    if (val_accuracy) e.val_accuracy = val_accuracy();
    e.examples_per_s = static_cast<double>(n) / std::max(1e-9, now_s() - te);
    e.seconds = now_s() - t0;
    result.epochs.push_back(e);
    if (on_epoch) on_epoch(e);
  }
  if (!acts.empty()) result.trajectory.activations = at::stack(acts);
  return result;
}

std::vector<at::Tensor> params_of(const torch::nn::Sequential& s) { return s->parameters(); }

}  // namespace

std::vector<std::int64_t> trajectory_steps(std::int64_t total, std::int64_t points) {
  std::set<std::int64_t> s = {0};
  if (total > 0 && points > 1) {
    for (std::int64_t i = 0; i < points - 1; ++i) {
      double f = points > 2 ? static_cast<double>(i) / static_cast<double>(points - 2) : 1.0;
      s.insert(std::llround(std::pow(static_cast<double>(total), f)));
    }
  }
  return {s.begin(), s.end()};
}

Network::Network(const ModelConfig& c, std::uint64_t seed, const at::Device& device)
    : config_(c), device_(device), impl_(std::make_shared<Impl>()) {
  if (c.input_shape.size() != 3) fail("model: input shape must be [C, H, W], found ", c.input_shape.size(), " dims");
  if (c.cut < 1 || c.classes < 2) fail("model: cut width must be >= 1 and classes >= 2, found ", c.cut, ", ", c.classes);
  torch::manual_seed(seed);  // nn initialisers draw from the default generator
  std::string arch = c.arch == "auto" ? (c.input_shape[0] == 3 ? "cnn" : "mlp") : c.arch;
  config_.arch = arch;  // resolved: results files describe the network that was built
  auto& m = *impl_;
  m.encoder = torch::nn::Sequential();
  std::ostringstream d;
  if (arch == "mlp") {
    std::int64_t in = c.input_shape[0] * c.input_shape[1] * c.input_shape[2];
    m.encoder->push_back(torch::nn::Flatten());
    d << "mlp " << in;
    for (auto h : c.hidden) {
      if (h < 1) fail_option("hidden", h, "positive widths", "option hidden: widths must be positive, found ", h);
      m.encoder->push_back(torch::nn::Linear(in, h));
      m.encoder->push_back(torch::nn::ReLU());
      d << "-" << h;
      in = h;
    }
    m.encoder->push_back(torch::nn::Linear(in, c.cut));
    d << "-" << c.cut << "-" << c.classes;
  } else if (arch == "cnn") {
    std::int64_t ch = c.input_shape[0], h = c.input_shape[1], w = c.input_shape[2];
    d << "cnn " << join(c.input_shape, "x");
    for (auto out : c.channels) {
      m.encoder->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, out, 3).padding(1)));
      m.encoder->push_back(torch::nn::ReLU());
      m.encoder->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
      ch = out;
      h /= 2;
      w /= 2;
      d << "-c" << out;
    }
    if (h < 1 || w < 1)
      fail_option("channels", join(c.channels, ","), detail::cat("at most as many blocks as halvings of ", join(c.input_shape, "x")),
                  "option channels: too many pooling blocks for a ", join(c.input_shape, "x"), " input");
    m.encoder->push_back(torch::nn::Flatten());
    m.encoder->push_back(torch::nn::Linear(ch * h * w, c.cut));
    d << "-" << c.cut << "-" << c.classes;
  } else {
    fail_option("arch", c.arch, "mlp, cnn or auto", "option arch: must be mlp, cnn or auto, found '", c.arch, "'");
  }
  m.head = torch::nn::Sequential(torch::nn::Linear(c.cut, c.classes));
  m.encoder->to(device);
  m.head->to(device);
  m.description = d.str();
}

at::Tensor Network::encode(const at::Tensor& x) const { return impl_->encoder->forward(x); }
at::Tensor Network::logits(const at::Tensor& x) const { return impl_->head->forward(encode(x)); }
std::string Network::describe() const { return impl_->description; }

void Network::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive enc, head;
  impl_->encoder->save(enc);
  impl_->head->save(head);
  archive.write("encoder", enc);
  archive.write("head", head);
  detail::write_module_archive(archive, path);
}

void detail::write_module_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail_output(path, "cannot create ", path, ": ", std::strerror(errno));
  const bool written = std::fwrite(data.data(), 1, data.size(), f) == data.size() && std::fflush(f) == 0;
  const int error = errno;
  if (std::fclose(f) != 0 || !written)
    fail_output(path, "cannot write ", path, ": ", std::strerror(written ? errno : error));
}

TrainResult regress_encoder(Network& net, const at::Tensor& x, const at::Tensor& z, const TrainConfig& c,
                            const at::Tensor& probe_x, const EpochCallback& on_epoch) {
  if (x.size(0) != z.size(0) || z.dim() != 2 || z.size(1) != net.config().cut)
    fail("learn: target Z ", z.sizes(), " does not match ", x.size(0), " inputs and cut width ", net.config().cut);
  auto& m = net.impl();
  m.encoder->train();
  auto step = [&](const at::Tensor& idx) {
    auto out = net.encode(x.index_select(0, idx));
    return std::make_pair(at::mse_loss(out, z.index_select(0, idx)), std::int64_t{-1});
  };
  auto r = run_loop(net, params_of(m.encoder), x.size(0), c, step, probe_x, {}, on_epoch, 1);
  m.encoder->eval();
  return r;
}

void fit_head_ridge(Network& net, const at::Tensor& x, const at::Tensor& y, double ridge) {
  auto h = batched(x, 2048, [&](const at::Tensor& b) { return net.encode(b); });
  auto rw = detail::ridge_weights(h.unsqueeze(0), y, net.config().classes, ridge);
  if (!rw.ok[0].item<bool>()) fail("learn: the ridge head could not be fitted (degenerate encoder outputs)");
  torch::NoGradGuard no_grad;
  auto lin = net.impl().head[0]->as<torch::nn::Linear>();
  lin->weight.copy_(rw.w[0].t().to(lin->weight.dtype()));
  lin->bias.copy_(rw.bias[0].to(lin->bias.dtype()));
}

TrainResult train_head(Network& net, const at::Tensor& x, const at::Tensor& y, const TrainConfig& c,
                       const EpochCallback& on_epoch) {
  auto h = batched(x, c.eval_batch, [&](const at::Tensor& b) { return net.encode(b); });  // frozen encoder
  auto& m = net.impl();
  auto step = [&](const at::Tensor& idx) {
    auto logits = m.head->forward(h.index_select(0, idx));
    auto yy = y.index_select(0, idx);
    auto right = logits.argmax(1).eq(yy).sum().item<std::int64_t>();
    return std::make_pair(at::cross_entropy_loss(logits, yy), right);
  };
  return run_loop(net, params_of(m.head), x.size(0), c, step, {}, {}, on_epoch, 2);
}

TrainResult train_end_to_end(Network& net, const at::Tensor& x, const at::Tensor& y, const TrainConfig& c,
                             const at::Tensor& probe_x, const at::Tensor& x_val, const at::Tensor& y_val,
                             const EpochCallback& on_epoch) {
  auto& m = net.impl();
  auto params = params_of(m.encoder);
  for (auto& p : params_of(m.head)) params.push_back(p);
  m.encoder->train();
  m.head->train();
  auto step = [&](const at::Tensor& idx) {
    auto logits = net.logits(x.index_select(0, idx));
    auto yy = y.index_select(0, idx);
    auto right = logits.argmax(1).eq(yy).sum().item<std::int64_t>();
    return std::make_pair(at::cross_entropy_loss(logits, yy), right);
  };
  std::function<double()> val;
  if (x_val.defined()) val = [&]() { return accuracy(net, x_val, y_val, c.eval_batch); };
  auto r = run_loop(net, params, x.size(0), c, step, probe_x, val, on_epoch, 3);
  m.encoder->eval();
  m.head->eval();
  return r;
}

double accuracy(const Network& net, const at::Tensor& x, const at::Tensor& y, std::int64_t batch) {
  auto pred = batched(x, batch, [&](const at::Tensor& b) { return net.logits(b).argmax(1); });
  return pred.eq(y.to(pred.device())).to(at::kDouble).mean().item<double>();
}

at::Tensor probabilities(const Network& net, const at::Tensor& x, double logit_scale, std::int64_t batch) {
  return batched(x, batch, [&](const at::Tensor& b) { return at::softmax(net.logits(b) * logit_scale, 1); }).cpu();
}

double ensemble_accuracy(const at::Tensor& probs, const at::Tensor& labels) {
  if (probs.dim() != 3 || probs.size(1) != labels.size(0))
    fail("ensemble: expected probabilities [M, n, C] for ", labels.size(0), " labels, found ", probs.sizes());
  auto pred = probs.mean(0).argmax(1);
  return pred.eq(labels.to(pred.device())).to(at::kDouble).mean().item<double>();
}

}  // namespace repsearch
