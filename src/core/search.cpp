#include "repsearch/core/search.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/operators.hpp"
#include "repsearch/core/registry.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

using u64 = std::uint64_t;
const auto kCpuLong = at::TensorOptions().dtype(at::kLong);
const auto kCpuFloat = at::TensorOptions().dtype(at::kFloat);

u64 key(std::int64_t v) { return static_cast<u64>(v); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Standardise each column of every individual: the scale of Z is not a search variable.
at::Tensor standardise_columns(const at::Tensor& z) {
  return (z - z.mean(1, true)) / z.std(1, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-6);
}

template <class F>
void for_each_group(const at::Tensor& group_of, std::int64_t groups, F&& f) {
  for (std::int64_t g = 0; g < groups; ++g) {
    auto idx = group_of.eq(g).nonzero().squeeze(1);
    if (idx.numel() > 0) f(g, idx);
  }
}

void mark_new(IslandState& s, const at::Tensor& replaced_slots) {
  auto acc = replaced_slots.accessor<std::int64_t, 1>();
  for (std::int64_t i = 0; i < acc.size(0); ++i) {
    s.uid[acc[i]] = s.new_uid();
    s.born[acc[i]] = static_cast<std::int32_t>(s.generation);
  }
}

// The parents' scores on this generation's rows. A fresh minibatch needs new scores; with the whole
// V pool every generation the stored scores are already those (immigrants carry scores on the same
// rows), so the population is not scored twice.
// With `pred` (the fitness can predict): the parents' predictions on these rows, undefined when the
// stored scores were reused and no stored predictions exist.
at::Tensor rescore_parents(IslandState& s, const Fitness& fitness, const at::Tensor& rows, bool whole_pool,
                           at::Tensor* pred) {
  if (whole_pool && s.fitness.defined()) {
    if (pred) *pred = s.predictions;
    return s.fitness;
  }
  s.evaluations += s.population.size(0);
  return fitness.score(s.population, rows, &s.nonfinite, pred);
}

at::Tensor probe_of(const at::Tensor& pop, const SearchContext& ctx) { return pop.index_select(1, ctx.probe); }

// Steady replacement: trial i takes slot i when it scores better on the same minibatch. Returns
// which slots were replaced.
// `trial_key`/`parent_key` are what is compared (the fitness, or the fitness with island repulsion).
at::Tensor replace_if_better(IslandState& s, const at::Tensor& trials, const at::Tensor& trial_fit,
                             const at::Tensor& parent_fit, const at::Tensor& trial_key, const at::Tensor& parent_key,
                             const at::Tensor& trial_pred, const at::Tensor& parent_pred) {
  auto better = trial_key.gt(parent_key);
  auto slots = better.nonzero().squeeze(1);
  auto acc = slots.accessor<std::int64_t, 1>();
  for (std::int64_t i = 0; i < acc.size(0); ++i) s.population[acc[i]].copy_(trials[acc[i]]);  // one copy each
  mark_new(s, slots);
  s.fitness = at::where(better, trial_fit, parent_fit);
  s.predictions = trial_pred.defined() && parent_pred.defined() ? at::where(better.unsqueeze(1), trial_pred, parent_pred)
                                                                 : at::Tensor();
  return better;
}

// Dominated Novelty Search over parents + trials: the P best competition scores survive. In place:
// each surviving trial takes the slot of a parent that did not survive. Returns which trials survived.
at::Tensor dns_replace(IslandState& s, const at::Tensor& trials, const at::Tensor& trial_fit,
                       const at::Tensor& parent_fit, const at::Tensor& trial_pred, at::Tensor parent_pred,
                       const Fitness& fitness, const at::Tensor& rows, const SearchConfig& c, const SearchContext& ctx) {
  const auto P = s.population.size(0);
  at::Tensor distance;
  if (c.qd_distance == "disagreement") {
    if (!parent_pred.defined()) parent_pred = fitness.predict(s.population, rows);
    distance = disagreement_matrix(at::cat({parent_pred, trial_pred}));
  } else {
    distance = cka_distance_matrix(at::cat({probe_of(s.population, ctx), probe_of(trials, ctx)}));
  }
  auto fit = at::cat({parent_fit, trial_fit});
  auto key = at::cat({repelled(s, s.population, parent_fit, c, ctx), repelled(s, trials, trial_fit, c, ctx)});
  auto survivors = dns_survivors(key, distance, c.dns_k, P);
  auto alive = at::zeros({2 * P}, at::TensorOptions().dtype(at::kBool));
  alive.index_fill_(0, survivors, true);
  auto dead_parents = alive.slice(0, 0, P).logical_not().nonzero().squeeze(1);
  auto new_trials = alive.slice(0, P).nonzero().squeeze(1);
  auto dp = dead_parents.accessor<std::int64_t, 1>();
  auto nt = new_trials.accessor<std::int64_t, 1>();
  const bool preds = trial_pred.defined() && parent_pred.defined();
  at::Tensor pred = preds ? parent_pred.clone() : at::Tensor();
  s.fitness = parent_fit.clone();
  for (std::int64_t i = 0; i < dp.size(0); ++i) {
    const auto slot = dp[i], from = nt[i];
    s.population[slot].copy_(trials[from]);
    s.fitness[slot] = trial_fit[from];
    if (preds) pred[slot].copy_(trial_pred[from]);
  }
  mark_new(s, dead_parents);
  s.predictions = pred;
  return alive.slice(0, P).clone();
}

// A mutation operator: changes the rows it picks of the offspring `who` in place. Adding one is its
// function in src/core/operators.cpp and one line in mutations().
struct MutationArgs {
  at::Tensor& children;
  const at::Tensor& who;
  const at::Tensor& spread;  // per-column step scale of the offspring
  double sigma;
  const SearchConfig& c;
  const SearchContext& ctx;
  at::Generator& gen;
  at::Tensor rows(double fraction) const {
    const auto n = children.size(1);
    return ops::random_rows(who.size(0), n, ops::rows_for_fraction(fraction, n), gen);
  }
};
struct Mutation {
  const char* name;
  void (*apply)(const MutationArgs&);
};

const std::vector<Mutation>& mutations() {  // in operator_names() order
  static const std::vector<Mutation> table = {
      {"pull", [](const MutationArgs& a) {
         ops::class_pull_(a.children, a.who, a.rows(a.c.pull_fraction), a.spread, a.ctx.y_search, a.ctx.n_classes,
                          a.c.pull_alpha, a.c.pull_noise, a.gen);
       }},
      {"column", [](const MutationArgs& a) {
         ops::column_move_(a.children, a.who, a.spread, a.ctx.phi, a.c.column_scale, a.gen);
       }},
      {"gaussian", [](const MutationArgs& a) {
         ops::gaussian_rows_(a.children, a.who, a.rows(a.c.mutation_rate), a.spread, a.sigma, a.gen);
       }},
      {"knn", [](const MutationArgs& a) {
         ops::knn_smooth_(a.children, a.who, a.rows(a.c.knn_fraction), a.spread, a.ctx.neighbours, a.c.knn_noise, a.gen);
       }},
  };
  return table;
}

const Mutation& mutation(const std::string& name) { return registry::find(mutations(), name, "operators", "operator"); }

// Offspring from the operator set, one operator per offspring chosen by adaptive probabilities.
// Returns the offspring and the operator index of each.
std::pair<at::Tensor, at::Tensor> vary(const IslandState& s, const at::Tensor& parent_fit, const SearchConfig& c,
                                       const std::vector<const Mutation*>& operators, const SearchContext& ctx,
                                       at::Generator& gen, std::int64_t count) {
  const auto n = s.population.size(1);
  auto base_idx = ops::tournament(parent_fit, count, c.tournament, gen);
  auto dev = s.population.device();
  auto children = ops::pick(s.population, base_idx);  // the one copy: operators then work in place
  // Crossover: a subset of children mixes rows with a second tournament winner.
  auto cross = at::rand({count}, gen, kCpuFloat).lt(c.crossover).nonzero().squeeze(1);
  if (cross.numel() > 0) {
    auto mates = ops::pick(s.population, ops::tournament(parent_fit, cross.numel(), c.tournament, gen));
    auto firsts = ops::pick(children, cross);
    if (c.crossover_align) mates = procrustes_align(mates, firsts);
    auto take = at::rand({cross.numel(), n}, gen, kCpuFloat).lt(0.5);
    children.index_copy_(0, cross.to(dev), ops::crossover_rows(firsts, mates, take));
  }
  // Operator choice from floor-mixed success averages.
  const auto m = static_cast<std::int64_t>(operators.size());
  auto w = at::tensor(s.op_weights, at::TensorOptions().dtype(at::kDouble));
  auto probs = c.adapt_floor + (1.0 - c.adapt_floor * m) * w / w.sum().clamp_min(1e-12);
  auto op_of = at::multinomial(probs, count, /*replacement=*/true, gen);
  auto spread = ops::column_std(children);  // one pass for every operator's step sizes
  for_each_group(op_of, m, [&](std::int64_t g, const at::Tensor& who) {
    operators[static_cast<std::size_t>(g)]->apply({children, who, spread, s.sigma, c, ctx, gen});
  });
  return {children, op_of};
}

void adapt(IslandState& s, const SearchConfig& c, const at::Tensor& op_of, const at::Tensor& success) {
  for (std::size_t g = 0; g < s.op_weights.size(); ++g) {
    auto in = op_of.eq(static_cast<std::int64_t>(g));
    auto k = in.sum().item<std::int64_t>();
    if (k == 0) continue;
    double rate = (success & in).sum().item<double>() / static_cast<double>(k);
    s.op_weights[g] = c.adapt_memory * s.op_weights[g] + (1.0 - c.adapt_memory) * rate;
  }
  if (c.self_adapt) {  // 1/5 success rule
    double rate = success.to(at::kDouble).mean().item<double>();
    s.sigma = std::clamp(s.sigma * std::exp((rate - 0.2) / 0.8), c.sigma_min, c.sigma_max);
  }
}

// What every algorithm's generation starts with: the next generation's random stream and minibatch,
// and the parents' scores (and predictions, when the fitness can predict) on that minibatch.
struct GenerationStart {
  std::chrono::steady_clock::time_point t0;
  at::Generator gen;
  at::Tensor rows;
  bool track;
  at::Tensor parent_pred, parent_fit;
};

GenerationStart begin_generation(IslandState& s, const Fitness& fitness, const SearchConfig& c, const SearchContext& ctx) {
  GenerationStart g{std::chrono::steady_clock::now(), {}, {}, fitness.can_predict(), {}, {}};
  s.generation += 1;
  g.gen = make_generator(c.seed, Stream::variation, {key(s.island), key(s.generation)});
  g.rows = minibatch_rows(c, ctx.val_pool, s.island, s.generation);
  g.parent_fit = rescore_parents(s, fitness, g.rows, c.val_batch >= ctx.val_pool, g.track ? &g.parent_pred : nullptr);
  return g;
}

class GeneticAlgorithm final : public Algorithm {
 public:
  explicit GeneticAlgorithm(SearchConfig c) : c_(std::move(c)) {
    for (const auto& name : c_.operators) operators_.push_back(&mutation(name));  // unknown names fail here
  }
  std::string name() const override { return "ga"; }

  void step(IslandState& s, const Fitness& fitness, const SearchContext& ctx) const override {
    const auto P = s.population.size(0);
    auto st = begin_generation(s, fitness, c_, ctx);
    auto& [t0, gen, rows, track, parent_pred, parent_fit] = st;
    at::Tensor child_pred;
    auto [children, op_of] = vary(s, parent_fit, c_, operators_, ctx, gen, P);
    auto child_fit = fitness.score(children, rows, &s.nonfinite, track ? &child_pred : nullptr);
    s.evaluations += P;
    if (c_.selection == "dns") {
      adapt(s, c_, op_of, dns_replace(s, children, child_fit, parent_fit, child_pred, parent_pred, fitness, rows, c_, ctx));
    } else if (c_.replacement == "steady") {
      auto child_key = repelled(s, children, child_fit, c_, ctx);
      auto parent_key = repelled(s, s.population, parent_fit, c_, ctx);
      adapt(s, c_, op_of,
            replace_if_better(s, children, child_fit, parent_fit, child_key, parent_key, child_pred, parent_pred));
    } else {  // generational with elitism: the e best parents, then the best P - e children
      const auto e = std::min(c_.elitism, P);
      auto elite = std::get<1>(repelled(s, s.population, parent_fit, c_, ctx).topk(e));
      auto kept = std::get<1>(repelled(s, children, child_fit, c_, ctx).topk(P - e));
      auto next = at::cat({ops::pick(s.population, elite), ops::pick(children, kept)});
      std::vector<u64> uid;
      std::vector<std::int32_t> born;
      for (std::int64_t i = 0; i < e; ++i) {
        uid.push_back(s.uid[elite[i].item<std::int64_t>()]);
        born.push_back(s.born[elite[i].item<std::int64_t>()]);
      }
      for (std::int64_t i = 0; i < P - e; ++i) {
        uid.push_back(s.new_uid());
        born.push_back(static_cast<std::int32_t>(s.generation));
      }
      s.population = next;
      s.uid = uid;
      s.born = born;
      s.fitness = at::cat({parent_fit.index_select(0, elite), child_fit.index_select(0, kept)});
      s.predictions = parent_pred.defined() && child_pred.defined()
                          ? at::cat({parent_pred.index_select(0, elite), child_pred.index_select(0, kept)})
                          : at::Tensor();
      // Success: a child beat the parent slot it was drawn for (same minibatch).
      adapt(s, c_, op_of, child_fit.gt(parent_fit));
    }
    s.seconds += seconds_since(t0);
  }

 private:
  SearchConfig c_;
  std::vector<const Mutation*> operators_;  // c_.operators, resolved once
};

class DifferentialEvolution final : public Algorithm {
 public:
  explicit DifferentialEvolution(SearchConfig c) : c_(std::move(c)) {}
  std::string name() const override { return "de"; }

  void step(IslandState& s, const Fitness& fitness, const SearchContext& ctx) const override {
    const auto P = s.population.size(0), n = s.population.size(1);
    if (P < 4) fail_option("population", P, ">= 4 for de", "option population: de needs at least 4 individuals, found ", P);
    auto st = begin_generation(s, fitness, c_, ctx);
    auto& [t0, gen, rows, track, parent_pred, parent_fit] = st;
    at::Tensor trial_pred;
    // a, b, c distinct and != i: the first three entries of a random order of the others.
    auto keys = at::rand({P, P}, gen, kCpuFloat);
    keys.fill_diagonal_(2.0f);
    auto abc = std::get<1>(keys.topk(3, 1, /*largest=*/false));
    auto take = at::rand({P, n}, gen, kCpuFloat).lt(c_.de_cr);
    auto forced = at::randint(n, {P, 1}, gen, kCpuLong);  // at least one row from the mutant
    take.scatter_(1, forced, true);
    auto trials = ops::de_rand1bin(s.population, abc.select(1, 0), abc.select(1, 1), abc.select(1, 2), c_.de_f, take);
    auto trial_fit = fitness.score(trials, rows, &s.nonfinite, track ? &trial_pred : nullptr);
    s.evaluations += P;
    replace_if_better(s, trials, trial_fit, parent_fit, repelled(s, trials, trial_fit, c_, ctx),
                      repelled(s, s.population, parent_fit, c_, ctx), trial_pred, parent_pred);
    s.seconds += seconds_since(t0);
  }

 private:
  SearchConfig c_;
};

}  // namespace

