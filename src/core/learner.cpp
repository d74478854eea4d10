// The example space's learner and baseline (include/repsearch/core/learner.hpp): core's second
// translation unit with torch::nn and torch::optim.
#include "repsearch/core/learner.hpp"

#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>

#include <ATen/TensorIndexing.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "module_file.hpp"
#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/example_search.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

using i64 = std::int64_t;
namespace nn = torch::nn;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// One ConvGroup: conv -> [maxpool2] -> BN -> GELU -> conv -> BN -> GELU.
struct ConvGroupImpl : nn::Module {
  ConvGroupImpl(i64 in, i64 out, bool pool, double eps, double momentum) : pool(pool) {
    auto conv = [&](i64 i, i64 o) { return nn::Conv2d(nn::Conv2dOptions(i, o, 3).padding(1).bias(false)); };
    auto bn = [&](i64 c) {
      nn::BatchNorm2d b(nn::BatchNorm2dOptions(c).eps(eps).momentum(momentum));
      b->weight.set_requires_grad(false);  // airbench: weight frozen at 1, bias trained
      return b;
    };
    conv1 = register_module("conv1", conv(in, out));
    bn1 = register_module("bn1", bn(out));
    conv2 = register_module("conv2", conv(out, out));
    bn2 = register_module("bn2", bn(out));
    torch::NoGradGuard ng;  // the identity path of airbench's convs
    for (auto* c : {&conv1, &conv2}) {
      auto& w = (*c)->weight;
      const auto k = std::min(w.size(0), w.size(1));
      w.slice(0, 0, k).zero_();
      for (i64 i = 0; i < k; ++i) w[i][i][1][1].fill_(1.0);
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    auto h = conv1(x);
    if (pool) h = at::max_pool2d(h, 2);
    h = at::gelu(bn1(h));
    return at::gelu(bn2(conv2(h)));
  }
  bool pool;
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};
TORCH_MODULE(ConvGroup);

// The frozen whitening conv of the search network (buffers: never trained).
struct WhitenImpl : nn::Module {
  WhitenImpl(const at::Tensor& w, const at::Tensor& b) {
    weight = register_buffer("weight", w.to(at::kFloat).contiguous().clone());
    bias = register_buffer("bias", b.to(at::kFloat).contiguous().clone());
  }
  at::Tensor forward(const at::Tensor& x) { return at::gelu(at::conv2d(x, weight, bias)); }
  at::Tensor weight, bias;
};
TORCH_MODULE(Whiten);

struct NetModule : nn::Module {
  Whiten whiten{nullptr};
  nn::ModuleList blocks{nullptr};  // blocks[b] = Sequential of `depth` ConvGroups
  nn::Linear head{nullptr};
};

}  // namespace

struct ConvGroupNet::Impl {
  std::shared_ptr<NetModule> m;
  std::string description;
};

