// repsearch::core: CKA, Procrustes, operators, fitness, one island's search. Synthetic data only.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "repsearch/core/data.hpp"
#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/operators.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/core/search.hpp"
#include "synthetic.hpp"

using namespace repsearch;
using testing::Synthetic;

namespace {
const auto F32 = at::TensorOptions().dtype(at::kFloat);
const auto F64 = at::TensorOptions().dtype(at::kDouble);

at::Tensor random_orthogonal(int64_t d, uint64_t seed) {
  auto g = make_generator(seed, Stream::init);
  auto q = at::linalg_qr(at::randn({d, d}, g, F64));
  return std::get<0>(q);
}

at::Tensor onehot_pop(const at::Tensor& y, int64_t classes, int64_t d, int64_t P, uint64_t seed) {
  auto g = make_generator(seed, Stream::init, {7});
  auto oh = at::one_hot(y, classes).to(at::kFloat);
  auto pad = at::zeros({y.size(0), d - classes}, F32);
  auto z = at::cat({oh, pad}, 1).unsqueeze(0).repeat({P, 1, 1});
  return z + 0.01 * at::randn(z.sizes(), g, F32);
}
}  // namespace

TEST_CASE("rng streams are a function of seed and keys alone") {
  auto a = at::randn({5}, make_generator(1, Stream::variation, {2, 3}), F32);
  auto b = at::randn({5}, make_generator(1, Stream::variation, {2, 3}), F32);
  auto c = at::randn({5}, make_generator(1, Stream::variation, {3, 2}), F32);
  auto d = at::randn({5}, make_generator(2, Stream::variation, {2, 3}), F32);
  CHECK(at::equal(a, b));
  CHECK_FALSE(at::equal(a, c));
  CHECK_FALSE(at::equal(a, d));
}

TEST_CASE("linear CKA") {
  auto g = make_generator(3, Stream::init);
  auto x = at::randn({50, 6}, g, F64);
  SUBCASE("identical inputs give 1") { CHECK(linear_cka(x, x) == doctest::Approx(1.0).epsilon(1e-12)); }
  SUBCASE("invariant to orthogonal maps and isotropic scaling") {
    auto y = at::randn({50, 4}, g, F64);
    double base = linear_cka(x, y);
    CHECK(linear_cka(at::matmul(x, random_orthogonal(6, 9)) * 3.5, y) == doctest::Approx(base).epsilon(1e-10));
    CHECK(base < 0.9);
  }
  SUBCASE("hand-computed value") {
    // X = [1,2,3,4]^T, Y = [1,3,2,4]^T: centred x = (-1.5,-.5,.5,1.5), y = (-1.5,.5,-.5,1.5);
    // x.y = 4, |x|^2 = |y|^2 = 5, so CKA = 16 / 25.
    auto xa = at::tensor({1.0, 2.0, 3.0, 4.0}, F64).view({4, 1});
    auto ya = at::tensor({1.0, 3.0, 2.0, 4.0}, F64).view({4, 1});
    CHECK(linear_cka(xa, ya) == doctest::Approx(0.64).epsilon(1e-12));
  }
  SUBCASE("matrix is symmetric with unit diagonal") {
    auto batch = at::randn({3, 50, 6}, g, F32);
    auto m = linear_cka_matrix(batch);
    CHECK(m.sizes() == at::IntArrayRef({3, 3}));
    CHECK(at::allclose(m, m.t()));
    CHECK(at::allclose(m.diagonal(), at::ones({3}, F64)));
    // float32 products, computed with the two arguments in either role: equal to float32 precision.
    CHECK(m[0][1].item<double>() == doctest::Approx(linear_cka(batch[0], batch[1])).epsilon(1e-6));
  }
  SUBCASE("float32 batches: shifted columns (means far above the spread) and chosen members") {
    auto batch = at::randn({4, 200, 8}, g, F32);
    auto y = at::randn({200, 5}, g, F32);
    auto base = linear_cka_batch(batch, y);
    // Means of 1000 spreads would wreck uncentred float32 products (digits cancel at ~1e-7 * 1000^2):
    // the result must match float64 arithmetic on the same float32 values.
    auto far = batch + 1000.0f, yfar = y + 1000.0f;
    CHECK(at::allclose(linear_cka_batch(far, y), linear_cka_batch(far.to(at::kDouble), y.to(at::kDouble)), 1e-5, 1e-8));
    CHECK(at::allclose(linear_cka_batch(batch, yfar), linear_cka_batch(batch.to(at::kDouble), yfar.to(at::kDouble)), 1e-5, 1e-8));
    CHECK(at::allclose(linear_cka_batch(batch.to(at::kDouble), y.to(at::kDouble)), base, 1e-5, 1e-8));
    auto which = at::tensor({3, 1}, at::TensorOptions().dtype(at::kLong));
    CHECK(at::equal(linear_cka_batch(batch, y, which), base.index_select(0, which)));
  }
  SUBCASE("bad shapes are refused") { CHECK_THROWS_AS(linear_cka(x, at::randn({49, 6}, g, F64)), Error); }
}

