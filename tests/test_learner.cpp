// The example space's learner (core/learner.hpp): the paper's loss against a hand computation, where
// its gradients go, the trajectory measures on cases with known answers, streamed rows equal rows read
// whole, and a few epochs that learn (synthetic images; the real-data runs are the CLI tests).
#include <doctest/doctest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/learner.hpp"
#include "repsearch/core/rng.hpp"

using namespace repsearch;

namespace {

const auto kF = at::TensorOptions().dtype(at::kFloat);

at::Tensor noise(at::IntArrayRef shape, std::uint64_t seed) {
  auto g = make_generator(seed, Stream::splits);
  return at::randn(shape, g, kF);
}

ConvGroupNetConfig tiny(std::int64_t depth = 1, std::int64_t width = 4) {
  ConvGroupNetConfig c;
  c.widths = {width, width, width};
  c.depth = depth;
  c.classes = 3;
  c.input_shape = {1, 17, 17};  // whitened 16x16 -> 8, 4, 2
  c.whiten_weight = whitening_weights(noise({32, 1, 17, 17}, 1), 2, 5e-4);
  return c;
}

// Zero mean, unit variance over C, H, W per example, by hand (the search's normalisation of targets).
at::Tensor by_hand_normalised(const at::Tensor& x) {
  auto flat = x.flatten(1);
  auto mean = flat.mean(1, true), var = flat.var(1, /*unbiased=*/false, true);
  return ((flat - mean) / (var + 1e-5).sqrt()).view(x.sizes());
}

// In-memory rows behind the ExampleReader interface, counting the largest read.
struct Rows {
  at::Tensor images, labels, softmax;
  std::vector<at::Tensor> targets;
  std::int64_t largest = 0;
  ExampleReader reader() {
    return [this](std::int64_t first, std::int64_t count, bool with_targets) {
      largest = std::max(largest, count);
      ExampleChunk c;
      c.images = images.slice(0, first, first + count);
      c.labels = labels.slice(0, first, first + count);
      if (with_targets) {
        for (auto& t : targets) c.targets.push_back(t.slice(0, first, first + count));
        c.softmax = softmax.slice(0, first, first + count);
      }
      return c;
    };
  }
};

// n examples whose targets are a teacher network's own block outputs (channels rolled by `roll`: far
// from what a fresh network's identity paths give) and whose labels are its argmax.
Rows teacher_rows(std::int64_t n, std::uint64_t seed, std::int64_t roll = 0) {
  ConvGroupNet teacher(tiny(), 99, at::kCPU);
  teacher.train(false);
  Rows r;
  r.images = noise({n, 1, 17, 17}, seed);
  at::NoGradGuard ng;
  r.targets = teacher.blocks(r.images);
  auto logits = teacher.head(r.targets[2]);
  for (auto& t : r.targets) t = by_hand_normalised(t.roll(roll, 1));
  r.labels = logits.argmax(1);
  r.softmax = at::softmax(logits, 1);
  return r;
}

}  // namespace

TEST_CASE("learner network: block outputs have the search network's shapes at every depth; seeds fix weights") {
  for (std::int64_t depth : {1, 2, 3}) {
    ConvGroupNet net(tiny(depth), 5, at::kCPU);
    auto out = net.blocks(noise({2, 1, 17, 17}, 2));
    REQUIRE(out.size() == 3);
    CHECK(out[0].sizes() == at::IntArrayRef({2, 4, 8, 8}));
    CHECK(out[1].sizes() == at::IntArrayRef({2, 4, 4, 4}));
    CHECK(out[2].sizes() == at::IntArrayRef({2, 4, 2, 2}));
    CHECK(net.logits(noise({2, 1, 17, 17}, 2)).sizes() == at::IntArrayRef({2, 3}));
    CHECK(net.describe().find("depth " + std::to_string(depth)) != std::string::npos);
  }
  ConvGroupNet a(tiny(2), 5, at::kCPU), b(tiny(2), 5, at::kCPU), c(tiny(2), 6, at::kCPU);
  auto x = noise({3, 1, 17, 17}, 3);
  CHECK(at::equal(a.logits(x), b.logits(x)));
  CHECK_FALSE(at::equal(a.logits(x), c.logits(x)));
  // the BatchNorm weights stay at 1: only the biases and convs train
  for (auto& p : a.body_parameters()) CHECK(p.requires_grad());
  auto s = a.state();
  a.load_state(c.state());
  CHECK(at::equal(a.logits(x), c.logits(x)));
  a.load_state(s);
  CHECK(at::equal(a.logits(x), b.logits(x)));
}

