// repsearch learn / sgd: the learning half of the method and its yardstick.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "commands.hpp"
#include "networks.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/models.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/example_archive.hpp"
#include "repsearch/io/results.hpp"
#include "repsearch/io/rundir.hpp"

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
namespace fs = std::filesystem;

// Standardised images [n, C, H, W] of training rows `idx` (or of the test set), on the device.
at::Tensor images(const Prepared& p, const at::Tensor& idx, bool test, const at::Device& device) {
  const auto& src = test ? p.dataset.test_images : p.dataset.train_images;
  return p.standardiser.apply(idx.defined() ? src.index_select(0, idx) : src).to(device).contiguous();
}
at::Tensor labels(const Prepared& p, const at::Tensor& idx, bool test, const at::Device& device) {
  const auto& src = test ? p.dataset.test_labels : p.dataset.train_labels;
  return (idx.defined() ? src.index_select(0, idx) : src).to(device);
}

// The probe set of the trajectories: test images chosen by the seed (sorted), the same for learn and sgd.
at::Tensor probe_indices(const Options& o, i64 n_test) {
  auto gen = make_generator(o.get<std::uint64_t>("seed"), Stream::learner, {0xB0BE});
  auto k = std::min(o.get<i64>("probe-size"), n_test);
  return std::get<0>(at::randperm(n_test, gen, at::TensorOptions().dtype(at::kLong)).slice(0, 0, k).sort());
}

std::vector<i64> input_shape(const Prepared& p) {
  auto s = p.dataset.train_images.sizes();
  return {s[1], s[2], s[3]};
}

// What a reader needs to rebuild `net` (results /model): only the widths of the built architecture.
io::ModelSpec model_spec(const Network& net, const Prepared& p, double logit_scale, const std::string& head) {
  const auto& c = net.config();
  io::ModelSpec m;
  m.arch = c.arch;
  if (c.arch == "mlp") m.hidden = c.hidden;
  if (c.arch == "cnn") m.channels = c.channels;
  m.cut = c.cut;
  m.classes = c.classes;
  m.input_shape = c.input_shape;
  m.normalisation_mean = p.standardiser.mean.to(at::kFloat).cpu();
  m.normalisation_std = p.standardiser.std.to(at::kFloat).cpu();
  m.logit_scale = logit_scale;
  m.head = head;
  return m;
}

EpochCallback printer(const std::string& tag, i64 epochs, const char* loss_name) {
  return [=](const TrainEpoch& e) {
    std::printf("[%s] epoch %3lld/%lld  %s %.4f", tag.c_str(), static_cast<long long>(e.epoch),
                static_cast<long long>(epochs), loss_name, e.loss);
    if (!std::isnan(e.train_accuracy)) std::printf("  train acc %.4f", e.train_accuracy);
    if (!std::isnan(e.val_accuracy)) std::printf("  val acc %.4f", e.val_accuracy);
    std::printf("  %.0f ex/s\n", e.examples_per_s);
    std::fflush(stdout);
  };
}

}  // namespace

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}

void write_summary(const fs::path& path, const nlohmann::json& j) {
  io::replace_file(path.string(), [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) fail_output(tmp, "cannot write ", tmp, ": ", std::strerror(errno));
  });
}

// Whether the summary at `path` lists one of `stems`' results files (or cannot be read: then it
// describes nothing reliably).
bool summary_lists(const fs::path& path, const std::vector<std::string>& stems) {
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("networks") || !j["networks"].is_array()) return true;
  for (const auto& row : j["networks"]) {
    if (!row.contains("results") || !row["results"].is_string()) return true;
    const auto name = fs::path(row["results"].get<std::string>()).stem().string();
    if (std::find(stems.begin(), stems.end(), name) != stems.end()) return true;
  }
  return false;
}