ConvGroupNet::ConvGroupNet(const ConvGroupNetConfig& c, std::uint64_t seed, const at::Device& device)
    : config_(c), device_(device), impl_(std::make_shared<Impl>()) {
  if (c.widths.size() != 3 || *std::min_element(c.widths.begin(), c.widths.end()) < 1)
    fail("learner network: expected 3 positive block widths, found ", c.widths.size());
  if (c.depth < 1 || c.depth > 8) fail_option("depth", c.depth, "1, 2 or 3 (ConvGroups per block)", "option depth: expected 1..8 ConvGroups per block, found ", c.depth);
  if (c.head_input != "normalised" && c.head_input != "raw")
    fail_option("head-input", c.head_input, "normalised or raw", "option head-input: expected normalised or raw, found '", c.head_input, "'");
  if (c.input_shape.size() != 3 || !c.whiten_weight.defined() || c.whiten_weight.dim() != 4)
    fail("learner network: expected an input shape [C, H, W] and the whitening conv's weights");
  torch::manual_seed(seed);  // nn initialisers draw from the default generator
  auto& m = impl_->m = std::make_shared<NetModule>();
  const auto whiten_bias = c.whiten_bias.defined() ? c.whiten_bias : at::zeros({c.whiten_weight.size(0)});
  m->whiten = m->register_module("whiten", Whiten(c.whiten_weight, whiten_bias));
  m->blocks = m->register_module("blocks", nn::ModuleList());
  i64 in = c.whiten_weight.size(0);
  i64 h = c.input_shape[1] - c.whiten_weight.size(2) + 1, w = c.input_shape[2] - c.whiten_weight.size(3) + 1;
  for (auto width : c.widths) {
    nn::Sequential block;
    for (i64 g = 0; g < c.depth; ++g) block->push_back(ConvGroup(g == 0 ? in : width, width, g == 0, c.bn_eps, c.bn_momentum));
    m->blocks->push_back(block);
    in = width;
    h /= 2;
    w /= 2;
  }
  if (h < 1 || w < 1) fail("learner network: images ", c.input_shape[1], "x", c.input_shape[2], " are too small for three pooling blocks");
  m->head = m->register_module("head", nn::Linear(nn::LinearOptions(in * h * w, c.classes).bias(false)));
  m->to(device);
  std::ostringstream d;
  d << "convgroups " << c.input_shape[0] << "x" << c.input_shape[1] << "x" << c.input_shape[2] << " w" << c.widths[0] << ","
    << c.widths[1] << "," << c.widths[2] << " depth " << c.depth << " (" << 6 * c.depth << " convs)-" << c.classes
    << (c.head_input == "raw" ? " (head on the raw block output)" : "");
  impl_->description = d.str();
}

std::vector<at::Tensor> ConvGroupNet::blocks(const at::Tensor& images) const {
  auto& m = *impl_->m;
  std::vector<at::Tensor> out;
  auto x = m.whiten->forward(images.to(device_, at::kFloat));
  for (const auto& block : *m.blocks) out.push_back(x = block->as<nn::Sequential>()->forward(x));
  return out;
}

at::Tensor ConvGroupNet::head(const at::Tensor& last) const {
  return impl_->m->head->forward(compared_output(last, config_.head_input == "normalised").flatten(1));
}
std::vector<std::string> head_input_names() { return {"normalised", "raw"}; }
at::Tensor ConvGroupNet::logits(const at::Tensor& images) const { return head(blocks(images).back()); }
void ConvGroupNet::train(bool on) { impl_->m->train(on); }
std::string ConvGroupNet::describe() const { return impl_->description; }

std::vector<at::Tensor> ConvGroupNet::body_parameters() const {
  std::vector<at::Tensor> out;
  for (auto& p : impl_->m->blocks->parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}
std::vector<at::Tensor> ConvGroupNet::head_parameters() const { return impl_->m->head->parameters(); }

std::vector<at::Tensor> ConvGroupNet::state() const {
  std::vector<at::Tensor> out;
  for (auto& p : impl_->m->parameters()) out.push_back(p.detach().clone());
  for (auto& b : impl_->m->buffers()) out.push_back(b.clone());
  return out;
}

void ConvGroupNet::load_state(const std::vector<at::Tensor>& state) {
  torch::NoGradGuard ng;
  std::size_t i = 0;
  for (auto& p : impl_->m->parameters()) p.copy_(state.at(i++));
  for (auto& b : impl_->m->buffers()) b.copy_(state.at(i++));
}

void ConvGroupNet::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  impl_->m->save(archive);
  detail::write_module_archive(archive, path);
}

std::vector<std::string> supervise_names() { return {"all", "skip-block0"}; }
std::int64_t first_supervised(const std::string& s) {
  if (s == "all") return 0;
  if (s == "skip-block0") return 1;
  fail_option("supervise", s, "all or skip-block0", "option supervise: expected all or skip-block0, found '", s, "'");
}
std::vector<std::string> augment_names() { return {"none", "flip-crop"}; }

at::Tensor compared_output(const at::Tensor& output, bool normalise) {
  return normalise ? normalise_candidates(output, 1e-5) : output;
}