TEST_CASE("learner loss: mean block MSE + lambda KL(p || head(stop_gradient(last block))) by hand; gradients") {
  ConvGroupNet net(tiny(), 7, at::kCPU);
  auto x = noise({5, 1, 17, 17}, 4);
  auto outs = net.blocks(x);
  std::vector<at::Tensor> targets;
  for (std::size_t b = 0; b < 3; ++b) targets.push_back(noise(outs[b].sizes(), 10 + b));
  auto p = at::softmax(noise({5, 3}, 20), 1);
  LearnerLossConfig c;
  c.kl_weight = 0.3;
  auto l = learner_loss(net, outs, targets, p, c);
  // by hand: squared errors averaged per block, then over blocks; KL with the head's linear map
  double mse = 0;
  for (std::size_t b = 0; b < 3; ++b) mse += (by_hand_normalised(outs[b]) - targets[b]).pow(2).mean().item<double>() / 3.0;
  auto w = net.head_parameters().at(0);
  // the head reads the last block normalised per example (head_input "normalised", the default)
  auto q = at::softmax(at::matmul(by_hand_normalised(outs[2]).flatten(1), w.t()), 1);
  double kl = 0;
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t k = 0; k < 3; ++k) {
      const double pi = p[i][k].item<double>(), qi = q[i][k].item<double>();
      kl += pi * std::log(pi / qi) / 5.0;
    }
  CHECK(l.kl.item<double>() == doctest::Approx(kl).epsilon(1e-5));
  CHECK(l.total.item<double>() == doctest::Approx(mse + 0.3 * kl).epsilon(1e-5));
  c.normalise_outputs = false;  // the raw outputs
  double raw = 0;
  for (std::size_t b = 0; b < 3; ++b) raw += (outs[b] - targets[b]).pow(2).mean().item<double>() / 3.0;
  CHECK(learner_loss(net, outs, targets, p, c).total.item<double>() == doctest::Approx(raw + 0.3 * kl).epsilon(1e-5));

  SUBCASE("head_input raw: the head reads the block output itself") {
    auto raw_config = tiny();
    raw_config.head_input = "raw";
    ConvGroupNet raw_net(raw_config, 7, at::kCPU);
    auto raw_outs = raw_net.blocks(x);
    auto raw_q = at::softmax(at::matmul(raw_outs[2].flatten(1), raw_net.head_parameters().at(0).t()), 1);
    auto expected = (p * (p.log() - raw_q.log())).sum(1).mean().item<double>();
    CHECK(learner_loss(raw_net, raw_outs, targets, p, c).kl.item<double>() == doctest::Approx(expected).epsilon(1e-5));
  }
  SUBCASE("no KL gradient reaches the body; the head learns from KL alone") {
    LearnerLossConfig only_kl;
    only_kl.first_supervised = 3;  // no block supervised: the KL term alone
    auto lk = learner_loss(net, net.blocks(x), targets, p, only_kl);
    lk.total.backward();
    for (auto& q2 : net.body_parameters()) CHECK((!q2.grad().defined() || q2.grad().abs().max().item<double>() == 0.0));
    CHECK(net.head_parameters().at(0).grad().abs().max().item<double>() > 0);
  }
  SUBCASE("skip-block0 leaves block 0 without a target term") {
    std::vector<at::Tensor> leaves;
    for (auto& o : outs) leaves.push_back(o.detach().clone().requires_grad_(true));
    LearnerLossConfig skip;
    skip.first_supervised = first_supervised("skip-block0");
    auto ls = learner_loss(net, leaves, targets, p, skip);
    CHECK_FALSE(ls.mse[0].defined());
    double mse12 = 0;
    for (std::size_t b = 1; b < 3; ++b) mse12 += (by_hand_normalised(leaves[b]) - targets[b]).pow(2).mean().item<double>() / 2.0;
    CHECK(ls.total.item<double>() == doctest::Approx(mse12 + 0.03 * ls.kl.item<double>()).epsilon(1e-5));
    ls.total.backward();
    CHECK_FALSE(leaves[0].grad().defined());
    CHECK(leaves[1].grad().abs().max().item<double>() > 0);
    CHECK(leaves[2].grad().abs().max().item<double>() > 0);
  }
}