TEST_CASE("Procrustes recovers a known rotation") {
  auto g = make_generator(4, Stream::init);
  auto target = at::randn({200, 8}, g, F32);
  auto r = random_orthogonal(8, 11).to(at::kFloat);
  auto source = at::matmul(target, r.t());  // source R = target
  auto rot = procrustes_rotation(source, target);
  CHECK(at::allclose(rot, r, 1e-4, 1e-4));
  CHECK(at::allclose(procrustes_align(source, target), target, 1e-4, 1e-4));
  // Batched: each pair its own rotation.
  auto r2 = random_orthogonal(8, 12).to(at::kFloat);
  auto sources = at::stack({source, at::matmul(target, r2.t())});
  auto rots = procrustes_rotation(sources, target.unsqueeze(0).expand({2, 200, 8}));
  CHECK(at::allclose(rots[0], r, 1e-4, 1e-4));
  CHECK(at::allclose(rots[1], r2, 1e-4, 1e-4));
  CHECK(at::allclose(procrustes_align(sources, target.unsqueeze(0).repeat({2, 1, 1}))[1], target, 1e-4, 1e-4));
  CHECK_THROWS_AS(procrustes_rotation(source, target.t()), Error);
}

TEST_CASE("GA operators") {
  auto g = make_generator(5, Stream::variation);
  const int64_t B = 4, n = 100, d = 6;
  auto a = at::randn({B, n, d}, g, F32), b = at::randn({B, n, d}, g, F32);
  SUBCASE("tournament picks the best entrant") {
    auto fit = at::tensor({0.1, 0.9, 0.5, 0.3}, F64);
    auto w = ops::tournament(fit, 1000, 4, g);
    CHECK(w.sizes() == at::IntArrayRef({1000}));
    // With 4 entrants from 4, index 1 wins whenever drawn: it must win most tournaments.
    CHECK(w.eq(1).sum().item<int64_t>() > 600);
    // Exactly: index i wins when it is drawn and nothing better is, P = q_i^4 - q_{i-1}^4 with q the
    // share of indices no better than i: worst 1/256, 0.3 15/256, 0.5 65/256, best 175/256.
    const double expected[] = {1.0 / 256, 175.0 / 256, 65.0 / 256, 15.0 / 256};
    for (int64_t i = 0; i < 4; ++i) {
      const double n = static_cast<double>(w.eq(i).sum().item<int64_t>()), mean = 1000 * expected[i],
                   sd = std::sqrt(1000 * expected[i] * (1 - expected[i]));
      CHECK_MESSAGE(std::abs(n - mean) < 5 * sd, "index ", i, " won ", n, " of 1000, expected ", mean);
    }
    // One entrant: no selection pressure, every index wins about a quarter of the time.
    auto one = ops::tournament(fit, 4000, 1, g);
    // Equal scores: the first entrant drawn wins, so every index is equally likely (ties going to the
    // lower index would give index 0 about 1 - (3/4)^4 = 68 %).
    auto tied = ops::tournament(at::zeros({4}, F64), 4000, 4, g);
    for (int64_t i = 0; i < 4; ++i) {
      CHECK_MESSAGE(std::abs(one.eq(i).sum().item<int64_t>() - 1000) < 140, "size 1: index ", i);  // sd 27
      CHECK_MESSAGE(std::abs(tied.eq(i).sum().item<int64_t>() - 1000) < 140, "ties: index ", i);
    }
    CHECK(one.min().item<int64_t>() >= 0);
    CHECK(one.max().item<int64_t>() <= 3);
    CHECK_THROWS_AS(ops::tournament(fit, 10, 0, g), Error);
  }
  SUBCASE("crossover rows come from the parents") {
    auto take = at::rand({B, n}, g, F32).lt(0.5);
    auto child = ops::crossover_rows(a, b, take);
    CHECK(child.sizes() == a.sizes());
    auto from_a = (child - a).abs().amax(2).eq(0), from_b = (child - b).abs().amax(2).eq(0);
    CHECK(at::equal(from_a, take));
    CHECK(at::equal(from_b, take.logical_not()));
  }
  // The in-place operators change individuals `who` of a copy of `a`; the others stay bit-equal.
  auto who = at::tensor({0, 2, 3}, at::TensorOptions().dtype(at::kLong));
  auto spread = ops::column_std(a);
  auto changed_rows = [&](const at::Tensor& child) { return child.ne(a).any(2); };  // [B, n]
  auto expected_rows = [&](const at::Tensor& rows) {
    auto m = at::zeros({B, n}, at::TensorOptions().dtype(at::kBool));
    for (int64_t i = 0; i < who.size(0); ++i) m[who[i].item<int64_t>()].index_fill_(0, rows[i], true);
    return m;
  };
  SUBCASE("random rows: the configured count, distinct and ascending") {
    CHECK(ops::rows_for_fraction(0.02, n) == 2);
    CHECK(ops::rows_for_fraction(0.0, n) == 1);
    auto rows = ops::random_rows(B, n, 7, g);
    CHECK(rows.sizes() == at::IntArrayRef({B, 7}));
    CHECK((rows.slice(1, 1) - rows.slice(1, 0, -1)).gt(0).all().item<bool>());
  }
  SUBCASE("gaussian mutation touches exactly the chosen rows of the chosen individuals") {
    auto rows = ops::random_rows(3, n, 2, g);
    auto child = a.clone();
    ops::gaussian_rows_(child, who, rows, spread, 0.3, g);
    CHECK(at::equal(changed_rows(child), expected_rows(rows)));
  }
  SUBCASE("class pull moves the chosen rows onto their class mean") {
    auto labels = at::arange(n, at::TensorOptions().dtype(at::kLong)).remainder(3);
    auto rows = ops::random_rows(3, n, 10, g);
    auto child = a.clone();
    ops::class_pull_(child, who, rows, spread, labels, 3, 1.0, 0.0, g);  // alpha 1, no noise: rows = class means
    const auto r = rows[1][0].item<int64_t>();                            // individual 2's first row
    auto mean = a[2].index_select(0, labels.eq(labels[r]).nonzero().squeeze(1)).mean(0);
    CHECK(at::allclose(child[2][r], mean, 1e-5, 1e-5));
    CHECK(at::equal(changed_rows(child), expected_rows(rows)));
  }
  SUBCASE("column move changes exactly one column of each chosen individual") {
    auto phi = at::randn({n, 16}, g, F32);
    auto child = a.clone();
    ops::column_move_(child, who, spread, phi, 0.3, g);
    auto cols = (child - a).abs().amax(1).gt(0).sum(1);
    CHECK(at::equal(cols, at::tensor({1, 0, 1, 1}, at::TensorOptions().dtype(at::kLong))));
  }
  SUBCASE("kNN smoothing replaces the chosen rows by their neighbours' mean") {
    auto nb = at::randint(n, {n, 3}, g, at::TensorOptions().dtype(at::kLong));
    auto rows = ops::random_rows(3, n, 5, g);
    auto child = a.clone();
    ops::knn_smooth_(child, who, rows, spread, nb, 0.0, g);
    const auto r = rows[2][0].item<int64_t>();  // individual 3's first row
    CHECK(at::allclose(child[3][r], a[3].index_select(0, nb[r]).mean(0), 1e-5, 1e-5));
    CHECK(at::equal(changed_rows(child), expected_rows(rows)));
  }
  SUBCASE("a population that is not [P, n, d] contiguous is refused") {
    auto t = a.transpose(1, 2);
    CHECK_THROWS_AS(ops::gaussian_rows_(t, who, ops::random_rows(3, d, 1, g), spread, 0.3, g), Error);
  }
  SUBCASE("DE rand/1/bin on a hand example") {
    auto pop = at::arange(4 * 2 * 1, F32).view({4, 2, 1});  // individual i rows: (2i, 2i+1)
    auto ia = at::tensor({1, 2, 3, 0}, at::TensorOptions().dtype(at::kLong));
    auto ib = at::tensor({2, 3, 0, 1}, at::TensorOptions().dtype(at::kLong));
    auto ic = at::tensor({3, 0, 1, 2}, at::TensorOptions().dtype(at::kLong));
    auto take = at::tensor({1, 0, 0, 1, 1, 1, 0, 0}, at::TensorOptions().dtype(at::kLong)).to(at::kBool).view({4, 2});
    auto t = ops::de_rand1bin(pop, ia, ib, ic, 0.5, take);
    // trial 0 row 0: pop[1] + .5 (pop[2] - pop[3]) = 2 + .5 (4 - 6) = 1; row 1 kept = 1.
    CHECK(t[0][0][0].item<float>() == doctest::Approx(1.0));
    CHECK(t[0][1][0].item<float>() == doctest::Approx(1.0));
    // trial 1 row 1: pop[2] + .5 (pop[3] - pop[0]) row 1 = 5 + .5 (7 - 1) = 8; row 0 kept = 2.
    CHECK(t[1][0][0].item<float>() == doctest::Approx(2.0));
    CHECK(t[1][1][0].item<float>() == doctest::Approx(8.0));
  }
}

