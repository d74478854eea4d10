// Networks and training loops of core on synthetic data.
#include <doctest/doctest.h>

#include "repsearch/core/error.hpp"
#include "repsearch/core/models.hpp"
#include "repsearch/core/rng.hpp"

using namespace repsearch;

namespace {
const auto F32 = at::TensorOptions().dtype(at::kFloat);
ModelConfig mlp(std::int64_t in, std::int64_t hidden, std::int64_t cut, std::int64_t classes) {
  ModelConfig m;
  m.arch = "mlp";
  m.hidden = {hidden};
  m.cut = cut;
  m.classes = classes;
  m.input_shape = {1, 1, in};
  return m;
}
}  // namespace

TEST_CASE("trajectory steps are log-spaced, unique and start at 0") {
  auto s = trajectory_steps(1000, 5);
  CHECK(s == std::vector<std::int64_t>{0, 1, 10, 100, 1000});
  CHECK(trajectory_steps(3, 16).back() == 3);
  CHECK(trajectory_steps(0, 16) == std::vector<std::int64_t>{0});
}

TEST_CASE("architectures") {
  ModelConfig c = mlp(784, 256, 64, 10);
  c.input_shape = {1, 28, 28};
  Network a(c, 1, at::kCPU);
  CHECK(a.describe() == "mlp 784-256-64-10");
  auto x = at::randn({5, 1, 28, 28});
  CHECK(a.encode(x).sizes() == at::IntArrayRef({5, 64}));
  CHECK(a.logits(x).sizes() == at::IntArrayRef({5, 10}));
  ModelConfig k;
  k.input_shape = {3, 32, 32};
  k.cut = 16;
  Network cnn(k, 1, at::kCPU);
  CHECK(cnn.describe() == "cnn 3x32x32-c32-c64-c128-16-10");
  CHECK(cnn.logits(at::randn({2, 3, 32, 32})).sizes() == at::IntArrayRef({2, 10}));
  Network b(c, 1, at::kCPU);
  CHECK(at::equal(a.encode(x), b.encode(x)));  // same seed, same initial network
  k.channels = {8, 8, 8, 8, 8, 8};
  CHECK_THROWS_AS(Network(k, 1, at::kCPU), Error);
}

TEST_CASE("regression really learns a target an encoder can realise") {
  auto g = make_generator(12, Stream::init);
  const std::int64_t n = 512, D = 8, d = 4;
  auto x = at::randn({n, 1, 1, D}, g, F32);
  Network teacher(mlp(D, 16, d, 3), 77, at::kCPU);
  at::Tensor z;
  {
    at::NoGradGuard ng;
    z = teacher.encode(x);
  }
  Network student(mlp(D, 64, d, 3), 5, at::kCPU);
  TrainConfig tc;
  tc.epochs = 150;
  tc.batch = 64;
  tc.lr = 3e-3;
  auto probe = x.slice(0, 0, 20);
  auto r = regress_encoder(student, x, z, tc, probe);
  at::Tensor out;
  {
    at::NoGradGuard ng;
    out = student.encode(x);
  }
  const double mse = at::mse_loss(out, z).item<double>(), var = z.var().item<double>();
  CHECK(mse < 0.01 * var);  // 99% of the target's variance explained
  CHECK(r.epochs.back().loss < r.epochs.front().loss / 10);
  CHECK(r.trajectory.activations.sizes() == at::IntArrayRef({static_cast<std::int64_t>(r.trajectory.steps.size()), 20, d}));
  CHECK(r.trajectory.steps.front() == 0);
  CHECK(r.trajectory.steps.back() == 150 * 8);
}

TEST_CASE("heads on label-like codes, end-to-end training, ensembles") {
  auto g = make_generator(13, Stream::init);
  const std::int64_t n = 600, D = 10;
  auto x = at::randn({n, 1, 1, D}, g, F32);
  auto y = at::matmul(x.view({n, D}), at::randn({D, 3}, g, F32)).argmax(1);
  SUBCASE("ridge head on an encoder regressed to one-hot targets") {
    Network net(mlp(D, 64, 3, 3), 1, at::kCPU);
    TrainConfig tc;
    tc.epochs = 60;
    tc.batch = 64;
    regress_encoder(net, x, at::one_hot(y, 3).to(at::kFloat), tc, {});
    fit_head_ridge(net, x, y, 1e-3);
    CHECK(accuracy(net, x, y) > 0.9);
  }
  SUBCASE("cross-entropy head alone leaves the encoder unchanged") {
    Network net(mlp(D, 32, 8, 3), 2, at::kCPU);
    at::Tensor before;
    {
      at::NoGradGuard ng;
      before = net.encode(x);
    }
    TrainConfig tc;
    tc.epochs = 30;
    auto r = train_head(net, x, y, tc);
    at::NoGradGuard ng;
    CHECK(at::equal(before, net.encode(x)));
    CHECK(r.epochs.back().train_accuracy > r.epochs.front().train_accuracy - 1e-9);
  }
  SUBCASE("end-to-end training reaches high accuracy and records validation") {
    Network net(mlp(D, 32, 8, 3), 3, at::kCPU);
    TrainConfig tc;
    tc.epochs = 40;
    tc.optimizer = "sgd";
    tc.lr = 0.05;
    auto r = train_end_to_end(net, x, y, tc, x.slice(0, 0, 10), x, y);
    CHECK(accuracy(net, x, y) > 0.9);
    CHECK(r.epochs.back().val_accuracy == doctest::Approx(accuracy(net, x, y)));
    CHECK(r.epochs.back().examples_per_s > 0);
  }
  SUBCASE("ensemble accuracy averages probabilities") {
    // Two members, three examples, two classes: member 0 right on 0 and 1, member 1 confident on 2.
    auto p = at::tensor({0.9, 0.1, 0.4, 0.6, 0.6, 0.4,  0.6, 0.4, 0.6, 0.4, 0.0, 1.0}, at::TensorOptions().dtype(at::kDouble))
                 .view({2, 3, 2});
    auto labels = at::tensor({0, 1, 1}, at::TensorOptions().dtype(at::kLong));
    // Means: [0.75,0.25] -> 0 right; [0.5,0.5] -> argmax 0 wrong; [0.3,0.7] -> 1 right.
    CHECK(ensemble_accuracy(p, labels) == doctest::Approx(2.0 / 3.0));
    CHECK_THROWS_AS(ensemble_accuracy(p, at::tensor({0, 1}, at::TensorOptions().dtype(at::kLong))), Error);
  }
  SUBCASE("a bad optimizer name is refused") {
    Network net(mlp(D, 8, 3, 3), 1, at::kCPU);
    TrainConfig tc;
    tc.optimizer = "lion";
    CHECK_THROWS_WITH_AS(train_end_to_end(net, x, y, tc, {}, {}, {}), doctest::Contains("lion"), Error);
  }
}
