// The program as a hostile user and a failing node would meet it: layered configs, errors on any
// rank, unwritable or shared run directories, structural changes on resume, damaged checkpoints,
// signals to mpirun, a stopped rank, and malformed inputs. Real Fashion-MNIST (configs/smoke.ini).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <regex>
#include <stdexcept>
#include <typeinfo>
#include <sstream>

#include "config.hpp"
#include "memory.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/identity.hpp"
#include "repsearch/io/results.hpp"
#include "testing.hpp"

using namespace testing;
namespace io = repsearch::io;

namespace {

constexpr int repsearch_agree_lag = 3;  // mpi::Archipelago::kAgreeLag: a stop is acted on this many generations later

std::string search(const std::string& out, const std::string& extra = "") {
  return binary() + " search --config " + config("smoke.ini") + " --out " + out + " " + extra;
}

bool has(const Result& r, const std::string& word) { return r.output.find(word) != std::string::npos; }

// The elites and histories that make a search's result (not its wall-clock seconds).
void check_same_result(const io::Archive& a, const io::Archive& b) {
  CHECK(at::equal(a.representations, b.representations));
  CHECK(at::equal(a.heldout, b.heldout));
  CHECK(a.uid == b.uid);
  REQUIRE(a.histories.size() == b.histories.size());
  for (size_t i = 0; i < a.histories.size(); ++i) {
    REQUIRE(a.histories[i].size() == b.histories[i].size());
    for (size_t g = 0; g < a.histories[i].size(); ++g) {
      CHECK(a.histories[i][g].best == b.histories[i][g].best);
      CHECK(a.histories[i][g].heldout == b.histories[i][g].heldout);
    }
  }
}

}  // namespace

TEST_CASE("config: later files win, the command line wins over all, one resolver for the scripts") {
  TempDir dir("repsearch_rel_config");
  const auto later = dir.file("later.ini");
  write_file(later, "generations = 2\ndim = 8\n");
  const std::string both = " --config " + config("smoke.ini") + " --config " + later;
  auto g = run(binary() + " config" + both + " --get generations");
  REQUIRE_MESSAGE(g.status == 0, g.output);
  CHECK(g.output == "2\n");
  CHECK(run(binary() + " config" + both + " --dim 5 --get dim").output == "5\n");
  CHECK(run(binary() + " config --config " + later + " --config " + config("smoke.ini") + " --get generations").output ==
        "12\n");
  auto all = run(binary() + " config" + both);
  CHECK(has(all, "dim = 8\n"));
  CHECK(has(all, "population = 8\n"));  // from the first file, untouched by the later one

  // The search runs what `config` says: 2 generations at d = 8.
  const auto out = dir.file("run");
  auto s = run(search(out, "--config " + later));
  REQUIRE_MESSAGE(s.status == 0, s.output);
  auto a = io::read_archive(out + "/archive.h5");
  CHECK(a.representations.size(2) == 8);
  CHECK(a.histories.front().back().generation == 2);
  CHECK(a.provenance.config.find("generations = 2\n") != std::string::npos);

  auto d = run(binary() + " config --config " + dir.path.string());
  CHECK(d.status == 2);
  CHECK(has(d, "not a regular file"));
  CHECK(has(d, "directory"));
  auto bad = run(binary() + " config --get no-such-key");
  CHECK(bad.status == 2);
  CHECK(has(bad, "no-such-key"));
  // Every shipped config resolves and validates (sweep_*.ini are slurm/sweep.sh's own format).
  int shipped = 0;
  for (const auto& f : fs::directory_iterator(std::string(REPSEARCH_SOURCE_DIR) + "/configs")) {
    const auto name = f.path().filename().string();
    if (f.path().extension() != ".ini" || name.rfind("sweep_", 0) == 0) continue;
    ++shipped;
    auto r = run(binary() + " config --config " + f.path().string());
    CHECK_MESSAGE(r.status == 0, name, ": ", r.output);
  }
  CHECK(shipped >= 8);
}

namespace {

// The E that f throws; fails the test on any other outcome.
template <class E>
E thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  }
  FAIL("expected ", typeid(E).name(), ", nothing was thrown");
  throw std::logic_error("unreachable");
}

repsearch::OptionError option_error(const std::string& command, const std::vector<std::string>& args) {
  namespace app = repsearch::app;
  return thrown<repsearch::OptionError>([&] { app::validate(app::parse_options(command, args)); });
}

}  // namespace

