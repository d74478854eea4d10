#include "commands.hpp"

#include "memory.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <sys/resource.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "repsearch/core/data.hpp"
#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/search_run.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/identity.hpp"
#include "repsearch/io/results.hpp"
#include "repsearch/io/rundir.hpp"
#include "repsearch/mpi/archipelago.hpp"
#include "repsearch/mpi/session.hpp"
#include "repsearch/io/example_archive.hpp"
#include "space.hpp"

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
namespace fs = std::filesystem;

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

bool stop_requested() { return g_stop_signal != 0; }

// TERM, USR1 and a first INT (Ctrl-C) ask for a checkpoint at the next agreed generation; a second
// INT kills as usual.
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
}

// The search's hold on the run directory, taken before any data is loaded: own_outputs over the whole
// directory, and never silently reused.
std::unique_ptr<io::RunLock> own_run_dir(const fs::path& out, bool resume, bool overwrite, const std::string& what) {
  const std::vector<std::string> ours = {"archive.h5", "checkpoint.h5", "checkpoint.prev.h5"};
  auto locks = own_outputs(out, "search", what, {io::kRunLockName}, ours);
  auto lock = std::move(locks.front());
  if (resume) return lock;
  std::string existing;
  for (const auto& name : ours)
    if (fs::exists(out / name)) existing += (existing.empty() ? "" : ", ") + name;
  if (existing.empty()) return lock;
  if (!overwrite)
    fail("run directory ", out.string(), " already holds ", existing,
         ": continue that run with --resume, start afresh with --overwrite (deletes them), or choose another --out");
  for (const auto& name : ours) fs::remove(out / name);
  std::cout << "[search] --overwrite: deleted " << existing << " in " << out.string() << std::endl;
  return lock;
}

namespace {

// An unreadable checkpoint's error, with what can still be done: the previous checkpoint, if intact.
Error with_previous_checkpoint(const std::string& ckpt_path, const std::string& message) {
  const auto prev = io::previous_checkpoint(ckpt_path);
  std::string hint;
  if (fs::exists(prev)) {
    try {
      auto h = io::verify_checkpoint(prev);
      hint = "\nthe previous checkpoint " + prev + " (generation " + std::to_string(h.generation) +
             ") reads back intact: to resume from it, move it onto " + ckpt_path + " and run with --resume again";
    } catch (const Error& e) {
      hint = "\nthe previous checkpoint " + prev + " cannot be read either: " + e.what();
    }
  } else {
    hint = "\nno previous checkpoint (" + prev + ") exists";
  }
  return Error(message + hint);
}

std::string value_of(const std::string& resolved, const std::string& key) {
  std::istringstream is(resolved);
  std::string line;
  while (std::getline(is, line))
    if (line.rfind(key + " = ", 0) == 0) return line.substr(key.size() + 3);
  return "(absent)";
}

}  // namespace

// Before any work: every rank resolved the same config, or an OptionError (rank 0; the others leave
// quietly) naming the first key where a rank differs from rank 0, with both values.
void check_ranks_agree(const Options& o, const mpi::Communicator& comm) {
  const auto texts = mpi::texts_unless_equal(comm.get(), rank_agreed_text(o));
  if (!texts.empty() && comm.rank() != 0) throw ReportedByRankZero("the ranks' configs differ");
  for (std::size_t r = 1; r < texts.size(); ++r) {
    const auto keys = differing_keys(texts[0], texts[r]);
    if (keys.empty()) continue;
    const auto& k = keys.front();
    std::string all;
    for (const auto& key : keys) all += (all.empty() ? "" : ", ") + key;
    fail_option(k, value_of(texts[r], k), "'" + value_of(texts[0], k) + "', as on rank 0",
                "ranks disagree on the config: rank ", r, " has ", k, " = ", value_of(texts[r], k), ", rank 0 has ", k,
                " = ", value_of(texts[0], k), " (keys that differ between them: ", all,
                "); every rank of a search must be given the same options and --config files (only threads, device ",
                "and data-dir may differ)");
  }
  for (std::size_t r = 1; r < texts.size(); ++r)  // the same keys and values, yet another text
    if (texts[r] != texts[0])
      fail("ranks disagree on the config: rank ", r, "'s resolved config text differs from rank 0's in its form, not in a ",
           "value (different repsearch versions?); run one binary on every rank");
}


OutputLocks own_outputs(const fs::path& dir, const std::string& tag, const std::string& what,
                        const std::vector<std::string>& locks, const std::vector<std::string>& files) {
  OutputLocks held;
  for (const auto& name : locks) held.push_back(std::make_unique<io::RunLock>(dir.string(), what, name));
  io::ensure_writable_dir(dir.string(), "out");
  if (int n = io::remove_stale_temporaries(dir.string(), files))
    std::cout << "[" << tag << "] removed " << n << " temporary file(s) left in " << dir.string()
              << " by an interrupted write" << std::endl;
  return held;
}

