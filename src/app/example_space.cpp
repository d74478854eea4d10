// The example space (the paper's search) in the app: its data, its run over ranks through the shared
// SearchRun loop, its unit files, its archive, and inspect's view of it.
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "memory.hpp"
#include "repsearch/core/data.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/search_run.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/example_archive.hpp"
#include "repsearch/io/identity.hpp"
#include "repsearch/mpi/example_shards.hpp"
#include "space.hpp"

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
namespace fs = std::filesystem;

}  // namespace

ExampleData load_examples(const Options& o, bool images) {
  ExampleData d;
  d.dataset = io::load_dataset(o.get<std::string>("dataset"), o.get<std::string>("data-dir"));
  const auto n_train = d.dataset.train_images.size(0);
  d.indices = example_indices(n_train, o.splits().search, o.get<std::uint64_t>("seed"));
  d.labels = d.dataset.train_labels.index_select(0, d.indices).to(at::kLong);
  d.standardiser = fit_standardiser(d.dataset.train_images);
  d.normalisation = "per-channel standardisation with training-set statistics: mean=" + tensor_list(d.standardiser.mean, 6) +
                    " std=" + tensor_list(d.standardiser.std, 6);
  if (images) d.images = d.standardiser.apply(d.dataset.train_images.index_select(0, d.indices));
  return d;
}

