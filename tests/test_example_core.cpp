// The example space's core: the frozen network, the operators against their definitions, N_eff, and a
// unit's determinism (synthetic images; the real-data search is in test_example.cpp).
#include <doctest/doctest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/rng.hpp"

using namespace repsearch;

namespace {

const auto kF = at::TensorOptions().dtype(at::kFloat);

at::Tensor images(std::int64_t n, std::int64_t c, std::int64_t hw, std::uint64_t seed) {
  auto g = make_generator(seed, Stream::splits);
  return at::randn({n, c, hw, hw}, g, kF);
}

NetConfig small_net() {
  NetConfig c;
  c.widths = {8, 8, 8};
  c.whiten_images = 64;
  return c;
}

ExampleSearchConfig small_search() {
  ExampleSearchConfig c;
  c.parents = 4;
  c.exploratory = 6;
  c.refinement = 6;
  c.schedule = {{{4, 0.3, 5, 2}, {2, 0.2, 3, 1}, {2, 0.1, 3, 1}, {2, 0.1, 1, 0}}};
  return c;
}

}  // namespace

TEST_CASE("frozen network: airbench shapes for 28x28 and 32x32, grey and colour") {
  const auto x = images(16, 1, 28, 1);
  FrozenNet grey(small_net(), x, 10, at::kCPU);
  CHECK(grey.input_shape_of(0) == std::vector<std::int64_t>{8, 27, 27});
  CHECK(grey.layer_shape(0) == std::vector<std::int64_t>{8, 13, 13});
  CHECK(grey.layer_shape(1) == std::vector<std::int64_t>{8, 6, 6});
  CHECK(grey.layer_shape(2) == std::vector<std::int64_t>{8, 3, 3});
  CHECK(grey.layer_shape(3) == std::vector<std::int64_t>{10});
  auto outs = grey.forward_all(x);
  REQUIRE(outs.size() == 4);
  CHECK(outs[0].sizes() == at::IntArrayRef({16, 8, 13, 13}));
  CHECK(outs[3].sizes() == at::IntArrayRef({16, 10}));
  // logits_from(l) of layer l's output is the network's logits, from any layer
  for (std::int64_t l = 0; l < 3; ++l) CHECK(at::allclose(grey.logits_from(l, outs[l]), outs[3], 1e-4, 1e-5));

  FrozenNet colour(small_net(), images(8, 3, 32, 2), 100, at::kCPU);
  CHECK(colour.input_shape_of(0) == std::vector<std::int64_t>{24, 31, 31});
  CHECK(colour.layer_shape(0) == std::vector<std::int64_t>{8, 15, 15});
  CHECK(colour.layer_shape(1) == std::vector<std::int64_t>{8, 7, 7});
  CHECK(colour.layer_shape(2) == std::vector<std::int64_t>{8, 3, 3});
  CHECK(colour.parameters().head.sizes() == at::IntArrayRef({100, 72}));
}

TEST_CASE("frozen network: whitening decorrelates patches; Dirac filters; the seed fixes the weights") {
  const auto x = images(64, 1, 12, 3);
  auto w = whitening_weights(x, 2, 0.0);
  REQUIRE(w.sizes() == at::IntArrayRef({8, 1, 2, 2}));
  CHECK(at::allclose(w.slice(0, 4), -w.slice(0, 0, 4)));  // the second half is the negatives
  auto z = at::conv2d(x, w.slice(0, 0, 4)).permute({0, 2, 3, 1}).reshape({-1, 4});
  auto cov = at::mm(z.t(), z) / static_cast<double>(z.size(0));
  CHECK(at::allclose(cov, at::eye(4, kF), 1e-3, 1e-3));  // unit (uncentred) covariance: whitened

  FrozenNet a(small_net(), x, 10, at::kCPU), b(small_net(), x, 10, at::kCPU);
  CHECK(at::equal(a.parameters().conv1[1], b.parameters().conv1[1]));
  const auto& c2 = a.parameters().conv2[0];  // width -> width: every filter is an identity path
  CHECK(c2[3][3][1][1].item<float>() == 1.0f);
  CHECK(c2[3][2].abs().sum().item<float>() == 0.0f);
  auto other = small_net();
  other.seed = 9;
  FrozenNet d(other, x, 10, at::kCPU);
  CHECK_FALSE(at::equal(a.parameters().head, d.parameters().head));
}