double MemoryPlan::total() const {
  double t = 0;
  for (const auto& i : items) t += i.bytes;
  return t;
}

std::string MemoryPlan::table() const {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2);
  for (const auto& i : items) os << "  " << std::setw(8) << i.bytes / 1073741824.0 << " GiB  " << i.what << "\n";
  os << "  " << std::setw(8) << total() / 1073741824.0 << " GiB  total";
  return os.str();
}

MemoryPlan plan_search_memory(const SearchConfig& c, const MemoryPlanInput& in) {
  const double f4 = 4.0, n = static_cast<double>(in.n_search), d = static_cast<double>(c.dim),
               P = static_cast<double>(c.population), q = static_cast<double>(in.features + 1),
               m = static_cast<double>(in.n_val + in.n_heldout), C = static_cast<double>(in.n_classes);
  const double island = P * n * d * f4;
  // Steady replacement and DE hold parents and trials; generational briefly a third copy.
  const double copies = c.algorithm == "ga" && c.replacement == "generational" && c.selection != "dns" ? 3.0 : 2.0;
  MemoryPlan plan;
  auto add = [&](std::string what, double bytes, std::string lower) {
    plan.items.push_back({std::move(what), bytes, std::move(lower)});
  };
  add("populations: " + std::to_string(in.islands_here) + " island(s) x P x n_s x d float32 x " +
          std::to_string(static_cast<int>(copies)) + " (parents and trials)",
      static_cast<double>(in.islands_here) * island * copies, "--population, --dim, --search-size, or more ranks");
  add("fitness per evaluation batch: Z W and its GEMM operand, 2 x P x n_s x classes float32", 2.0 * P * n * C * f4,
      "--population, --search-size");
  add("smoother rows for V and H: (|V| + |H|) x n_s float32", m * n * f4, "--val-size, --heldout-size, --search-size");
  add("fitness set-up: features Gram q x q and (G + lambda I)^-1 phi^T of V, H in float64, one row block",
      q * q * 8.0 * 3.0 + q * m * 8.0 + 2.0 * static_cast<double>(block_rows(in.n_search, 8 * (in.features + 1))) * q * 8.0,
      "--features");
  if (in.learnable) add("ridge-probe-learnable basis: n_s x (features + 1) float32", n * q * f4, "--features, --search-size");
  add("inputs of S, V, H: (n_s + |V| + |H|) x D float32, twice while standardising",
      2.0 * (n + m) * static_cast<double>(in.input_dim) * f4, "--search-size");
  add("operators: 256 random features and " + std::to_string(c.knn_k) + " neighbours per row of S, one kNN block",
      n * 257.0 * f4 + n * static_cast<double>(c.knn_k) * 8.0 +
          2.0 * static_cast<double>(block_rows(in.n_search, 4 * in.n_search)) * n * f4,
      "--search-size, --knn-k");
  add("data set as loaded", in.dataset_bytes, "");
  if (in.writer && in.islands_total > in.islands_here)
    add("checkpoint gathers on rank 0: one other island at a time, packed and unpacked", 2.0 * island,
        "--population, --dim, --search-size");
  add("elite candidates gathered for the archive (rank 0: up to --elites per island)",
      in.writer ? static_cast<double>(in.islands_total) * std::min(static_cast<double>(in.elites), P) * n * d * f4 : 0.0,
      "--elites");
  add("LibTorch, MPI and the process itself (measured at the smallest run)", 0.35 * 1073741824.0, "");
  return plan;
}