LearnerLoss learner_loss(const ConvGroupNet& net, const std::vector<at::Tensor>& outputs,
                         const std::vector<at::Tensor>& targets, const at::Tensor& softmax, const LearnerLossConfig& c) {
  if (outputs.size() != 3 || targets.size() != 3) fail("learner loss: expected 3 block outputs and 3 targets");
  LearnerLoss l;
  l.mse.resize(3);
  at::Tensor sum;
  i64 count = 0;
  for (i64 b = std::max<i64>(0, c.first_supervised); b < 3; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (!targets[i].defined() || targets[i].sizes() != outputs[i].sizes())
      fail("learner loss: block", b, " output ", outputs[i].sizes(), " and target ", targets[i].defined() ? targets[i].sizes() : at::IntArrayRef{}, " differ in shape");
    l.mse[i] = at::mse_loss(compared_output(outputs[i], c.normalise_outputs),
                            targets[i].to(outputs[i].device(), outputs[i].scalar_type()));
    sum = sum.defined() ? sum + l.mse[i] : l.mse[i];
    ++count;
  }
  l.logits = net.head(outputs.back().detach());  // stop-gradient: no classification gradient reaches the body
  const auto p = softmax.to(l.logits.device(), l.logits.scalar_type());
  l.kl = (at::xlogy(p, p) - p * at::log_softmax(l.logits, 1)).sum(1).mean();
  l.total = c.kl_weight * l.kl;
  if (count > 0) l.total = l.total + sum / static_cast<double>(count);
  return l;
}

at::Tensor cosine_distance_rows(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.flatten(1).to(at::kCPU, at::kDouble), y = b.flatten(1).to(at::kCPU, at::kDouble);
  if (x.sizes() != y.sizes()) fail("cosine distance: shapes ", a.sizes(), " and ", b.sizes(), " differ");
  auto norms = x.norm(2, 1) * y.norm(2, 1);
  auto cos = (x * y).sum(1) / norms.clamp_min(1e-300);
  return at::where(norms > 0, 1.0 - cos, at::ones_like(cos));
}

ClassEntropy class_collision_entropy(const at::Tensor& x, const at::Tensor& labels) {
  auto v = x.flatten(1).to(at::kCPU, at::kDouble);
  auto y = labels.to(at::kCPU, at::kLong);
  ClassEntropy e;
  double sum = 0;
  i64 classes = 0;
  std::vector<at::Tensor> means;
  const i64 top = y.numel() ? y.max().item<i64>() : -1;
  for (i64 c = 0; c <= top; ++c) {
    auto rows = y.eq(c).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    auto xc = v.index_select(0, rows);
    means.push_back(xc.mean(0));
    if (rows.numel() < 2) continue;
    const double h = std::log(n_eff(xc));
    if (std::isfinite(h)) {
      sum += h;
      ++classes;
    }
  }
  if (classes > 0) e.within = sum / static_cast<double>(classes);
  if (!means.empty()) e.between = std::log(n_eff(at::stack(means)));
  return e;
}

at::Tensor heldout_rows(std::int64_t n, double share, std::uint64_t seed) {
  if (n < 2) fail("learner: ", n, " searched example(s): at least 2 are needed (one to train on, one held out)");
  if (!(share > 0 && share < 1)) fail_option("heldout-share", share, "in (0, 1)", "option heldout-share: expected a share in (0, 1), found ", share);
  const auto k = std::clamp<i64>(std::llround(share * static_cast<double>(n)), 1, n - 1);
  auto gen = make_generator(seed, Stream::learner, {0x4E1D});
  return std::get<0>(at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)).slice(0, 0, k).sort());
}

at::Tensor learner_probabilities(const ConvGroupNet& net, const at::Tensor& images, std::int64_t batch) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> parts;
  for (i64 i = 0; i < images.size(0); i += batch)
    parts.push_back(at::softmax(net.logits(images.slice(0, i, std::min(images.size(0), i + batch))), 1).to(at::kCPU, at::kFloat));
  return parts.empty() ? at::zeros({0, net.config().classes}) : at::cat(parts);
}