TEST_CASE("ridge-probe fitness") {
  Synthetic syn(120, 80, 60, 5, 3, 21);
  FitnessConfig fc;
  fc.features = 32;
  fc.seed = 5;
  auto fit = make_fitness(fc, syn.data);
  const int64_t P = 3, d = 4, n = 120;
  auto g = make_generator(6, Stream::init);
  auto pop = at::randn({P, n, d}, g, F32);
  auto rows = at::arange(0, 40, at::TensorOptions().dtype(at::kLong));

  SUBCASE("matches a direct, unoptimised computation") {
    auto phi = make_random_features(5, fc.features, fc.seed, at::kCPU);
    auto ps = phi(syn.data.x_search).to(at::kDouble), pv = phi(syn.data.x_val.index_select(0, rows)).to(at::kDouble);
    const auto q = ps.size(1);
    auto gram = at::matmul(ps.t(), ps);
    double lam = fc.lambda * gram.trace().item<double>() / q;
    auto m = at::matmul(pv, at::matmul(at::linalg_inv(gram + lam * at::eye(q, F64)), ps.t()));  // [b, n]
    auto y = at::one_hot(syn.data.y_search, 3).to(at::kDouble);
    auto yv = syn.data.y_val.index_select(0, rows);
    auto got = fit.score(pop, rows);
    for (int64_t i = 0; i < P; ++i) {
      auto z = pop[i].to(at::kDouble);
      auto zt = at::cat({z, at::ones({n, 1}, F64)}, 1);
      auto zc = z - z.mean(0, true);
      double mu = fc.readout_ridge * at::matmul(zc.t(), zc).trace().item<double>() / d;
      auto reg = at::diag(at::tensor({mu, mu, mu, mu, 0.0}, F64));
      auto w = at::matmul(at::linalg_inv(at::matmul(zt.t(), zt) + reg), at::matmul(zt.t(), y));  // [d+1, C]
      auto mz = at::cat({at::matmul(m, z), at::ones({m.size(0), 1}, F64)}, 1);                   // (M Z) with bias
      auto logits = at::matmul(mz, w) * fc.beta;
      double ce = (at::logsumexp(logits, 1) - logits.gather(1, yv.view({-1, 1})).squeeze(1)).mean().item<double>();
      CHECK(got[i].item<double>() == doctest::Approx(-ce).epsilon(1e-4));
    }
  }
  SUBCASE("the M(ZW) shortcut equals (MZ)W") {
    auto r = repsearch::detail::ridge_readout(pop, syn.data.y_search, 3, 1e-3);
    auto m = at::randn({7, n}, g, F32);
    auto w = std::get<0>(at::linalg_lstsq(pop[1], r.zw[1]));  // recover W from ZW (Z has full column rank)
    auto direct = at::matmul(at::matmul(m, pop[1]), w);
    auto shortcut = at::matmul(m, r.zw[1]);
    CHECK(at::allclose(direct, shortcut, 1e-3, 1e-3));
  }
  SUBCASE("a one-hot Z scores far above a random Z; scores are finite") {
    auto good = fit.score(onehot_pop(syn.data.y_search, 3, d, 2, 1), rows);
    auto bad = fit.score(pop, rows);
    CHECK(at::isfinite(good).all().item<bool>());
    CHECK(at::isfinite(bad).all().item<bool>());
    CHECK(good.min().item<double>() > bad.max().item<double>() + 0.2);
    CHECK(fit.heldout(onehot_pop(syn.data.y_search, 3, d, 1, 2)).item<double>() > fit.heldout(pop).max().item<double>());
  }
  SUBCASE("NaN/Inf individuals score -inf and are counted") {
    auto broken = pop.clone();
    broken[1][3][0] = std::numeric_limits<float>::quiet_NaN();
    int64_t nonfinite = 0;
    auto s = fit.score(broken, rows, &nonfinite);
    CHECK(nonfinite == 1);
    CHECK(std::isinf(s[1].item<double>()));
    CHECK(std::isfinite(s[0].item<double>()));
  }
  SUBCASE("ridge-probe-learnable adds the LOO R^2 term") {
    FitnessConfig lc = fc;
    lc.name = "ridge-probe-learnable";
    lc.learnable_weight = 1.0;
    auto learn = make_fitness(lc, syn.data);
    // A Z that is a function of the inputs (random features) is more learnable than noise.
    auto phi = make_random_features(5, 64, 99, at::kCPU)(syn.data.x_search).slice(1, 0, d);
    auto smooth = (phi - phi.mean(0)) / phi.std(0);
    auto pair = at::stack({smooth, pop[0]});
    auto delta = learn.score(pair, rows) - fit.score(pair, rows);  // = LOO R^2
    CHECK(delta[0].item<double>() > 0.5);
    CHECK(delta[1].item<double>() < 0.1);
    CHECK(delta[0].item<double>() <= 1.0);
  }
  SUBCASE("unknown fitness names are refused with the known ones") {
    FitnessConfig bad = fc;
    bad.name = "nope";
    CHECK_THROWS_WITH_AS(make_fitness(bad, syn.data), doctest::Contains("ridge-probe-learnable"), OptionError);
  }
}