namespace {

std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

TEST_CASE("config: INI values read back as written, whatever characters they hold") {
  namespace app = repsearch::app;
  const std::vector<std::string> values = {
      "a#b", "a;b", "  lead and trail  ", "k = v", "\"quoted\"", "\"", "back\\slash\\", "a\\", "\\n literal",
      "#", "tab\there", "new\nline", "ünïcødé ✓", "=", "", "plain/path"};
  for (const auto& v : values) {
    CAPTURE(v);
    const auto text = app::parse_options("config", {"--out", v}).resolved();
    auto back = app::parse_options("config", {});
    app::add_config_text(back, text, "the resolved text");  // the path of an archive's stored config
    CHECK(back.value("out") == v);
    CHECK(back.resolved() == text);
  }
  // Through files and the program: config's output, read back with --config, gives the value itself.
  TempDir dir("repsearch_rel_ini");
  for (const std::string v : {"a#b", "x; y = \"z\" \\ # w ünï "}) {
    CAPTURE(v);
    const auto ini = dir.file("round.ini");
    auto w = run(binary() + " config --out " + shell_quoted(v) + " > " + ini);
    REQUIRE_MESSAGE(w.status == 0, w.output);
    auto r = run(binary() + " config --config " + ini + " --get out");
    CHECK(r.output == v + "\n");
  }
  // Hand-written files: an unquoted # still starts a comment; a broken quote names file and line.
  write_file(dir.file("hand.ini"), "out = runs/x   # where\ndata-dir = \"/d#1\"  # quoted\n");
  CHECK(run(binary() + " config --config " + dir.file("hand.ini") + " --get out").output == "runs/x\n");
  CHECK(run(binary() + " config --config " + dir.file("hand.ini") + " --get data-dir").output == "/d#1\n");
  write_file(dir.file("broken.ini"), "dim = 8\nout = \"runs/x\n");
  auto b = run(binary() + " config --config " + dir.file("broken.ini"));
  CHECK(b.status == 2);
  CHECK_MESSAGE(has(b, dir.file("broken.ini") + ": line 2: quoted value without its closing quote"), b.output);
}

TEST_CASE("config: an archive's stored config reads back to the data directory it was searched with") {
  TempDir dir("repsearch_rel_ini_archive");
  const char* env = std::getenv("REPSEARCH_DATA_DIR");
  const std::string data = env ? std::string(env) + "/fashion-mnist" : std::string(REPSEARCH_FMNIST_DIR);
  const auto odd = dir.file("da#ta; \"x\" = y");
  fs::create_directory_symlink(data, odd);
  const auto out = dir.file("run");
  auto s = run(search(out, "--generations 2 --data-dir " + shell_quoted(odd)));
  REQUIRE_MESSAGE(s.status == 0, s.output);
  // learn takes the data directory from the archive's config only.
  auto l = run("env -u REPSEARCH_DATA_DIR " + binary() + " learn --archive " + out + "/archive.h5 --epochs 1 --probe-size 10");
  CHECK_MESSAGE(l.status == 0, l.output);
  CHECK_FALSE(has(l, "error"));
}

TEST_CASE("config: option errors carry the option, the value given and what it may be; file errors the file") {
  auto e = option_error("search", {"--population", "1"});
  CHECK(e.option == "population");
  CHECK(e.value == "1");
  CHECK(e.expected == ">= 2");
  CHECK(std::string(e.what()) == "option population: must be >= 2, found 1");
  e = option_error("search", {"--crossover", "1.5"});
  CHECK(e.option == "crossover");
  CHECK(e.value == "1.5");
  CHECK(e.expected == "in [0, 1]");
  e = option_error("search", {"--operators", "pull,teleport"});
  CHECK(e.option == "operators");
  CHECK(e.value == "teleport");
  CHECK(std::string(e.what()).find("unknown operator 'teleport'") != std::string::npos);
  e = option_error("data", {"--dataset", "imagenet"});
  CHECK(e.option == "dataset");
  CHECK(e.value == "imagenet");
  CHECK(e.expected.find("fashion-mnist") != std::string::npos);
  CHECK(std::string(e.what()).find("found 'imagenet'") != std::string::npos);
  e = option_error("search", {"--val-batch", "600", "--val-size", "500"});
  CHECK(e.option == "val-batch");
  CHECK(e.value == "600");
  CHECK(e.expected == "at most val-size (500)");
  e = option_error("sgd", {"--seeds", "3..1"});
  CHECK(e.option == "seeds");
  CHECK(e.value == "3..1");
  e = option_error("search", {"--no-such-option", "3"});
  CHECK(e.option == "no-such-option");
  CHECK(std::string(e.what()).find("see 'repsearch search --help'") != std::string::npos);
  e = option_error("search", {"--search-size", "lots"});
  CHECK(e.option == "search-size");
  CHECK(e.value == "lots");
  // init=labels needs a column per class: 10 for Fashion-MNIST, 100 for CIFAR-100.
  e = option_error("search", {"--init", "labels", "--dim", "8"});
  CHECK(e.option == "dim");
  CHECK(e.value == "8");
  CHECK(std::string(e.what()).find("number of classes (10)") != std::string::npos);
  e = option_error("search", {"--init", "labels", "--dim", "50", "--dataset", "cifar100"});
  CHECK(e.option == "dim");
  CHECK(e.expected == ">= 100 for init=labels");
  CHECK(std::string(e.what()).find("number of classes (100)") != std::string::npos);
  repsearch::app::validate(repsearch::app::parse_options("search", {"--init", "labels", "--dim", "50"}));

  TempDir dir("repsearch_rel_config_typed");
  const auto absent = dir.file("absent.ini");
  auto in = thrown<repsearch::InputError>([&] { repsearch::app::parse_options("search", {"--config", absent}); });
  CHECK(in.file == absent);
  CHECK(in.reason.find("no such file") != std::string::npos);
  CHECK(std::string(in.what()) == "config file " + absent + ": " + in.reason);
  const auto bad_key = dir.file("bad_key.ini");
  write_file(bad_key, "populaton = 9\n");
  in = thrown<repsearch::InputError>([&] { repsearch::app::parse_options("search", {"--config", bad_key}); });
  CHECK(in.file == bad_key);
  CHECK(in.reason.find("populaton") != std::string::npos);

  // The command itself, and Boost's own errors (here a value that is missing), are option errors too.
  e = thrown<repsearch::OptionError>([&] { repsearch::app::parse_options("frobnicate", {}); });
  CHECK(e.option == "command");
  CHECK(e.value == "frobnicate");
  CHECK(e.expected == "one of data, search, learn, sgd, inspect, config");
  CHECK(std::string(e.what()).find("see 'repsearch --help'") != std::string::npos);
  e = thrown<repsearch::OptionError>([&] { repsearch::app::parse_options("search", {"--population"}); });
  CHECK(e.option == "population");
  CHECK(std::string(e.what()).find("population") != std::string::npos);
}

TEST_CASE("config: each command takes its own options on the command line; config files may hold any") {
  namespace app = repsearch::app;
  // Another command's option: named, with the command that was given and those that take it.
  auto e = option_error("data", {"--epochs", "3"});
  CHECK(e.option == "epochs");
  const std::string m = e.what();
  CHECK(m.find("'--epochs' is not an option of 'repsearch data'") != std::string::npos);
  CHECK(m.find("search, learn, sgd, config") != std::string::npos);
  e = option_error("learn", {"--archive", "a.h5", "--dim", "8"});  // the archive's config says what dim is
  CHECK(e.option == "dim");
  CHECK(std::string(e.what()).find("'repsearch learn'") != std::string::npos);
  CHECK(option_error("sgd", {"--resume"}).option == "resume");
  CHECK(option_error("sgd", {"--elite", "0"}).option == "elite");
  CHECK(option_error("search", {"--archive", "a.h5"}).option == "archive");
  CHECK(option_error("search", {"--get", "dim"}).option == "get");
  CHECK(option_error("inspect", {"--seed", "3"}).option == "seed");
  CHECK(option_error("config", {"--elite", "0"}).option == "elite");
  // What each takes: search stores the learner's options for learn; sgd takes a search's command line.
  CHECK(app::parse_options("search", {"--epochs", "5"}).get<std::int64_t>("epochs") == 5);
  CHECK(app::parse_options("sgd", {"--generations", "5", "--dim", "8"}).get<std::int64_t>("dim") == 8);
  CHECK(app::parse_options("config", {"--resume", "--elites", "3"}).get<std::int64_t>("elites") == 3);
  CHECK(app::parse_options("learn", {"--archive", "a.h5", "--epochs", "2"}).get<std::int64_t>("epochs") == 2);
  CHECK(app::parse_options("inspect", {"a.h5", "--json"}).get<std::vector<std::string>>("file").size() == 1);
  // A config file shared by search, learn and sgd: every command reads all of its keys.
  TempDir dir("repsearch_rel_config_commands");
  const auto shared = dir.file("shared.ini");
  write_file(shared, "population = 6\nepochs = 4\nseeds = 0..1\nmigration-interval = 3\n");
  for (const std::string command : {"data", "search", "sgd", "config"}) {
    const auto o = app::parse_options(command, {"--config", shared});
    app::validate(o);
    CHECK(o.get<std::int64_t>("population") == 6);
    CHECK(o.get<std::int64_t>("epochs") == 4);
    CHECK(o.resolved() == app::parse_options("config", {"--config", shared}).resolved());
  }
  // --help lists what the command takes, and names what it takes besides.
  const auto help = [](const std::string& command) { return app::parse_options(command, {"--help"}).help_text; };
  CHECK(help("search").find("--migration-interval") != std::string::npos);
  CHECK(help("search").find("Also taken: the Learner (learn and sgd), Example-space learner (learn and sgd on an example "
                            "archive: the paper's Section 4) options") != std::string::npos);
  CHECK(help("sgd").find("--seeds") != std::string::npos);
  CHECK(help("sgd").find("Also taken: the Example space (space = example: the paper's search), Fitness, Search, Migration, Run control options") != std::string::npos);
  CHECK(help("data").find("--population") == std::string::npos);
  CHECK(help("data").find("--search-size") != std::string::npos);
  CHECK(help("learn").find("--archive") != std::string::npos);
  CHECK(help("inspect").find("--json") != std::string::npos);
  CHECK(help("inspect").find("--seed") == std::string::npos);
}

TEST_CASE("config: the library structs' defaults are the options' declared defaults") {
  namespace app = repsearch::app;
  const auto o = app::parse_options("search", {});
#define SAME(got, want, field) CHECK_MESSAGE(got.field == want.field, #field)
  const auto s = o.search();
  const repsearch::SearchConfig sd;
  SAME(s, sd, algorithm); SAME(s, sd, population); SAME(s, sd, dim); SAME(s, sd, init); SAME(s, sd, val_batch);
  SAME(s, sd, seed); SAME(s, sd, replacement); SAME(s, sd, tournament); SAME(s, sd, elitism); SAME(s, sd, crossover);
  SAME(s, sd, crossover_align); SAME(s, sd, operators); SAME(s, sd, mutation_rate); SAME(s, sd, sigma);
  SAME(s, sd, self_adapt); SAME(s, sd, sigma_min); SAME(s, sd, sigma_max); SAME(s, sd, pull_fraction);
  SAME(s, sd, pull_alpha); SAME(s, sd, pull_noise); SAME(s, sd, column_scale); SAME(s, sd, knn_k);
  SAME(s, sd, knn_fraction); SAME(s, sd, knn_noise); SAME(s, sd, adapt_memory); SAME(s, sd, adapt_floor);
  SAME(s, sd, de_f); SAME(s, sd, de_cr); SAME(s, sd, selection); SAME(s, sd, dns_k); SAME(s, sd, qd_distance);
  SAME(s, sd, diversity_probe); SAME(s, sd, island_repulsion);
  const auto f = o.fitness();
  const repsearch::FitnessConfig fd;
  SAME(f, fd, name); SAME(f, fd, features); SAME(f, fd, lambda); SAME(f, fd, readout_ridge); SAME(f, fd, beta);
  SAME(f, fd, learnable_weight); SAME(f, fd, seed);
  const auto g = o.migration();
  const repsearch::MigrationConfig gd;
  SAME(g, gd, topology); SAME(g, gd, edges); SAME(g, gd, interval); SAME(g, gd, migrants); SAME(g, gd, align);
  const auto t = o.train();
  const repsearch::TrainConfig td;
  SAME(t, td, optimizer); SAME(t, td, lr); SAME(t, td, momentum); SAME(t, td, weight_decay); SAME(t, td, epochs);
  SAME(t, td, batch); SAME(t, td, schedule); SAME(t, td, seed); SAME(t, td, trajectory_points);
  const auto n = o.model({1, 28, 28}, 10);
  const repsearch::ModelConfig nd;
  SAME(n, nd, arch); SAME(n, nd, hidden); SAME(n, nd, channels); SAME(n, nd, cut); SAME(n, nd, classes);
  const auto z = o.splits();
  const repsearch::SplitSizes zd;
  SAME(z, zd, search); SAME(z, zd, val); SAME(z, zd, heldout);
  const repsearch::EliteSelection ed;
  CHECK(o.get<std::string>("elite-selection") == ed.mode);
  CHECK(o.get<double>("elite-tolerance") == ed.tolerance);
#undef SAME
}

TEST_CASE("errors: a failure on rank 1 is printed with its rank and host, and the job exits non-zero") {
  TempDir dir("repsearch_rel_errors");
  const auto out = dir.file("run");
  REQUIRE(run(search(out, "--generations 4")).status == 0);
  // Island 1 lives on rank 1 of 2: only rank 1 finds it missing.
  auto del = run("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + out + "/checkpoint.h5', 'a'); del f['islands/1']\"");
  REQUIRE_MESSAGE(del.status == 0, del.output);
  auto r = run(mpirun(2) + search(out, "--resume"));
  CHECK(r.status == 2);
  CHECK_MESSAGE(has(r, "error on rank 1 of 2 (host "), r.output);
  CHECK(has(r, "no island 1"));
}

TEST_CASE("errors: ranks started with different configs are refused before any work, naming the key and ranks") {
  TempDir dir("repsearch_rel_mpmd");
  const auto out = dir.file("run");
  // MPMD: one mpirun, two programs that differ in one option.
  const std::string mpmd = "mpirun --oversubscribe --allow-run-as-root -np 1 ";
  for (const std::string extra : {"--population 10", "--dim 8"}) {
    CAPTURE(extra);
    auto r = run(mpmd + search(out) + " : -np 1 " + search(out, extra));
    CHECK(r.status == 2);
    const std::string key = extra.substr(2, extra.find(' ') - 2), value = extra.substr(extra.find(' ') + 1);
    const std::string smoke = key == "dim" ? "16" : "8";  // configs/smoke.ini
    CHECK_MESSAGE(has(r, "ranks disagree on the config: rank 1 has " + key + " = " + value + ", rank 0 has " + key +
                             " = " + smoke),
                  r.output);
    CHECK_FALSE(has(r, "internal error"));
    CHECK_FALSE(has(r, "memory plan"));  // refused before any data was loaded
    CHECK(r.output.find("ranks disagree") == r.output.rfind("ranks disagree"));  // rank 0 alone reports it
    CHECK_FALSE(fs::exists(out + "/checkpoint.h5"));
    CHECK_FALSE(fs::exists(out + "/archive.h5"));
  }
  // --resume on one rank only is a difference too; per-rank keys (threads) are not.
  auto flags = run(mpmd + search(out, "--generations 2") + " : -np 1 " + search(out, "--generations 2 --resume"));
  CHECK(flags.status == 2);
  CHECK_MESSAGE(has(flags, "rank 1 has resume = true, rank 0 has resume = false"), flags.output);
  auto threads = run(mpmd + search(out, "--generations 0 --threads 1") + " : -np 1 " + search(out, "--generations 0 --threads 2"));
  CHECK_MESSAGE(threads.status == 0, threads.output);
}

TEST_CASE("preflight: an impossible --out fails before any data is loaded or any generation runs") {
  TempDir dir("repsearch_rel_preflight");
  const auto file = dir.file("a_file");
  write_file(file, "x");
  auto r = run(search(file + "/run", "--checkpoint-interval 0"));
  CHECK(r.status == 2);
  CHECK_MESSAGE(has(r, "option out"), r.output);
  CHECK(has(r, file + "/run"));
  CHECK_FALSE(has(r, "[search] gen"));
  CHECK_FALSE(has(r, "internal error"));
  // learn and sgd prove their output directory the same way, before training.
  auto g = run(binary() + " sgd --config " + config("smoke.ini") + " --out " + file + "/sgd --epochs 1");
  CHECK(g.status == 2);
  CHECK(has(g, "option out"));
  CHECK_FALSE(has(g, "[sgd seed 0] accuracy"));
}

TEST_CASE("preflight: the memory limit is the smallest of physical memory and the process's cgroups, v1 and v2") {
  namespace app = repsearch::app;
  TempDir dir("repsearch_rel_cgroup");
  const auto root = dir.path.string(), proc = dir.file("proc-cgroup");
  const double physical = app::node_memory_limit(root, "/nonexistent").bytes;  // an empty tree: no limit
  REQUIRE(physical > 0);
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root + rel).parent_path());
    write_file(root + rel, text + "\n");
  };
  // v2 only: the job's own cgroup has no limit, its parent (a Slurm job) does; the root says max.
  put("/cgroup.controllers", "cpu memory");
  put("/memory.max", "max");
  put("/slurm/job_7/memory.max", "1073741824");
  put("/slurm/job_7/step_0/memory.max", "max");
  write_file(proc, "0::/slurm/job_7/step_0\n");
  auto v2 = app::node_memory_limit(root, proc);
  CHECK(v2.bytes == 1073741824.0);
  CHECK(v2.source == "the cgroup limit in " + root + "/slurm/job_7/memory.max");
  // The smaller one wins along the path.
  put("/slurm/job_7/step_0/memory.max", "536870912");
  CHECK(app::node_memory_limit(root, proc).bytes == 536870912.0);
  // v1 (hybrid host): the memory controller's own path, under memory/; v2 under unified/ has no limit.
  TempDir v1dir("repsearch_rel_cgroup_v1");
  const auto r1 = v1dir.path.string();
  fs::create_directories(r1 + "/unified/a");
  fs::create_directories(r1 + "/memory/docker/abc");
  write_file(r1 + "/memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  write_file(r1 + "/memory/docker/abc/memory.limit_in_bytes", "2147483648\n");
  write_file(proc, "9:name=systemd:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/other\n0::/a\n");
  auto v1 = app::node_memory_limit(r1, proc);
  CHECK(v1.bytes == std::min(physical, 2147483648.0));
  CHECK(v1.source == (physical < 2147483648.0 ? "physical memory" : "the cgroup limit in " + r1 + "/memory/docker/abc/memory.limit_in_bytes"));
  // Sizes print correctly at any magnitude, never cut or negative.
  CHECK(app::gib_text(1073741824.0) == "1.00 GiB");
  CHECK(app::gib_text(0.35 * 1073741824.0) == "358.40 MiB");
  CHECK(app::gib_text(2.5 * 1099511627776.0) == "2.50 TiB");
  CHECK(app::gib_text(2.4e29) == "2.082e+11 EiB");
}