// A run's hold on its outputs in `out` (own_outputs): one lock per network `<stem>.lock` (array tasks
// write other networks into the same directory at once) and, when the run writes a summary (several
// networks), the summary's.
OutputLocks own_networks(const fs::path& out, const std::string& tag, const std::string& what,
                         const std::vector<std::string>& stems, const std::string& summary_stem) {
  std::vector<std::string> locks, files;
  for (const auto& stem : stems) {
    locks.push_back(stem + ".lock");
    files.push_back(stem + ".h5");
    files.push_back(stem + ".pt");
  }
  if (stems.size() >= 2) {
    locks.push_back(summary_stem + ".lock");
    files.push_back(summary_stem + ".json");
  }
  return own_outputs(out, tag, what, locks, files);
}

// Before the first network of a run replaces anything: the summary the run will write, or one that
// lists a network it replaces, is removed, so that a summary never outlives the results it describes
// (a run killed midway leaves none).
void retire_summary(const fs::path& out, const std::string& tag, const std::string& what,
                    const std::vector<std::string>& stems, const std::string& summary_stem) {
  const bool writes_summary = stems.size() >= 2;  // then own_networks holds its lock
  const fs::path summary = out / (summary_stem + ".json");
  std::error_code ec;
  if (!fs::exists(summary, ec) || !(writes_summary || summary_lists(summary, stems))) return;
  std::unique_ptr<io::RunLock> summary_lock;
  if (!writes_summary) {
    try {
      summary_lock = std::make_unique<io::RunLock>(out.string(), what, summary_stem + ".lock");
    } catch (const OutputError&) {
      return;  // a run that writes this summary holds it, and replaces it when it ends
    }
  }
  if (!fs::remove(summary, ec) && ec) fail_output(summary.string(), "cannot remove ", summary.string(), ": ", ec.message());
  std::printf("[%s] removed %s: it described results this run replaces\n", tag.c_str(), summary.string().c_str());
}