TEST_CASE("frozen network: calibrated BatchNorm standardises every channel of the whitening images") {
  auto c = small_net();
  c.batchnorm = "calibrated";
  const auto x = images(64, 1, 28, 4);
  FrozenNet net(c, x, 10, at::kCPU);
  const auto& p = net.parameters();
  CHECK((p.bn1_var[0] - 1.0).abs().max().item<float>() > 1e-3);  // fitted, not the identity's
  // the pre-BatchNorm activations of block0's first conv, standardised, have zero mean and unit variance
  auto h = at::max_pool2d(at::conv2d(net.stem(x), p.conv1[0], {}, 1, 1), 2);
  auto s = (h - p.bn1_mean[0].view({1, -1, 1, 1})) * (p.bn1_var[0] + 1e-12).rsqrt().view({1, -1, 1, 1});
  CHECK(s.mean({0, 2, 3}).abs().max().item<float>() < 1e-3);
  CHECK((s.var({0, 2, 3}, false) - 1).abs().max().item<float>() < 1e-3);
}

TEST_CASE("operators: blur and normalisation against hand computations") {
  auto x = at::zeros({1, 1, 3, 3}, kF);
  x[0][0][1][1] = 1.0f;
  auto once = blur(x, 1);
  CHECK(at::allclose(once, at::full({1, 1, 3, 3}, 1.0 / 9, kF)));
  auto twice = blur(x, 2);  // zero padding counts: a corner sees 4 cells of 1/9, an edge 6, the centre 9
  CHECK(twice[0][0][0][0].item<float>() == doctest::Approx(4.0 / 81));
  CHECK(twice[0][0][0][1].item<float>() == doctest::Approx(6.0 / 81));
  CHECK(twice[0][0][1][1].item<float>() == doctest::Approx(9.0 / 81));

  auto y = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 2, 2});
  auto n = normalise_candidates(y, 1e-5);
  const double sd = std::sqrt(1.25 + 1e-5);  // mean 2.5, biased variance 1.25
  CHECK(n[0][0][0][0].item<float>() == doctest::Approx(-1.5 / sd));
  CHECK(n[0][0][1][1].item<float>() == doctest::Approx(1.5 / sd));
  auto many = normalise_candidates(at::randn({5, 7, 3, 4, 4}), 1e-5);  // per candidate over C, H, W
  CHECK(many.flatten(2).mean(-1).abs().max().item<float>() < 1e-5);
  CHECK((many.flatten(2).var(-1, false) - 1).abs().max().item<float>() < 1e-3);

  auto logits = at::tensor({0.0f, 0.0f, 2.0f, 0.0f}).view({2, 2});
  auto ce = cross_entropy_each(logits, at::tensor({0L, 1L}));
  CHECK(ce[0].item<float>() == doctest::Approx(std::log(2.0)));
  CHECK(ce[1].item<float>() == doctest::Approx(std::log(1 + std::exp(2.0))));
}

TEST_CASE("operators: crossover is the mean of two parents; noise std is alpha x the parents' channel std") {
  auto gen = make_generator(1, Stream::example);
  // two known parents, no noise, no normalisation: every child is p0, p1 or their mean
  auto p0 = at::full({2, 3, 3}, 1.0, kF), p1 = at::full({2, 3, 3}, 3.0, kF);
  auto pool = at::stack({p0, p1}).unsqueeze(0);  // [1, 2, 2, 3, 3]
  auto sigma = at::ones({1, 2, 2}, kF);
  auto kids = breed(pool, sigma, 400, 0.0, 0, 0.0, gen);
  REQUIRE(kids.sizes() == at::IntArrayRef({1, 400, 2, 3, 3}));
  auto values = kids.flatten(2).select(-1, 0)[0];
  auto is = [&](double v) { return (values - v).abs() < 1e-6; };
  CHECK((is(1) | is(2) | is(3)).all().item<bool>());
  CHECK(is(2).sum().item<std::int64_t>() > 120);  // (a, b) distinct half the time
  CHECK(is(1).sum().item<std::int64_t>() > 50);
  CHECK((kids.flatten(2).std(-1) < 1e-6).all().item<bool>());  // no noise: constant maps stay constant

  // one parent (both draws equal), per-channel spreads 0.5 and 2: the noise per channel has std alpha x spread
  auto parent = at::zeros({1, 1, 2, 8, 8}, kF);
  auto spread = at::tensor({0.5f, 2.0f}).view({1, 1, 2});
  auto noisy = breed(parent, spread, 300, 0.4, 0, 0.0, gen);
  auto sd = noisy.transpose(0, 2).reshape({2, -1}).std(-1);
  CHECK(sd[0].item<float>() == doctest::Approx(0.2).epsilon(0.05));
  CHECK(sd[1].item<float>() == doctest::Approx(0.8).epsilon(0.05));

  // logits: element-wise noise of std alpha x the spread across classes, then centred
  auto lg = breed(at::zeros({1, 1, 10}, kF), at::full({1, 1}, 1.0, kF), 2000, 0.3, 0, 0.0, gen);
  CHECK(lg.mean(-1).abs().max().item<float>() < 1e-5);
  CHECK(lg.std().item<float>() == doctest::Approx(0.3 * std::sqrt(0.9)).epsilon(0.05));
}

