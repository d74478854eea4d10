// Benchmark 1 + 2 of bench/RESULTS.md: evaluations/s of the default fitness over a grid of
// (P, n_s, d), the GFLOP/s its dominant products reach as a fraction of plain torch::mm measured in
// the same run, and the split of a GA generation into fitness / variation / history.
// core only (LibTorch), so it also builds against a CUDA LibTorch: --device cuda.
//   bench_fitness [--device cpu|cuda] [--threads N] [--reps R] [--quick] [--profile GENERATIONS]
// --profile skips benchmark 1 and prints "# set-up done" to stderr when the generations start, so
// `perf record -D` can skip the set-up.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "repsearch/core/fitness.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/core/search.hpp"

using namespace repsearch;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void sync(const at::Device& d) {
  if (d.is_cuda()) at::zeros({1}, at::TensorOptions().device(d)).cpu();  // waits for the stream
}

template <class F>
double median_seconds(int reps, const at::Device& dev, F&& f) {
  f();  // warm-up
  sync(dev);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    f();
    sync(dev);
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// A fitness wrapper that accumulates the time spent scoring: the rest of a step is GA overhead.
struct Timed {
  Fitness inner;
  double* seconds;
  at::Device dev;
  at::Tensor score(const at::Tensor& p, const at::Tensor& r) const {
    double t0 = now();
    auto s = inner.score(p, r);
    sync(dev);
    *seconds += now() - t0;
    return s;
  }
  std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor& p, const at::Tensor& r) const {
    double t0 = now();
    at::Tensor pred;
    auto s = inner.score(p, r, nullptr, &pred);
    sync(dev);
    *seconds += now() - t0;
    return {s, pred};
  }
  at::Tensor heldout(const at::Tensor& p) const {
    double t0 = now();
    auto s = inner.heldout(p);
    *seconds += now() - t0;
    return s;
  }
  std::string name() const { return inner.name(); }
  std::string parameters() const { return inner.parameters(); }
};