// LibTorch's intra-op pool and OpenBLAS's own pool (libopenblas0-pthread ignores OpenMP settings).
void set_threads(int threads) {
  at::set_num_threads(threads);
  using setter = void (*)(int);
  if (auto f = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
}

int node_cores() { return std::max(1u, std::thread::hardware_concurrency()); }

at::Device choose_device(const std::string& want, int local_rank) {
  const bool cuda = at::hasCUDA();
  if (want == "cuda" && !cuda)
    throw OptionError("device", want, "auto or cpu (this LibTorch has no CUDA device)",
                      "option device: 'cuda' asked for, but this LibTorch has no CUDA device");
  if (want == "cpu" || !cuda) return at::Device(at::kCPU);
  const int count = at::detail::getCUDAHooks().getNumGPUs();
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank % std::max(1, count)));
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

io::Origin run_origin(const Options& o) {
  io::Origin origin;
  origin.repsearch_version = REPSEARCH_VERSION;
  origin.git_commit = REPSEARCH_GIT_COMMIT;
  origin.created = now_iso();
  origin.command_line = "repsearch " + o.command + " " + o.command_line;
  origin.config = o.resolved();
  origin.config_sha256 = o.sha256();
  origin.seed = o.get<std::uint64_t>("seed");
  return origin;
}

std::string tensor_list(const at::Tensor& t, int precision) {
  std::ostringstream os;
  auto c = t.to(at::kDouble).contiguous();
  os << "[" << std::setprecision(precision);
  for (i64 i = 0; i < c.numel(); ++i) os << (i ? ", " : "") << c[i].item<double>();
  os << "]";
  return os.str();
}

Prepared prepare(const Options& o, const at::Device& device, bool fitness_inputs) {
  Prepared p;
  p.dataset = io::load_dataset(o.get<std::string>("dataset"), o.get<std::string>("data-dir"));
  p.splits = make_splits(p.dataset.train_images.size(0), o.splits(), o.get<std::uint64_t>("seed"));
  p.standardiser = fit_standardiser(p.dataset.train_images);
  p.normalisation = "per-channel standardisation with training-set statistics: mean=" +
                    tensor_list(p.standardiser.mean, 6) + " std=" + tensor_list(p.standardiser.std, 6);
  p.fitness_data.n_classes = p.dataset.n_classes;
  if (fitness_inputs) add_fitness_inputs(p, device);
  return p;
}

io::DataIdentity data_identity(const Prepared& p) {
  return io::data_identity(p.dataset, p.splits.search, p.splits.val, p.splits.heldout);
}

void check_data_identity(const io::DataIdentity& recorded, const std::string& file, const io::DataIdentity& now,
                         const std::string& data_dir, const Options& o) {
  std::string source = data_dir;
  const char* env = std::getenv("REPSEARCH_DATA_DIR");
  if (o.get<std::string>("data-dir").empty() && env != nullptr && *env != '\0')
    source += std::string(" (the directory comes from REPSEARCH_DATA_DIR=") + env + ")";
  if (!recorded.recorded()) {
    std::cerr << "repsearch " << o.command << ": warning: " << file << " records no data identity (written by an "
              << "older repsearch), so the data in " << source << " cannot be checked against it" << std::endl;
    return;
  }
  const auto diffs = io::identity_differences(recorded, file, now, data_dir);
  if (diffs.empty()) return;
  fail_input(file, o.command, ": the data in ", source, " is not the data ", file, " was computed from (",
             recorded.dataset, " in ", recorded.data_dir, "):", diffs,
             "\n(give that data with --data-dir, or run again on this data into another directory)");
}

void check_data_identity(const io::DataIdentity& recorded, const std::string& file, const Prepared& p,
                         const Options& o) {
  check_data_identity(recorded, file, data_identity(p), p.dataset.data_dir, o);
}

void add_fitness_inputs(Prepared& p, const at::Device& device) {
  auto take = [&](const at::Tensor& idx, at::Tensor& x, at::Tensor& y) {
    x = p.standardiser.apply(p.dataset.train_images.index_select(0, idx)).flatten(1).to(device).contiguous();
    y = p.dataset.train_labels.index_select(0, idx).to(device);
  };
  auto& f = p.fitness_data;
  take(p.splits.search, f.x_search, f.y_search);
  take(p.splits.val, f.x_val, f.y_val);
  take(p.splits.heldout, f.x_heldout, f.y_heldout);
}