namespace {
// Adding an algorithm: its class above and one line here.
using AlgorithmFactory = std::unique_ptr<Algorithm> (*)(const SearchConfig&);
const std::vector<std::pair<std::string, AlgorithmFactory>>& algorithms() {
  static const std::vector<std::pair<std::string, AlgorithmFactory>> table = {
      {"ga", [](const SearchConfig& c) -> std::unique_ptr<Algorithm> { return std::make_unique<GeneticAlgorithm>(c); }},
      {"de", [](const SearchConfig& c) -> std::unique_ptr<Algorithm> { return std::make_unique<DifferentialEvolution>(c); }},
  };
  return table;
}
}  // namespace

std::vector<std::string> algorithm_names() { return registry::names(algorithms()); }
std::vector<std::string> operator_names() { return registry::names(mutations()); }
std::vector<std::string> init_names() { return {"gaussian", "random-features", "labels"}; }

std::unique_ptr<Algorithm> make_algorithm(const SearchConfig& c) {
  const auto sel = selection_names(), dist = qd_distance_names();
  if (std::find(sel.begin(), sel.end(), c.selection) == sel.end())
    fail_option("selection", c.selection, "one of fitness, dns", "option selection: unknown selection '", c.selection,
                "'; known: fitness, dns");
  if (std::find(dist.begin(), dist.end(), c.qd_distance) == dist.end())
    fail_option("qd-distance", c.qd_distance, "one of cka, disagreement", "option qd-distance: unknown distance '",
                c.qd_distance, "'; known: cka, disagreement");
  if (c.selection == "dns" && c.algorithm != "ga")
    fail_option("selection", c.selection, "fitness with algorithm " + c.algorithm,
                "option selection: dns needs algorithm ga, found ", c.algorithm);
  if (c.dns_k < 1) fail_option("dns-k", c.dns_k, ">= 1");
  if (!(c.island_repulsion >= 0)) fail_option("island-repulsion", c.island_repulsion, ">= 0");
  return registry::find(algorithms(), c.algorithm, "algorithm", "algorithm").second(c);
}