TEST_CASE("operators: the CPU's fused children equal the operators' definitions (same draws, no noise)") {
  auto pool = at::randn({3, 5, 4, 7, 6}, kF);
  auto sigma = channel_std(pool);
  auto g1 = make_generator(4, Stream::example), g2 = make_generator(4, Stream::example);
  auto fused = breed(pool, sigma, 9, 0.0, 3, 1e-5, g1);
  auto idx = at::randint(5, {3, 18}, g2, at::TensorOptions().dtype(at::kLong));
  auto pick = [&](const at::Tensor& i) {
    auto flat = (i + at::arange(3, i.options()).mul_(5).unsqueeze(1)).flatten();
    return pool.flatten(0, 1).index_select(0, flat).view({3, 9, 4, 7, 6});
  };
  auto reference = normalise_candidates(blur((pick(idx.slice(1, 0, 9)) + pick(idx.slice(1, 9, 18))) * 0.5, 3), 1e-5);
  CHECK(at::allclose(fused, reference, 1e-4, 1e-5));
}

TEST_CASE("N_eff: orthogonal candidates give R, identical ones 1; the 0.5 mask and pooling") {
  CHECK(n_eff(at::eye(5, kF)) == doctest::Approx(5.0));
  CHECK(n_eff(at::ones({4, 7}, kF)) == doctest::Approx(1.0));
  CHECK(n_eff(at::ones({4, 7}, kF) * at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).unsqueeze(1)) == doctest::Approx(1.0));
  // two examples: orthogonal triple and an identical pair; a mask leaves two of the triple
  auto x = at::zeros({2, 3, 3}, kF);
  x[0] = at::eye(3, kF);
  x[1] = at::ones({3, 3}, kF);
  auto all = at::ones({2, 3}, at::TensorOptions().dtype(at::kBool));
  CHECK(mean_n_eff(x, all) == doctest::Approx((3.0 + 1.0) / 2));
  CHECK(mean_n_eff(x, all, false, true) == doctest::Approx((9.0 + 9.0) / (3.0 + 9.0)));
  auto some = all.clone();
  some[0][2] = false;
  some[1].fill_(false);  // an example keeping nothing is left out
  CHECK(mean_n_eff(x, some) == doctest::Approx(2.0));
  CHECK(std::isnan(mean_n_eff(x, at::zeros({2, 3}, at::TensorOptions().dtype(at::kBool)))));
  // centring removes a shared offset: e_i + c are not orthogonal, their centred forms are symmetric
  auto shifted = at::eye(3, kF) + 5.0;
  CHECK(n_eff(shifted) < 1.2);
  CHECK(n_eff(shifted, true) > 1.9);
}