int DatasetSpace::data(const Options& o) const {
  auto p = prepare(o, at::Device(at::kCPU), /*fitness_inputs=*/false);
  const auto& d = p.dataset;
  std::cout << "dataset " << d.name << " from " << d.data_dir << "\n";
  std::cout << "  train " << d.train_images.sizes() << "  test " << d.test_images.sizes() << "  classes "
            << d.n_classes << "\n";
  std::cout << "  " << p.normalisation << "\n";
  auto show = [&](const char* name, const at::Tensor& idx, const at::Tensor& labels) {
    auto counts = class_counts(labels.index_select(0, idx), d.n_classes);
    std::cout << "  " << std::left << std::setw(9) << name << std::right << std::setw(6) << idx.numel()
              << " examples, per class " << tensor_list(counts) << "\n";
  };
  std::cout << "splits (seed " << o.get<std::uint64_t>("seed") << ")\n";
  show("search S", p.splits.search, d.train_labels);
  show("val V", p.splits.val, d.train_labels);
  show("heldout H", p.splits.heldout, d.train_labels);
  show("test", at::arange(d.test_images.size(0), at::TensorOptions().dtype(at::kLong)), d.test_labels);
  return 0;
}

int cmd_config(const Options& o) {
  const auto resolved = o.resolved();
  if (!o.vm.count("get")) {
    std::cout << resolved;
    return 0;
  }
  const auto key = o.get<std::string>("get");
  if (value_of(resolved, key) == "(absent)")
    throw OptionError("get", key, "an option's name", detail::cat("option get: no option '", key, "' (see 'repsearch config')"));
  std::cout << o.value(key) << "\n";  // the value itself, not its INI quoting: scripts use it as is
  return 0;
}

// Refuses a resume whose config differs from the checkpoint's in a key that may not change (every
// rank reads the small header), before any data is loaded; returns that header.
io::Checkpoint check_resume_config(const Options& o, const std::string& ckpt_path) {
  if (!fs::exists(ckpt_path))
    throw with_previous_checkpoint(ckpt_path, "resume: no checkpoint at " + ckpt_path + " (run without --resume first)");
  io::Checkpoint head;
  try {
    head = io::read_checkpoint_header(ckpt_path);
  } catch (const Error& e) {
    throw with_previous_checkpoint(ckpt_path, std::string("resume: ") + e.what());
  }
  const i64 generations = o.get<i64>("generations");
  // (the example space's checkpoint counts steps, which depend on the rank count, not generations)
  if (o.get<std::string>("space") == "dataset" && generations < head.generation)
    fail_option("generations", generations, detail::cat(">= ", head.generation, ", the checkpoint's generation"),
                "resume: ", ckpt_path, " is at generation ", head.generation, ", past --generations ", generations,
                ": a run cannot end before where it stands; give --generations ", head.generation,
                " or more (", head.generation, " just writes the archive from the checkpoint)");
  const auto resolved = o.resolved();
  auto allowed = resume_mutable_keys();
  for (const auto& k : o.allowed_changes()) allowed.push_back(k);
  std::string diffs, first;  // OptionError's fields: the first differing key, now and in the checkpoint
  for (const auto& k : differing_keys(head.provenance.config, resolved)) {
    // An option added since that checkpoint was written, left at its default: the run it continues.
    if (value_of(head.provenance.config, k) == "(absent)" && o.vm.count(k) && o.vm.at(k).defaulted()) continue;
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    if (first.empty()) first = k;
    diffs += "\n  " + k + ": checkpoint '" + value_of(head.provenance.config, k) + "', now '" + value_of(resolved, k) + "'";
  }
  if (!diffs.empty())
    fail_option(first, value_of(resolved, first), "'" + value_of(head.provenance.config, first) + "', the checkpoint's",
                "resume: ", ckpt_path, " was written with a different config; differing keys:", diffs,
                "\n(only run-control keys, generations and learner options may change on a resume, and with --allow-change ",
                "the keys 'repsearch search --help' lists; otherwise start a new run directory)");
  return head;
}

namespace {

// This rank's islands and the migration log from the checkpoint, into the run.
void resume_from(SearchRun& run, const std::string& ckpt_path, const mpi::Communicator& comm, i64 n_islands,
                 const at::Device& device) {
  io::Checkpoint ck;
  try {
    ck = io::read_checkpoint(ckpt_path, mpi::islands_of_rank(comm.rank(), comm.size(), n_islands), device);
  } catch (const Error& e) {
    throw with_previous_checkpoint(ckpt_path, std::string("resume: ") + e.what());
  }
  run.resume(ck.generation, std::move(ck.islands), std::move(ck.migrations));
}

}  // namespace

// Collective (host and device names are gathered); complete on rank 0.
io::Provenance make_provenance(const Options& o, const mpi::Communicator& comm, const io::DataIdentity& data,
                               const std::string& fitness, const std::string& fitness_parameters,
                               const std::string& device) {
  io::Provenance prov;
  static_cast<io::Origin&>(prov) = run_origin(o);
  prov.data = data;
  prov.n_islands = o.get<i64>("islands");
  prov.n_ranks = comm.size();
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  prov.hosts = mpi::gather_joined(comm.get(), host);
  prov.devices = mpi::gather_joined(comm.get(), device);
  prov.fitness = fitness;
  prov.fitness_parameters = fitness_parameters;
  return prov;
}

namespace {


}  // namespace

