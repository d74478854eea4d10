// Benchmark 5 (peers): the repsearch search problem run by pagmo2, for wall time and evaluations/s
// against `repsearch search` on the same data, fitness, population and generations.
//
// The pagmo problem's decision vector is a representation Z [n_s, d] flattened row-major; its
// fitness is -score of repsearch's own `ridge-probe` (make_fitness) on ALL |V| validation rows (a
// pagmo fitness must be a pure function, so compare with `repsearch search --val-batch |V|`).
// `batch_fitness` scores many decision vectors in one call of the batched scorer; pagmo uses it only
// through a bfe, i.e. for algorithms that accept one (pso_gen here; sga and de have no bfe hook in
// pagmo 2.18, they call fitness() once per individual).
//
// Islands: a pagmo::archipelago of thread_islands, each evolved one generation per evolve() call so a
// log line can be written per generation; migration (default policies: best 1 emigrant, fair
// replacement of the worst) happens on a ring every --migration-interval generations by switching the
// archipelago topology between ring and unconnected. Initial populations are repsearch's own
// (init_island, same seed), so pagmo starts where `repsearch search` starts.
//
//   pagmo_search [--data-dir DIR] [--dataset fashion-mnist] [--seed S] [--search-size n_s]
//                [--val-size V] [--heldout-size H] [--dim d] [--population P] [--islands I]
//                [--generations G] [--migration-interval K] [--threads T]
//                [--algorithm sga|pso_gen] [--bfe 0|1] [--mutation-rate m] [--sigma s]
//                [--crossover c] [--crossover-type single|binomial|exponential] [--bound B]
//                [--features p] [--lambda l] [--readout-ridge r] [--beta b]
// Output: one line per generation,
//   [peer] gen G wall SECONDS evals N best_val SCORE heldout SCORE
// (scores are repsearch's: -mean CE, higher is better; wall counts from the end of generation 0).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <pagmo/algorithm.hpp>
#include <pagmo/algorithms/pso_gen.hpp>
#include <pagmo/algorithms/sga.hpp>
#include <pagmo/archipelago.hpp>
#include <pagmo/bfe.hpp>
#include <pagmo/island.hpp>
#include <pagmo/islands/thread_island.hpp>
#include <pagmo/population.hpp>
#include <pagmo/problem.hpp>
#include <pagmo/threading.hpp>
#include <pagmo/topologies/ring.hpp>
#include <pagmo/topologies/unconnected.hpp>
#include <pagmo/topology.hpp>
#include <pagmo/types.hpp>

#include "repsearch/core/data.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/core/search.hpp"
#include "repsearch/io/dataset.hpp"