namespace {

// Horizontal flips and 2-pixel crops (reflect padding) of images [n, C, H, W], drawn from `gen`.
at::Tensor flip_crop(const at::Tensor& x, at::Generator& gen) {
  using namespace at::indexing;
  const i64 n = x.size(0), h = x.size(2), w = x.size(3), pad = 2;
  const auto opts = at::TensorOptions().dtype(at::kLong);
  auto flip = at::randint(2, {n}, gen, opts).to(x.device()).to(at::kBool);
  auto out = at::where(flip.view({n, 1, 1, 1}), x.flip(3), x);
  auto padded = at::reflection_pad2d(out, {pad, pad, pad, pad});
  auto dy = at::randint(2 * pad + 1, {n}, gen, opts).to(x.device()), dx = at::randint(2 * pad + 1, {n}, gen, opts).to(x.device());
  auto rows = (dy.view({n, 1}) + at::arange(h, opts.device(x.device())).view({1, h})).view({n, 1, h, 1});
  auto cols = (dx.view({n, 1}) + at::arange(w, opts.device(x.device())).view({1, w})).view({n, 1, 1, w});
  auto ni = at::arange(n, opts.device(x.device())).view({n, 1, 1, 1});
  auto ci = at::arange(x.size(1), opts.device(x.device())).view({1, -1, 1, 1});
  return padded.index({TensorIndex(ni), TensorIndex(ci), TensorIndex(rows), TensorIndex(cols)});
}

void set_lr(torch::optim::SGD& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
}

// The held-out rows' data: images and labels of all, targets of the first `m` (the trajectory rows).
struct Heldout {
  at::Tensor images, labels, traj_labels;
  std::vector<at::Tensor> traj_targets;
};

Heldout read_heldout(std::int64_t n, const at::Tensor& rows, const ExampleReader& read, const LearnerTrainConfig& c,
                     const ExampleChunk* cached) {
  Heldout h;
  const i64 m = std::min<i64>(c.trajectory_examples, rows.size(0));
  std::vector<at::Tensor> images, labels;
  std::vector<std::vector<at::Tensor>> targets(3);
  i64 taken = 0;
  for (i64 first = 0; first < n; first += c.chunk) {
    const i64 count = std::min(c.chunk, n - first);
    auto local = rows.masked_select(rows.ge(first).logical_and(rows.lt(first + count))) - first;
    if (local.numel() == 0) continue;
    const bool want = taken < m;
    ExampleChunk ch = cached ? *cached : read(first, count, want);
    images.push_back(ch.images.index_select(0, local.to(ch.images.device())));
    labels.push_back(ch.labels.index_select(0, local.to(ch.labels.device())).to(at::kCPU, at::kLong));
    if (want) {
      auto t = local.slice(0, 0, m - taken);
      for (std::size_t b = 0; b < 3; ++b) targets[b].push_back(ch.targets[b].index_select(0, t.to(ch.targets[b].device())));
      taken += t.size(0);
    }
  }
  h.images = at::cat(images);
  h.labels = at::cat(labels);
  h.traj_labels = h.labels.slice(0, 0, m);
  for (auto& t : targets) h.traj_targets.push_back(at::cat(t));
  return h;
}

void check(const LearnerTrainConfig& c) {
  if (c.objective != "targets" && c.objective != "labels") fail("learner: objective must be targets or labels, found '", c.objective, "'");
  if (c.epochs < 0 || c.batch < 1 || c.chunk < 1 || c.trajectory_examples < 1)
    fail("learner: epochs >= 0, batch, chunk and trajectory examples >= 1 expected, found ", c.epochs, ", ", c.batch, ", ",
         c.chunk, ", ", c.trajectory_examples);
  if (c.augment != "none" && c.augment != "flip-crop")
    fail_option("augment", c.augment, "none or flip-crop", "option augment: expected none or flip-crop, found '", c.augment, "'");
  if (c.schedule != "constant" && c.schedule != "cosine")
    fail_option("learner-schedule", c.schedule, "constant or cosine", "option learner-schedule: expected constant or cosine, found '", c.schedule, "'");
}

// One training run: the rows, the optimiser and the per-epoch measurements.
class Trainer {
 public:
  Trainer(ConvGroupNet& net, std::int64_t n, const ExampleReader& read, const LearnerTrainConfig& c)
      : net_(net), n_(n), read_(read), c_(c), targets_(c.objective == "targets"),
        opt_(params(net), torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.momentum > 0).weight_decay(c.weight_decay)) {
    r_.heldout = heldout_rows(n, c.heldout_share, c.split_seed);
    train_mask_ = at::ones({n}, at::TensorOptions().dtype(at::kBool));
    train_mask_.index_fill_(0, r_.heldout, false);
    r_.train = train_mask_.nonzero().squeeze(1);
    // Every row in memory when one chunk holds them all (read once, targets included); else streamed.
    whole_ = c.chunk >= n;
    if (whole_) cache_ = read(0, n, true);
    held_ = read_heldout(n, r_.heldout, read, c, whole_ ? &cache_ : nullptr);
    r_.target_entropy_within = at::empty({3}, at::kDouble);
    r_.target_entropy_between = at::empty({3}, at::kDouble);
    for (i64 b = 0; b < 3; ++b) {
      const auto e = class_collision_entropy(held_.traj_targets[static_cast<std::size_t>(b)], held_.traj_labels);
      r_.target_entropy_within[b] = e.within;
      r_.target_entropy_between[b] = e.between;
    }
    chunks_ = (n + c.chunk - 1) / c.chunk;
    i64 steps_per_epoch = 0;
    for (i64 k = 0; k < chunks_; ++k) {
      per_chunk_.push_back(train_mask_.slice(0, k * c.chunk, std::min(n, (k + 1) * c.chunk)).sum().item<i64>());
      steps_per_epoch += (per_chunk_.back() + c.batch - 1) / c.batch;
    }
    total_steps_ = steps_per_epoch * c.epochs;
  }