RunControl run_control(const Options& o, const std::string& ckpt_path) {
  RunControl c;
  c.generations = o.get<i64>("generations");
  c.log_every = o.get<i64>("log-every");
  c.checkpoint_interval = o.get<i64>("checkpoint-interval");
  c.checkpoint_seconds = 60.0 * o.get<double>("checkpoint-minutes");
  c.elites = o.get<i64>("elites");
  c.elite_selection.mode = o.get<std::string>("elite-selection");
  c.elite_selection.tolerance = o.get<double>("elite-tolerance");
  c.checkpoint_path = ckpt_path;
  c.stop_requested = [] { return stop_requested(); };
  return c;
}

namespace {

// Rank 0's opening lines: what runs where, and what the set-up cost.
void print_start(const Options& o, const Prepared& p, const SearchConfig& sc, const std::string& where,
                 const std::string& fitness, i64 generation, std::chrono::steady_clock::time_point started) {
  const bool resume = o.vm["resume"].as<bool>();
  std::cout << "[search] " << p.dataset.name << ": n_s=" << p.splits.search.numel() << " |V|=" << p.splits.val.numel()
            << " |H|=" << p.splits.heldout.numel() << " d=" << sc.dim << " | " << sc.algorithm << " P=" << sc.population
            << " x " << o.get<i64>("islands") << " islands on " << where << " | fitness " << fitness
            << " | topology " << o.get<std::string>("topology") << " every " << o.get<i64>("migration-interval") << "\n"
            << "[search] " << (resume ? "resumed at generation " : "starting at generation ") << generation << " of "
            << o.get<i64>("generations") << "; run directory " << o.get<std::string>("out") << std::endl;
  struct rusage setup_ru {};
  getrusage(RUSAGE_SELF, &setup_ru);
  std::printf("[search] set-up %.1f s (data, fitness, operators, %s), peak RSS %.0f MiB so far\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
              resume ? "resume" : "generation 0", static_cast<double>(setup_ru.ru_maxrss) / 1024.0);
  std::fflush(stdout);
}

// Rank 0: the archive from the run's result and the data it was searched on, and its summary line.
void write_search_archive(const std::string& path, const io::Provenance& prov, const Prepared& p,
                          const SearchRun::Result& r) {
  const auto& elites = r.elites;
  io::Archive a;
  a.provenance = prov;
  a.dataset = p.dataset.name;
  a.data_dir = p.dataset.data_dir;
  a.normalisation = p.normalisation;
  a.search_indices = p.splits.search;
  a.val_indices = p.splits.val;
  a.heldout_indices = p.splits.heldout;
  a.search_labels = p.dataset.train_labels.index_select(0, p.splits.search).to(at::kInt);
  a.representations = elites.representations;
  a.fitness = at::tensor(elites.fitness, at::TensorOptions().dtype(at::kDouble));
  a.heldout = at::tensor(elites.heldout, at::TensorOptions().dtype(at::kDouble));
  a.island = at::tensor(elites.island, at::TensorOptions().dtype(at::kInt));
  a.generation = at::tensor(elites.generation, at::TensorOptions().dtype(at::kInt));
  a.uid = elites.uid;
  a.cka = elites.cka;
  a.disagreement = elites.disagreement;
  a.elite_selection = elites.selection;
  a.histories = r.histories;
  a.migrations = r.migrations;
  io::write_archive(path, a);
  const double div = mean_pairwise(1.0 - elites.cka);  // the CKA matrix has a unit diagonal
  const double dis = elites.disagreement.defined() ? mean_pairwise(elites.disagreement) : NAN;
  std::printf("[search] archive %s: %zu elites (%s), best held-out %.4f (island %d, generation %d), worst %.4f, "
              "elite diversity (mean 1-CKA) %.4f, disagreement on V %.4f\n",
              path.c_str(), elites.uid.size(), elites.selection.c_str(), elites.heldout.front(), elites.island.front(),
              elites.generation.front(), elites.heldout.back(), div, dis);
}

}  // namespace

int DatasetSpace::search(const Options& o, SearchStart& st) const {
  const auto& comm = st.comm;
  const auto n_islands = o.get<i64>("islands");
  auto p = prepare(o, st.device, /*fitness_inputs=*/false);
  if (st.resume) check_data_identity(st.head.provenance.data, st.ckpt_path, p, o);  // every rank: its own data
  check_memory_plan(o, p, st.device, comm.rank(), comm.size(), st.node.ranks);
  add_fitness_inputs(p, st.device);
  auto fitness = make_fitness(o.fitness(), p.fitness_data);
  const auto sc = o.search();
  const auto ctx = make_search_context(p.fitness_data.x_search, p.fitness_data.y_search, p.fitness_data.n_classes,
                                       p.fitness_data.x_val.size(0), sc);
  mpi::Archipelago arch(comm.get(), n_islands, sc, o.migration(), fitness, ctx);
  const auto prov = make_provenance(o, comm, data_identity(p), fitness.name(), fitness.parameters(),
                                    st.device.str() + "x" + std::to_string(st.threads) + "threads");
  const auto& ckpt_path = st.ckpt_path;
  SearchRun run(arch, run_control(o, ckpt_path),
                [&](i64 generation) { return std::make_unique<CheckpointFile>(ckpt_path, prov, generation); });
  if (st.resume) resume_from(run, ckpt_path, comm, n_islands, st.device);
  else run.start();
  if (comm.rank() == 0) print_start(o, p, sc, st.where(), fitness.name(), arch.generation(), st.started);
  if (run.run() == SearchRun::Outcome::stopped) return kExitCheckpointed;
  const auto result = run.finish();
  if (comm.rank() == 0) write_search_archive(st.archive_path, prov, p, result);
  run.report_cost(static_cast<double>(sc.population * p.splits.search.numel() * sc.dim * 4) / 1048576.0);
  return 0;
}