namespace {
// One island's world: 150 search rows of 6-d synthetic inputs in 3 classes, 64 features; P 8, d 4.
struct IslandWorld {
  Synthetic syn{150, 100, 100, 6, 3, 31};
  Fitness fit = make_fitness([] { FitnessConfig fc; fc.features = 64; return fc; }(), syn.data);
  SearchConfig sc = [] { SearchConfig c; c.population = 8; c.dim = 4; c.seed = 3; return c; }();
};
}  // namespace

TEST_CASE("one island searches") {
  IslandWorld w;
  const auto& syn = w.syn;
  const auto& fit = w.fit;
  auto& sc = w.sc;
  sc.val_batch = 50;
  auto ctx = make_search_context(syn.data.x_search, syn.data.y_search, 3, 100, sc);

  SUBCASE("same seed, same search; different seed differs") {
    auto run = [&](uint64_t seed) {
      SearchConfig c = sc;
      c.seed = seed;
      auto s = init_island(0, c, ctx, fit);
      auto algo = make_algorithm(c);
      for (int i = 0; i < 5; ++i) algo->step(s, fit, ctx);
      return s;
    };
    auto a = run(3), b = run(3), c = run(4);
    CHECK(at::equal(a.population, b.population));
    CHECK(a.uid == b.uid);
    CHECK_FALSE(at::equal(a.population, c.population));
    CHECK(a.generation == 5);
    CHECK(a.evaluations == 8 + 5 * 16);
  }
  SUBCASE("with the whole V pool each generation, parents are not scored twice") {
    SearchConfig c = sc;
    c.val_batch = 100;  // = |V|
    auto s = init_island(0, c, ctx, fit);
    auto algo = make_algorithm(c);
    for (int i = 0; i < 3; ++i) algo->step(s, fit, ctx);
    CHECK(s.evaluations == 8 + 3 * 8);
    CHECK(at::equal(minibatch_rows(c, 100, 0, 1), at::arange(100, at::TensorOptions().dtype(at::kLong))));
    auto rescored = fit.score(s.population, at::arange(100, at::TensorOptions().dtype(at::kLong)));
    CHECK(at::allclose(rescored, s.fitness, 1e-9, 1e-9));  // the stored scores are the scores
  }
  SUBCASE("generational elitism keeps the best") {
    SearchConfig c = sc;
    c.replacement = "generational";
    c.elitism = 2;
    auto s = init_island(0, c, ctx, fit);
    auto algo = make_algorithm(c);
    for (int i = 0; i < 3; ++i) {
      // The parents are re-scored on the step's minibatch; the best of them must survive.
      auto rows = minibatch_rows(c, ctx.val_pool, 0, s.generation + 1);
      auto rescored = fit.score(s.population, rows);
      auto best = s.population[rescored.argmax().item<int64_t>()].clone();
      algo->step(s, fit, ctx);
      CHECK((s.population - best.unsqueeze(0)).abs().amax({1, 2}).eq(0).any().item<bool>());
    }
  }
  SUBCASE("the label start and DE run; de needs 4 individuals") {
    SearchConfig c = sc;
    c.init = "labels";
    c.dim = 4;
    c.algorithm = "de";
    auto s = init_island(1, c, ctx, fit);
    auto algo = make_algorithm(c);
    CHECK(at::isfinite(s.fitness).all().item<bool>());
    // DE replaces a slot only by its own trial when the trial scores better on the step's minibatch:
    // no slot gets worse than its parent on that minibatch, and a kept parent is unchanged.
    const auto parents = s.population.clone();
    const auto parent_uid = s.uid;
    const auto before = fit.score(parents, minibatch_rows(c, ctx.val_pool, 1, s.generation + 1));
    algo->step(s, fit, ctx);
    CHECK(s.population.sizes() == at::IntArrayRef({8, 150, 4}));
    CHECK((s.uid[0] >> 40) == 1u);
    int replaced = 0;
    for (int64_t i = 0; i < 8; ++i) {
      const auto slot = static_cast<size_t>(i);
      const double now = s.fitness[i].item<double>(), was = before[i].item<double>();
      if (s.uid[slot] == parent_uid[slot]) {
        CHECK(at::equal(s.population[i], parents[i]));
        CHECK(now == doctest::Approx(was).epsilon(1e-9));
      } else {
        ++replaced;
        CHECK((s.uid[slot] >> 40) == 1u);
        CHECK(now > was);
        CHECK_FALSE(at::equal(s.population[i], parents[i]));
      }
    }
    CHECK(s.fitness.max().item<double>() >= before.max().item<double>() - 1e-9);
    MESSAGE("de: ", replaced, " of 8 slots took their trial");
    c.population = 3;
    auto small = init_island(1, c, ctx, fit);
    CHECK_THROWS_AS(make_algorithm(c)->step(small, fit, ctx), Error);
  }
  SUBCASE("immigrants replace the worst and are aligned") {
    auto s = init_island(0, sc, ctx, fit);
    auto worst = s.fitness.argmin().item<int64_t>();
    auto best = s.population[s.best_index()].clone();
    auto rot = random_orthogonal(4, 8).to(at::kFloat);
    receive_migrants(s, at::matmul(best, rot).unsqueeze(0), {9.0}, {12345}, /*align=*/true);
    CHECK(s.uid[worst] == 12345u);
    CHECK(at::allclose(s.population[worst], best, 1e-4, 1e-4));
  }
}

