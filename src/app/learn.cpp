// repsearch learn / sgd: the learning half of the method and its yardstick.
#include <cmath>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/models.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/io/archive.hpp"
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

void add_rows(io::Results& r, const std::vector<TrainEpoch>& epochs, const std::string& phase) {
  for (const auto& e : epochs) {
    r.phase.push_back(phase);
    r.epochs.push_back({e.epoch, e.loss, e.train_accuracy, e.val_accuracy, e.examples_per_s, e.seconds});
  }
}

void fill_common(io::Results& r, const Options& o, const std::string& kind, const Network& net, const TrainResult& tr,
                 const at::Tensor& probe) {
  r.kind = kind;
  r.repsearch_version = REPSEARCH_VERSION;
  r.git_commit = REPSEARCH_GIT_COMMIT;
  r.created = now_iso();
  r.command_line = "repsearch " + kind + " " + o.command_line;
  r.config = o.resolved();
  r.config_sha256 = o.sha256();
  r.model = net.describe();
  r.steps = at::tensor(tr.trajectory.steps, at::TensorOptions().dtype(at::kLong));
  r.probe_indices = probe;
  r.activations = tr.trajectory.activations;
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

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Written beside `path` and renamed onto it: a reader never sees half a file.
template <class Write>
void replace_file(const fs::path& path, Write&& write) {
  const auto tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  try {
    write(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) fail_output(path.string(), "cannot rename ", tmp, " onto ", path.string(), ": ", ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_summary(const fs::path& path, const nlohmann::json& j) {
  replace_file(path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) fail_output(tmp, "cannot write ", tmp, ": ", std::strerror(errno));
  });
}

}  // namespace

int cmd_learn(const Options& cli) {
  if (!cli.vm.count("archive"))
    throw OptionError("archive", "", "the archive.h5 of a search", "learn: --archive PATH is required (the archive.h5 of a search)");
  const auto archive_path = cli.get<std::string>("archive");
  auto archive = io::read_archive(archive_path);
  Options o = cli;
  add_config_text(o, archive.provenance.config, "archive " + archive_path + ": config");
  validate(o);
  set_threads(o.get<i64>("threads") > 0 ? static_cast<int>(o.get<i64>("threads")) : node_cores());
  const auto device = choose_device(o.get<std::string>("device"), 0);
  auto p = prepare(o, device, /*fitness_inputs=*/false);
  if (!at::equal(p.splits.search, archive.search_indices) || !at::equal(p.splits.val, archive.val_indices))
    throw InputError(archive_path, "its stored splits differ from those its config rebuilds (another data set version?)",
                     "learn: the splits rebuilt from the archive's config differ from those stored in " + archive_path +
                         " (another data set version?)");
  const i64 k = archive.representations.size(0);
  std::vector<i64> chosen;
  const auto which = o.get<std::string>("elite");
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
  // Beside the archive given, unless --out was given: the archive's own `out` may be another machine's path.
  const fs::path out = cli.has("out") ? fs::path(cli.get<std::string>("out"))
                                      : fs::absolute(archive_path).parent_path();
  io::ensure_writable_dir(out.string(), "out");
  auto x_s = images(p, p.splits.search, false, device);
  // --extend smoother: the rest of the training set (outside S and H) joins the regression.
  const bool extend = o.get<std::string>("extend") == "smoother";
  at::Tensor x_rest;
  if (extend) {
    auto outside = at::ones({p.dataset.train_images.size(0)}, at::TensorOptions().dtype(at::kBool));
    outside.index_fill_(0, p.splits.search, false);
    outside.index_fill_(0, p.splits.heldout, false);
    x_rest = images(p, outside.nonzero().squeeze(1), false, device);
  }
  auto head_idx = o.get<std::string>("head-data") == "search" ? p.splits.search : at::cat({p.splits.search, p.splits.val});
  auto x_head = images(p, head_idx, false, device);
  auto y_head = labels(p, head_idx, false, device);
  auto x_val = images(p, p.splits.val, false, device), y_val = labels(p, p.splits.val, false, device);
  auto x_h = images(p, p.splits.heldout, false, device), y_h = labels(p, p.splits.heldout, false, device);
  auto x_test = images(p, {}, true, device), y_test = labels(p, {}, true, device);
  auto probe = probe_indices(o, x_test.size(0));
  auto probe_x = x_test.index_select(0, probe.to(device));
  auto tc = o.train();
  const double beta = o.get<double>("beta");

  nlohmann::json summary = {{"archive", archive_path}, {"networks", nlohmann::json::array()}};
  std::vector<at::Tensor> member_probs;
  for (auto e : chosen) {
    const auto uid = archive.uid[static_cast<std::size_t>(e)];
    const std::string tag = "learn elite " + std::to_string(e) + " uid " + hex(uid);
    auto z = archive.representations[e].to(device);
    Network net(o.model(input_shape(p), p.dataset.n_classes), derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {uid}),
                device);
    std::printf("[%s] %s: regress the cut layer (d=%lld) onto the elite for %lld examples, %lld epochs, %s lr %g\n",
                tag.c_str(), net.describe().c_str(), static_cast<long long>(z.size(1)), static_cast<long long>(z.size(0)),
                static_cast<long long>(tc.epochs), tc.optimizer.c_str(), tc.lr);
    TrainConfig rc = tc;
    rc.seed = derive_seed(tc.seed, Stream::learner, {uid});
    auto x_fit = x_s, z_fit = z;
    if (extend) {
      auto z_rest = smoother_extend(o.fitness(), x_s.flatten(1), z, x_rest.flatten(1));
      std::printf("[%s] --extend smoother: %lld more examples, their targets carried from the elite by the fitness's "
                  "smoother\n", tag.c_str(), static_cast<long long>(z_rest.size(0)));
      x_fit = at::cat({x_s, x_rest});
      z_fit = at::cat({z, z_rest.to(z.device())});
    }
    auto tr = regress_encoder(net, x_fit, z_fit, rc, probe_x, printer(tag, tc.epochs, "mse"));
    io::Results r;
    add_rows(r, tr.epochs, "regress");
    double mse;
    {
      at::NoGradGuard ng;
      mse = at::mse_loss(net.encode(x_s), z).item<double>();
    }
    if (o.get<std::string>("head") == "ridge") {
      fit_head_ridge(net, x_head, y_head, o.get<double>("head-ridge"));
    } else {
      TrainConfig hc = rc;
      hc.epochs = o.get<i64>("head-epochs");
      add_rows(r, train_head(net, x_head, y_head, hc, printer(tag + " head", hc.epochs, "ce")).epochs, "head");
    }
    fill_common(r, o, "learn", net, tr, probe);
    r.archive_path = fs::absolute(archive_path).string();
    r.archive_sha256 = archive.provenance.config_sha256;
    r.seed = o.get<std::uint64_t>("seed");
    r.elite_uid = uid;
    r.elite_rank = e;
    r.train_data = std::string("regress: search") + (extend ? " + smoother-extended rest of the training set (outside H)" : "") +
                   "; head: " + o.get<std::string>("head-data");
    r.regression_mse = mse;
    r.val_accuracy = accuracy(net, x_val, y_val);
    r.heldout_accuracy = accuracy(net, x_h, y_h);
    r.test_accuracy = accuracy(net, x_test, y_test);
    // A ridge head predicts one-hot codes: its softmax uses the fitness temperature beta.
    const auto head = o.get<std::string>("head");
    const double logit_scale = head == "ridge" ? beta : 1.0;
    r.test_probabilities = probabilities(net, x_test, logit_scale).to(at::kFloat);
    r.spec = model_spec(net, p, logit_scale, head);
    r.test_labels = y_test.to(at::kInt).cpu();
    member_probs.push_back(r.test_probabilities);
    const auto base = out / ("learn-" + hex(uid));
    r.model_path = base.string() + ".pt";
    replace_file(r.model_path, [&](const std::string& tmp) { net.save(tmp); });
    io::write_results(base.string() + ".h5", r);
    std::printf("[%s] regression mse %.4f (target variance %.4f) | accuracy val %.4f  heldout %.4f  test %.4f -> %s.h5\n",
                tag.c_str(), mse, z.var().item<double>(), r.val_accuracy, r.heldout_accuracy, r.test_accuracy,
                base.string().c_str());
    summary["networks"].push_back({{"elite_rank", e}, {"uid", hex(uid)}, {"regression_mse", mse},
                                   {"val", r.val_accuracy}, {"heldout", r.heldout_accuracy}, {"test", r.test_accuracy},
                                   {"results", base.string() + ".h5"}});
  }
  if (member_probs.size() > 1) {
    const double ens = ensemble_accuracy(at::stack(member_probs), y_test.cpu());
    summary["ensemble_test"] = ens;
    std::printf("[learn] ensemble of %zu networks (mean of softmax outputs): test accuracy %.4f\n", member_probs.size(), ens);
  }
  if (chosen.size() > 1) write_summary(out / "learn-summary.json", summary);  // array jobs train one each
  return 0;
}