  LearnerResult run(const EpochCallback& on_epoch) {
    double best = evaluate();
    std::vector<at::Tensor> best_state = net_.state();
    const double t0 = now_s();
    for (i64 epoch = 1; epoch <= c_.epochs; ++epoch) {
      const double te = now_s();
      TrainEpoch e = train_epoch(epoch);
      e.examples_per_s = static_cast<double>(r_.train.size(0)) / std::max(1e-9, now_s() - te);
      e.val_accuracy = evaluate();
      e.seconds = now_s() - t0;
      if (e.val_accuracy > best) {
        best = e.val_accuracy;
        best_state = net_.state();
        r_.selected_epoch = epoch;
      }
      r_.epochs.push_back(e);
      if (on_epoch) on_epoch(e);
    }
    net_.load_state(best_state);
    net_.train(false);
    const auto rows = static_cast<i64>(acc_.size());
    auto as_tensor = [&](const std::vector<double>& v) { return at::tensor(v, at::TensorOptions().dtype(at::kDouble)); };
    r_.heldout_accuracy = as_tensor(acc_);
    r_.cosine_distance = as_tensor(cos_).view({rows, 3});
    r_.entropy_within = as_tensor(within_).view({rows, 3});
    r_.entropy_between = as_tensor(between_).view({rows, 3});
    return r_;
  }

 private:
  static std::vector<at::Tensor> params(const ConvGroupNet& net) {
    auto p = net.body_parameters();
    for (auto& h : net.head_parameters()) p.push_back(h);
    return p;
  }

  // Held-out accuracy, and per block the cosine distance and collision entropies of the trajectory rows.
  double evaluate() {
    torch::NoGradGuard ng;
    net_.train(false);
    i64 right = 0;
    for (i64 i = 0; i < held_.images.size(0); i += 500) {
      auto x = held_.images.slice(0, i, std::min(held_.images.size(0), i + 500));
      right += net_.logits(x).argmax(1).cpu().eq(held_.labels.slice(0, i, i + x.size(0))).sum().item<i64>();
    }
    acc_.push_back(static_cast<double>(right) / static_cast<double>(held_.images.size(0)));
    const i64 m = held_.traj_labels.size(0);
    std::vector<std::vector<at::Tensor>> outs(3);
    for (i64 i = 0; i < m; i += 500) {
      auto o = net_.blocks(held_.images.slice(0, i, std::min(m, i + 500)));
      for (std::size_t b = 0; b < 3; ++b) outs[b].push_back(o[b].cpu());
    }
    for (std::size_t b = 0; b < 3; ++b) {
      auto o = compared_output(at::cat(outs[b]), c_.loss.normalise_outputs);
      cos_.push_back(cosine_distance_rows(o, held_.traj_targets[b]).mean().item<double>());
      const auto e = class_collision_entropy(o, held_.traj_labels);
      within_.push_back(e.within);
      between_.push_back(e.between);
    }
    net_.train(true);
    return acc_.back();
  }