FitnessData synthetic(std::int64_t n_s, std::int64_t n_v, std::int64_t n_h, std::int64_t D, const at::Device& dev) {
  auto g = make_generator(1, Stream::init);
  auto o = at::TensorOptions().dtype(at::kFloat);
  FitnessData f;
  f.x_search = at::randn({n_s, D}, g, o).to(dev);
  f.y_search = at::randint(10, {n_s}, g, o.dtype(at::kLong)).to(dev);
  f.x_val = at::randn({n_v, D}, g, o).to(dev);
  f.y_val = at::randint(10, {n_v}, g, o.dtype(at::kLong)).to(dev);
  f.x_heldout = at::randn({n_h, D}, g, o).to(dev);
  f.y_heldout = at::randint(10, {n_h}, g, o.dtype(at::kLong)).to(dev);
  f.n_classes = 10;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  int threads = 0, reps = 5;
  bool quick = false;
  int profile = 0;  // > 0: only the GA section, for that many generations (for perf record)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--profile") && i + 1 < argc) profile = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_fitness [--device cpu|cuda] [--threads N] [--reps R] [--quick] [--profile GENERATIONS]\n");
      return 2;
    }
  }
  if (threads > 0) at::set_num_threads(threads);
  const at::Device dev(device == "cuda" ? at::kCUDA : at::kCPU);
  const std::int64_t D = 784, C = 10, b = 512;
  std::printf("# bench_fitness: device %s, %d intra-op threads, median of %d reps\n", device.c_str(),
              at::get_num_threads(), reps);

  // The GEMM reference, torch::mm on 1024^3 (and 2048^3 once, for the record). Each repetition times
  // the reference and then the fitness (after one untimed scoring, as the GA scores children that
  // variation has just written), and the table reports the median of the per-repetition ratios: on a
  // shared machine both halves of a pair see the same load.
  auto ga = at::randn({1024, 1024}, at::TensorOptions().device(dev)), gb = at::randn({1024, 1024}, at::TensorOptions().device(dev));
  auto timed = [&](auto&& f) {
    double t0 = now();
    f();
    sync(dev);
    return now() - t0;
  };
  {
    auto a = at::randn({2048, 2048}, at::TensorOptions().device(dev));
    double s2 = median_seconds(3, dev, [&] { at::mm(a, a); });
    double s1 = median_seconds(reps, dev, [&] { at::mm(ga, gb); });
    std::printf("# torch::mm alone: 2048^3 %.1f GFLOP/s, 1024^3 %.1f GFLOP/s\n\n", 2.0 * 2048 * 2048 * 2048 / s2 / 1e9,
                2.0 * 1024 * 1024 * 1024 / s1 / 1e9);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };

  std::printf("| P | n_s | d | s/evaluation of P | evaluations/s | dominant GFLOP | GFLOP/s | mm GFLOP/s (paired) | %% of mm |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::vector<double> phases;  // default size: ridge readout, whole score
  std::vector<std::int64_t> Ps = {16, 32, 64}, ns = {1000, 3000}, ds = {32, 64, 128};
  if (quick) Ps = {32}, ns = {3000}, ds = {64};
  if (profile > 0) ns.clear();
  for (auto n : ns) {
    auto data = synthetic(n, 2000, 2000, D, dev);
    FitnessConfig fc;
    auto fit = make_fitness(fc, data);
    auto rows = at::arange(b, at::TensorOptions().dtype(at::kLong));
    for (auto d : ds)
      for (auto P : Ps) {
        auto pop = at::randn({P, n, d}, at::TensorOptions().device(dev));
        // Gram Z^T Z, readout Z W, smoother M (Z W): the products whose cost grows with P.
        const double flops = 2.0 * P * n * d * d + 2.0 * P * n * d * C + 2.0 * b * n * P * C;
        const double mm_flops = 2.0 * 1024 * 1024 * 1024;
        fit.score(pop, rows);  // warm-up
        std::vector<double> t_fit, t_mm, ratio;
        for (int r = 0; r < reps; ++r) {
          t_mm.push_back(timed([&] { at::mm(ga, gb); }));
          fit.score(pop, rows);  // untimed: the timed call finds the population in cache, as after variation
          t_fit.push_back(timed([&] { fit.score(pop, rows); }));
          ratio.push_back((flops / t_fit.back()) / (mm_flops / t_mm.back()));
        }
        const double s = median(t_fit);
        if (P == 32 && n == 3000 && d == 64) {  // where the default size's time goes
          std::vector<double> t_ro;
          for (int r = 0; r < reps; ++r) {
            at::mm(ga, gb);
            fit.score(pop, rows);
            t_ro.push_back(timed([&] { repsearch::detail::ridge_readout(pop, data.y_search, C, fc.readout_ridge); }));
          }
          // The same scoring repeated back to back, against mm alone: the figure without the pairing.
          double alone = median_seconds(reps, dev, [&] { fit.score(pop, rows); });
          double mm_alone = median_seconds(reps, dev, [&] { at::mm(ga, gb); });
          phases = {median(t_ro), s, alone, mm_flops / mm_alone / 1e9, flops / alone / 1e9};
        }
        std::printf("| %lld | %lld | %lld | %.4f | %.0f | %.2f | %.1f | %.1f | %.0f%% |\n", (long long)P, (long long)n,
                    (long long)d, s, P / s, flops / 1e9, flops / s / 1e9, mm_flops / median(t_mm) / 1e9,
                    100.0 * median(ratio));
        std::fflush(stdout);
      }
  }

  if (!phases.empty()) {
    std::printf("\n# default size, paired medians: ridge readout (Gram + class sums + solve + Z W) %.1f ms, "
                "smoother GEMM + cross-entropy + the rest %.1f ms, whole score %.1f ms\n",
                1e3 * phases[0], 1e3 * (phases[1] - phases[0]), 1e3 * phases[1]);
    std::printf("# default size, unpaired: scoring back to back %.1f ms (%.1f GFLOP/s), mm alone %.1f GFLOP/s: %.0f%%\n",
                1e3 * phases[2], phases[4], phases[3], 100.0 * phases[4] / phases[3]);
  }

  // Benchmark 2: one island at the default sizes; where a generation's time goes, with fitness-only
  // and with DNS selection. The diversity measures of a history row (1 - CKA of the best and 8 others
  // on the probe rows, their prediction disagreement) are its time less the held-out score of the best.
  for (const char* selection : {"fitness", "dns"}) {
    const std::int64_t n = 3000, d = 64, P = 32;
    auto data = synthetic(n, 2000, 2000, D, dev);
    FitnessConfig fc;
    double fit_s = 0;
    Fitness timed{Timed{make_fitness(fc, data), &fit_s, dev}};
    SearchConfig sc;
    sc.population = P;
    sc.dim = d;
    sc.selection = selection;
    auto ctx = make_search_context(data.x_search, data.y_search, 10, 2000, sc);
    auto s = init_island(0, sc, ctx, timed);
    auto algo = make_algorithm(sc);
    algo->step(s, timed, ctx);  // warm-up
    const int G = profile > 0 ? profile : quick ? 5 : 10;
    if (profile > 0) std::fprintf(stderr, "# set-up done\n");
    double step_s = 0, hist_s = 0, fit_in_steps = 0, held_s = 0;
    for (int g = 0; g < G; ++g) {
      fit_s = 0;
      double t0 = now();
      algo->step(s, timed, ctx);
      sync(dev);
      step_s += now() - t0;
      fit_in_steps += fit_s;
      t0 = now();
      record_history(s, timed, sc, ctx);
      sync(dev);
      hist_s += now() - t0;
      const auto b = s.best_index();
      t0 = now();
      timed.heldout(s.population.slice(0, b, b + 1));
      sync(dev);
      held_s += now() - t0;
    }
    const double total = step_s + hist_s;
    const double div_s = std::max(0.0, hist_s - held_s);
    std::printf("\n# one island, selection=%s, P=%lld n_s=%lld d=%lld, probe %lld rows, %d generations (2P evaluations each)\n",
                selection, (long long)P, (long long)n, (long long)d, (long long)sc.diversity_probe, G);
    std::printf("| part | s/generation | share |\n|---|---|---|\n");
    std::printf("| fitness (2P scores, with predictions) | %.4f | %.0f%% |\n", fit_in_steps / G, 100 * fit_in_steps / total);
    std::printf("| selection + variation + replacement | %.4f | %.0f%% |\n", (step_s - fit_in_steps) / G,
                100 * (step_s - fit_in_steps) / total);
    std::printf("| history: held-out of the best | %.4f | %.0f%% |\n", held_s / G, 100 * held_s / total);
    std::printf("| history: diversity measures (CKA of 8 on the probe, disagreement) | %.4f | %.1f%% |\n", div_s / G,
                100 * div_s / total);
    std::printf("| total | %.4f | 100%% |\n", total / G);
    std::printf("evaluations/s of one island: %.0f\n", 2.0 * P * G / total);
    std::fflush(stdout);
  }
  return 0;
}