namespace {

// ---- one results path for learn and sgd -------------------------------------------------------------

// What every network of a learn or sgd run is evaluated on, and where its files go.
struct Bench {
  const Options& o;
  const Prepared& p;
  at::Device device;
  fs::path out;
  io::DataIdentity identity;  // of p: every results file records it
  at::Tensor x_val, y_val, x_h, y_h, x_test, y_test;
  at::Tensor probe, probe_x;  // the trajectory's test images
  nlohmann::json summary;
  std::vector<at::Tensor> member_probs;  // test softmax outputs, for the ensemble
  std::function<void()> before_first_write;  // retire_summary, once
};

Bench make_bench(const Options& o, const Prepared& p, const at::Device& device, fs::path out, nlohmann::json summary) {
  Bench b{o, p, device, std::move(out), data_identity(p), {}, {}, {}, {}, {}, {}, {}, {}, std::move(summary), {}, {}};
  b.x_val = images(p, p.splits.val, false, device);
  b.y_val = labels(p, p.splits.val, false, device);
  b.x_h = images(p, p.splits.heldout, false, device);
  b.y_h = labels(p, p.splits.heldout, false, device);
  b.x_test = images(p, {}, true, device);
  b.y_test = labels(p, {}, true, device);
  b.probe = probe_indices(o, b.x_test.size(0));
  b.probe_x = b.x_test.index_select(0, b.probe.to(device));
  return b;
}

// A trained network's results: its provenance, training rows, trajectory, accuracies and test
// predictions, saved as <base>.pt and <base>.h5 and added to the summary (with `row`'s own fields).
void finish_network(Bench& b, io::Results& r, const std::string& tag, Network& net, const TrainResult& tr,
                    std::uint64_t seed, double logit_scale, const std::string& head, const fs::path& base,
                    nlohmann::json row, const std::string& report = "") {
  r.kind = b.o.command;
  static_cast<io::Origin&>(r) = run_origin(b.o);
  r.seed = seed;
  r.model = net.describe();
  r.steps = at::tensor(tr.trajectory.steps, at::TensorOptions().dtype(at::kLong));
  r.probe_indices = b.probe;
  r.activations = tr.trajectory.activations;
  r.val_accuracy = accuracy(net, b.x_val, b.y_val);
  r.heldout_accuracy = accuracy(net, b.x_h, b.y_h);
  r.test_accuracy = accuracy(net, b.x_test, b.y_test);
  r.test_probabilities = probabilities(net, b.x_test, logit_scale).to(at::kFloat);
  r.spec = model_spec(net, b.p, logit_scale, head);
  r.test_labels = b.y_test.to(at::kInt).cpu();
  b.member_probs.push_back(r.test_probabilities);
  r.data = b.identity;
  if (b.before_first_write) std::exchange(b.before_first_write, nullptr)();
  r.model_path = base.string() + ".pt";
  io::write_results_with_model(base.string() + ".h5", r, [&](const std::string& tmp) { net.save(tmp); });
  std::printf("[%s] %saccuracy val %.4f  heldout %.4f  test %.4f -> %s.h5\n", tag.c_str(), report.c_str(), r.val_accuracy,
              r.heldout_accuracy, r.test_accuracy, base.string().c_str());
  row["val"] = r.val_accuracy;
  row["heldout"] = r.heldout_accuracy;
  row["test"] = r.test_accuracy;
  row["results"] = base.string() + ".h5";
  b.summary["networks"].push_back(row);
}

// Several networks: their ensemble (mean of softmax outputs) and the summary file (array jobs train one each).
void finish_run(Bench& b, const std::string& kind, const fs::path& summary_path) {
  if (b.member_probs.size() < 2) return;
  const double ens = ensemble_accuracy(at::stack(b.member_probs), b.y_test.cpu());
  b.summary["ensemble_test"] = ens;
  std::printf("[%s] ensemble of %zu networks (mean of softmax outputs): test accuracy %.4f\n", kind.c_str(),
              b.member_probs.size(), ens);
  write_summary(summary_path, b.summary);
}

// --elite: a rank (0 = best), a uid (0x...) or all.
std::vector<i64> chosen_elites(const std::string& which, const io::Archive& archive, const std::string& archive_path) {
  const i64 k = archive.representations.size(0);
  std::vector<i64> chosen;
  if (which == "all") {
    for (i64 e = 0; e < k; ++e) chosen.push_back(e);
  } else if (which.rfind("0x", 0) == 0) {
    const std::string digits = which.substr(2);
    if (digits.empty() || digits.size() > 16 || digits.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      throw OptionError("elite", which, "a uid of 1 to 16 hexadecimal digits after 0x",
                        "option elite: expected a uid of 1 to 16 hexadecimal digits after 0x, found '" + which + "'");
    const auto uid = std::stoull(digits, nullptr, 16);
    for (i64 e = 0; e < k; ++e)
      if (archive.uid[static_cast<std::size_t>(e)] == uid) chosen.push_back(e);
    if (chosen.empty())
      throw OptionError("elite", which, "the uid of an elite in " + archive_path,
                        "option elite: no elite with uid " + which + " in " + archive_path);
  } else {
    if (which.empty() || which.size() > 18 || which.find_first_not_of("0123456789") != std::string::npos)
      throw OptionError("elite", which, "a rank (0 = best), a uid (0x...) or 'all'",
                        "option elite: expected a rank (0 = best), a uid (0x...) or 'all', found '" + which + "'");
    auto e = std::stoll(which);
    if (e >= k)
      throw OptionError("elite", which, detail::cat("a rank below ", k),
                        detail::cat("option elite: rank ", e, " but ", archive_path, " holds ", k, " elites"));
    chosen.push_back(e);
  }
  for (auto e : chosen)
    if (!at::isfinite(archive.representations[e]).all().item<bool>())
      fail_input(archive_path, "archive ", archive_path, ": elite ", e, " (uid ", hex(archive.uid[static_cast<std::size_t>(e)]),
                 ") holds non-finite values (NaN or inf): the archive was damaged or the search diverged; choose another elite");
  return chosen;
}

// learn's training inputs: S (and with --extend smoother the rest of the training set outside S and
// H, which joins the regression), and the head's rows.
struct LearnInputs {
  at::Tensor x_s, x_rest, x_head, y_head;
};

LearnInputs learn_inputs(const Options& o, const Prepared& p, const at::Device& device) {
  LearnInputs in;
  in.x_s = images(p, p.splits.search, false, device);
  if (o.get<std::string>("extend") == "smoother") {
    auto outside = at::ones({p.dataset.train_images.size(0)}, at::TensorOptions().dtype(at::kBool));
    outside.index_fill_(0, p.splits.search, false);
    outside.index_fill_(0, p.splits.heldout, false);
    in.x_rest = images(p, outside.nonzero().squeeze(1), false, device);
  }
  auto head_idx = o.get<std::string>("head-data") == "search" ? p.splits.search : at::cat({p.splits.search, p.splits.val});
  in.x_head = images(p, head_idx, false, device);
  in.y_head = labels(p, head_idx, false, device);
  return in;
}

// One learned network: the encoder regressed onto elite e, then the head; its results via finish_network.
void learn_one(Bench& b, const LearnInputs& in, const io::Archive& archive, const std::string& archive_path, i64 e) {
  const Options& o = b.o;
  const auto uid = archive.uid[static_cast<std::size_t>(e)];
  const std::string tag = "learn elite " + std::to_string(e) + " uid " + hex(uid);
  const bool extend = in.x_rest.defined();
  auto z = archive.representations[e].to(b.device);
  const auto tc = o.train();
  Network net(o.model(input_shape(b.p), b.p.dataset.n_classes), derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {uid}),
              b.device);
  std::printf("[%s] %s: regress the cut layer (d=%lld) onto the elite for %lld examples, %lld epochs, %s lr %g\n",
              tag.c_str(), net.describe().c_str(), static_cast<long long>(z.size(1)), static_cast<long long>(z.size(0)),
              static_cast<long long>(tc.epochs), tc.optimizer.c_str(), tc.lr);
  TrainConfig rc = tc;
  rc.seed = derive_seed(tc.seed, Stream::learner, {uid});
  auto x_fit = in.x_s, z_fit = z;
  if (extend) {
    auto z_rest = smoother_extend(o.fitness(), in.x_s.flatten(1), z, in.x_rest.flatten(1));
    std::printf("[%s] --extend smoother: %lld more examples, their targets carried from the elite by the fitness's "
                "smoother\n", tag.c_str(), static_cast<long long>(z_rest.size(0)));
    x_fit = at::cat({in.x_s, in.x_rest});
    z_fit = at::cat({z, z_rest.to(z.device())});
  }
  auto tr = regress_encoder(net, x_fit, z_fit, rc, b.probe_x, printer(tag, tc.epochs, "mse"));
  io::Results r;
  r.phase.assign(tr.epochs.size(), "regress");
  r.epochs = tr.epochs;
  double mse;
  {
    at::NoGradGuard ng;
    mse = at::mse_loss(net.encode(in.x_s), z).item<double>();
  }
  const auto head = o.get<std::string>("head");
  if (head == "ridge") {
    fit_head_ridge(net, in.x_head, in.y_head, o.get<double>("head-ridge"));
  } else {
    TrainConfig hc = rc;
    hc.epochs = o.get<i64>("head-epochs");
    const auto rows = train_head(net, in.x_head, in.y_head, hc, printer(tag + " head", hc.epochs, "ce")).epochs;
    r.phase.insert(r.phase.end(), rows.size(), "head");
    r.epochs.insert(r.epochs.end(), rows.begin(), rows.end());
  }
  r.archive_path = fs::absolute(archive_path).string();
  r.archive_sha256 = archive.provenance.config_sha256;
  r.elite_uid = uid;
  r.elite_rank = e;
  r.train_data = std::string("regress: search") + (extend ? " + smoother-extended rest of the training set (outside H)" : "") +
                 "; head: " + o.get<std::string>("head-data");
  r.regression_mse = mse;
  // A ridge head predicts one-hot codes: its softmax uses the fitness's logit scale beta.
  const double logit_scale = head == "ridge" ? o.get<double>("beta") : 1.0;
  char report[96];
  std::snprintf(report, sizeof report, "regression mse %.4f (target variance %.4f) | ", mse, z.var().item<double>());
  finish_network(b, r, tag, net, tr, o.get<std::uint64_t>("seed"), logit_scale, head, b.out / ("learn-" + hex(uid)),
                 {{"elite_rank", e}, {"uid", hex(uid)}, {"regression_mse", mse}}, report);
}

}  // namespace