int cmd_sgd(const Options& o) {
  set_threads(o.get<i64>("threads") > 0 ? static_cast<int>(o.get<i64>("threads")) : node_cores());
  const auto device = choose_device(o.get<std::string>("device"), 0);
  auto p = prepare(o, device, /*fitness_inputs=*/false);
  const bool full = o.get<std::string>("data") == "full";
  auto idx = full ? at::Tensor() : at::cat({p.splits.search, p.splits.val});
  auto x = images(p, idx, false, device), y = labels(p, idx, false, device);
  auto x_h = images(p, p.splits.heldout, false, device), y_h = labels(p, p.splits.heldout, false, device);
  auto x_val = images(p, p.splits.val, false, device), y_val = labels(p, p.splits.val, false, device);
  auto x_test = images(p, {}, true, device), y_test = labels(p, {}, true, device);
  auto probe = probe_indices(o, x_test.size(0));
  auto probe_x = x_test.index_select(0, probe.to(device));
  const fs::path out = o.get<std::string>("out");
  io::ensure_writable_dir(out.string(), "out");
  auto tc = o.train();
  nlohmann::json summary = {{"data", o.get<std::string>("data")}, {"networks", nlohmann::json::array()}};
  std::vector<at::Tensor> member_probs;
  for (auto s : parse_seeds(o.get<std::string>("seeds"))) {
    const std::string tag = "sgd seed " + std::to_string(s);
    Network net(o.model(input_shape(p), p.dataset.n_classes),
                derive_seed(o.get<std::uint64_t>("seed"), Stream::learner, {0x5D6, s}), device);
    std::printf("[%s] %s: end to end on %s (%lld examples), %lld epochs, %s lr %g; val = held-out split H\n",
                tag.c_str(), net.describe().c_str(), full ? "the full training set" : "S+V",
                static_cast<long long>(x.size(0)), static_cast<long long>(tc.epochs), tc.optimizer.c_str(), tc.lr);
    TrainConfig sc = tc;
    sc.seed = derive_seed(tc.seed, Stream::learner, {0x5D6, s});
    auto tr = train_end_to_end(net, x, y, sc, probe_x, x_h, y_h, printer(tag, tc.epochs, "ce"));
    io::Results r;
    add_rows(r, tr.epochs, "sgd");
    fill_common(r, o, "sgd", net, tr, probe);
    r.seed = s;
    r.train_data = o.get<std::string>("data");
    r.regression_mse = NAN;
    r.val_accuracy = accuracy(net, x_val, y_val);
    r.heldout_accuracy = accuracy(net, x_h, y_h);
    r.test_accuracy = accuracy(net, x_test, y_test);
    r.test_probabilities = probabilities(net, x_test).to(at::kFloat);
    r.spec = model_spec(net, p, 1.0, "end-to-end");
    r.test_labels = y_test.to(at::kInt).cpu();
    member_probs.push_back(r.test_probabilities);
    const auto base = out / ("sgd-" + std::string(full ? "full-" : "") + std::to_string(s));
    r.model_path = base.string() + ".pt";
    replace_file(r.model_path, [&](const std::string& tmp) { net.save(tmp); });
    io::write_results(base.string() + ".h5", r);
    std::printf("[%s] accuracy val %.4f  heldout %.4f  test %.4f -> %s.h5\n", tag.c_str(), r.val_accuracy,
                r.heldout_accuracy, r.test_accuracy, base.string().c_str());
    summary["networks"].push_back({{"seed", s}, {"val", r.val_accuracy}, {"heldout", r.heldout_accuracy},
                                   {"test", r.test_accuracy}, {"results", base.string() + ".h5"}});
  }
  if (member_probs.size() > 1) {
    const double ens = ensemble_accuracy(at::stack(member_probs), y_test.cpu());
    summary["ensemble_test"] = ens;
    std::printf("[sgd] ensemble of %zu networks (mean of softmax outputs): test accuracy %.4f\n", member_probs.size(), ens);
  }
  if (member_probs.size() > 1) write_summary(out / (std::string("sgd-") + (full ? "full-" : "") + "summary.json"), summary);
  return 0;
}

}  // namespace repsearch::app