TEST_CASE("preflight: the memory plan refuses a run over RLIMIT_AS or at absurd sizes, with correct numbers") {
  TempDir dir("repsearch_rel_plan");
  // ~1.5 GiB planned (the fitness's q x q float64 blocks at 7000 features) under a 1 GiB address space.
  auto as = run("prlimit --as=1073741824 " + search(dir.file("as"), "--features 7000"));
  CHECK(as.status == 2);
  CHECK_MESSAGE(has(as, "its address-space limit (RLIMIT_AS: ulimit -v, prlimit --as) is 1.00 GiB"), as.output);
  CHECK(has(as, "lower --features"));
  CHECK_FALSE(has(as, "out of memory"));
  CHECK_FALSE(has(as, "[search] gen"));
  auto huge = run(search(dir.file("huge"), "--features 99999999999999"));
  CHECK(huge.status == 2);
  CHECK_MESSAGE(has(huge, "rank(s) on this node need 2.0"), huge.output);
  CHECK(has(huge, "e+11 EiB"));
  CHECK_FALSE(has(huge, "need -"));
  // learn and sgd name their own options when an allocation fails.
  const auto run_dir = dir.file("run");
  REQUIRE(run(search(run_dir, "--generations 1")).status == 0);
  const std::string big = " --hidden 200000000 --epochs 1";
  auto l = run("prlimit --as=4294967296 " + binary() + " learn --archive " + run_dir + "/archive.h5" + big);
  CHECK(l.status == 2);
  CHECK_MESSAGE(has(l, "out of memory"), l.output);
  CHECK(has(l, "lower --batch, --hidden (mlp)"));
  CHECK_FALSE(has(l, "--population"));
  auto g = run("prlimit --as=4294967296 " + binary() + " sgd --config " + config("smoke.ini") + " --out " + run_dir + big);
  CHECK(g.status == 2);
  CHECK_MESSAGE(has(g, "out of memory"), g.output);
  CHECK(has(g, "--data search+val"));
  CHECK_FALSE(has(g, "--population"));
}