TEST_CASE("diversity: DNS scores, distances and far-apart choice on hand-made inputs") {
  SUBCASE("DNS competition equals hand-computed values; the fittest gets +inf") {
    // fitness: 0 is fittest, then 1, 2, 3 (3 ties with nobody)
    auto f = at::tensor({4.0, 3.0, 2.0, 1.0}, F64);
    auto d = at::tensor({0.0, 0.2, 0.5, 0.9,  //
                         0.2, 0.0, 0.4, 0.1,  //
                         0.5, 0.4, 0.0, 0.3,  //
                         0.9, 0.1, 0.3, 0.0}, F64).view({4, 4});
    auto c = dns_competition(f, d, 2);
    CHECK(std::isinf(c[0].item<double>()));
    CHECK(c[1].item<double>() == doctest::Approx(0.2));                // only 0 is fitter
    CHECK(c[2].item<double>() == doctest::Approx((0.5 + 0.4) / 2));   // 0 and 1
    CHECK(c[3].item<double>() == doctest::Approx((0.1 + 0.3) / 2));   // nearest two of 0, 1, 2
    auto c1 = dns_competition(f, d, 1);
    CHECK(c1[3].item<double>() == doctest::Approx(0.1));
    // Survivors of 2: the fittest, then the most novel (2, at 0.45), not the second fittest (1, 0.2).
    auto keep = dns_survivors(f, d, 2, 2);
    CHECK(keep[0].item<int64_t>() == 0);
    CHECK(keep[1].item<int64_t>() == 2);
    // Equal top fitness: both have no fitter individual, both survive.
    auto tie = dns_survivors(at::tensor({1.0, 1.0, 0.5}, F64), at::zeros({3, 3}, F64), 3, 2);
    CHECK(std::vector<int64_t>{tie[0].item<int64_t>(), tie[1].item<int64_t>()} == std::vector<int64_t>{0, 1});
    CHECK_THROWS_AS(dns_competition(f, d, 0), Error);
    CHECK_THROWS_AS(dns_competition(f, d.slice(0, 0, 3), 2), Error);
  }
  SUBCASE("the fittest always survives, whatever the distances") {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      auto g = make_generator(seed, Stream::init);
      auto f = at::randn({12}, g, F64);
      auto x = at::rand({12, 12}, g, F64);
      auto d = (x + x.t()).fill_diagonal_(0.0);
      auto keep = dns_survivors(f, d, 3, 4);
      CHECK((keep == f.argmax()).any().item<bool>());
    }
  }
  SUBCASE("CKA on probe rows: equals linear_cka on those rows; rotations are at distance 0") {
    auto g = make_generator(5, Stream::init);
    auto x = at::randn({3, 40, 5}, g, F32);
    auto cross = cka_cross(x, x);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) CHECK(cross[i][j].item<double>() == doctest::Approx(linear_cka(x[i], x[j])).epsilon(1e-4));
    auto rotated = at::matmul(x[0], random_orthogonal(5, 3).to(at::kFloat)) * 3.0;
    auto d = cka_distance_matrix(at::stack({x[0], rotated}));
    CHECK(d[0][1].item<double>() == doctest::Approx(0.0).epsilon(1e-5));
    auto rows = diversity_probe_rows(100, 10, 7);
    CHECK(rows.numel() == 10);
    CHECK(at::equal(rows, diversity_probe_rows(100, 10, 7)));
    CHECK(at::equal(diversity_probe_rows(5, 10, 7), at::arange(5, at::TensorOptions().dtype(at::kLong))));
  }
  SUBCASE("disagreement and mean pairwise distance") {
    auto p = at::tensor({0, 1, 2, 3, 0, 1, 2, 0, 0, 1, 1, 1}, at::TensorOptions().dtype(at::kLong)).view({3, 4});
    auto d = disagreement_matrix(p);
    CHECK(d[0][1].item<double>() == doctest::Approx(0.25));
    CHECK(d[0][2].item<double>() == doctest::Approx(0.5));
    CHECK(d[1][2].item<double>() == doctest::Approx(0.5));
    CHECK(d[2][1].item<double>() == doctest::Approx(0.5));
    CHECK(d[1][1].item<double>() == 0.0);
    CHECK(mean_pairwise(d) == doctest::Approx((0.25 + 0.5 + 0.5) / 3));
  }
  SUBCASE("furthest apart: max-min choice from the first") {
    // points on a line at 0, 1, 5, 6, 10: from 0 take 10, then 5 (min distance 5), then 1 or 6 (1: earlier)
    std::vector<double> at_ = {0, 1, 5, 6, 10};
    auto v = at::tensor(at_, F64);
    auto d = (v.unsqueeze(0) - v.unsqueeze(1)).abs();
    CHECK(furthest_apart(d, 4) == std::vector<int64_t>{0, 4, 2, 1});
    CHECK(furthest_apart(d, 9).size() == 5);
  }
}

