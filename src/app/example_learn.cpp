// repsearch learn / sgd on an example-space archive (the paper's Section 4): the learner regresses
// every block of a deeper network onto the searched targets with a KL head; sgd trains the same
// family end to end with cross-entropy on the same examples; both select on the same held-out
// searched examples, test once, and record the paper's per-epoch trajectories.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <utility>
#include <nlohmann/json.hpp>

#include "networks.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/learner.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/io/example_archive.hpp"
#include "repsearch/io/identity.hpp"
#include "repsearch/io/results.hpp"
#include "space.hpp"

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
namespace fs = std::filesystem;

// One network of a run: what it learns from (a supervise variant, or "end-to-end"), its depth and seed.
// island -1: the archive's targets (each example's best island); r >= 0: island r's own targets (learn
// --targets islands), on the examples the archive keeps every island's targets for.
struct Job {
  std::string variant;
  i64 depth;
  std::uint64_t seed;
  i64 island = -1;
  std::string stem() const {
    return (variant == "end-to-end" ? std::string("sgd") : "learn-" + variant) + "-d" + std::to_string(depth) + "-s" +
           std::to_string(seed) + (island >= 0 ? "-i" + std::to_string(island) : "");
  }
  std::string tag() const {
    return (variant == "end-to-end" ? std::string("sgd") : "learn " + variant) + " depth " + std::to_string(depth) +
           " seed " + std::to_string(seed) + (island >= 0 ? " island " + std::to_string(island) : "");
  }
};

std::vector<Job> jobs(const Options& o, bool learn, i64 islands) {
  std::vector<Job> out;
  const auto variants = learn ? split_list(o.get<std::string>("supervise")) : std::vector<std::string>{"end-to-end"};
  const bool each = learn && o.get<std::string>("targets") == "islands";
  for (const auto& v : variants)
    for (const auto& d : split_list(o.get<std::string>("depth")))
      for (auto s : parse_seeds(o.get<std::string>("seeds")))
        for (i64 r = each ? 0 : -1; r < (each ? islands : 0); ++r) out.push_back({v, std::stoll(d), s, r});
  return out;
}

// The archive, its config under the command line's, and the data behind its searched examples.
struct Source {
  std::string path;
  io::ExampleArchive archive;
  Options o;
  ExampleData data;
  io::DataIdentity identity;
};

Source open_source(const Options& cli, const std::string& path) {
  Source s{path, io::ExampleArchive(path), cli, {}, {}};
  const auto& a = s.archive;
  adopt_archive_config(cli, s.o, path, a.provenance.config, a.data_dir, a.provenance.seed);
  return s;
}

void load_data(Source& s) {
  s.data = load_examples(s.o, /*images=*/false);
  s.identity = io::data_identity(s.data.dataset, s.data.indices, at::Tensor(), at::Tensor());
  check_data_identity(s.archive.provenance.data, s.path, s.identity, s.data.dataset.data_dir, s.o);
  if (!at::equal(s.data.indices, s.archive.indices))
    throw InputError(s.path, "its searched examples differ from those its config draws from the data",
                     s.o.command + ": the examples " + s.path + " was searched on differ from those its config (seed, " +
                         "search-size) draws from the data set: another data set version?");
}

// Rows of the archive with their standardised images; targets read from the file a block of rows at a time.
ExampleReader reader(const Source& s) {
  return [&s](i64 first, i64 count, bool targets) {
    ExampleChunk c;
    const auto idx = s.data.indices.slice(0, first, first + count);
    c.images = s.data.standardiser.apply(s.data.dataset.train_images.index_select(0, idx));
    c.labels = s.data.labels.slice(0, first, first + count);
    if (targets) {
      for (i64 l = 0; l < 3; ++l) c.targets.push_back(s.archive.targets(l, first, count));
      c.softmax = s.archive.targets(4, first, count);
    }
    return c;
  };
}

// Island r's own targets for the archive's first m rows (its diversity rows, read once: at most
// diversity-examples of them), the softmax of its searched logits.
struct IslandTargets {
  std::vector<at::Tensor> layers;  // block0..2, logits: [m, R, ...]
};