TEST_CASE("ownership: one search per run directory, no silent overwrite, stale temporaries cleared") {
  TempDir dir("repsearch_rel_owner");
  const auto out = dir.file("run");
  {
    Background first(search(out, "--generations 100000 --checkpoint-interval 0"), dir.file("first.log"));
    REQUIRE_MESSAGE(first.wait_for("gen     2/"), first.output());
    auto second = run(search(out, "--overwrite"));
    CHECK(second.status == 2);
    CHECK_MESSAGE(has(second, "in use by another repsearch process"), second.output);
    CHECK(has(second, "pid " + std::to_string(first.pid)));
    auto resumed = run(search(out, "--resume"));
    CHECK(resumed.status == 2);
    CHECK(has(resumed, "in use"));
    ::kill(first.pid, SIGTERM);
    CHECK(first.wait() == 75);
  }
  // The holder is gone (the kernel dropped its lock): a fresh run must not replace its checkpoint.
  auto fresh = run(search(out));
  CHECK(fresh.status == 2);
  CHECK_MESSAGE(has(fresh, "already holds checkpoint.h5"), fresh.output);
  CHECK(has(fresh, "--overwrite"));
  write_file(out + "/checkpoint.h5.tmp-4242", "left by a kill -9");
  write_file(out + "/archive.h5.tmp-77", "left by a kill -9");
  auto over = run(search(out, "--overwrite"));
  REQUIRE_MESSAGE(over.status == 0, over.output);
  CHECK(has(over, "removed 2 temporary file(s)"));
  CHECK(has(over, "--overwrite: deleted checkpoint.h5"));
  CHECK_FALSE(fs::exists(out + "/checkpoint.h5.tmp-4242"));
  CHECK_FALSE(fs::exists(out + "/archive.h5.tmp-77"));
  auto both = run(search(out, "--resume --overwrite"));
  CHECK(both.status == 2);
  CHECK(has(both, "resume and overwrite"));
}