namespace {

// The last generation of every island that has one.
nlohmann::json islands_json(const io::Archive& a) {
  nlohmann::json islands = nlohmann::json::array();
  for (std::size_t i = 0; i < a.histories.size(); ++i) {
    const auto& h = a.histories[i];
    if (h.empty()) continue;
    islands.push_back({{"island", i}, {"generation", h.back().generation}, {"best", h.back().best},
                       {"mean", h.back().mean}, {"heldout", h.back().heldout}, {"diversity", h.back().diversity},
                       {"evaluations", h.back().evaluations}, {"seconds", h.back().seconds},
                       {"first_heldout", h.front().heldout}});
  }
  return islands;
}

// A file's data identity, checked against the data now in its recorded directory where that exists
// (the training and test sets: the splits are rows of the first): "check" is "matches", "differs"
// (with "differences"), "not recorded" or "not checked" (with "summary" saying why).
nlohmann::json inspect_data(const io::DataIdentity& id) {
  nlohmann::json j = {{"dataset", id.dataset}, {"data_dir", id.data_dir}, {"splits", nlohmann::json::array()}};
  for (const auto& s : id.splits)
    j["splits"].push_back({{"split", s.name}, {"examples", s.examples}, {"labels_crc32", s.labels_crc32},
                           {"images_crc32", s.images_crc32}});
  if (!id.recorded()) {
    j["check"] = "not recorded";
    j["summary"] = "not recorded (written by an older repsearch)";
    return j;
  }
  std::error_code ec;
  if (!fs::is_directory(id.data_dir, ec)) {
    j["check"] = "not checked";
    j["summary"] = "recorded; not checked: " + id.data_dir + " is not a directory here";
    return j;
  }
  static std::map<std::pair<std::string, std::string>, io::DataIdentity> loaded;  // one load per data set
  auto key = std::make_pair(id.dataset, id.data_dir);
  if (!loaded.count(key)) {
    const auto d = io::load_dataset(id.dataset, id.data_dir);
    loaded[key] = io::data_identity(d, at::Tensor(), at::Tensor(), at::Tensor());
  }
  const auto diffs = io::identity_differences(id, "the file", loaded[key], id.data_dir);
  j["check"] = diffs.empty() ? "matches" : "differs";
  if (!diffs.empty()) j["differences"] = diffs;
  j["summary"] = diffs.empty() ? "recorded; the data in " + id.data_dir + " matches it"
                               : "DIFFERS from the data now in " + id.data_dir + ":" + diffs;
  return j;
}

}  // namespace