  // One pass over the training rows: chunks in a shuffled order, minibatches shuffled within a chunk.
  TrainEpoch train_epoch(i64 epoch) {
    auto order_gen = make_generator(c_.seed, Stream::learner, {0xC4, static_cast<std::uint64_t>(epoch)});
    auto order = at::randperm(chunks_, order_gen, at::TensorOptions().dtype(at::kLong));
    // Summed on the device, read once per epoch: no host round trip per step on a GPU.
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(net_.device()));
    at::Tensor right = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(net_.device()));
    for (i64 o = 0; o < chunks_; ++o) {
      const i64 k = order[o].item<i64>();
      if (per_chunk_[static_cast<std::size_t>(k)] == 0) continue;
      const i64 first = k * c_.chunk, count = std::min(c_.chunk, n_ - first);
      auto gen = make_generator(c_.seed, Stream::learner, {0xC5, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(k)});
      const ExampleChunk ch = whole_ ? cache_ : read_(first, count, targets_);
      auto local = train_mask_.slice(0, first, first + count).nonzero().squeeze(1);
      local = local.index_select(0, at::randperm(local.size(0), gen, at::TensorOptions().dtype(at::kLong)));
      for (i64 b = 0; b < local.size(0); b += c_.batch) step(ch, local.slice(0, b, std::min(local.size(0), b + c_.batch)), gen, loss_sum, right);
    }
    TrainEpoch e;
    e.epoch = epoch;
    e.loss = loss_sum.item<double>() / static_cast<double>(r_.train.size(0));
    e.train_accuracy = static_cast<double>(right.item<i64>()) / static_cast<double>(r_.train.size(0));
    return e;
  }

  void step(const ExampleChunk& ch, const at::Tensor& rows, at::Generator& gen, at::Tensor& loss_sum, at::Tensor& right) {
    auto idx = rows.to(ch.images.device());
    auto x = ch.images.index_select(0, idx).to(net_.device());
    if (c_.augment == "flip-crop") x = flip_crop(x, gen);
    auto y = ch.labels.index_select(0, idx.to(ch.labels.device())).to(net_.device(), at::kLong);
    if (c_.schedule == "cosine")
      set_lr(opt_, c_.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step_) / static_cast<double>(std::max<i64>(1, total_steps_)))));
    opt_.zero_grad();
    at::Tensor loss, logits;
    if (targets_) {
      std::vector<at::Tensor> t;
      for (std::size_t i = 0; i < 3; ++i) t.push_back(ch.targets[i].index_select(0, idx.to(ch.targets[i].device())));
      auto l = learner_loss(net_, net_.blocks(x), t, ch.softmax.index_select(0, idx.to(ch.softmax.device())), c_.loss);
      loss = l.total;
      logits = l.logits;
    } else {
      logits = net_.logits(x);
      loss = at::cross_entropy_loss(logits, y);
    }
    loss.backward();
    opt_.step();
    ++step_;
    loss_sum.add_(loss.detach().to(at::kDouble) * static_cast<double>(idx.size(0)));
    right.add_(logits.argmax(1).eq(y).sum());
  }

  ConvGroupNet& net_;
  i64 n_;
  const ExampleReader& read_;
  const LearnerTrainConfig& c_;
  bool targets_, whole_ = false;
  torch::optim::SGD opt_;
  LearnerResult r_;
  at::Tensor train_mask_;
  ExampleChunk cache_;
  Heldout held_;
  i64 chunks_ = 0, total_steps_ = 0, step_ = 0;
  std::vector<i64> per_chunk_;
  std::vector<double> acc_, cos_, within_, between_;
};

}  // namespace

LearnerResult train_learner(ConvGroupNet& net, std::int64_t n, const ExampleReader& read, const LearnerTrainConfig& c,
                            const EpochCallback& on_epoch) {
  check(c);
  return Trainer(net, n, read, c).run(on_epoch);
}

}  // namespace repsearch