namespace {

// The frozen network: whitening from the first training images (in training-set order), on `device`.
FrozenNet make_network(const Options& o, const ExampleData& d, const at::Device& device) {
  const auto net = o.net();
  const auto n = std::min<i64>(net.whiten_images, d.dataset.train_images.size(0));
  return FrozenNet(net, d.standardiser.apply(d.dataset.train_images.slice(0, 0, n)), d.dataset.n_classes, device);
}

// The config text that shapes the units: the resolved config without the keys a resume may change.
std::string unit_hash(const Options& o) {
  std::istringstream in(o.resolved());
  std::string line, kept;
  const auto mutable_keys = resume_mutable_keys();
  while (std::getline(in, line))
    if (std::find(mutable_keys.begin(), mutable_keys.end(), line.substr(0, line.find(" = "))) == mutable_keys.end())
      kept += line + "\n";
  return sha256_hex(kept);
}

std::string shape_text(const std::vector<i64>& s) {
  std::string t;
  for (auto v : s) t += (t.empty() ? "" : "x") + std::to_string(v);
  return t;
}

std::string schedule_text(const ExampleSearchConfig& c) {
  std::ostringstream os;
  const auto names = frozen_layer_names();
  for (auto l : c.layers) {
    const auto& s = c.schedule[static_cast<std::size_t>(l)];
    os << (os.tellp() > 0 ? ", " : "") << names[static_cast<std::size_t>(l)] << " " << s.generations << " gen alpha "
       << s.alpha << " boost " << s.boost << " blur " << s.blur;
  }
  return os.str();
}

// Prints this rank's memory plan (rank 0) and refuses a run that cannot fit, naming what to lower.
void check_example_memory(const FrozenNet& net, const ExampleSearchConfig& c, i64 example_batch, double data_bytes,
                          const SearchStart& st) {
  const auto plan = mpi::plan_units(1, example_batch, c);
  const auto per_unit = plan.groups == 1 ? c.islands : 1;
  const auto mp = plan_example_memory(net, c, example_batch, per_unit, data_bytes);
  if (st.comm.rank() == 0)
    std::cout << "[search] memory plan of rank 0 (one unit: " << example_batch << " examples x " << per_unit << " island(s), "
              << st.device.str() << "):\n" << mp.table() << std::endl;
  try {
    refuse_unless_fits(mp, data_bytes, st.device, st.node.ranks);
  } catch (const Error& e) {  // say which batch this device's memory takes
    auto fits = [&](i64 b) {
      try {
        refuse_unless_fits(plan_example_memory(net, c, b, per_unit, data_bytes), data_bytes, st.device, st.node.ranks);
        return true;
      } catch (const Error&) {
        return false;
      }
    };
    i64 lo = 0, hi = example_batch;  // fits(lo) (0: none known), !fits(hi)
    while (hi - lo > 1) (fits((lo + hi) / 2) ? lo : hi) = (lo + hi) / 2;
    if (lo == 0) throw;
    fail(e.what(), "; example-batch ", lo, " fits here (the archive depends on example-batch: give every run of ",
         "this search the same)");
  }
}

// The units stored by an earlier run of this config (rank 0 looks, every rank gets the list).
std::vector<i64> finished_units(const SearchStart& st, const mpi::UnitPlan& plan, i64 islands, const std::string& hash) {
  std::vector<i64> done;
  if (st.comm.rank() == 0 && st.resume)
    for (i64 u = 0; u < plan.batches * plan.groups; ++u) {
      bool all = true;
      for (auto i : plan.islands_of(u, islands))
        all = all && io::unit_finished(io::unit_path(st.out.string(), plan.batch_of(u), i), plan.batch_of(u), i, hash);
      if (all) done.push_back(u);
    }
  return mpi::broadcast(st.comm.get(), done);
}

// The run directory's units: a fresh search clears them (refused without --overwrite, as own_run_dir
// refuses the other files), a resume keeps them; temporaries of killed writers go; and every rank must
// see the directory, since each writes its own units there.
void prepare_units_dir(const SearchStart& st) {
  const auto dir = st.out / "units";
  if (st.comm.rank() == 0) {
    std::error_code ec;
    if (!st.resume && fs::exists(dir) && !fs::is_empty(dir, ec)) {
      if (!st.overwrite)
        fail("run directory ", st.out.string(), " already holds units/ of a search: continue it with --resume, start afresh ",
             "with --overwrite (deletes them), or choose another --out");
      fs::remove_all(dir, ec);
    }
    fs::create_directories(dir, ec);
    if (ec) fail_output(dir.string(), "cannot create ", dir.string(), ": ", ec.message());
    int removed = 0;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().filename().string().find(".h5.tmp-") != std::string::npos && fs::remove(entry.path(), ec)) ++removed;
    if (removed) std::cout << "[search] removed " << removed << " temporary unit file(s) left by an interrupted write" << std::endl;
  }
  const auto token = dir / (".ranks-see-" + std::to_string(::getpid()));
  const auto name = mpi::broadcast(st.comm.get(), {static_cast<i64>(::getpid())});
  const auto seen = dir / (".ranks-see-" + std::to_string(name.front()));
  if (st.comm.rank() == 0) std::ofstream(token.string()) << "rank 0\n";
  (void)mpi::ranks_failing(st.comm.get(), true);  // rank 0's token exists before anyone looks
  const auto blind = mpi::ranks_failing(st.comm.get(), fs::exists(seen));
  (void)mpi::ranks_failing(st.comm.get(), true);
  if (st.comm.rank() == 0) fs::remove(token);
  if (!blind.empty())
    fail("the run directory ", st.out.string(), " is not shared: rank(s) ", tensor_list(at::tensor(blind)),
         " cannot see what rank 0 writes there; an example search writes each rank's units into it, so give --out a "
         "file system every node mounts");
}

}  // namespace