std::int64_t IslandState::best_index() const { return fitness.argmax().item<std::int64_t>(); }

SearchContext make_search_context(const at::Tensor& x_search, const at::Tensor& y_search, std::int64_t n_classes,
                                  std::int64_t val_pool, const SearchConfig& c) {
  SearchContext ctx;
  ctx.x_search = x_search;
  ctx.y_search = y_search;
  ctx.n_classes = n_classes;
  ctx.val_pool = val_pool;
  // The operators' own features (stream keyed apart from the fitness's): 256 are plenty for directions.
  ctx.phi = make_random_features(x_search.size(1), 256, derive_seed(c.seed, Stream::operators), x_search.device())(x_search);
  // Blocked: the dense n x n distance matrix (and its temporaries) was 14.7 GB at n = 30,000.
  ctx.neighbours = nearest_neighbours(x_search, std::max<std::int64_t>(c.knn_k, 1));
  ctx.probe = diversity_probe_rows(x_search.size(0), std::max<std::int64_t>(c.diversity_probe, 1), c.seed)
                  .to(x_search.device());
  return ctx;
}

at::Tensor minibatch_rows(const SearchConfig& c, std::int64_t val_pool, std::int64_t island, std::int64_t generation) {
  // The whole pool, always in one order: scores stay comparable across generations.
  if (c.val_batch >= val_pool) return at::arange(val_pool, kCpuLong);
  auto gen = make_generator(c.seed, Stream::minibatch, {key(island), key(generation)});
  return at::randperm(val_pool, gen, kCpuLong).slice(0, 0, c.val_batch);
}