TEST_CASE("allow-change: structural keys are refused; an allowed change is what the archive records") {
  TempDir dir("repsearch_rel_allow");
  const auto out = dir.file("run");
  REQUIRE(run(search(out, "--generations 4")).status == 0);
  for (const std::string change : {"--islands 2 --allow-change islands", "--dim 8 --allow-change dim",
                                    "--population 16 --allow-change population", "--sigma 0.5 --allow-change sigma"}) {
    auto r = run(search(out, "--resume --generations 6 " + change));
    CHECK_MESSAGE(r.status == 2, change, "\n", r.output);
    CHECK(has(r, "option allow-change"));
    CHECK(has(r, "cannot change on a resume"));
  }
  CHECK(io::read_checkpoint_header(out + "/checkpoint.h5").generation == 4);  // nothing was lost
  {  // a checkpoint of an older version, whose config lacks options added since: they are at their defaults
    auto ck = io::read_checkpoint(out + "/checkpoint.h5", {}, at::Device(at::kCPU));
    auto& text = ck.provenance.config;
    const auto at = text.find("\ncrossover = ") + 1;  // not set by smoke.ini: at its default
    REQUIRE(at != 0);
    text.erase(at, text.find('\n', at) + 1 - at);
    io::write_checkpoint(out + "/checkpoint.h5", ck);
    auto changed = run(search(out, "--resume --generations 6 --crossover 0.5"));  // but not a changed one
    CHECK(changed.status == 2);
    CHECK(has(changed, "crossover: checkpoint '(absent)', now '0.5'"));
    auto old = run(search(out, "--resume --generations 5"));
    CHECK_MESSAGE(old.status == 0, old.output);
  }
  // The list is read once, spaces trimmed: what validation accepts is what the resume allows.
  CHECK(repsearch::app::parse_options("search", {"--allow-change", " elites ,  elite-selection,"}).allowed_changes() ==
        std::vector<std::string>{"elites", "elite-selection"});
  auto ok = run(search(out, "--resume --generations 6 --elites 2 --elite-selection diverse --allow-change 'elites, elite-selection'"));
  REQUIRE_MESSAGE(ok.status == 0, ok.output);
  auto a = io::read_archive(out + "/archive.h5");
  CHECK(a.representations.size(0) == 2);
  CHECK(a.provenance.config.find("elites = 2\n") != std::string::npos);
  CHECK(a.provenance.config.find("elite-selection = diverse\n") != std::string::npos);
  auto help = run(binary() + " search --help");
  CHECK(has(help, "--allow-change may add: elites"));
}

TEST_CASE("integrity: a damaged checkpoint is refused naming the previous one, which resumes exactly") {
  TempDir dir("repsearch_rel_integrity");
  const auto out = dir.file("run"), ref = dir.file("ref");
  REQUIRE(run(search(ref)).status == 0);
  REQUIRE(run(search(out, "--generations 9")).status == 0);  // checkpoints at 4, 8 and the final 9
  const auto ck = out + "/checkpoint.h5", prev = out + "/checkpoint.prev.h5";
  REQUIRE(fs::exists(prev));
  CHECK(io::read_checkpoint_header(prev).generation == 8);
  {
    std::fstream f(ck, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(ck) / 2));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto r = run(search(out, "--resume"));
  CHECK(r.status == 2);  // what is reported depends on what the bytes hit: data (CRC-32) or HDF5 metadata
  CHECK_MESSAGE(has(r, "resume: "), r.output);
  CHECK(has(r, ck));
  CHECK(has(r, "the previous checkpoint " + prev + " (generation 8) reads back intact"));
  fs::rename(prev, ck);
  auto resumed = run(search(out, "--resume"));
  REQUIRE_MESSAGE(resumed.status == 0, resumed.output);
  CHECK(has(resumed, "resumed at generation 8"));
  check_same_result(io::read_archive(ref + "/archive.h5"), io::read_archive(out + "/archive.h5"));
}

TEST_CASE("signals: SIGUSR1 to mpirun and SIGTERM or Ctrl-C to launch/search.sh end in a checkpoint and exit 75") {
  TempDir dir("repsearch_rel_signals");
  const auto ref = dir.file("ref");
  const std::string long_run = " --config " + config("smoke.ini") + " --generations 100000 --checkpoint-interval 0";
  auto stop_and_check = [&](Background& job, int signal, pid_t target, const std::string& out) {
    REQUIRE_MESSAGE(job.wait_for("gen     3/"), job.output());
    REQUIRE(::kill(target, signal) == 0);
    const int rc = job.wait();
    const auto text = job.output();
    CHECK_MESSAGE(rc == 75, text);
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(text, m, std::regex("stopped by signal at generation (\\d+)")), text);
    const auto stopped = std::stoi(m[1]);
    CHECK(io::read_checkpoint_header(out + "/checkpoint.h5").generation == stopped);
    return stopped;
  };
  SUBCASE("mpirun, 2 ranks: SIGUSR1 to mpirun is forwarded to every rank") {
    const auto out = dir.file("mpirun");
    Background job("mpirun --oversubscribe --allow-run-as-root -np 2 " + binary() + " search" + long_run + " --out " + out,
                   dir.file("mpirun.log"));
    const int stopped = stop_and_check(job, SIGUSR1, job.pid, out);
    const auto target = std::to_string(stopped + 2);
    auto resumed = run(mpirun(2) + search(out, "--resume --checkpoint-interval 0 --generations " + target));
    REQUIRE_MESSAGE(resumed.status == 0, resumed.output);
    REQUIRE(run(search(ref, "--checkpoint-interval 0 --generations " + target)).status == 0);
    check_same_result(io::read_archive(ref + "/archive.h5"), io::read_archive(out + "/archive.h5"));
  }
  SUBCASE("a signal during the set-up (minutes at n_s = all) still ends in a checkpoint") {
    const auto out = dir.file("setup");
    // 8,000 examples: 1-2 s of set-up (kNN, smoother) after the memory plan is printed, against
    // milliseconds from that line to the signal (20,000 took 10-15 s for the same check).
    Background job(binary() + " search" + long_run + " --search-size 8000 --population 8 --out " + out,
                   dir.file("setup.log"));
    REQUIRE_MESSAGE(job.wait_for("GiB  total"), job.output());
    REQUIRE(::kill(job.pid, SIGTERM) == 0);
    CHECK_MESSAGE(job.wait() == 75, job.output());
    CHECK(job.output().find("[search] set-up") != std::string::npos);  // it finished the set-up, then stopped
    CHECK(io::read_checkpoint_header(out + "/checkpoint.h5").generation <= repsearch_agree_lag + 1);
  }
  SUBCASE("launch/search.sh turns SIGTERM and SIGINT into SIGUSR1 for mpirun") {
    for (int sig : {SIGTERM, SIGINT}) {
      const auto out = dir.file("wrapper" + std::to_string(sig));
      Background job("env REPSEARCH_BIN=" + binary() + " " + std::string(REPSEARCH_SOURCE_DIR) +
                         "/launch/search.sh -np 2 --mpirun --oversubscribe --" + long_run + " --out " + out,
                     dir.file("wrapper.log"));
      stop_and_check(job, sig, job.pid, out);
    }
  }
}