namespace {

// A resume of a search whose archive is already written (and its units gone): nothing to search.
bool complete_archive(const SearchStart& st, const Options& o) {
  int done = 0;
  if (st.comm.rank() == 0 && fs::exists(st.archive_path)) {
    try {
      io::ExampleArchive a(st.archive_path);
      done = a.provenance.config_sha256 == o.sha256() ? 1 : 0;
    } catch (const Error&) {
      done = 0;  // damaged or another kind: assembled again from the units
    }
  }
  done = static_cast<int>(mpi::broadcast(st.comm.get(), {done}).front());
  if (done && st.comm.rank() == 0)
    std::cout << "[search] " << st.archive_path << " already holds this search, complete: nothing to resume" << std::endl;
  return done != 0;
}

io::ExampleArchiveSpec archive_spec(const Options& o, const ExampleData& d, const FrozenNet& net, const io::Provenance& prov) {
  io::ExampleArchiveSpec spec;
  spec.provenance = prov;
  spec.unit_hash = unit_hash(o);
  spec.dataset = d.dataset.name;
  spec.data_dir = d.dataset.data_dir;
  spec.normalisation = d.normalisation;
  spec.indices = d.indices;
  spec.labels = d.labels;
  spec.example_batch = o.get<i64>("example-batch");
  spec.islands = o.get<i64>("islands");
  spec.layers = o.example_search().layers;
  spec.net = net.config();
  spec.net_parameters = net.parameters();
  for (auto* list : {&spec.net_parameters.conv1, &spec.net_parameters.conv2, &spec.net_parameters.bn1_mean,
                     &spec.net_parameters.bn1_var, &spec.net_parameters.bn2_mean, &spec.net_parameters.bn2_var})
    for (auto& t : *list) t = t.cpu().contiguous();
  for (auto* t : {&spec.net_parameters.whiten_weight, &spec.net_parameters.whiten_bias, &spec.net_parameters.head})
    *t = t->cpu().contiguous();
  spec.input_shape = net.input_shape();
  spec.targets_dtype = o.get<std::string>("targets-dtype");
  spec.diversity_examples = o.get<i64>("diversity-examples");
  spec.neff_pooled = o.get<std::string>("neff") == "pooled";
  spec.neff_centre = o.get<bool>("neff-centre");
  return spec;
}

std::string per_layer_text(const std::vector<double>& v, const std::vector<i64>& layers) {
  std::ostringstream os;
  os.precision(4);
  const auto names = frozen_layer_names();
  for (auto l : layers) os << (os.tellp() > 0 ? "  " : "") << names[static_cast<std::size_t>(l)] << " " << std::fixed
                           << v[static_cast<std::size_t>(l)];
  return os.str();
}

void print_summary(const std::string& path, const io::ExampleSummary& s, const ExampleSearchConfig& c) {
  std::printf("[search] archive %s: %lld examples x %lld island(s); mean best cross-entropy after each layer's search: %s "
              "(untrained network %.4f); searched logits pick the true label for %.2f%%\n",
              path.c_str(), static_cast<long long>(s.examples), static_cast<long long>(s.islands),
              per_layer_text(s.mean_best_ce, c.layers).c_str(), s.mean_initial_ce, 100.0 * s.logit_accuracy);
  if (s.islands > 1)
    std::printf("[search] N_eff of the island bests (%s): block0 %.3f  block1 %.3f  block2 %.3f\n", s.neff_variant.c_str(),
                s.n_eff[0], s.n_eff[1], s.n_eff[2]);
  const double ops = s.seconds > 0 ? 100.0 * s.operator_seconds / s.seconds : 0;
  std::printf("[search] cost: %lld candidate evaluations in %.1f s of unit time (%.0f eval/s per rank): frozen network's "
              "forward passes %.1f s (%.1f%%), genetic operators %.1f s (%.1f%%)\n",
              static_cast<long long>(s.evaluations), s.seconds, s.seconds > 0 ? static_cast<double>(s.evaluations) / s.seconds : 0.0,
              s.forward_seconds, s.seconds > 0 ? 100.0 * s.forward_seconds / s.seconds : 0.0, s.operator_seconds, ops);
  std::fflush(stdout);
}

}  // namespace