IslandState init_island(std::int64_t island, const SearchConfig& c, const SearchContext& ctx, const Fitness& fitness) {
  if (c.population < 2) fail_option("population", c.population, "at least 2");
  if (c.dim < 1) fail_option("dim", c.dim, "positive");
  IslandState s;
  s.island = island;
  s.sigma = c.sigma;
  s.op_weights.assign(c.operators.size(), 0.5);
  const auto P = c.population, n = ctx.x_search.size(0), d = c.dim;
  auto gen = make_generator(c.seed, Stream::init, {key(island)});
  auto dev = ctx.x_search.device();
  at::Tensor z;
  if (c.init == "gaussian") {
    z = at::randn({P, n, d}, gen, kCpuFloat).to(dev);
  } else if (c.init == "random-features") {  // phi_S R: a random input-predictable basis per individual
    auto r = at::randn({P, ctx.phi.size(1), d}, gen, kCpuFloat).to(dev);
    z = at::matmul(ctx.phi.unsqueeze(0), r);
  } else if (c.init == "labels") {  // one-hot columns + noise: the trivial reference target
    if (d < ctx.n_classes)
      fail_option("dim", d, detail::cat(">= ", ctx.n_classes, " for init=labels"), "option init: 'labels' needs dim >= n_classes (",
                  ctx.n_classes, "), found dim ", d);
    auto onehot = at::one_hot(ctx.y_search, d).to(at::kFloat);
    z = onehot.unsqueeze(0) + 0.1 * at::randn({P, n, d}, gen, kCpuFloat).to(dev);
  } else {
    fail_option("init", c.init, "one of gaussian, random-features, labels", "option init: unknown initialisation '",
                c.init, "'; known: gaussian, random-features, labels");
  }
  s.population = standardise_columns(z).contiguous();
  for (std::int64_t i = 0; i < P; ++i) {
    s.uid.push_back(s.new_uid());
    s.born.push_back(0);
  }
  auto t0 = std::chrono::steady_clock::now();
  s.fitness = fitness.score(s.population, minibatch_rows(c, ctx.val_pool, island, 0), &s.nonfinite,
                            fitness.can_predict() ? &s.predictions : nullptr);
  s.evaluations = P;
  s.seconds = seconds_since(t0);
  return s;
}