void adopt_archive_config(const Options& cli, Options& o, const std::string& archive_path, const std::string& config,
                          const std::string& data_dir, std::uint64_t seed) {
  add_config_text(o, config, "archive " + archive_path + ": config");
  // A relative data-dir in the stored config meant the search's working directory: the archive
  // records where that was (absolute), unless the command line names a directory itself.
  const auto stored = o.get<std::string>("data-dir");
  if (!cli.has("data-dir") && !stored.empty() && fs::path(stored).is_relative() && fs::path(data_dir).is_absolute())
    o.vm.at("data-dir").value() = data_dir;
  validate(o);
  if (o.get<std::uint64_t>("seed") != seed)  // the splits are drawn from the seed
    fail_option("seed", o.get<std::uint64_t>("seed"), detail::cat(seed, ", the archive's"),
                o.command, ": option seed is ", o.get<std::uint64_t>("seed"), " but ", archive_path,
                " was searched with seed ", seed, ": ", o.command,
                " rebuilds the archive's splits from its seed, so --seed must not change (leave it out)");
}

fs::path output_dir(const Options& cli, const std::string& archive_path) {
  return cli.has("out") || archive_path.empty() ? fs::path(cli.get<std::string>("out"))
                                                : fs::absolute(archive_path).parent_path();
}