int ExampleSpace::search(const Options& o, SearchStart& st) const {
  const auto c = o.example_search();
  const auto example_batch = o.get<i64>("example-batch");
  auto d = load_examples(o);
  const auto net = make_network(o, d, st.device);
  const double data_bytes = static_cast<double>(d.dataset.train_images.nbytes() + d.dataset.test_images.nbytes() + d.images.nbytes());
  check_example_memory(net, c, example_batch, data_bytes, st);
  if (st.resume && complete_archive(st, o)) return 0;
  const auto identity = io::data_identity(d.dataset, d.indices, at::Tensor(), at::Tensor());
  if (st.resume) check_data_identity(st.head.provenance.data, st.ckpt_path, identity, d.dataset.data_dir, o);
  const auto prov = make_provenance(o, st.comm, identity, "frozen-net-cross-entropy", schedule_text(c),
                                    st.device.str() + "x" + std::to_string(st.threads) + "threads");
  if (st.comm.rank() == 0 && !st.resume) io::CheckpointWriter(st.ckpt_path, prov, 0).finish({});  // resumable from now on
  prepare_units_dir(st);
  const auto hash = unit_hash(o);
  const auto plan = mpi::plan_units(d.indices.size(0), example_batch, c);
  mpi::ExampleWork work{d.images, d.labels, d.indices, example_batch, finished_units(st, plan, c.islands, hash)};
  const auto out = st.out.string();
  mpi::ExampleShards shards(st.comm.get(), net, c, work, [&](const std::vector<IslandUnit>& units, const at::Tensor& idx) {
    for (const auto& u : units) io::write_unit(io::unit_path(out, u.batch, u.island), u, idx, hash);
  });
  auto control = run_control(o, st.ckpt_path);
  control.generations = shards.total_steps();
  control.step_name = "step";
  SearchRun run(shards, control, [&](i64 step) {
    return std::make_unique<CheckpointFile>(st.ckpt_path, prov, step);
  });
  run.start();
  if (st.comm.rank() == 0) {
    std::cout << "[search] " << d.dataset.name << ": " << d.indices.size(0) << " examples in " << plan.batches
              << " batches of " << example_batch << " | frozen network " << shape_text(net.input_shape()) << " -> "
              << shape_text(net.layer_shape(0)) << " / " << shape_text(net.layer_shape(1)) << " / " << shape_text(net.layer_shape(2))
              << " -> " << net.classes() << " (BatchNorm " << net.config().batchnorm << ") | population " << c.population()
              << " = " << c.parents << " + " << c.exploratory << " + " << c.refinement << " x " << c.islands << " island(s) on "
              << st.where() << "\n[search] " << schedule_text(c) << "\n[search] " << (st.resume ? "resumed: " : "")
              << work.finished.size() << " of " << plan.batches * plan.groups << " units already stored; " << shards.units_left()
              << " to search in " << shards.total_steps() << " steps; run directory " << out << std::endl;
  }
  if (run.run() == SearchRun::Outcome::stopped) return kExitCheckpointed;
  run.finish();
  if (st.comm.rank() == 0) {
    const auto summary = io::write_example_archive(st.archive_path, out, archive_spec(o, d, net, prov));
    print_summary(st.archive_path, summary, c);
    if (!o.get<bool>("keep-units")) fs::remove_all(st.out / "units");
  }
  run.report_cost(0);
  return 0;
}

int ExampleSpace::data(const Options& o) const {
  const auto d = load_examples(o);
  const auto net = make_network(o, d, at::kCPU);
  const auto c = o.example_search();
  const auto b = o.get<i64>("example-batch");
  const auto plan = mpi::plan_units(d.indices.size(0), b, c);
  std::cout << "dataset " << d.dataset.name << " from " << d.dataset.data_dir << "\n"
            << "  train " << d.dataset.train_images.sizes() << "  test " << d.dataset.test_images.sizes() << "  classes "
            << d.dataset.n_classes << "\n  " << d.normalisation << "\n"
            << "space example (seed " << o.get<std::uint64_t>("seed") << "): " << d.indices.size(0) << " searched examples, per class "
            << tensor_list(class_counts(d.labels, d.dataset.n_classes)) << "\n"
            << "  " << plan.batches << " batches of " << b << " x " << plan.groups << " unit(s) each ("
            << c.islands << " island(s)" << (plan.groups == 1 && c.islands > 1 ? ", searched together: they migrate" : "") << ")\n"
            << "  frozen network: " << shape_text(net.input_shape()) << " -> whitened " << shape_text(net.input_shape_of(0));
  for (i64 l = 0; l < FrozenNet::kLayers; ++l)
    std::cout << " -> " << frozen_layer_names()[static_cast<std::size_t>(l)] << " " << shape_text(net.layer_shape(l));
  std::cout << "\n  " << schedule_text(c) << "; " << c.ticks() * c.population() << " evaluations per example at most\n";
  return 0;
}