ExampleReader island_reader(const Source& s, const IslandTargets& t, i64 island) {
  const auto base = reader(s);
  return [base, &t, island](i64 first, i64 count, bool targets) {
    ExampleChunk c = base(first, count, false);
    if (targets) {
      for (std::size_t l = 0; l < 3; ++l) c.targets.push_back(t.layers[l].slice(0, first, first + count).select(1, island));
      c.softmax = at::softmax(t.layers[3].slice(0, first, first + count).select(1, island), 1);
    }
    return c;
  };
}

ConvGroupNetConfig net_config(const Source& s, i64 depth) {
  ConvGroupNetConfig c;
  c.widths = s.archive.net.widths;
  c.depth = depth;
  c.classes = s.data.dataset.n_classes;
  c.input_shape = s.archive.input_shape;
  c.whiten_weight = s.archive.net_parameters.whiten_weight;
  c.whiten_bias = s.archive.net_parameters.whiten_bias;
  c.head_input = s.o.get<std::string>("head-input");
  return c;
}

LearnerTrainConfig train_config(const Options& o, const Job& j) {
  LearnerTrainConfig c;
  c.objective = j.variant == "end-to-end" ? "labels" : "targets";
  if (c.objective == "targets") c.loss.first_supervised = first_supervised(j.variant);
  c.loss.kl_weight = o.get<double>("kl-weight");
  c.loss.normalise_outputs = o.get<bool>("normalise-outputs");
  c.lr = o.get<double>("learner-lr");
  c.momentum = o.get<double>("learner-momentum");
  c.weight_decay = o.get<double>("learner-weight-decay");
  c.schedule = o.get<std::string>("learner-schedule");
  c.epochs = o.get<i64>("learner-epochs");
  c.batch = o.get<i64>("learner-batch");
  c.chunk = o.get<i64>("target-chunk");
  c.augment = o.get<std::string>("augment");
  c.heldout_share = o.get<double>("heldout-share");
  c.trajectory_examples = o.get<i64>("trajectory-examples");
  // learn and sgd of one seed share the minibatch order; every network the held-out split
  c.seed = derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {0xE8, j.seed});
  c.split_seed = derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {0xE9});
  return c;
}

EpochCallback progress(const std::string& tag, i64 epochs) {
  return [=](const TrainEpoch& e) {
    const double eta = e.seconds / static_cast<double>(e.epoch) * static_cast<double>(epochs - e.epoch);
    std::printf("[%s] epoch %3lld/%lld  loss %.4f  train acc %.4f  held-out acc %.4f  %.0f ex/s  %.0f s, ETA %.0f s\n",
                tag.c_str(), static_cast<long long>(e.epoch), static_cast<long long>(epochs), e.loss, e.train_accuracy,
                e.val_accuracy, e.examples_per_s, e.seconds, eta);
    std::fflush(stdout);
  };
}

std::string per_block(const at::Tensor& row) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.3f/%.3f/%.3f", row[0].item<double>(), row[1].item<double>(), row[2].item<double>());
  return buf;
}

// sgd --config C without --archive: the archive of C's example-space search.
std::string archive_of(const Options& cli, const std::string& given) {
  if (!given.empty()) return given;
  Options o = cli;
  validate(o);
  const auto path = (fs::path(o.get<std::string>("out")) / "archive.h5").string();
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw InputError(path, "no archive",
                     "sgd (space = example) trains on the examples an example-space search covers: no archive at " + path +
                         " (the config's out); run 'repsearch search' with this config first, or give --archive");
  return path;
}

// What every network of a run is evaluated on and where its files go.
struct Bench {
  const Source& s;
  bool learn;
  at::Device device;
  fs::path out;
  at::Tensor test_x, test_y;
  std::function<void()> before_first_write;
};