namespace {

// The archive a learn or sgd run starts from, with its stored config below the command line's.
io::Archive read_source_archive(const Options& cli, Options& o, const std::string& archive_path) {
  auto archive = io::read_archive(archive_path);
  adopt_archive_config(cli, o, archive_path, archive.provenance.config, archive.data_dir, archive.provenance.seed);
  return archive;
}

// Refuses data that is not the data the archive was searched on: another data set or version
// (its identity), or splits its config no longer rebuilds.
void check_archive_data(const io::Archive& archive, const std::string& archive_path, const Prepared& p,
                        const Options& o) {
  check_data_identity(archive.provenance.data, archive_path, p, o);
  if (!at::equal(p.splits.search, archive.search_indices) || !at::equal(p.splits.val, archive.val_indices))
    throw InputError(archive_path, "its stored splits differ from those its config rebuilds (another data set version?)",
                     o.command + ": the splits rebuilt from the archive's config differ from those stored in " +
                         archive_path + " (another data set version?)");
}

// One network trained end to end on x, y (S+V or the full training set) with seed s; results via finish_network.
void sgd_one(Bench& b, const at::Tensor& x, const at::Tensor& y, std::uint64_t s, const fs::path& base,
             const io::Results& source) {
  const Options& o = b.o;
  const bool full = o.get<std::string>("data") == "full";
  const auto tc = o.train();
  const std::string tag = "sgd seed " + std::to_string(s);
  Network net(o.model(input_shape(b.p), b.p.dataset.n_classes),
              derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {0x5D6, s}), b.device);
  std::printf("[%s] %s: end to end on %s (%lld examples), %lld epochs, %s lr %g; val = held-out split H\n",
              tag.c_str(), net.describe().c_str(), full ? "the full training set" : "S+V",
              static_cast<long long>(x.size(0)), static_cast<long long>(tc.epochs), tc.optimizer.c_str(), tc.lr);
  TrainConfig sc = tc;
  sc.seed = derive_seed(tc.seed, Stream::learner, {0x5D6, s});
  auto tr = train_end_to_end(net, x, y, sc, b.probe_x, b.x_h, b.y_h, printer(tag, tc.epochs, "ce"));
  io::Results r = source;
  r.phase.assign(tr.epochs.size(), "sgd");
  r.epochs = tr.epochs;
  r.train_data = o.get<std::string>("data");
  r.regression_mse = NAN;
  finish_network(b, r, tag, net, tr, s, 1.0, "end-to-end", base, {{"seed", s}});
}

}  // namespace