TEST_CASE("example search: a unit is a function of (seed, batch, island); grouping and chunks change nothing") {
  const auto x = images(6, 1, 28, 5);
  const auto y = at::tensor({0L, 1L, 2L, 3L, 4L, 5L});
  FrozenNet net(small_net(), x, 10, at::kCPU);
  auto run = [&](ExampleSearchConfig c, std::vector<std::int64_t> islands, std::int64_t batch = 3) {
    ExampleUnit u(net, c, {batch, std::move(islands), x, y});
    std::int64_t ticks = 0;
    while (!u.done()) {
      u.step();
      ++ticks;
    }
    CHECK(ticks == c.ticks());
    return u.results();
  };
  auto c = small_search();
  c.islands = 2;
  auto a = run(c, {0}), b = run(c, {0}), both = run(c, {0, 1}), one = run(c, {1});
  REQUIRE(both.size() == 2);
  for (std::size_t l = 0; l < 4; ++l) {
    CHECK(at::equal(a[0].targets[l], b[0].targets[l]));
    CHECK(at::equal(a[0].targets[l], both[0].targets[l]));
    CHECK(at::equal(one[0].targets[l], both[1].targets[l]));
    CHECK_FALSE(at::equal(a[0].targets[l], one[0].targets[l]));  // islands are independent runs
  }
  CHECK(a[0].evaluations == 6 * (4 * 16 + (4 + 2 + 2 + 2) * 12));
  // a shorter batch (a run's last one) runs the same way
  ExampleUnit last(net, c, {4, {1}, x.slice(0, 0, 2), y.slice(0, 0, 2)});
  while (!last.done()) last.step();
  CHECK(last.results()[0].targets[0].sizes() == at::IntArrayRef({2, 8, 13, 13}));
  auto other = run(c, {0}, 4);  // another batch key: other streams
  CHECK_FALSE(at::equal(a[0].targets[0], other[0].targets[0]));

  // the stored cross-entropies are the network's verdict on the stored targets
  for (std::int64_t l = 0; l < 4; ++l) {
    auto ce = cross_entropy_each(net.logits_from(l, a[0].targets[static_cast<std::size_t>(l)]), y).to(at::kDouble);
    CHECK(at::allclose(ce, a[0].ce.select(1, l), 1e-4, 1e-5));
  }
  // the histories never rise (elitism) and end at the layer's mean best
  for (std::size_t l = 0; l < 4; ++l) {
    const auto& h = a[0].history[l];
    REQUIRE(h.numel() == c.schedule[l].generations + 1);
    CHECK((h.slice(0, 1) <= h.slice(0, 0, -1) + 1e-6).all().item<bool>());
    CHECK(h[-1].item<double>() == doctest::Approx(a[0].ce.select(1, static_cast<std::int64_t>(l)).mean().item<double>()).epsilon(1e-4));
  }
}

TEST_CASE("example search: one layer searched alone; the others are the network's forward pass") {
  const auto x = images(4, 1, 28, 6);
  const auto y = at::tensor({1L, 3L, 5L, 7L});
  FrozenNet net(small_net(), x, 10, at::kCPU);
  auto c = small_search();
  c.layers = {1};
  ExampleUnit u(net, c, {0, {0}, x, y});
  CHECK(u.ticks() == 1 + c.schedule[1].generations);
  while (!u.done()) u.step();
  auto r = u.results().front();
  auto outs = net.forward_all(x);
  CHECK(at::allclose(r.targets[0], outs[0].contiguous(), 1e-5, 1e-6));  // block0 not searched: forward pass
  CHECK(r.history[0].numel() == 0);
  CHECK(at::allclose(r.targets[2], net.layer(2, r.targets[1]).contiguous(), 1e-5, 1e-6));  // after: forward pass
  // searching block1 never ends worse than its best initial candidate
  CHECK((r.history[1][-1] <= r.history[1][0] + 1e-9).item<bool>());
}

TEST_CASE("example search: migration carries each example's best between islands") {
  const auto x = images(4, 1, 28, 7);
  const auto y = at::tensor({0L, 1L, 2L, 3L});
  FrozenNet net(small_net(), x, 10, at::kCPU);
  auto c = small_search();
  c.islands = 2;
  c.layers = {3};
  c.schedule[3].generations = 4;
  c.migration = {"ring", "", 2, 1, false};
  ExampleUnit u(net, c, {0, {0, 1}, x, y});
  while (!u.done()) u.step();
  auto migrated = u.results();
  c.migration.interval = 0;
  ExampleUnit v(net, c, {0, {0, 1}, x, y});
  while (!v.done()) v.step();
  auto independent = v.results();
  CHECK_FALSE(at::equal(migrated[0].targets[3], independent[0].targets[3]));
}

TEST_CASE("example search: bad schedules and layer lists are option errors naming the key") {
  auto key_of = [](auto&& f) {
    try {
      f();
    } catch (const OptionError& e) {
      return e.option;
    }
    return std::string("(none)");
  };
  auto c = small_search();
  c.schedule[2].generations = -1;
  CHECK(key_of([&] { validate(c); }) == "layer-generations");
  c = small_search();
  c.schedule[0].boost = 0;
  CHECK(key_of([&] { validate(c); }) == "layer-boost");
  c = small_search();
  c.parents = 1;
  CHECK(key_of([&] { validate(c); }) == "parents");
  c = small_search();
  c.exploratory = c.refinement = 0;
  CHECK(key_of([&] { validate(c); }) == "refinement");
  CHECK(key_of([&] { parse_layers("block1,block0"); }) == "layers");
  CHECK(key_of([&] { parse_layers("block3"); }) == "layers");
  CHECK(parse_layers("all") == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(parse_layers("block0, logits") == std::vector<std::int64_t>{0, 3});
}