// The results file of a trained network: its provenance, training, trajectories and test predictions.
io::Results results_of(const Bench& b, const Job& j, const ConvGroupNet& net, const LearnerResult& r,
                       const LearnerTrainConfig& tc, const at::Tensor& probs) {
  const Options& o = b.s.o;
  io::Results res;
  res.kind = b.learn ? "learn" : "sgd";
  static_cast<io::Origin&>(res) = run_origin(o);
  res.seed = j.seed;
  res.model = net.describe();
  res.archive_path = fs::absolute(b.s.path).string();
  res.archive_sha256 = b.s.archive.provenance.config_sha256;
  res.train_data = "the archive's searched examples but the held-out rows (" + std::to_string(r.train.size(0)) + " of " +
                   std::to_string(r.train.size(0) + r.heldout.size(0)) + ")" +
                   (j.island >= 0 ? "; targets: island " + std::to_string(j.island) + "'s own" : "");
  res.phase.assign(r.epochs.size(), res.kind);
  res.epochs = r.epochs;
  res.val_accuracy = NAN;  // the example space has no V split: selection is on the held-out searched examples
  res.heldout_accuracy = r.heldout_accuracy[r.selected_epoch].item<double>();
  res.test_accuracy = probs.argmax(1).eq(b.test_y).to(at::kDouble).mean().item<double>();
  res.regression_mse = NAN;
  res.steps = at::zeros({0}, at::kLong);
  res.probe_indices = at::zeros({0}, at::kLong);
  res.test_probabilities = probs;
  res.test_labels = b.test_y.to(at::kInt);
  res.data = b.s.identity;
  res.spec.arch = "convgroups";
  res.spec.channels = net.config().widths;
  res.spec.depth = j.depth;
  res.spec.classes = net.config().classes;
  res.spec.input_shape = net.config().input_shape;
  res.spec.normalisation_mean = b.s.data.standardiser.mean.to(at::kFloat).cpu();
  res.spec.normalisation_std = b.s.data.standardiser.std.to(at::kFloat).cpu();
  res.spec.head = b.learn ? "kl" : "end-to-end";
  res.spec.head_input = net.config().head_input;
  res.example = {j.variant, j.depth, r.selected_epoch, b.learn ? tc.loss.kl_weight : NAN, j.island, r.heldout,
                 r.heldout_accuracy, r.cosine_distance, r.entropy_within, r.entropy_between, r.target_entropy_within,
                 r.target_entropy_between};
  return res;
}

// One network trained, tested once and written; its summary row.
nlohmann::json train_one(Bench& b, const Job& j, const ExampleReader& read, i64 n, std::vector<at::Tensor>& member_probs) {
  const Options& o = b.s.o;
  const auto tc = train_config(o, j);
  const auto net_seed = derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {0xE7, static_cast<std::uint64_t>(j.depth), j.seed});
  ConvGroupNet net(net_config(b.s, j.depth), net_seed, b.device);
  const std::string loss = b.learn ? "block MSE (" + j.variant + ") + " + std::to_string(tc.loss.kl_weight) + " x KL head" : "cross-entropy";
  std::printf("[%s] %s on %lld searched examples of %s (%.0f%% held out), %lld epochs, batch %lld, SGD Nesterov lr %g "
              "momentum %g, loss: %s\n",
              j.tag().c_str(), net.describe().c_str(), static_cast<long long>(n), b.s.path.c_str(),
              100 * tc.heldout_share, static_cast<long long>(tc.epochs), static_cast<long long>(tc.batch), tc.lr, tc.momentum,
              loss.c_str());
  const auto r = train_learner(net, n, read, tc, progress(j.tag(), tc.epochs));
  const auto probs = learner_probabilities(net, b.test_x);
  io::Results res = results_of(b, j, net, r, tc, probs);
  if (b.before_first_write) std::exchange(b.before_first_write, nullptr)();
  const fs::path base = b.out / j.stem();
  res.model_path = base.string() + ".pt";
  io::write_results_with_model(base.string() + ".h5", res, [&](const std::string& tmp) { net.save(tmp); });
  std::printf("[%s] selected epoch %lld: held-out acc %.4f, test acc %.4f; cosine distance to the targets (block0/1/2) "
              "%s at epoch 0, %s at the end -> %s.h5\n",
              j.tag().c_str(), static_cast<long long>(r.selected_epoch), res.heldout_accuracy, res.test_accuracy,
              per_block(r.cosine_distance[0]).c_str(), per_block(r.cosine_distance[r.cosine_distance.size(0) - 1]).c_str(),
              base.string().c_str());
  std::fflush(stdout);
  member_probs.push_back(probs);
  return {{"variant", j.variant}, {"depth", j.depth}, {"seed", j.seed}, {"island", j.island}, {"heldout", res.heldout_accuracy},
          {"test", res.test_accuracy}, {"selected_epoch", r.selected_epoch}, {"results", base.string() + ".h5"},
          {"examples_per_s", r.epochs.empty() ? 0.0 : r.epochs.back().examples_per_s}};
}