void record_history(IslandState& s, const Fitness& fitness, const SearchConfig& c, const SearchContext& ctx) {
  HistoryRow h;
  h.generation = s.generation;
  auto finite = s.fitness.masked_select(at::isfinite(s.fitness));
  if (finite.numel() > 0) {
    h.best = finite.max().item<double>();
    h.mean = finite.mean().item<double>();
    h.std = finite.std(/*unbiased=*/false).item<double>();
  } else {
    h.best = h.mean = -std::numeric_limits<double>::infinity();
  }
  const auto b = s.best_index();
  auto best = s.population.slice(0, b, b + 1);
  h.heldout = fitness.heldout(best, &s.nonfinite).item<double>();
  const auto P = s.population.size(0);
  auto gen = make_generator(c.seed, Stream::diversity, {key(s.island), key(s.generation)});
  auto sample = at::randperm(P, gen, kCpuLong).slice(0, 0, std::min<std::int64_t>(8, P));
  auto probe = ctx.probe.defined() ? ctx.probe : at::arange(s.population.size(1), kCpuLong).to(s.population.device());
  auto sampled = ops::pick(s.population, sample).index_select(1, probe);
  auto cka = cka_cross(sampled, best.index_select(1, probe));
  h.diversity = (1.0 - cka).mean().item<double>();
  h.disagreement = std::numeric_limits<double>::quiet_NaN();
  if (fitness.can_predict()) {
    auto who = at::cat({at::full({1}, b, kCpuLong), sample});
    at::Tensor pred;
    if (s.predictions.defined()) pred = s.predictions.index_select(0, who);
    else pred = fitness.predict(ops::pick(s.population, who), minibatch_rows(c, ctx.val_pool, s.island, s.generation));
    h.disagreement = pred.slice(0, 1).ne(pred.slice(0, 0, 1)).to(at::kDouble).mean().item<double>();
  }
  h.evaluations = s.evaluations;
  h.seconds = s.seconds;
  h.nonfinite = s.nonfinite;
  s.history.push_back(h);
}