nlohmann::json DatasetSpace::inspect(const std::string& path, bool print) const {
  {
    auto a = io::read_archive(path);
    const auto& pv = a.provenance;
    const auto k = static_cast<i64>(a.uid.size());
    const double div = mean_pairwise(1.0 - a.cka);  // the CKA matrix has a unit diagonal
    nlohmann::json j;
    j["path"] = path;
    j["provenance"] = {{"repsearch_version", pv.repsearch_version}, {"git_commit", pv.git_commit},
                       {"created", pv.created}, {"command_line", pv.command_line},
                       {"config_sha256", pv.config_sha256}, {"seed", pv.seed}, {"n_islands", pv.n_islands},
                       {"n_ranks", pv.n_ranks}, {"hosts", pv.hosts}, {"devices", pv.devices},
                       {"fitness", pv.fitness}, {"fitness_parameters", pv.fitness_parameters}};
    j["data"] = {{"dataset", a.dataset}, {"data_dir", a.data_dir}, {"normalisation", a.normalisation},
                 {"search", a.search_indices.numel()}, {"val", a.val_indices.numel()},
                 {"heldout", a.heldout_indices.numel()}};
    j["data_identity"] = inspect_data(pv.data);
    const nlohmann::json islands = islands_json(a);
    j["islands"] = islands;
    nlohmann::json elites = nlohmann::json::array();
    for (i64 e = 0; e < k; ++e)
      elites.push_back({{"rank", e}, {"uid", a.uid[static_cast<std::size_t>(e)]}, {"fitness", a.fitness[e].item<double>()},
                        {"heldout", a.heldout[e].item<double>()}, {"island", a.island[e].item<int>()},
                        {"generation", a.generation[e].item<int>()}});
    j["elites"] = elites;
    j["elite_shape"] = a.representations.sizes().vec();
    std::vector<i64> broken;  // elites a learner could not use
    for (i64 e = 0; e < k; ++e)
      if (!at::isfinite(a.representations[e]).all().item<bool>()) broken.push_back(e);
    j["nonfinite_elites"] = broken;
    j["diversity"] = div;
    // JSON has no NaN: null where the archive predates the functional measure
    j["disagreement"] = a.disagreement.defined() ? nlohmann::json(mean_pairwise(a.disagreement)) : nlohmann::json();
    j["elite_selection"] = a.elite_selection;
    j["migrations"] = a.migrations.size();
    if (!print) return j;
    std::cout << "archive " << path << "\n"
              << "  repsearch " << pv.repsearch_version << " (" << pv.git_commit << "), created " << pv.created << "\n"
              << "  command   " << pv.command_line << "\n"
              << "  config    sha256 " << pv.config_sha256 << ", seed " << pv.seed << "\n"
              << "  run       " << pv.n_islands << " islands on " << pv.n_ranks << " rank(s); hosts " << pv.hosts
              << "; devices " << pv.devices << "\n"
              << "  fitness   " << pv.fitness << " (" << pv.fitness_parameters << ")\n"
              << "  data      " << a.dataset << " from " << a.data_dir << ": S " << a.search_indices.numel() << ", V "
              << a.val_indices.numel() << ", H " << a.heldout_indices.numel() << "\n"
              << "  identity  " << j["data_identity"]["summary"].get<std::string>() << "\n"
              << "islands (last generation)\n";
    std::printf("  %6s %6s %10s %10s %10s %9s %11s %9s\n", "island", "gen", "best", "mean", "heldout", "diversity",
                "evaluations", "seconds");
    for (const auto& isl : islands)
      std::printf("  %6d %6lld %10.4f %10.4f %10.4f %9.3f %11lld %9.1f\n", isl["island"].get<int>(),
                  isl["generation"].get<long long>(), isl["best"].get<double>(), isl["mean"].get<double>(),
                  isl["heldout"].get<double>(), isl["diversity"].get<double>(), isl["evaluations"].get<long long>(),
                  isl["seconds"].get<double>());
    std::cout << "elites " << tensor_list(at::tensor(j["elite_shape"].get<std::vector<i64>>())) << " (best held-out first)\n";
    std::printf("  %4s %16s %10s %10s %6s %10s\n", "rank", "uid", "fitness", "heldout", "island", "generation");
    for (const auto& e : elites)
      std::printf("  %4lld %16llx %10.4f %10.4f %6d %10d\n", e["rank"].get<long long>(),
                  static_cast<unsigned long long>(e["uid"].get<std::uint64_t>()), e["fitness"].get<double>(),
                  e["heldout"].get<double>(), e["island"].get<int>(), e["generation"].get<int>());
    std::printf("diversity: mean pairwise 1 - CKA of the elites %.4f", div);
    if (a.disagreement.defined()) std::printf(", prediction disagreement on V %.4f", mean_pairwise(a.disagreement));
    if (!a.elite_selection.empty()) std::printf(" (elites: %s)", a.elite_selection.c_str());
    std::printf("; %zu migrations logged\n", a.migrations.size());
    if (!broken.empty())
      std::printf("DAMAGED: elite(s) %s hold non-finite values (NaN or inf); learn refuses them\n",
                  tensor_list(at::tensor(broken)).c_str());
    return j;
  }
}


std::int64_t DatasetSpace::damaged(const nlohmann::json& j) const {
  return j.contains("nonfinite_elites") ? static_cast<std::int64_t>(j["nonfinite_elites"].size()) : 0;
}