int run(const Options& cli, const std::string& given_path, bool learn) {
  const std::string kind = learn ? "learn" : "sgd";
  for (const auto* key : {"elite", "extend", "head", "data"})  // the dataset space's: they would be ignored here
    if (cli.has(key))
      throw OptionError(key, cli.value(key), "nothing: it is an option of learn/sgd on a dataset-space archive",
                        detail::cat(kind, ": option ", key, " applies to dataset-space archives; ", given_path.empty() ? "this config's archive" : given_path,
                                    " is an example-space archive (its options: depth, supervise, targets, kl-weight, learner-*; see '",
                                    "repsearch ", kind, " --help')"));
  const std::string path = archive_of(cli, given_path);
  Source s = open_source(cli, path);
  const auto list = jobs(s.o, learn, s.archive.islands);
  std::vector<std::string> stems;
  for (const auto& j : list) stems.push_back(j.stem());
  const fs::path out = output_dir(cli, path);
  // A run of one seed (an array task) has a summary of its own: tasks of other seeds write beside it.
  const auto seeds = parse_seeds(s.o.get<std::string>("seeds"));
  const std::string what = "repsearch " + kind + " " + cli.command_line,
                    summary_stem = kind + "-summary" + (seeds.size() == 1 ? "-s" + std::to_string(seeds[0]) : "");
  const auto held = own_networks(out, kind, what, stems, summary_stem);
  set_threads(s.o.get<i64>("threads") > 0 ? static_cast<int>(s.o.get<i64>("threads")) : node_cores());
  Bench b{s, learn, choose_device(s.o.get<std::string>("device"), 0), out, {}, {}, {}};
  load_data(s);
  b.test_x = s.data.standardiser.apply(s.data.dataset.test_images).to(b.device);
  b.test_y = s.data.dataset.test_labels.to(at::kLong);
  b.before_first_write = [&] { retire_summary(out, kind, what, stems, summary_stem); };
  const auto read = reader(s);
  IslandTargets islands;
  if (list.front().island >= 0) {
    for (i64 l = 0; l < 4; ++l) islands.layers.push_back(s.archive.diversity(l));
    std::printf("[%s] --targets islands: one network per island from its own targets, on the %lld examples whose every "
                "island's targets the archive keeps (diversity-examples)\n", kind.c_str(), static_cast<long long>(islands.layers[0].size(0)));
  }
  nlohmann::json summary = {{"archive", fs::absolute(path).string()}, {"space", "example"}, {"networks", nlohmann::json::array()}};
  std::vector<at::Tensor> member_probs;
  for (const auto& j : list) {
    const bool own = j.island >= 0;
    summary["networks"].push_back(train_one(b, j, own ? island_reader(s, islands, j.island) : read,
                                            own ? islands.layers[0].size(0) : s.archive.examples(), member_probs));
  }
  if (list.size() >= 2) {
    const double ens = ensemble_accuracy(at::stack(member_probs), b.test_y);
    summary["ensemble_test"] = ens;
    std::printf("[%s] ensemble of the %zu networks (mean of softmax outputs): test accuracy %.4f\n", kind.c_str(), list.size(), ens);
    write_summary(out / (summary_stem + ".json"), summary);
  }
  return 0;
}

}  // namespace

int learn_example(const Options& cli, const std::string& archive_path) { return run(cli, archive_path, true); }
int sgd_example(const Options& cli, const std::string& archive_path) { return run(cli, archive_path, false); }

}  // namespace repsearch::app
