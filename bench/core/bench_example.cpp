// The example space's throughput: candidate evaluations/s of one unit's search, layer by layer, and the
// share of its time outside the frozen network's forward passes (the genetic operators). core only
// (LibTorch), so it builds against a CUDA LibTorch too (bench/gpu/run.sh).
//   bench_example [--device cpu|cuda] [--threads N] [--width W] [--size 28|32] [--channels 1|3]
//                 [--classes C] [--examples B] [--parents k] [--exploratory e] [--refinement r]
//                 [--generations G] [--chunk N] [--layers all|block0,...] [--batchnorm identity|calibrated]
// Images are random (throughput does not depend on them); each searched layer runs G generations.
// Prints one line per layer and a total, as `key=value` fields for scripts.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/rng.hpp"

using namespace repsearch;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Args {
  std::string device = "cpu", layers = "all", batchnorm = "identity";
  int threads = 1;
  std::int64_t width = 32, size = 28, channels = 1, classes = 10, examples = 32, parents = 20, exploratory = 100,
               refinement = 120, generations = 5, chunk = 256;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    auto n = [&] { return std::atoll(v.c_str()); };
    if (k == "--device") a.device = v;
    else if (k == "--threads") a.threads = static_cast<int>(n());
    else if (k == "--width") a.width = n();
    else if (k == "--size") a.size = n();
    else if (k == "--channels") a.channels = n();
    else if (k == "--classes") a.classes = n();
    else if (k == "--examples") a.examples = n();
    else if (k == "--parents") a.parents = n();
    else if (k == "--exploratory") a.exploratory = n();
    else if (k == "--refinement") a.refinement = n();
    else if (k == "--generations") a.generations = n();
    else if (k == "--chunk") a.chunk = n();
    else if (k == "--layers") a.layers = v;
    else if (k == "--batchnorm") a.batchnorm = v;
    else {
      std::fprintf(stderr, "bench_example: unknown argument %s (see the comment at the top of bench/core/bench_example.cpp)\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

std::int64_t layer_index(const std::string& name) {
  const auto names = frozen_layer_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<std::int64_t>(i);
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_MAX, 0);  // as the repsearch binary: freed tensors stay in the process
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
  const Args a = parse(argc, argv);
  at::set_num_threads(a.threads);
  const at::Device device(a.device == "cuda" ? at::kCUDA : at::kCPU);
  auto g = make_generator(7, Stream::splits);
  auto images = at::randn({std::max<std::int64_t>(a.examples, 256), a.channels, a.size, a.size}, g);
  auto labels = at::randint(a.classes, {a.examples}, g, at::TensorOptions().dtype(at::kLong));
  NetConfig nc;
  nc.widths = {a.width, a.width, a.width};
  nc.batchnorm = a.batchnorm;
  FrozenNet net(nc, images, a.classes, device);
  ExampleSearchConfig c;
  c.layers = parse_layers(a.layers);
  c.parents = a.parents;
  c.exploratory = a.exploratory;
  c.refinement = a.refinement;
  c.eval_chunk = a.chunk;
  for (auto& s : c.schedule) s.generations = a.generations;
  std::printf("bench_example device=%s threads=%d width=%lld input=%lldx%lldx%lld classes=%lld examples=%lld "
              "population=%lld (%lld+%lld+%lld) generations/layer=%lld chunk=%lld batchnorm=%s\n",
              a.device.c_str(), a.threads, (long long)a.width, (long long)a.channels, (long long)a.size, (long long)a.size,
              (long long)a.classes, (long long)a.examples, (long long)c.population(), (long long)a.parents,
              (long long)a.exploratory, (long long)a.refinement, (long long)a.generations, (long long)a.chunk,
              a.batchnorm.c_str());
  UnitInput in{0, {0}, images.slice(0, 0, a.examples).to(device), labels.to(device)};
  ExampleUnit unit(net, c, in);
  double total = 0, t_layer = now();
  std::int64_t evals_before = 0;
  std::string layer = unit.layer_name();
  while (!unit.done()) {
    unit.step();
    if (unit.layer_name() != layer || unit.done()) {
      if (device.is_cuda()) at::zeros({1}, at::TensorOptions().device(device)).cpu();
      const double secs = now() - t_layer;
      const auto evals = unit.evaluations() - evals_before;
      std::printf("layer=%s evaluations=%lld seconds=%.3f eval_per_s=%.0f flops_per_eval=%.3g\n", layer.c_str(),
                  (long long)evals, secs, static_cast<double>(evals) / secs,
                  net.flops_from(layer_index(layer)));
      total += secs;
      evals_before = unit.evaluations();
      layer = unit.layer_name();
      t_layer = now();
    }
  }
  const auto r = unit.results().front();
  std::printf("total evaluations=%lld seconds=%.3f eval_per_s=%.0f forward_seconds=%.3f operator_seconds=%.3f "
              "outside_forward_share=%.3f mean_final_ce=%.4f initial_ce=%.4f\n",
              (long long)r.evaluations, total, static_cast<double>(r.evaluations) / total, r.forward_seconds,
              r.operator_seconds, 1.0 - r.forward_seconds / std::max(r.seconds, 1e-12),
              r.ce.select(1, 3).mean().item<double>(), r.initial_ce.mean().item<double>());
  return 0;
}