nlohmann::json ExampleSpace::inspect(const std::string& path, bool print) const {
  io::ExampleArchive a(path);
  const auto names = frozen_layer_names();
  const auto& s = a.summary;
  nlohmann::json j;
  j["path"] = path;
  j["space"] = "example";
  j["examples"] = a.examples();
  j["islands"] = a.islands;
  j["dataset"] = a.dataset;
  j["data_dir"] = a.data_dir;
  j["provenance"] = {{"repsearch_version", a.provenance.repsearch_version}, {"git_commit", a.provenance.git_commit},
                     {"created", a.provenance.created}, {"command_line", a.provenance.command_line},
                     {"config_sha256", a.provenance.config_sha256}, {"seed", a.provenance.seed},
                     {"n_ranks", a.provenance.n_ranks}, {"hosts", a.provenance.hosts}, {"devices", a.provenance.devices},
                     {"schedule", a.provenance.fitness_parameters}};
  nlohmann::json shapes, searched = nlohmann::json::array(), ce, all_ce, neff;
  for (i64 l = 0; l < 4; ++l) shapes[names[static_cast<std::size_t>(l)]] = a.layer_shape(l);
  for (auto l : a.layers) {
    searched.push_back(names[static_cast<std::size_t>(l)]);
    ce[names[static_cast<std::size_t>(l)]] = s.mean_best_ce[static_cast<std::size_t>(l)];
  }
  for (i64 l = 0; l < 4; ++l) all_ce[names[static_cast<std::size_t>(l)]] = s.mean_best_ce[static_cast<std::size_t>(l)];
  j["layers"] = searched;
  j["layer_shapes"] = shapes;
  j["mean_best_ce"] = ce;
  j["mean_ce_every_layer"] = all_ce;
  j["mean_initial_ce"] = s.mean_initial_ce;
  j["logit_accuracy"] = s.logit_accuracy;
  if (a.islands > 1) {
    for (i64 l = 0; l < 3; ++l) neff[names[static_cast<std::size_t>(l)]] = s.n_eff[static_cast<std::size_t>(l)];
    j["n_eff"] = neff;
    j["n_eff_by_islands"] = s.n_eff_by_islands;
    j["n_eff_variant"] = s.neff_variant;
  }
  j["history"] = a.history;
  j["targets_dtype"] = a.targets_dtype;
  j["cost"] = {{"evaluations", s.evaluations}, {"seconds", s.seconds}, {"forward_seconds", s.forward_seconds},
               {"operator_seconds", s.operator_seconds}};
  std::vector<std::string> damaged;
  for (double v : s.mean_best_ce)
    if (!std::isfinite(v)) damaged.push_back("summary/mean_best_ce");
  j["damaged"] = damaged;
  if (!print) return j;
  std::cout << "archive " << path << " (space example: the paper's search)\n"
            << "  repsearch " << a.provenance.repsearch_version << " (" << a.provenance.git_commit << "), created "
            << a.provenance.created << "\n  command   " << a.provenance.command_line << "\n  config    sha256 "
            << a.provenance.config_sha256 << ", seed " << a.provenance.seed << "\n  run       " << a.islands << " island(s) on "
            << a.provenance.n_ranks << " rank(s); hosts " << a.provenance.hosts << "; devices " << a.provenance.devices << "\n"
            << "  data      " << a.dataset << " from " << a.data_dir << ": " << a.examples() << " examples\n"
            << "  search    " << a.provenance.fitness_parameters << "\n  targets   ";
  for (i64 l = 0; l < 4; ++l) std::cout << names[static_cast<std::size_t>(l)] << " " << shape_text(a.layer_shape(l)) << "  ";
  std::cout << "(" << a.targets_dtype << "), softmax\n";
  std::printf("  mean best cross-entropy after each searched layer: %s (untrained network %.4f)\n",
              per_layer_text(s.mean_best_ce, a.layers).c_str(), s.mean_initial_ce);
  std::printf("  searched logits pick the true label for %.2f%% of the examples\n", 100.0 * s.logit_accuracy);
  if (a.islands > 1)
    std::printf("  N_eff of the island bests (%s): block0 %.3f  block1 %.3f  block2 %.3f\n", s.neff_variant.c_str(), s.n_eff[0],
                s.n_eff[1], s.n_eff[2]);
  std::printf("  cost: %lld evaluations, %.1f s of unit time: forward passes %.1f s, operators %.1f s\n",
              static_cast<long long>(s.evaluations), s.seconds, s.forward_seconds, s.operator_seconds);
  return j;
}

std::int64_t ExampleSpace::damaged(const nlohmann::json& inspected) const {
  return inspected.contains("damaged") ? static_cast<std::int64_t>(inspected["damaged"].size()) : 0;
}

}  // namespace repsearch::app