namespace {

nlohmann::json inspect_results(const std::string& path, const io::Results& r, bool print) {
  nlohmann::json j = {{"path", path}, {"kind", r.kind}, {"model", r.model}, {"train_data", r.train_data},
                      {"created", r.created}, {"command_line", r.command_line}, {"config_sha256", r.config_sha256},
                      {"seed", r.seed}, {"val", r.val_accuracy}, {"heldout", r.heldout_accuracy},
                      {"test", r.test_accuracy}, {"model_path", r.model_path},
                      {"trajectory_shape", r.activations.defined() ? r.activations.sizes().vec() : std::vector<i64>{}}};
  if (r.example.present()) {  // an example-space network: its trajectories as the paper measures them
    const auto& e = r.example;
    auto rows = [](const at::Tensor& t) {
      std::vector<std::vector<double>> out;
      for (i64 i = 0; i < t.size(0); ++i) out.push_back(std::vector<double>(t[i].data_ptr<double>(), t[i].data_ptr<double>() + 3));
      return out;
    };
    j["archive"] = r.archive_path;
    j["variant"] = e.variant;
    j["depth"] = e.depth;
    j["selected_epoch"] = e.selected_epoch;
    j["kl_weight"] = e.kl_weight;
    j["cosine_distance"] = rows(e.cosine_distance.contiguous());
    j["collision_entropy_within"] = rows(e.entropy_within.contiguous());
    j["collision_entropy_between"] = rows(e.entropy_between.contiguous());
  } else if (r.kind == "learn") {
    j["archive"] = r.archive_path;
    j["archive_sha256"] = r.archive_sha256;
    j["elite_rank"] = r.elite_rank;
    j["elite_uid"] = r.elite_uid;
    j["regression_mse"] = r.regression_mse;
  }
  nlohmann::json epochs = nlohmann::json::array();
  for (std::size_t i = 0; i < r.epochs.size(); ++i) {
    const auto& e = r.epochs[i];
    epochs.push_back({{"phase", r.phase[i]}, {"epoch", e.epoch}, {"loss", e.loss}, {"train_accuracy", e.train_accuracy},
                      {"val_accuracy", e.val_accuracy}, {"examples_per_s", e.examples_per_s}, {"seconds", e.seconds}});
  }
  j["epochs"] = epochs;
  j["data_identity"] = inspect_data(r.data);
  const std::string model_check = io::check_model_file(path, r);
  j["model_file"] = {{"path", io::model_file(path, r)},
                     {"check", r.model_bytes < 0 ? "not recorded" : model_check.empty() ? "matches" : "differs"}};
  if (!model_check.empty()) j["model_file"]["differences"] = model_check;
  if (!print) return j;
  std::cout << "results " << path << " (" << r.kind << ")\n"
            << "  model     " << r.model << ", trained on " << r.train_data << "\n"
            << "  network   " << j["model_file"]["path"].get<std::string>() << ": "
            << (model_check.empty() ? j["model_file"]["check"].get<std::string>() : "DAMAGED: " + model_check) << "\n"
            << "  data      " << r.data.dataset << " from " << r.data.data_dir << "; identity "
            << j["data_identity"]["summary"].get<std::string>() << "\n"
            << "  command   " << r.command_line << "\n";
  if (r.example.present()) {
    const auto& e = r.example;
    const auto last = e.cosine_distance.size(0) - 1;
    auto blocks = [](const at::Tensor& row) { return tensor_list(row, 3); };
    std::printf("  targets   %s of %s (%s, depth %lld); selected epoch %lld of %lld\n", e.variant == "end-to-end" ? "compared with those" : "learned from those",
                r.archive_path.c_str(), e.variant.c_str(), static_cast<long long>(e.depth), static_cast<long long>(e.selected_epoch),
                static_cast<long long>(last));
    std::cout << "  cosine distance to the targets per block: epoch 0 " << blocks(e.cosine_distance[0]) << ", last "
              << blocks(e.cosine_distance[last]) << "\n  collision entropy within classes: epoch 0 " << blocks(e.entropy_within[0])
              << ", last " << blocks(e.entropy_within[last]) << " (targets " << blocks(e.target_entropy_within)
              << ")\n  collision entropy between classes: epoch 0 " << blocks(e.entropy_between[0]) << ", last "
              << blocks(e.entropy_between[last]) << " (targets " << blocks(e.target_entropy_between) << ")\n";
  } else if (r.kind == "learn")
    std::printf("  target    elite %lld (uid %llx) of %s; regression mse %.4f\n", static_cast<long long>(r.elite_rank),
                static_cast<unsigned long long>(r.elite_uid), r.archive_path.c_str(), r.regression_mse);
  std::printf("  accuracy  val %.4f  heldout %.4f  test %.4f\n", r.val_accuracy, r.heldout_accuracy, r.test_accuracy);
  std::printf("  epochs    %zu rows;", r.epochs.size());
  if (!r.epochs.empty())
    std::printf(" first loss %.4f, last loss %.4f (%s), %.0f examples/s, %.1f s", r.epochs.front().loss,
                r.epochs.back().loss, r.phase.back().c_str(), r.epochs.back().examples_per_s, r.epochs.back().seconds);
  if (r.example.present()) {
    std::cout << "\n";
    return j;
  }
  std::cout << "\n  trajectory " << (r.activations.defined() ? tensor_list(at::tensor(r.activations.sizes().vec())) : "[]")
            << " at steps " << (r.steps.numel() ? tensor_list(r.steps) : "[]") << "\n";
  return j;
}

// Linear CKA between the trajectories of two results files: rows are A's recorded steps, columns B's.
nlohmann::json trajectory_cka(const std::string& pa, const io::Results& a, const std::string& pb, const io::Results& b,
                              bool print) {
  if (a.example.present() || b.example.present())
    fail("inspect: ", a.example.present() ? pa : pb, " is an example-space network: its trajectories are measured against the "
         "searched targets (inspect it alone, or draw Figures 5-7 with analysis/report.py on its run directory)");
  if (!a.activations.defined() || !b.activations.defined() || a.activations.size(0) == 0 || b.activations.size(0) == 0)
    fail("inspect: ", a.activations.defined() ? pb : pa, " holds no trajectory to compare");
  if (!at::equal(a.probe_indices, b.probe_indices))
    fail("inspect: ", pa, " and ", pb, " recorded their trajectories on different probe sets (other seed or probe-size?)");
  auto test_only = [](io::DataIdentity id) {  // the probe images are test images
    id.splits.erase(std::remove_if(id.splits.begin(), id.splits.end(), [](const auto& s) { return s.name != "test"; }),
                    id.splits.end());
    return id;
  };
  const auto other_data = io::identity_differences(test_only(a.data), pa, test_only(b.data), pb);
  if (!other_data.empty())
    fail("inspect: ", pa, " and ", pb, " were evaluated on different test sets, so their trajectories' probe images differ:",
         other_data);
  const auto ta = a.activations.size(0), tb = b.activations.size(0);
  auto m = at::empty({ta, tb}, at::TensorOptions().dtype(at::kDouble));
  for (i64 i = 0; i < ta; ++i) m[i].copy_(linear_cka_batch(b.activations, a.activations[i]));
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(ta));
  for (i64 i = 0; i < ta; ++i)
    for (i64 k = 0; k < tb; ++k) rows[static_cast<std::size_t>(i)].push_back(m[i][k].item<double>());
  nlohmann::json j = {{"a", pa}, {"b", pb}, {"steps_a", std::vector<i64>(a.steps.data_ptr<i64>(), a.steps.data_ptr<i64>() + ta)},
                      {"steps_b", std::vector<i64>(b.steps.data_ptr<i64>(), b.steps.data_ptr<i64>() + tb)},
                      {"cka", rows}};
  if (!print) return j;
  std::cout << "linear CKA of cut-layer activations on " << a.probe_indices.numel()
            << " probe images: rows A = " << pa << " (" << a.kind << "), columns B = " << pb << " (" << b.kind
            << "); step = optimisation steps\n";
  std::printf("%8s", "A\\B");
  for (i64 k = 0; k < tb; ++k) std::printf(" %6lld", static_cast<long long>(b.steps[k].item<i64>()));
  std::printf("\n");
  for (i64 i = 0; i < ta; ++i) {
    std::printf("%8lld", static_cast<long long>(a.steps[i].item<i64>()));
    for (i64 k = 0; k < tb; ++k) std::printf(" %6.3f", rows[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)]);
    std::printf("\n");
  }
  const auto t = std::min(ta, tb);
  std::printf("final networks: CKA %.4f; same point in training (i-th recorded step of each): ", rows.back().back());
  for (i64 i = 0; i < t; ++i) std::printf("%s%.3f", i ? " " : "", rows[static_cast<std::size_t>(i)][static_cast<std::size_t>(i)]);
  std::printf("\n");
  return j;
}

}  // namespace