TEST_CASE("quality-diversity selection in one island") {
  IslandWorld w;
  const auto& syn = w.syn;
  const auto& fit = w.fit;
  auto& sc = w.sc;
  sc.val_batch = 100;  // the whole pool: scores comparable across generations
  sc.selection = "dns";
  sc.diversity_probe = 64;
  auto ctx = make_search_context(syn.data.x_search, syn.data.y_search, 3, 100, sc);
  CHECK(ctx.probe.numel() == 64);
  for (const char* distance : {"cka", "disagreement"}) {
    CAPTURE(distance);
    SearchConfig c = sc;
    c.qd_distance = distance;
    auto s = init_island(0, c, ctx, fit);
    auto algo = make_algorithm(c);
    double best = s.fitness.max().item<double>();
    for (int g = 0; g < 6; ++g) {
      algo->step(s, fit, ctx);
      // The fittest of parents + trials survives: the best score never falls on the same rows.
      CHECK(s.fitness.max().item<double>() >= best);
      best = s.fitness.max().item<double>();
      record_history(s, fit, c, ctx);
    }
    // The stored scores and predictions are those of the population.
    auto rows = at::arange(100, at::TensorOptions().dtype(at::kLong));
    at::Tensor pred;
    auto rescored = fit.score(s.population, rows, nullptr, &pred);
    // float32 products batched differently (trials vs the whole population): equal to ~1e-7
    CHECK(at::allclose(rescored, s.fitness, 1e-6, 1e-6));
    REQUIRE(s.predictions.defined());
    CHECK(at::equal(pred, s.predictions));
    const auto& h = s.history.back();
    CHECK(h.diversity >= 0.0);
    CHECK(h.disagreement >= 0.0);
    CHECK(h.disagreement <= 1.0);
    auto again = init_island(0, c, ctx, fit);
    for (int g = 0; g < 6; ++g) algo->step(again, fit, ctx);
    CHECK(at::equal(again.population, s.population));  // same seed, same search
  }
  SUBCASE("island repulsion lowers the rank of individuals like the references") {
    auto s = init_island(0, sc, ctx, fit);
    SearchConfig c = sc;
    c.island_repulsion = 1.0;
    CHECK(at::equal(repelled(s, s.population, s.fitness, c, ctx), s.fitness));  // no references yet
    receive_references(s, s.population.slice(0, 0, 1), ctx);
    REQUIRE(s.foreign.sizes() == at::IntArrayRef({1, 64, 4}));
    auto r = repelled(s, s.population, s.fitness, c, ctx);
    // Individual 0 is the reference itself: penalised by the full weight (CKA 1).
    CHECK(r[0].item<double>() == doctest::Approx(s.fitness[0].item<double>() - 1.0).epsilon(1e-6));
    CHECK((r <= s.fitness + 1e-12).all().item<bool>());
  }
  SUBCASE("bad options are refused") {
    SearchConfig c = sc;
    c.selection = "novelty";
    CHECK_THROWS_WITH_AS(make_algorithm(c), doctest::Contains("dns"), Error);
    c = sc;
    c.algorithm = "de";
    CHECK_THROWS_AS(make_algorithm(c), Error);
    c = sc;
    c.qd_distance = "l2";
    CHECK_THROWS_AS(make_algorithm(c), Error);
  }
}