void receive_references(IslandState& s, const at::Tensor& immigrants, const SearchContext& ctx) {
  if (immigrants.size(0) == 0) return;
  s.foreign = immigrants.to(s.population.device()).index_select(1, ctx.probe).to(at::kFloat).contiguous();
}

at::Tensor repelled(const IslandState& s, const at::Tensor& population, const at::Tensor& fitness,
                    const SearchConfig& c, const SearchContext& ctx) {
  if (c.island_repulsion <= 0 || !s.foreign.defined() || s.foreign.size(0) == 0) return fitness;
  auto similarity = cka_cross(probe_of(population, ctx), s.foreign).mean(1);
  return fitness - c.island_repulsion * similarity;
}

void receive_migrants(IslandState& s, const at::Tensor& immigrants, const std::vector<double>& fitness,
                      const std::vector<std::uint64_t>& uids, bool align) {
  const auto m = immigrants.size(0);
  if (m == 0) return;
  const auto P = s.population.size(0);
  if (m >= P) fail("migration: ", m, " immigrants would replace the whole island of ", P);
  auto dev = s.population.device();
  auto in = immigrants.to(dev);
  if (align) {
    auto best = s.population[s.best_index()];
    in = procrustes_align(in, best.unsqueeze(0).expand({m, best.size(0), best.size(1)}));
  }
  auto worst = std::get<1>(s.fitness.topk(m, 0, /*largest=*/false));  // ties: lowest fitness first
  s.population.index_copy_(0, worst.to(dev), in);
  auto acc = worst.accessor<std::int64_t, 1>();
  for (std::int64_t i = 0; i < m; ++i) {
    s.fitness[acc[i]].fill_(fitness[i]);
    s.uid[acc[i]] = uids[i];
    s.born[acc[i]] = static_cast<std::int32_t>(s.generation);
  }
  s.predictions = at::Tensor();  // the immigrants' are unknown
}

}  // namespace repsearch