int cmd_learn(const Options& cli) {
  if (!cli.vm.count("archive"))
    throw OptionError("archive", "", "the archive.h5 of a search", "learn: --archive PATH is required (the archive.h5 of a search)");
  const auto archive_path = cli.get<std::string>("archive");
  if (io::archive_space(archive_path) == "example") return learn_example(cli, archive_path);
  for (const auto* key : {"depth", "supervise", "targets", "kl-weight"})  // the example space's: ignored here
    if (cli.has(key))
      throw OptionError(key, cli.value(key), "nothing: it is an option of learn on an example-space archive",
                        detail::cat("learn: option ", key, " applies to example-space archives; ", archive_path,
                                    " is a dataset-space archive (its options: elite, arch, hidden, channels, lr, epochs, ",
                                    "...; see 'repsearch learn --help')"));
  Options o = cli;
  const auto archive = read_source_archive(cli, o, archive_path);
  const auto chosen = chosen_elites(o.get<std::string>("elite"), archive, archive_path);
  const fs::path out = output_dir(cli, archive_path);
  std::vector<std::string> stems;
  for (auto e : chosen) stems.push_back("learn-" + hex(archive.uid[static_cast<std::size_t>(e)]));
  const std::string what = "repsearch learn " + cli.command_line;
  const auto held = own_networks(out, "learn", what, stems, "learn-summary");
  set_threads(o.get<i64>("threads") > 0 ? static_cast<int>(o.get<i64>("threads")) : node_cores());
  const auto device = choose_device(o.get<std::string>("device"), 0);
  auto p = prepare(o, device, /*fitness_inputs=*/false);
  check_archive_data(archive, archive_path, p, o);
  Bench b = make_bench(o, p, device, out, {{"archive", archive_path}, {"networks", nlohmann::json::array()}});
  b.before_first_write = [&] { retire_summary(out, "learn", what, stems, "learn-summary"); };
  const LearnInputs in = learn_inputs(o, p, device);
  for (auto e : chosen) learn_one(b, in, archive, archive_path, e);
  finish_run(b, "learn", out / "learn-summary.json");
  return 0;
}

int cmd_sgd(const Options& cli) {
  Options o = cli;
  const std::string archive_path = cli.vm.count("archive") ? cli.get<std::string>("archive") : "";
  if (!archive_path.empty() ? io::archive_space(archive_path) == "example" : (validate(o), o.get<std::string>("space") == "example"))
    return sgd_example(cli, archive_path);
  io::Archive archive;
  if (!archive_path.empty()) archive = read_source_archive(cli, o, archive_path);
  const bool full = o.get<std::string>("data") == "full";
  const std::string prefix = std::string("sgd-") + (full ? "full-" : "");
  const fs::path out = output_dir(cli, archive_path);
  const auto seeds = parse_seeds(o.get<std::string>("seeds"));
  std::vector<std::string> stems;
  for (auto s : seeds) stems.push_back(prefix + std::to_string(s));
  const std::string what = "repsearch sgd " + cli.command_line;
  const auto held = own_networks(out, "sgd", what, stems, prefix + "summary");
  set_threads(o.get<i64>("threads") > 0 ? static_cast<int>(o.get<i64>("threads")) : node_cores());
  const auto device = choose_device(o.get<std::string>("device"), 0);
  auto p = prepare(o, device, /*fitness_inputs=*/false);
  if (!archive_path.empty()) check_archive_data(archive, archive_path, p, o);
  Bench b = make_bench(o, p, device, out, {{"data", o.get<std::string>("data")}, {"networks", nlohmann::json::array()}});
  if (!archive_path.empty()) b.summary["archive"] = archive_path;
  b.before_first_write = [&] { retire_summary(out, "sgd", what, stems, prefix + "summary"); };
  auto idx = full ? at::Tensor() : at::cat({p.splits.search, p.splits.val});
  auto x = images(p, idx, false, device), y = labels(p, idx, false, device);
  io::Results source;  // what every results file of this run records about the archive, if any
  if (!archive_path.empty()) {
    source.archive_path = fs::absolute(archive_path).string();
    source.archive_sha256 = archive.provenance.config_sha256;
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) sgd_one(b, x, y, seeds[i], out / stems[i], source);
  finish_run(b, "sgd", out / (prefix + "summary.json"));
  return 0;
}

}  // namespace repsearch::app