TEST_CASE("scale: blocked set-up equals the one-shot computation") {
  SUBCASE("blocked kNN gives the dense search's neighbours") {
    auto g = make_generator(31, Stream::init);
    auto x = at::randn({301, 20}, g, F32);
    auto sq = x.pow(2).sum(1);
    auto dist = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * at::matmul(x, x.t());
    dist.fill_diagonal_(std::numeric_limits<float>::infinity());
    auto dense = std::get<1>(dist.topk(7, 1, /*largest=*/false));
    for (int64_t rows : {1, 7, 64, 300, 301, 0}) {
      auto blocked = nearest_neighbours(x, 7, rows);
      REQUIRE(blocked.sizes() == dense.sizes());
      // the same sets (order within ties aside): sort each row
      CHECK_MESSAGE(at::equal(std::get<0>(blocked.sort(1)), std::get<0>(dense.sort(1))), "rows per block ", rows);
      CHECK(!blocked.eq(at::arange(301, at::TensorOptions().dtype(at::kLong)).unsqueeze(1)).any().item<bool>());
    }
    CHECK(block_rows(60000, 4 * 60000) < 60000);  // the default budget blocks a whole training set
    CHECK(block_rows(3000, 4 * 3000) == 3000);     // and leaves the default search size in one block
  }
  SUBCASE("ridge-probe scores do not depend on the set-up's row blocks") {
    Synthetic syn(150, 80, 60, 5, 3, 22);
    FitnessConfig one;
    one.features = 40;
    one.seed = 9;
    FitnessConfig blocked = one;
    blocked.setup_rows = 17;  // 150 = 8 x 17 + 14: a short last block too
    auto g = make_generator(8, Stream::init);
    auto pop = at::randn({4, 150, 6}, g, F32);
    auto rows = at::arange(0, 50, at::TensorOptions().dtype(at::kLong));
    for (const char* name : {"ridge-probe", "ridge-probe-learnable"}) {
      one.name = blocked.name = name;
      auto a = make_fitness(one, syn.data), b = make_fitness(blocked, syn.data);
      CHECK_MESSAGE(at::allclose(a.score(pop, rows), b.score(pop, rows), 1e-5, 1e-6), name);
      CHECK_MESSAGE(at::allclose(a.heldout(pop), b.heldout(pop), 1e-5, 1e-6), name);
    }
  }
  SUBCASE("smoother_extend is the fitness's kernel-ridge smoother applied to Z") {
    Synthetic syn(90, 40, 30, 5, 3, 23);
    FitnessConfig fc;
    fc.features = 24;
    fc.seed = 4;
    fc.setup_rows = 13;
    auto g = make_generator(12, Stream::init);
    auto z = at::randn({90, 6}, g, F32);
    auto got = smoother_extend(fc, syn.data.x_search, z, syn.data.x_val);
    auto phi = make_random_features(5, fc.features, fc.seed, at::kCPU);
    auto ps = phi(syn.data.x_search).to(at::kDouble), pq = phi(syn.data.x_val).to(at::kDouble);
    auto gram = at::matmul(ps.t(), ps);
    const double lam = fc.lambda * gram.trace().item<double>() / static_cast<double>(ps.size(1));
    auto want = at::matmul(pq, at::matmul(at::linalg_inv(gram + lam * at::eye(ps.size(1), F64)),
                                          at::matmul(ps.t(), z.to(at::kDouble))));
    CHECK(got.sizes() == at::IntArrayRef({40, 6}));
    CHECK(at::allclose(got.to(at::kDouble), want, 1e-4, 1e-5));
    CHECK_THROWS_AS(smoother_extend(fc, syn.data.x_search, z.slice(0, 0, 10), syn.data.x_val), Error);
  }
  SUBCASE("search-size all takes every example outside V and H") {
    SplitSizes s;
    s.search = SplitSizes::kAll;
    s.val = 2000;
    s.heldout = 2000;
    auto sp = make_splits(60000, s, 3);
    CHECK(sp.search.numel() == 56000);
    auto all = at::cat({sp.search, sp.val, sp.heldout});
    CHECK(std::get<0>(all.sort()).equal(at::arange(60000, at::TensorOptions().dtype(at::kLong))));
    s.val = 30000;
    s.heldout = 30000;
    CHECK_THROWS_WITH_AS(make_splits(60000, s, 3), doctest::Contains("leaves no examples"), Error);
  }
  SUBCASE("the memory plan counts the populations and grows linearly in n_s") {
    SearchConfig c;
    MemoryPlanInput in;
    in.n_search = 56000;
    in.n_val = in.n_heldout = 2000;
    in.input_dim = 784;
    in.islands_here = 2;
    in.islands_total = 4;
    in.writer = true;
    auto plan = plan_search_memory(c, in);
    CHECK(plan.items.front().bytes == doctest::Approx(2.0 * 32 * 56000 * 64 * 4 * 2));
    MemoryPlanInput twice = in;
    twice.n_search = 112000;
    // every item but the fixed ones at most doubles: no n x n term anywhere
    CHECK(plan_search_memory(c, twice).total() < 2.0 * plan.total());
    CHECK(plan.table().find("total") != std::string::npos);
  }
}