TEST_CASE("stall: a stopped rank ends the job with a clear message and exit 3, without spinning") {
  TempDir dir("repsearch_rel_stall");
  const auto out = dir.file("run");
  Background job(mpirun(2) + search(out, "--generations 100000 --checkpoint-interval 50 --stall-minutes 0.05"),
                 dir.file("stall.log"));
  REQUIRE_MESSAGE(job.wait_for("checkpoint at generation 50"), job.output());
  // The two ranks are mpirun's children (each in a process group of its own).
  const auto ranks = children_of(job.pid);
  REQUIRE_MESSAGE(ranks.size() == 2, job.output());
  REQUIRE(::kill(ranks[1], SIGSTOP) == 0);
  auto cpu = [](pid_t p) {  // utime + stime in clock ticks
    std::istringstream f(read_text("/proc/" + std::to_string(p) + "/stat"));
    std::string field;
    long long total = 0;
    for (int i = 1; i <= 15 && f >> field; ++i)
      if (i >= 14) total += std::stoll(field);
    return total;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the other rank is now waiting
  const long long before = cpu(ranks[0]);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long long used = cpu(ranks[0]) - before;
  CHECK_MESSAGE(used < sysconf(_SC_CLK_TCK) / 4, "waiting rank used ", used, " ticks in 1 s");  // < 25% of a core
  const int rc = job.wait(60);
  const auto text = job.output();
  CHECK_MESSAGE(rc == 3, text);
  CHECK(std::regex_search(text, std::regex("error on rank [01] of 2 \\(host ")));
  CHECK(text.find("no progress from the other ranks") != std::string::npos);
  CHECK(text.find("--stall-minutes") != std::string::npos);
  CHECK(text.find("the newest checkpoint is " + out + "/checkpoint.h5") != std::string::npos);
}

TEST_CASE("inputs: malformed values and files get the option's or file's name, never a stack trace") {
  TempDir dir("repsearch_rel_inputs");
  auto expect = [&](const std::string& cmd, const std::vector<std::string>& words) {
    auto r = run(cmd);
    CHECK_MESSAGE(r.status == 2, cmd, "\n", r.output);
    for (const auto& w : words) CHECK_MESSAGE(has(r, w), "missing '", w, "' in: ", r.output);
    CHECK(r.output.find("frame #") == std::string::npos);
    CHECK(r.output.find("internal error") == std::string::npos);
  };
  expect(binary() + " search --seed -1", {"'-1'", "seed"});
  expect(binary() + " search --seed 99999999999999999999999", {"seed"});
  expect(binary() + " search --config " + config("smoke.ini") + " --val-batch 300", {"option val-batch", "val-size"});
  expect(search(dir.file("mem"), "--features 2000000000 --generations 0"), {"memory plan", "lower --features"});

  const auto out = dir.file("run");
  REQUIRE(run(search(out, "--generations 1")).status == 0);
  const auto archive = out + "/archive.h5";
  expect(binary() + " learn --archive " + archive + " --elite 0x", {"option elite", "'0x'"});
  expect(binary() + " learn --archive " + archive + " --elite 0x3fzz", {"option elite", "0x3fzz"});
  expect(binary() + " learn --archive " + archive + " --elite 99999999999999999999", {"option elite"});

  // learn writes beside the archive it was given, not into the run directory stored in it.
  const auto moved = dir.file("moved");
  fs::create_directories(moved);
  fs::copy_file(archive, moved + "/archive.h5");
  fs::remove_all(out);
  auto l = run(binary() + " learn --archive " + moved + "/archive.h5 --epochs 1 --probe-size 10");
  REQUIRE_MESSAGE(l.status == 0, l.output);
  CHECK_FALSE(fs::exists(out));
  bool beside = false;
  for (const auto& f : fs::directory_iterator(moved)) beside |= f.path().filename().string().rfind("learn-", 0) == 0;
  CHECK(beside);

  // NaN elites: inspect says so and fails; learn names the elite.
  auto nan = run("/usr/bin/python3 -c \"import h5py, numpy; f = h5py.File('" + moved +
                 "/archive.h5', 'a'); r = f['elites/representations']; z = r[1]; z[0, 0] = numpy.nan; r[1] = z\"");
  REQUIRE_MESSAGE(nan.status == 0, nan.output);
  expect(binary() + " inspect " + moved + "/archive.h5", {"non-finite", "DAMAGED"});
  expect(binary() + " learn --archive " + moved + "/archive.h5 --elite 1 --epochs 1", {"elite 1", "non-finite"});

  // Labels that are a device or a FIFO: refused before any read (which would never end).
  const auto data = dir.file("data");
  fs::create_directories(data);
  for (const char* f : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    fs::copy_file(std::string(REPSEARCH_FMNIST_DIR) + "/" + f + ".gz", data + "/" + f + ".gz");
  fs::create_symlink("/dev/zero", data + "/train-labels-idx1-ubyte");
  expect(binary() + " data --data-dir " + data, {"train-labels-idx1-ubyte", "character device"});
  fs::remove(data + "/train-labels-idx1-ubyte");
  REQUIRE(::mkfifo((data + "/train-labels-idx1-ubyte").c_str(), 0644) == 0);
  expect(binary() + " data --data-dir " + data, {"train-labels-idx1-ubyte", "FIFO"});
}

TEST_CASE("inputs: a resume short of its checkpoint, a changed learn seed, too many elites, bad launcher arguments") {
  TempDir dir("repsearch_rel_small");
  const auto out = dir.file("run");
  REQUIRE(run(search(out, "--generations 4")).status == 0);
  // A resume whose --generations ends before the checkpoint: refused before any work, nothing rewritten.
  auto short_resume = run(search(out, "--resume --generations 2"));
  CHECK(short_resume.status == 2);
  CHECK_MESSAGE(has(short_resume, "is at generation 4, past --generations 2"), short_resume.output);
  CHECK_FALSE(has(short_resume, "[search] gen"));
  CHECK(io::read_checkpoint_header(out + "/checkpoint.h5").generation == 4);
  CHECK(io::read_archive(out + "/archive.h5").provenance.config.find("generations = 4\n") != std::string::npos);
  // learn rebuilds the splits from the archive's seed: another --seed is named as such.
  auto seed = run(binary() + " learn --archive " + out + "/archive.h5 --seed 11 --epochs 1");
  CHECK(seed.status == 2);
  CHECK_MESSAGE(has(seed, "option seed is 11 but " + out + "/archive.h5 was searched with seed 1"), seed.output);  // smoke.ini
  CHECK_FALSE(has(seed, "another data set version"));
  // More elites than individuals exist (islands x population) is an error, not a silent 32.
  auto elites = run(binary() + " config --config " + config("smoke.ini") + " --elites 1000");
  CHECK(elites.status == 2);
  CHECK_MESSAGE(has(elites, "option elites: at most islands x population = 4 x 8 = 32"), elites.output);
  CHECK(run(binary() + " config --config " + config("smoke.ini") + " --elites 32").status == 0);
  // launch/search.sh: a missing value is a usage error; mpirun's refusal of its arguments is named.
  const std::string launcher = "REPSEARCH_BIN=" + binary() + " bash " + std::string(REPSEARCH_SOURCE_DIR) + "/launch/search.sh ";
  auto np = run(launcher + "-np");
  CHECK(np.status == 2);
  CHECK_MESSAGE(has(np, "search.sh: -np needs a value"), np.output);
  auto flag = run(launcher + "--mpirun --nosuchflag -- --config " + config("smoke.ini") + " --out " + out + " --resume");
  CHECK(flag.status == 2);
  CHECK_MESSAGE(has(flag, "mpirun rejected its arguments (unknown option \"--nosuchflag\")"), flag.output);
  CHECK_FALSE(has(flag, "Open MPI stopped the search"));
}

TEST_CASE("inputs: a data directory this user may not enter says permission denied") {
  TempDir dir("repsearch_rel_perm");
  const auto locked = dir.file("locked");
  fs::create_directories(locked);
  ::chmod(locked.c_str(), 0);
  // Root reads everything: drop to nobody, with a copy of the binary that nobody may run.
  std::string prefix;
  std::string bin = binary();
  if (::geteuid() == 0) {
    ::chmod(dir.path.c_str(), 0755);
    bin = dir.file("repsearch");
    fs::copy_file(binary(), bin);
    ::chmod(bin.c_str(), 0755);
    prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  auto r = run(prefix + bin + " data --data-dir " + locked);
  ::chmod(locked.c_str(), 0755);
  CHECK_MESSAGE(r.status == 2, r.output);
  CHECK(has(r, "permission denied"));
  CHECK_FALSE(has(r, "found neither"));
}

TEST_CASE("cost: the MPI share is a share of the rank's own time") {
  TempDir dir("repsearch_rel_cost");
  const std::regex share("\\(([0-9.]+)% of that rank's time\\)");
  auto r = run(mpirun(2) + search(dir.file("run")));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(r.output, m, share), r.output);
  CHECK(std::stod(m[1]) <= 100.0);
  CHECK(std::stod(m[1]) > 0.0);  // two ranks exchange migrants and gather checkpoints
  // That checkpoint writing is not counted as MPI time is tested structurally in test_mpi.cpp (no
  // share threshold here: a loaded machine moves the share).
}

namespace {

// `dir`/fashion-mnist: the installed Fashion-MNIST's images and test labels (links), and its training
// labels, shuffled when `shuffle` (same images, other labels: a second copy nobody should mistake).
std::string fashion_copy(const std::string& dir, bool shuffle) {
  const std::string d = dir + "/fashion-mnist", from = REPSEARCH_FMNIST_DIR;
  fs::create_directories(d);
  for (const char* f : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    if (!fs::is_symlink(d + "/" + f)) fs::create_symlink(from + "/" + f, d + "/" + f);
  fs::remove(d + "/train-labels-idx1-ubyte.gz");
  fs::remove(d + "/train-labels-idx1-ubyte");
  auto labels = io::read_idx(from + "/train-labels-idx1-ubyte.gz");
  if (shuffle) labels = labels.index_select(0, at::randperm(labels.size(0), at::TensorOptions().dtype(at::kLong)));
  std::string bytes = {0, 0, 8, 1};
  const auto n = static_cast<std::uint32_t>(labels.size(0));
  for (int shift : {24, 16, 8, 0}) bytes += static_cast<char>((n >> shift) & 0xFF);
  bytes.append(reinterpret_cast<const char*>(labels.contiguous().data_ptr<std::uint8_t>()), n);
  write_file(d + "/train-labels-idx1-ubyte", bytes);
  return d;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec)) names.push_back(f.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string hex_uid(std::uint64_t uid) {
  std::ostringstream os;
  os << std::hex << uid;
  return os.str();
}

}  // namespace

TEST_CASE("data: another data set is refused by learn, sgd, search --resume and inspect, naming the split and both sources") {
  TempDir dir("repsearch_rel_data");
  at::manual_seed(3);
  const auto out = dir.file("run"), archive = out + "/archive.h5";
  REQUIRE(run(search(out, "--generations 2 --checkpoint-interval 1")).status == 0);
  const auto other = fashion_copy(dir.file("other"), /*shuffle=*/true);
  auto refused = [&](const Result& r, const std::string& file, const std::string& source) {
    CHECK_MESSAGE(r.status == 2, r.output);
    CHECK_MESSAGE(has(r, "split search: labels differ (CRC-32 0x"), r.output);
    CHECK(has(r, "split train: labels differ"));
    CHECK(has(r, "is not the data " + file + " was computed from"));
    CHECK(has(r, source));
    CHECK_FALSE(has(r, "accuracy val"));
  };
  const std::string learn = binary() + " learn --archive " + archive + " --epochs 1 --out " + dir.file("l");
  refused(run(learn + " --data-dir " + other), archive, "the data in " + other);
  refused(run("env REPSEARCH_DATA_DIR=" + dir.file("other") + " " + learn), archive,
          "(the directory comes from REPSEARCH_DATA_DIR=" + dir.file("other") + ")");
  refused(run(binary() + " sgd --archive " + archive + " --epochs 1 --data-dir " + other), archive, other);
  refused(run(search(out, "--generations 4 --resume --data-dir " + other)), out + "/checkpoint.h5", other);
  CHECK(files_in(dir.file("l")).empty());  // refused before any file

  // The data it was searched on: learn and sgd --archive run, their results record the same identity.
  auto l = run(learn + " --elite 0");
  REQUIRE_MESSAGE(l.status == 0, l.output);
  auto g = run(binary() + " sgd --archive " + archive + " --epochs 1");
  REQUIRE_MESSAGE(g.status == 0, g.output);
  CHECK(has(g, out + "/sgd-0.h5"));  // beside the archive
  const auto a = io::read_archive(archive);
  REQUIRE(a.provenance.data.recorded());
  CHECK(fs::path(a.data_dir).is_absolute());
  for (const auto& path : {out + "/sgd-0.h5", dir.file("l") + "/learn-" + hex_uid(a.uid[0]) + ".h5"}) {
    const auto r = io::read_results(path);
    CHECK(io::identity_differences(a.provenance.data, "a", r.data, "r").empty());
    CHECK(r.data.splits.size() == a.provenance.data.splits.size());
    CHECK(r.archive_sha256 == a.provenance.config_sha256);
  }
  CHECK(run(search(out, "--generations 4 --resume")).status == 0);

  // inspect checks a file's identity against the data now in the directory it records.
  const auto mine = fashion_copy(dir.file("mine"), /*shuffle=*/false);
  const auto out2 = dir.file("run2");
  REQUIRE(run(search(out2, "--generations 0 --data-dir " + mine)).status == 0);
  auto ok = run(binary() + " inspect " + out2 + "/archive.h5");
  CHECK_MESSAGE(ok.status == 0, ok.output);
  CHECK(has(ok, "identity  recorded; the data in " + mine + " matches it"));
  fashion_copy(dir.file("mine"), /*shuffle=*/true);
  auto changed = run(binary() + " inspect " + out2 + "/archive.h5");
  CHECK(changed.status == 2);
  CHECK_MESSAGE(has(changed, "inspect: the data now in " + mine + " is not the data " + out2 + "/archive.h5"), changed.output);
  CHECK(has(changed, "split train: labels differ"));
}

TEST_CASE("outputs: learn and sgd own their files: one writer per network, temporaries cleared, summaries never stale") {
  TempDir dir("repsearch_rel_outputs");
  const auto out = dir.file("run"), archive = out + "/archive.h5";
  REQUIRE(run(search(out, "--init labels --generations 0")).status == 0);
  const auto uids = io::read_archive(archive).uid;
  REQUIRE(uids.size() == 4);
  const std::string learn = binary() + " learn --archive " + archive + " --probe-size 10";
  const auto stem = [&](int e) { return out + "/learn-" + hex_uid(uids[static_cast<std::size_t>(e)]); };
  {
    Background first(learn + " --elite 0 --epochs 100000", dir.file("first.log"));
    REQUIRE_MESSAGE(first.wait_for("epoch   1/"), first.output());
    auto second = run(learn + " --elite 0 --epochs 1");
    CHECK(second.status == 2);
    CHECK_MESSAGE(has(second, stem(0) + " (its files) is in use by another repsearch process"), second.output);
    CHECK(has(second, "pid " + std::to_string(first.pid)));
    auto all = run(learn + " --elite all --epochs 1");  // needs elite 0 too
    CHECK(all.status == 2);
    auto beside = run(learn + " --elite 1 --epochs 1");  // an array task's neighbour writes another network
    CHECK_MESSAGE(beside.status == 0, beside.output);
    ::kill(first.pid, SIGKILL);
    CHECK(first.wait() == 128 + SIGKILL);
  }
  CHECK_FALSE(fs::exists(stem(1) + ".lock"));  // released and removed by its owner
  write_file(stem(0) + ".h5.tmp-4242", "left by a kill -9");
  write_file(stem(0) + ".pt.tmp-77", "left by a kill -9");
  write_file(stem(2) + ".h5.tmp-55", "another network's: its writer may be alive");
  auto again = run(learn + " --elite 0 --epochs 1");  // the killed run's lock is free
  REQUIRE_MESSAGE(again.status == 0, again.output);
  CHECK(has(again, "[learn] removed 2 temporary file(s)"));
  CHECK(fs::exists(stem(2) + ".h5.tmp-55"));
  fs::remove(stem(2) + ".h5.tmp-55");

  // A summary describes the results beside it, or is not there.
  REQUIRE(run(learn + " --elite all --epochs 1").status == 0);
  CHECK(fs::exists(out + "/learn-summary.json"));
  auto one = run(learn + " --elite 2 --epochs 1");
  REQUIRE(one.status == 0);
  CHECK_MESSAGE(has(one, "removed " + out + "/learn-summary.json: it described results this run replaces"), one.output);
  CHECK_FALSE(fs::exists(out + "/learn-summary.json"));
  REQUIRE(run(learn + " --elite all --epochs 1").status == 0);
  {
    Background killed(learn + " --elite all --epochs 300", dir.file("killed.log"));
    REQUIRE_MESSAGE(killed.wait_for("[learn elite 1 "), killed.output());  // the first network is written
    ::kill(killed.pid, SIGKILL);
    killed.wait();
  }
  CHECK_FALSE(fs::exists(out + "/learn-summary.json"));  // not the previous run's, describing files replaced since
  CHECK(fs::exists(stem(0) + ".lock"));  // a kill -9 leaves its locks, which block nobody
  REQUIRE(run(learn + " --elite 0 --epochs 1").status == 0);
  const std::string sgd = binary() + " sgd --archive " + archive + " --epochs 1 --probe-size 10";
  REQUIRE(run(sgd + " --seeds 0..1").status == 0);
  REQUIRE(run(sgd + " --seeds 5").status == 0);  // not in the summary: it stays
  CHECK(fs::exists(out + "/sgd-summary.json"));
  REQUIRE(run(sgd + " --seeds 1").status == 0);
  CHECK_FALSE(fs::exists(out + "/sgd-summary.json"));
  for (const auto& name : files_in(out)) {
    CHECK_MESSAGE(name.find(".tmp-") == std::string::npos, name);
    const bool lock = name.size() > 5 && name.compare(name.size() - 5, 5, ".lock") == 0;
    if (lock) CHECK_MESSAGE(name.rfind("learn-", 0) == 0, name);  // only the killed run's, never a finished run's
  }
  CHECK_FALSE(fs::exists(stem(0) + ".lock"));
}

TEST_CASE("outputs: too little memory ends learn and sgd with exit 2 and what ran out, no stack trace, no files") {
  TempDir dir("repsearch_rel_oom");
  const auto out = dir.file("run"), archive = out + "/archive.h5";
  REQUIRE(run(search(out, "--generations 0")).status == 0);
  // A 784-200000 first layer with Adam's state needs ~2.5 GB: more than the 2 GB of address space given.
  const std::string limit = "ulimit -v 2000000 && exec ";
  for (const std::string cmd : {binary() + " learn --archive " + archive, binary() + " sgd --archive " + archive}) {
    const auto to = dir.file(cmd.find(" learn ") != std::string::npos ? "learn" : "sgd");
    auto r = run(limit + cmd + " --hidden 200000 --epochs 1 --out " + to);
    CHECK_MESSAGE(r.status == 2, r.output);
    CHECK(has(r, "out of memory"));
    CHECK_FALSE(has(r, "frame #"));
    CHECK_FALSE(has(r, "Exception raised from"));
    CHECK_FALSE(has(r, "internal error"));
    CHECK_MESSAGE(files_in(to).empty(), to);
  }
}