TEST_CASE("trajectory measures: cosine distance and collision entropy on known cases") {
  auto a = noise({4, 2, 3, 3}, 30);
  CHECK(cosine_distance_rows(a, a).abs().max().item<double>() < 1e-12);
  CHECK(cosine_distance_rows(a, -a).sub(2).abs().max().item<double>() < 1e-12);
  CHECK(cosine_distance_rows(a, a * 3).abs().max().item<double>() < 1e-12);  // scale-free
  auto eye = at::eye(3, at::TensorOptions().dtype(at::kDouble));
  auto labels = at::tensor({0, 0, 0, 1, 1, 1}, at::TensorOptions().dtype(at::kLong));
  // class 0: three orthogonal rows (H = log 3); class 1: three identical rows (H = 0)
  auto x = at::cat({eye, eye[0].unsqueeze(0).repeat({3, 1})});
  auto e = class_collision_entropy(x, labels);
  CHECK(e.within == doctest::Approx((std::log(3.0) + 0.0) / 2));
  // class means (1/3, 1/3, 1/3) and (1, 0, 0): cos^2 = 1/3, H = -log((2 + 2/3) / 4) = log(1.5)
  CHECK(e.between == doctest::Approx(std::log(1.5)));
  auto same = class_collision_entropy(eye[1].unsqueeze(0).repeat({4, 1}), at::tensor({0, 0, 1, 1}, at::TensorOptions().dtype(at::kLong)));
  CHECK(same.within == doctest::Approx(0.0));
  CHECK(same.between == doctest::Approx(0.0));
}

TEST_CASE("learner: a network against its own outputs is at distance 0; streamed rows equal rows read whole") {
  Rows rows = teacher_rows(40, 40);
  LearnerTrainConfig c;
  c.epochs = 0;
  c.heldout_share = 0.25;
  c.chunk = 1000;
  ConvGroupNet self(tiny(), 99, at::kCPU);  // the teacher's seed: the targets are its own outputs
  auto whole = train_learner(self, 40, rows.reader(), c);
  CHECK(whole.heldout.size(0) == 10);
  CHECK(whole.train.size(0) == 30);
  CHECK(whole.cosine_distance.abs().max().item<double>() < 1e-6);
  CHECK(whole.heldout_accuracy[0].item<double>() == 1.0);
  // the targets' own entropies equal the network's at epoch 0
  CHECK(at::allclose(whole.entropy_within[0], whole.target_entropy_within));
  rows.largest = 0;
  c.chunk = 7;
  ConvGroupNet again(tiny(), 99, at::kCPU);
  auto streamed = train_learner(again, 40, rows.reader(), c);
  CHECK(rows.largest == 7);  // never more than a chunk of rows at once
  CHECK(at::equal(streamed.heldout, whole.heldout));
  CHECK(at::allclose(streamed.cosine_distance, whole.cosine_distance));
  CHECK(at::allclose(streamed.entropy_within, whole.entropy_within));
  CHECK(at::allclose(streamed.entropy_between, whole.entropy_between));
}

TEST_CASE("learner: regressing onto a teacher's outputs lowers the distance; labels train the baseline") {
  Rows rows = teacher_rows(120, 41, 1);
  LearnerTrainConfig c;
  c.epochs = 20;
  c.batch = 20;
  c.chunk = 50;  // streamed: three chunks
  c.lr = 0.2;
  c.heldout_share = 0.2;
  c.augment = "none";
  ConvGroupNet net(tiny(2), 3, at::kCPU);
  auto r = train_learner(net, 120, rows.reader(), c);
  REQUIRE(r.epochs.size() == 20);
  CHECK(r.cosine_distance.sizes() == at::IntArrayRef({21, 3}));
  for (std::int64_t b = 0; b < 3; ++b) CHECK(r.cosine_distance[20][b].item<double>() < r.cosine_distance[0][b].item<double>());
  CHECK(r.epochs.back().loss < r.epochs.front().loss);
  CHECK(r.selected_epoch >= 0);
  CHECK(r.heldout_accuracy[r.selected_epoch].item<double>() == r.heldout_accuracy.max().item<double>());
  // the same seed, the same run (deterministic on one thread), augmentation included
  c.augment = "flip-crop";
  ConvGroupNet a(tiny(2), 3, at::kCPU), b(tiny(2), 3, at::kCPU);
  auto ra = train_learner(a, 120, rows.reader(), c), rb = train_learner(b, 120, rows.reader(), c);
  CHECK(at::equal(ra.cosine_distance, rb.cosine_distance));
  c.objective = "labels";
  c.lr = 0.1;
  ConvGroupNet sgd(tiny(2), 3, at::kCPU);
  auto rs = train_learner(sgd, 120, rows.reader(), c);
  CHECK(rs.epochs.back().train_accuracy > rs.epochs.front().train_accuracy - 1e-9);
  CHECK(rs.heldout_accuracy.max().item<double>() >= rs.heldout_accuracy[0].item<double>());
  auto probs = learner_probabilities(sgd, rows.images.slice(0, 0, 7));
  CHECK(probs.sizes() == at::IntArrayRef({7, 3}));
  CHECK(probs.sum(1).sub(1).abs().max().item<double>() < 1e-5);
}