int cmd_inspect(const Options& o) {
  if (!o.vm.count("file"))
    fail("inspect: expected an archive or results path, e.g. 'repsearch inspect runs/x/archive.h5'");
  const auto files = o.get<std::vector<std::string>>("file");
  const bool json = o.vm["json"].as<bool>();
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::pair<std::string, io::Results>> results;
  for (const auto& path : files) {
    const auto format = io::read_format(path);
    if (format == io::kResultsFormat) {
      results.emplace_back(path, io::read_results(path));
      all.push_back(inspect_results(path, results.back().second, !json));
    } else {
      // an archive of either space; anything else is refused with the reader's message
      all.push_back(search_space(io::archive_space(path)).inspect(path, !json));
      all.back()["space"] = io::archive_space(path);
    }
  }
  if (results.size() == 2) {
    auto cka = trajectory_cka(results[0].first, results[0].second, results[1].first, results[1].second, !json);
    if (json) all.push_back({{"trajectory_cka", cka}});
  }
  if (json) std::cout << (all.size() == 1 ? all[0] : all).dump(2) << "\n";
  for (const auto& item : all) {
    if (item.contains("space") && search_space(item["space"].get<std::string>()).damaged(item) > 0)
      fail("inspect: ", item["path"].get<std::string>(), " holds damaged items (non-finite values, NaN or inf): ",
           item.contains("nonfinite_elites") ? item["nonfinite_elites"].dump() : item.value("damaged", nlohmann::json()).dump());
    if (item.contains("model_file") && item["model_file"].contains("differences"))
      fail_input(item["path"].get<std::string>(), "inspect: ", item["path"].get<std::string>(), ": ",
                 item["model_file"]["differences"].get<std::string>());
    if (item.contains("data_identity") && item["data_identity"]["check"] == "differs")
      fail_input(item["path"].get<std::string>(), "inspect: the data now in ",
                 item["data_identity"]["data_dir"].get<std::string>(), " is not the data ", item["path"].get<std::string>(),
                 " was computed from:", item["data_identity"]["differences"].get<std::string>());
  }
  return 0;
}

}  // namespace repsearch::app