using namespace repsearch;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_seconds(clockid_t clock) {  // CLOCK_THREAD_CPUTIME_ID or CLOCK_PROCESS_CPUTIME_ID
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void set_threads(int threads) {
  at::set_num_threads(threads);
  using setter = void (*)(int);
  if (auto f = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
}

// What every copy of the problem shares (pagmo copies the UDP into each island and each evolve).
struct Shared {
  Fitness fitness;
  at::Tensor val_rows;  // all of V, in order: a fixed validation set
  std::int64_t n = 0, d = 0;
  double bound = 8.0;
  int threads = 1;
  std::atomic<std::int64_t> evaluations{0}, fitness_calls{0}, batch_calls{0};
  std::atomic<std::int64_t> fitness_ns{0};  // CPU time inside fitness()/batch_fitness(), all threads
  Shared(Fitness f, at::Tensor rows, std::int64_t n_, std::int64_t d_, double b, int t)
      : fitness(std::move(f)), val_rows(std::move(rows)), n(n_), d(d_), bound(b), threads(t) {}
};

void ensure_thread_settings(int threads) {
  // pagmo runs each island on its own thread; OpenMP's thread count is a per-thread setting.
  thread_local bool done = false;
  if (!done) {
    at::set_num_threads(threads);
    done = true;
  }
}

// The pagmo UDP: minimise -ridge-probe(Z) on all of V.
struct RepresentationProblem {
  std::shared_ptr<Shared> s;

  RepresentationProblem() = default;  // pagmo requires it; never evaluated
  explicit RepresentationProblem(std::shared_ptr<Shared> shared) : s(std::move(shared)) {}

  at::Tensor as_population(const double* x, std::int64_t count) const {
    // from_blob does not copy; .to(kFloat) does, so the tensor owns its data.
    return at::from_blob(const_cast<double*>(x), {count, s->n, s->d}, at::TensorOptions().dtype(at::kDouble))
        .to(at::kFloat)
        .contiguous();
  }

  pagmo::vector_double fitness(const pagmo::vector_double& x) const {
    ensure_thread_settings(s->threads);
    const double t = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    auto score = s->fitness.score(as_population(x.data(), 1), s->val_rows);
    pagmo::vector_double out{-score[0].item<double>()};
    s->fitness_ns += static_cast<std::int64_t>((cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t) * 1e9);
    s->evaluations += 1;
    s->fitness_calls += 1;
    return out;
  }

  // pagmo's batch-fitness hook: dvs is count decision vectors back to back.
  pagmo::vector_double batch_fitness(const pagmo::vector_double& dvs) const {
    ensure_thread_settings(s->threads);
    const auto len = s->n * s->d;
    const auto count = static_cast<std::int64_t>(dvs.size()) / len;
    pagmo::vector_double out(static_cast<std::size_t>(count));
    if (count == 0) return out;
    const double t = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    auto score = s->fitness.score(as_population(dvs.data(), count), s->val_rows).contiguous();
    auto acc = score.accessor<double, 1>();
    for (std::int64_t i = 0; i < count; ++i) out[static_cast<std::size_t>(i)] = -acc[i];
    s->fitness_ns += static_cast<std::int64_t>((cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t) * 1e9);
    s->evaluations += count;
    s->batch_calls += 1;
    return out;
  }

  std::pair<pagmo::vector_double, pagmo::vector_double> get_bounds() const {
    const auto len = static_cast<std::size_t>(s->n * s->d);
    return {pagmo::vector_double(len, -s->bound), pagmo::vector_double(len, s->bound)};
  }
  std::string get_name() const { return "repsearch ridge-probe on all of V"; }
  pagmo::thread_safety get_thread_safety() const { return pagmo::thread_safety::basic; }
};

struct Args {
  std::string dataset = "fashion-mnist", data_dir, algorithm = "sga", crossover_type = "single";
  std::uint64_t seed = 0;
  std::int64_t search = 1000, val = 2000, heldout = 2000, dim = 32, population = 16, islands = 2,
               generations = 30, migration_interval = 10, features = 2048;
  int threads = 1;
  bool bfe = true;
  double mutation_rate = 0.02, sigma = 0.3, crossover = 0.1, bound = 8.0, lambda = 0.1, readout_ridge = 1e-3,
         beta = 10.0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pagmo_search: %s\n"
               "usage: pagmo_search [--data-dir DIR] [--dataset NAME] [--seed S] [--search-size n_s] [--val-size V]\n"
               "  [--heldout-size H] [--dim d] [--population P] [--islands I] [--generations G]\n"
               "  [--migration-interval K] [--threads T] [--algorithm sga|pso_gen] [--bfe 0|1]\n"
               "  [--mutation-rate m] [--sigma s] [--crossover c] [--crossover-type single|binomial|exponential]\n"
               "  [--bound B] [--features p] [--lambda l] [--readout-ridge r] [--beta b]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("help");
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) usage(("bad argument '" + k + "'").c_str());
    kv[k.substr(2)] = argv[++i];
  }
  auto take = [&](const char* key, auto& into) {
    auto it = kv.find(key);
    if (it == kv.end()) return;
    using T = std::decay_t<decltype(into)>;
    try {
      if constexpr (std::is_same_v<T, std::string>) into = it->second;
      else if constexpr (std::is_same_v<T, bool>) into = std::stoi(it->second) != 0;
      else if constexpr (std::is_same_v<T, double>) into = std::stod(it->second);
      else if constexpr (std::is_same_v<T, std::uint64_t>) into = std::stoull(it->second);
      else into = static_cast<T>(std::stoll(it->second));
    } catch (const std::exception&) {
      usage(("option --" + std::string(key) + ": cannot read '" + it->second + "'").c_str());
    }
    kv.erase(it);
  };
  take("dataset", a.dataset);
  take("data-dir", a.data_dir);
  take("algorithm", a.algorithm);
  take("crossover-type", a.crossover_type);
  take("seed", a.seed);
  take("search-size", a.search);
  take("val-size", a.val);
  take("heldout-size", a.heldout);
  take("dim", a.dim);
  take("population", a.population);
  take("islands", a.islands);
  take("generations", a.generations);
  take("migration-interval", a.migration_interval);
  take("features", a.features);
  take("threads", a.threads);
  take("bfe", a.bfe);
  take("mutation-rate", a.mutation_rate);
  take("sigma", a.sigma);
  take("crossover", a.crossover);
  take("bound", a.bound);
  take("lambda", a.lambda);
  take("readout-ridge", a.readout_ridge);
  take("beta", a.beta);
  if (!kv.empty()) usage(("unknown option --" + kv.begin()->first).c_str());
  if (a.algorithm != "sga" && a.algorithm != "pso_gen") usage("--algorithm must be sga or pso_gen");
  if (a.population < 2 || a.islands < 1 || a.generations < 0 || a.threads < 1 || a.bound <= 0)
    usage("--population >= 2, --islands >= 1, --generations >= 0, --threads >= 1, --bound > 0 expected");
  return a;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  set_threads(a.threads);
  const double t_start = now();

  // Data exactly as `repsearch search` prepares it (src/app/commands.cpp prepare()).
  auto ds = io::load_dataset(a.dataset, a.data_dir);
  SplitSizes sizes;
  sizes.search = a.search;
  sizes.val = a.val;
  sizes.heldout = a.heldout;
  auto splits = make_splits(ds.train_images.size(0), sizes, a.seed);
  auto standardiser = fit_standardiser(ds.train_images);
  FitnessData data;
  auto take = [&](const at::Tensor& idx, at::Tensor& x, at::Tensor& y) {
    x = standardiser.apply(ds.train_images.index_select(0, idx)).flatten(1).contiguous();
    y = ds.train_labels.index_select(0, idx);
  };
  take(splits.search, data.x_search, data.y_search);
  take(splits.val, data.x_val, data.y_val);
  take(splits.heldout, data.x_heldout, data.y_heldout);
  data.n_classes = ds.n_classes;

  FitnessConfig fc;
  fc.features = a.features;
  fc.lambda = a.lambda;
  fc.readout_ridge = a.readout_ridge;
  fc.beta = a.beta;
  fc.seed = a.seed;
  auto fitness = make_fitness(fc, data);

  SearchConfig sc;
  sc.population = a.population;
  sc.dim = a.dim;
  sc.seed = a.seed;
  sc.val_batch = a.val;  // all of V: the same function pagmo optimises
  auto ctx = make_search_context(data.x_search, data.y_search, data.n_classes, a.val, sc);

  const auto n = a.search, d = a.dim, len = n * d;
  auto shared = std::make_shared<Shared>(fitness, at::arange(a.val, at::TensorOptions().dtype(at::kLong)), n, d,
                                         a.bound, a.threads);
  pagmo::problem prob{RepresentationProblem{shared}};
  const double t_prepared = now();

  // Algorithm of every island (own seed per island).
  auto make_algorithm = [&](std::int64_t island) {
    const auto seed = static_cast<unsigned>(a.seed * 1000003ULL + static_cast<std::uint64_t>(island) + 1);
    if (a.algorithm == "sga") {
      // Per-gene Gaussian mutation: m = fraction of entries, width relative to (ub - lb) = 2B; columns of
      // Z are standardised, so sigma / 2B is sigma column-stds, like repsearch's gaussian operator.
      pagmo::sga algo(1u, a.crossover, 1.0, a.mutation_rate, a.sigma / (2.0 * a.bound), 2u, a.crossover_type,
                      "gaussian", "tournament", seed);
      return pagmo::algorithm{algo};
    }
    // pso_gen keeps its velocities across evolve(1) calls with memory = true; it is the single-objective
    // pagmo algorithm that evaluates through a bfe.
    pagmo::pso_gen algo(1u, 0.7298, 2.05, 2.05, 0.5, 5u, 2u, 4u, /*memory=*/true, seed);
    if (a.bfe) algo.set_bfe(pagmo::bfe{});
    return pagmo::algorithm{algo};
  };

  // Initial populations: repsearch's own generation 0 (random-features init) of each island.
  pagmo::archipelago archi{pagmo::topology{pagmo::unconnected{}}};
  std::int64_t clamped = 0;
  for (std::int64_t i = 0; i < a.islands; ++i) {
    auto st = init_island(i, sc, ctx, fitness);
    auto z = st.population.to(at::kDouble).contiguous();
    clamped += (z.abs() > a.bound).sum().item<std::int64_t>();
    z = z.clamp(-a.bound, a.bound);
    const double* p = z.data_ptr<double>();
    pagmo::population pop{prob};
    auto f = st.fitness.contiguous();
    for (std::int64_t j = 0; j < a.population; ++j)
      pop.push_back(pagmo::vector_double(p + j * len, p + (j + 1) * len), {-f[j].item<double>()});
    shared->evaluations += a.population;  // scored once by init_island, as in repsearch
    archi.push_back(pagmo::thread_island{}, make_algorithm(i), pop);
  }

  std::printf("[peer] pagmo %s: %s x %lld islands (thread_island), P=%lld, n_s=%lld, d=%lld, |V|=%lld, |H|=%lld, "
              "%d thread(s)/island, ring every %lld, bfe %s; fitness %s (%s)\n",
              a.algorithm.c_str(), a.algorithm == "sga" ? "sga(single-point crossover, gaussian mutation, tournament 2)"
                                                       : "pso_gen",
              (long long)a.islands, (long long)a.population, (long long)n, (long long)d, (long long)a.val,
              (long long)a.heldout, a.threads, (long long)a.migration_interval,
              a.algorithm == "pso_gen" && a.bfe ? "on" : "off (not used by this algorithm)", fitness.name().c_str(),
              fitness.parameters().c_str());
  if (clamped > 0) std::printf("[peer] note: %lld initial entries clamped to the bound %.1f\n", (long long)clamped, a.bound);
  std::printf("[peer] prepare %.2f s (data, fitness, search context)\n", t_prepared - t_start);

  const pagmo::topology ring{pagmo::ring{static_cast<std::size_t>(a.islands), 1.0}};
  const pagmo::topology none{pagmo::unconnected{}};
  const double t0 = now(), cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  shared->fitness_ns = 0;
  auto report = [&](std::int64_t g) {
    double best = -std::numeric_limits<double>::infinity(), held = -std::numeric_limits<double>::infinity();
    for (const auto& isl : archi) {
      auto pop = isl.get_population();
      const auto b = pop.best_idx();
      best = std::max(best, -pop.get_f()[b][0]);
      const auto& x = pop.get_x()[b];
      auto z = at::from_blob(const_cast<double*>(x.data()), {1, n, d}, at::TensorOptions().dtype(at::kDouble))
                   .to(at::kFloat);
      held = std::max(held, fitness.heldout(z)[0].item<double>());
    }
    std::printf("[peer] gen %lld wall %.3f evals %lld best_val %.5f heldout %.5f\n", (long long)g, now() - t0,
                (long long)shared->evaluations.load(), best, held);
    std::fflush(stdout);
  };
  report(0);
  for (std::int64_t g = 1; g <= a.generations; ++g) {
    // Immigration happens at the start of an island's evolve, from what its neighbours emitted at the end
    // of their previous one: open the ring for the generation after every K-th.
    const bool migrate = a.migration_interval > 0 && g > 1 && (g - 1) % a.migration_interval == 0;
    archi.set_topology(migrate ? ring : none);
    archi.evolve(1);
    archi.wait_check();
    report(g);
  }
  const double wall = now() - t0, cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  std::printf("[peer] done: %lld generations in %.3f s, %lld evaluations (%lld single fitness calls, %lld batch "
              "calls), %.1f evaluations/s; CPU %.3f s, of which %.3f s in the fitness (%.0f%%; the rest: "
              "pagmo's variation, copies, threads, and the held-out logging), %zu migrations; total process %.2f s\n",
              (long long)a.generations, wall, (long long)shared->evaluations.load(),
              (long long)shared->fitness_calls.load(), (long long)shared->batch_calls.load(),
              wall > 0 ? static_cast<double>(shared->evaluations.load() - a.islands * a.population) / wall : 0.0,
              cpu, shared->fitness_ns.load() * 1e-9, cpu > 0 ? 100.0 * shared->fitness_ns.load() * 1e-9 / cpu : 0.0,
              archi.get_migration_log().size(), now() - t_start);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pagmo_search: error: %s\n", e.what());
  return 1;
}
