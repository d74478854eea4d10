// The repsearch program end to end on real Fashion-MNIST (configs/smoke.ini): bad options, the
// search's determinism over rank counts, checkpoint/resume, signals, and the archive on disk.
#include <doctest/doctest.h>
#include <signal.h>

#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/mpi/archipelago.hpp"
#include "testing.hpp"

using namespace testing;
using repsearch::Error;
namespace io = repsearch::io;

namespace {

std::string search_cmd(const std::string& out, const std::string& extra = "", int ranks = 1) {
  return (ranks > 1 ? mpirun(ranks) : std::string()) + binary() + " search --config " + config("smoke.ini") +
         " --out " + out + " " + extra;
}

// Same search result: every dataset element-wise, histories without wall-clock seconds.
void check_same_archive(const io::Archive& a, const io::Archive& b) {
  CHECK(at::equal(a.representations, b.representations));
  CHECK(at::equal(a.fitness, b.fitness));
  CHECK(at::equal(a.heldout, b.heldout));
  CHECK(at::equal(a.island, b.island));
  CHECK(at::equal(a.generation, b.generation));
  CHECK(a.uid == b.uid);
  CHECK(at::equal(a.cka, b.cka));
  CHECK(at::equal(a.search_indices, b.search_indices));
  CHECK(a.provenance.config_sha256 == b.provenance.config_sha256);
  REQUIRE(a.histories.size() == b.histories.size());
  for (size_t i = 0; i < a.histories.size(); ++i) {
    REQUIRE(a.histories[i].size() == b.histories[i].size());
    for (size_t g = 0; g < a.histories[i].size(); ++g) {
      const auto &x = a.histories[i][g], &y = b.histories[i][g];
      CHECK(x.generation == y.generation);
      CHECK(x.best == y.best);
      CHECK(x.mean == y.mean);
      CHECK(x.heldout == y.heldout);
      CHECK(x.diversity == y.diversity);
      CHECK(x.evaluations == y.evaluations);
    }
  }
  REQUIRE(a.migrations.size() == b.migrations.size());
  for (size_t i = 0; i < a.migrations.size(); ++i) {
    CHECK(a.migrations[i].uid == b.migrations[i].uid);
    CHECK(a.migrations[i].destination == b.migrations[i].destination);
    CHECK(a.migrations[i].generation == b.migrations[i].generation);
  }
}

}  // namespace

TEST_CASE("options: bad options and configs get a clear error and a non-zero exit") {
  TempDir dir("repsearch_cli");
  auto expect = [&](const std::string& cmd, const std::vector<std::string>& words) {
    auto r = run(cmd);
    CHECK_MESSAGE(r.status == 2, cmd, "\n", r.output);
    for (const auto& w : words) CHECK_MESSAGE(r.output.find(w) != std::string::npos, "missing '", w, "' in: ", r.output);
    CHECK(r.output.find("Exception raised from") == std::string::npos);  // never a LibTorch trace
  };
  const auto bad_key = dir.file("bad_key.ini");
  write_file(bad_key, "population = 8\npopulaton = 9\n");
  expect(binary() + " search --config " + bad_key, {bad_key, "populaton"});
  const auto malformed = dir.file("malformed.ini");
  write_file(malformed, "population 8\n");
  expect(binary() + " search --config " + malformed, {malformed});
  const auto bad_value = dir.file("bad_value.ini");
  write_file(bad_value, "population = eight\n");
  expect(binary() + " search --config " + bad_value, {bad_value, "population"});
  expect(binary() + " search --config " + dir.file("absent.ini"), {"absent.ini", "cannot be opened"});
  expect(binary() + " search --population 1", {"option population", ">= 2", "found 1"});
  expect(binary() + " search --crossover 1.5", {"option crossover", "[0, 1]", "1.5"});
  expect(binary() + " search --operators pull,teleport", {"option operators", "teleport"});
  expect(binary() + " search --sigma-min 3 --sigma-max 1", {"sigma-min", "sigma-max"});
  expect(binary() + " search --islands 2 --topology graph --migration-edges '0->5'", {"migration-edges", "0->5"});
  expect(binary() + " search --no-such-option 3", {"no-such-option"});
  expect(binary() + " data --epochs 3", {"'--epochs' is not an option of 'repsearch data'", "learn, sgd"});
  expect(binary() + " data --dataset imagenet", {"option dataset", "imagenet", "fashion-mnist"});
  expect(binary() + " data --data-dir " + dir.file("nowhere"), {"nowhere"});
  expect(binary() + " frobnicate", {"unknown command 'frobnicate'"});
  expect(binary() + " inspect " + dir.file("none.h5"), {"none.h5"});
  auto help = run(binary() + " search --help");
  CHECK(help.status == 0);
  CHECK(help.output.find("--migration-interval") != std::string::npos);
  CHECK(run(binary()).status == 2);
}

TEST_CASE("data: prints the splits of real Fashion-MNIST") {
  auto example = run(binary() + " data --config " + config("fashion_mnist.ini"));
  REQUIRE_MESSAGE(example.status == 0, example.output);
  CHECK(example.output.find("space example (seed 0): 1000 searched examples") != std::string::npos);
  CHECK(example.output.find("20 batches of 50") != std::string::npos);
  CHECK(example.output.find("block0 32x13x13 -> block1 32x6x6 -> block2 32x3x3 -> logits 10") != std::string::npos);
  auto r = run(binary() + " data --config " + config("fashion_mnist_dataset.ini"));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("train [60000, 1, 28, 28]") != std::string::npos);
  CHECK(r.output.find("search S   3000 examples") != std::string::npos);
  CHECK(r.output.find("heldout H  2000 examples") != std::string::npos);

  // REPSEARCH_DATA_DIR: the data set's usual folder name under it; --data-dir still wins; a missing
  // folder is named, and so is the variable it came from.
  TempDir dir("repsearch_data_env");
  const auto root = dir.file("root");
  fs::create_directories(root + "/fashion-mnist");
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"})
    fs::copy_file(std::string(REPSEARCH_FMNIST_DIR) + "/" + f + ".gz", root + "/fashion-mnist/" + f + ".gz");
  auto env = run("env REPSEARCH_DATA_DIR=" + root + " " + binary() + " data --config " + config("fashion_mnist_dataset.ini"));
  REQUIRE_MESSAGE(env.status == 0, env.output);
  CHECK(env.output.find("from " + root + "/fashion-mnist\n") != std::string::npos);
  CHECK(env.output.find(r.output.substr(r.output.find("\n"))) != std::string::npos);  // the same data, the same splits
  auto given = run("env REPSEARCH_DATA_DIR=" + dir.file("none") + " " + binary() + " data --config " +
                   config("fashion_mnist_dataset.ini") + " --data-dir " + root + "/fashion-mnist");
  CHECK_MESSAGE(given.status == 0, given.output);
  auto missing = run("env REPSEARCH_DATA_DIR=" + dir.file("none") + " " + binary() + " data");
  CHECK(missing.status == 2);
  CHECK_MESSAGE(missing.output.find(dir.file("none") + "/fashion-mnist does not exist") != std::string::npos, missing.output);
  CHECK_MESSAGE(missing.output.find("REPSEARCH_DATA_DIR=" + dir.file("none")) != std::string::npos, missing.output);
}

namespace {

// The five searches of the determinism case, run once per process: doctest runs a TEST_CASE's body
// once per SUBCASE, and these runs are what the case costs.
struct DeterminismRuns {
  TempDir dir{"repsearch_det"};
  const std::string one = dir.file("one"), two = dir.file("two"), three = dir.file("three"), again = dir.file("again"),
                    other = dir.file("other");
  const Result r1 = run(search_cmd(one)), r2 = run(search_cmd(two, "", 2)), r3 = run(search_cmd(three, "", 3)),
               r_again = run(search_cmd(again)), r_other = run(search_cmd(other, "--seed 2"));
};

// stdout of a command alone (a warning on stderr must not break the JSON), parsed.
nlohmann::json run_json(const std::string& command, const TempDir& dir) {
  const auto file = dir.file("out.json");
  auto r = run(command + " >" + file);
  REQUIRE_MESSAGE(r.status == 0, command, "\n", r.output);
  const auto text = read_text(file);
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(!j.is_discarded(), "not JSON: ", text);
  return j;
}

}  // namespace

TEST_CASE("determinism: search is deterministic across rank counts and improves held-out fitness") {
  static const DeterminismRuns runs;
  const auto &one = runs.one, &two = runs.two, &three = runs.three, &again = runs.again, &other = runs.other;
  const auto& r1 = runs.r1;
  REQUIRE_MESSAGE(r1.status == 0, r1.output);
  CHECK(r1.output.find("[search] gen    12/12") != std::string::npos);
  REQUIRE_MESSAGE(runs.r2.status == 0, runs.r2.output);
  REQUIRE_MESSAGE(runs.r3.status == 0, runs.r3.output);
  REQUIRE_MESSAGE(runs.r_again.status == 0, runs.r_again.output);
  REQUIRE_MESSAGE(runs.r_other.status == 0, runs.r_other.output);
  auto a1 = io::read_archive(one + "/archive.h5");
  CHECK(a1.provenance.n_ranks == 1);
  CHECK(a1.representations.sizes() == at::IntArrayRef({4, 300, 16}));
  SUBCASE("1, 2 and 3 ranks and a second run give the same archive") {
    auto a2 = io::read_archive(two + "/archive.h5");
    CHECK(a2.provenance.n_ranks == 2);
    check_same_archive(a1, a2);
    auto a3 = io::read_archive(three + "/archive.h5");
    CHECK(a3.provenance.n_ranks == 3);
    check_same_archive(a1, a3);
    check_same_archive(a1, io::read_archive(again + "/archive.h5"));
  }
  SUBCASE("another seed gives another archive") {
    auto b = io::read_archive(other + "/archive.h5");
    CHECK_FALSE(at::equal(a1.representations, b.representations));
  }
  SUBCASE("held-out fitness after 12 generations beats generation 0") {
    double first = -1e300, last = -1e300;
    for (const auto& h : a1.histories) {
      first = std::max(first, h.front().heldout);
      last = std::max(last, h.back().heldout);
    }
    CHECK(a1.histories.front().back().generation == 12);
    CHECK(last > first + 0.02);
    CHECK(a1.heldout[0].item<double>() >= last - 1e-9);  // elites are the best held-out individuals
  }
  SUBCASE("h5dump reads the archive without our code") {
    auto d = run("h5dump -H " + one + "/archive.h5");
    REQUIRE(d.status == 0);
    for (std::string w : {"GROUP \"elites\"", "DATASET \"representations\"", "H5T_IEEE_F32LE", "DATASET \"cka\"",
                          "GROUP \"islands\"", "GROUP \"history\"", "GROUP \"migrations\"",
                          "DATASET \"search_indices\"", "ATTRIBUTE \"config_sha256\""})
      CHECK_MESSAGE(d.output.find(w) != std::string::npos, w);
  }
  SUBCASE("inspect summarises it, also as JSON") {
    auto t = run(binary() + " inspect " + one + "/archive.h5");
    REQUIRE(t.status == 0);
    CHECK(t.output.find("elites [4, 300, 16]") != std::string::npos);
    // The JSON holds what the archive holds.
    TempDir tmp("repsearch_det_json");
    const auto j = run_json(binary() + " inspect --json " + one + "/archive.h5", tmp);
    CHECK(j.at("elite_shape") == nlohmann::json({4, 300, 16}));
    CHECK(j.at("provenance").at("n_ranks") == 1);
    CHECK(j.at("provenance").at("n_islands") == 4);
    CHECK(j.at("provenance").at("seed") == 1);
    CHECK(j.at("provenance").at("config_sha256") == a1.provenance.config_sha256);
    CHECK(j.at("data").at("search") == 300);
    CHECK(j.at("data").at("val") == 200);
    CHECK(j.at("data").at("heldout") == 200);
    CHECK(j.at("migrations") == a1.migrations.size());
    CHECK(j.at("nonfinite_elites").empty());
    const auto& elites = j.at("elites");
    REQUIRE(elites.size() == 4);
    for (std::size_t e = 0; e < 4; ++e) {
      const auto i = static_cast<int64_t>(e);
      CHECK(elites[e].at("rank") == e);
      CHECK(elites[e].at("uid").get<std::uint64_t>() == a1.uid[e]);
      CHECK(elites[e].at("fitness").get<double>() == a1.fitness[i].item<double>());  // shortest round-trip text
      CHECK(elites[e].at("heldout").get<double>() == a1.heldout[i].item<double>());
      CHECK(elites[e].at("island").get<int>() == a1.island[i].item<int>());
    }
    const auto& islands = j.at("islands");
    REQUIRE(islands.size() == a1.histories.size());
    for (std::size_t i = 0; i < islands.size(); ++i) {
      CHECK(islands[i].at("generation") == 12);
      CHECK(islands[i].at("heldout").get<double>() == a1.histories[i].back().heldout);
      CHECK(islands[i].at("first_heldout").get<double>() == a1.histories[i].front().heldout);
    }
    // Mean pairwise 1 - CKA of the elites, from the archive's CKA matrix.
    const double k = 4, diversity = (k * k - a1.cka.sum().item<double>()) / (k * (k - 1));
    CHECK(j.at("diversity").get<double>() == doctest::Approx(diversity).epsilon(1e-12));
    CHECK(j.at("diversity").get<double>() > 0.0);
    CHECK(j.at("diversity").get<double>() <= 1.0);
  }
}

namespace {

// A copy of a finished run directory, for a subcase that resumes or damages it: the original is shared.
std::string copy_run(const std::string& from, const TempDir& dir, const std::string& name) {
  const auto to = dir.file(name);
  fs::copy(from, to, fs::copy_options::recursive);
  return to;
}

}  // namespace

TEST_CASE("resume: checkpoint and resume") {
  // The uninterrupted reference, once per process (the body runs once per SUBCASE); subcases that
  // resume or damage it work on copies.
  static const TempDir ref_dir("repsearch_resume_ref");
  static const std::string full = ref_dir.file("full");
  static const Result reference = run(search_cmd(full));
  REQUIRE_MESSAGE(reference.status == 0, reference.output);
  TempDir dir("repsearch_resume");
  const auto split = dir.file("split");
  SUBCASE("12 generations in one go equal 4 + resume to 12, on another rank count") {
    auto first = run(search_cmd(split, "--generations 4", 2));
    REQUIRE_MESSAGE(first.status == 0, first.output);
    auto head = io::read_checkpoint_header(split + "/checkpoint.h5");
    CHECK(head.generation == 4);
    auto second = run(search_cmd(split, "--generations 12 --resume"));
    REQUIRE_MESSAGE(second.status == 0, second.output);
    CHECK(second.output.find("resumed at generation 4") != std::string::npos);
    check_same_archive(io::read_archive(full + "/archive.h5"), io::read_archive(split + "/archive.h5"));
  }
  SUBCASE("timed checkpoints: every rank takes the one rank 0 asks for, and the result is unchanged") {
    // 0.0001 minutes (6 ms) is due after nearly every generation; the request is agreed a few
    // generations later, then the next one is asked for.
    auto timed = run(search_cmd(split, "--checkpoint-interval 0 --checkpoint-minutes 0.0001", 2));
    REQUIRE_MESSAGE(timed.status == 0, timed.output);
    std::regex line("checkpoint at generation (\\d+)");
    std::vector<int> at;
    for (auto it = std::sregex_iterator(timed.output.begin(), timed.output.end(), line); it != std::sregex_iterator(); ++it)
      at.push_back(std::stoi((*it)[1]));
    REQUIRE_MESSAGE(!at.empty(), timed.output);
    CHECK(at.front() > repsearch::mpi::Archipelago::kAgreeLag);
    for (size_t i = 1; i < at.size(); ++i) CHECK(at[i] - at[i - 1] > repsearch::mpi::Archipelago::kAgreeLag);
    check_same_archive(io::read_archive(full + "/archive.h5"), io::read_archive(split + "/archive.h5"));
  }
  SUBCASE("a changed config is refused, naming the differing keys") {
    const auto mine = copy_run(full, dir, "changed");
    auto r = run(search_cmd(mine, "--resume --population 10 --sigma 0.5"));
    CHECK(r.status == 2);
    CHECK(r.output.find("population: checkpoint '8', now '10'") != std::string::npos);
    CHECK(r.output.find("sigma") != std::string::npos);
    auto structural = run(search_cmd(mine, "--resume --sigma 0.5 --allow-change sigma --generations 13"));
    CHECK(structural.status == 2);
    CHECK(structural.output.find("option allow-change: 'sigma'") != std::string::npos);
    auto ok = run(search_cmd(mine, "--resume --elites 3 --allow-change elites --generations 13"));
    CHECK_MESSAGE(ok.status == 0, ok.output);
    CHECK(io::read_archive(mine + "/archive.h5").uid.size() == 3);
  }
  SUBCASE("truncated and foreign checkpoints get clear errors") {
    const auto mine = copy_run(full, dir, "damaged");
    const auto ck = mine + "/checkpoint.h5";
    fs::copy_file(mine + "/archive.h5", ck, fs::copy_options::overwrite_existing);
    auto foreign = run(search_cmd(mine, "--resume"));
    CHECK(foreign.status == 2);
    CHECK(foreign.output.find("checkpoint") != std::string::npos);
    CHECK(foreign.output.find("repsearch-archive") != std::string::npos);
    fs::resize_file(ck, fs::file_size(ck) / 2);
    auto cut = run(search_cmd(mine, "--resume"));
    CHECK(cut.status == 2);
    CHECK(cut.output.find(ck) != std::string::npos);
    auto none = run(search_cmd(dir.file("empty"), "--resume"));
    CHECK(none.status == 2);
    CHECK(none.output.find("no checkpoint") != std::string::npos);
  }
}

TEST_CASE("signal: SIGTERM mid-run leaves a checkpoint and the resumed run finishes with the same result") {
  TempDir dir("repsearch_signal");
  const auto out = dir.file("run");
  Background job(binary() + " search --config " + config("smoke.ini") + " --out " + out +
                     " --generations 100000 --checkpoint-interval 0",
                 dir.file("log.txt"));
  REQUIRE_MESSAGE(job.wait_for("gen     3/", 60), job.output());
  REQUIRE(kill(job.pid, SIGTERM) == 0);
  CHECK(job.wait() == 75);
  const auto text = job.output();
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(text, m, std::regex("stopped by signal at generation (\\d+)")), text);
  const int stopped = std::stoi(m[1]);
  auto head = io::read_checkpoint_header(out + "/checkpoint.h5");
  CHECK(head.generation == stopped);
  const auto target = std::to_string(stopped + 3);
  auto resumed = run(search_cmd(out, "--resume --checkpoint-interval 0 --generations " + target));
  REQUIRE_MESSAGE(resumed.status == 0, resumed.output);
  const auto ref = dir.file("ref");
  REQUIRE(run(search_cmd(ref, "--checkpoint-interval 0 --generations " + target)).status == 0);
  check_same_archive(io::read_archive(ref + "/archive.h5"), io::read_archive(out + "/archive.h5"));
}

namespace {

// The learn case's pipeline, once per process (its body runs once per SUBCASE): a label-like start
// (init=labels, no generations) that the learner must turn into a classifier, then learn on every
// elite and two sgd baselines beside it.
struct LearnRuns {
  TempDir dir{"repsearch_learn"};
  const std::string run_dir = dir.file("run");
  const Result search = run(search_cmd(run_dir, "--init labels --generations 0"));
  const Result learn = run(binary() + " learn --archive " + run_dir + "/archive.h5 --elite all --epochs 10");
  const Result sgd = run(binary() + " sgd --config " + config("smoke.ini") + " --out " + run_dir + " --epochs 10 --seeds 0..1");
};

// A value printed with 4 decimals ("%.4f") is within half a unit of the last place of the value.
bool printed_as(double value, double shown) { return std::abs(value - shown) <= 0.5e-4 + 1e-12; }

nlohmann::json read_json(const std::string& path) {
  auto j = nlohmann::json::parse(read_text(path), nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(!j.is_discarded(), path, " is not JSON");
  return j;
}

}  // namespace

TEST_CASE("learn: learn and sgd on real Fashion-MNIST: modest, robust accuracy; results files; refusals") {
  static const LearnRuns runs;
  const auto& dir = runs.dir;
  const auto& run_dir = runs.run_dir;
  REQUIRE_MESSAGE(runs.search.status == 0, runs.search.output);
  const auto& l = runs.learn;
  REQUIRE_MESSAGE(l.status == 0, l.output);
  CHECK(l.output.find("ensemble of 4 networks") != std::string::npos);
  std::smatch m;
  std::regex acc("test ([0-9.]+) ->");
  std::vector<double> tests;
  for (auto it = std::sregex_iterator(l.output.begin(), l.output.end(), acc); it != std::sregex_iterator(); ++it) {
    tests.push_back(std::stod((*it)[1]));
    CHECK(tests.back() > 0.5);  // chance is 0.1; measured ~0.70 at this size
  }
  CHECK(tests.size() == 4);
  const auto& g = runs.sgd;
  REQUIRE_MESSAGE(g.status == 0, g.output);
  REQUIRE(std::regex_search(g.output, m, std::regex("\\[sgd seed 0\\] accuracy val ([0-9.]+)  heldout ([0-9.]+)  test ([0-9.]+)")));
  CHECK(std::stod(m[3]) > 0.6);  // measured ~0.70 (500 examples, 10 epochs)
  CHECK(g.output.find("ensemble of 2 networks") != std::string::npos);
  CHECK(fs::exists(run_dir + "/sgd-0.h5"));
  CHECK(fs::exists(run_dir + "/sgd-0.pt"));
  CHECK(fs::exists(run_dir + "/learn-summary.json"));
  SUBCASE("the summaries hold what learn and sgd printed") {
    const auto learned = read_json(run_dir + "/learn-summary.json");
    const auto& nets = learned.at("networks");
    REQUIRE(nets.size() == 4);
    for (std::size_t i = 0; i < nets.size(); ++i) {
      CHECK(nets[i].at("elite_rank") == i);
      CHECK(printed_as(nets[i].at("test").get<double>(), tests[i]));
      CHECK(fs::exists(nets[i].at("results").get<std::string>()));
    }
    const double ens = learned.at("ensemble_test").get<double>();
    CHECK(ens > 0.5);
    CHECK(ens <= 1.0);
    const auto baseline = read_json(run_dir + "/sgd-summary.json");
    REQUIRE(baseline.at("networks").size() == 2);
    CHECK(baseline.at("networks")[0].at("seed") == 0);
    CHECK(printed_as(baseline.at("networks")[0].at("test").get<double>(), std::stod(m[3])));
    CHECK(baseline.at("networks")[1].at("seed") == 1);
    CHECK(baseline.at("ensemble_test").get<double>() > 0.6);
  }
  SUBCASE("inspect prints results files and the CKA table of two trajectories") {
    std::string learned;
    for (const auto& f : fs::directory_iterator(run_dir))
      if (f.path().filename().string().rfind("learn-", 0) == 0 && f.path().extension() == ".h5") learned = f.path().string();
    REQUIRE_FALSE(learned.empty());
    auto t = run(binary() + " inspect " + learned + " " + run_dir + "/sgd-0.h5");
    REQUIRE_MESSAGE(t.status == 0, t.output);
    CHECK(t.output.find("results " + learned + " (learn)") != std::string::npos);
    CHECK(t.output.find("linear CKA of cut-layer activations on 1000 probe images") != std::string::npos);
    CHECK(t.output.find("final networks: CKA") != std::string::npos);
    // As JSON: both results files, then the CKA matrix of their trajectories.
    TempDir tmp("repsearch_learn_json");
    const auto j = run_json(binary() + " inspect --json " + learned + " " + run_dir + "/sgd-0.h5", tmp);
    REQUIRE(j.is_array());
    REQUIRE(j.size() == 3);
    CHECK(j[0].at("path") == learned);
    CHECK(j[0].at("kind") == "learn");
    CHECK(j[1].at("kind") == "sgd");
    CHECK(j[1].at("seed") == 0);
    const auto& cka = j[2].at("trajectory_cka");
    CHECK(cka.at("a") == learned);
    const auto& rows = cka.at("cka");
    REQUIRE(rows.size() == cka.at("steps_a").size());
    REQUIRE(rows.size() >= 2);
    for (const auto& row : rows) {
      REQUIRE(row.size() == cka.at("steps_b").size());
      for (const auto& v : row) {
        CHECK(v.get<double>() >= 0.0);
        CHECK(v.get<double>() <= 1.0 + 1e-9);
      }
    }
    // The text's "final networks: CKA x" is the last entry of the matrix.
    std::smatch f;
    REQUIRE(std::regex_search(t.output, f, std::regex("final networks: CKA ([0-9.]+)")));
    CHECK(printed_as(rows.back().back().get<double>(), std::stod(f[1])));
  }
  SUBCASE("learn refuses what is not a repsearch archive") {
    auto r = run(binary() + " learn --archive " + run_dir + "/sgd-0.h5");
    CHECK(r.status == 2);
    CHECK(r.output.find("sgd-0.h5") != std::string::npos);
    auto none = run(binary() + " learn --archive " + dir.file("nothing.h5"));
    CHECK(none.status == 2);
    auto bad = run(binary() + " learn --archive " + run_dir + "/archive.h5 --elite 9");
    CHECK(bad.status == 2);
    CHECK(bad.output.find("holds 4 elites") != std::string::npos);
    auto other_space = run(binary() + " learn --archive " + run_dir + "/archive.h5 --supervise skip-block0");
    CHECK(other_space.status == 2);
    CHECK_MESSAGE(other_space.output.find("option supervise applies to example-space archives") != std::string::npos,
                  other_space.output);
    CHECK(run(binary() + " learn").status == 2);
  }
}

TEST_CASE("scale: --search-size all, and a memory plan that refuses what cannot fit before any work") {
  auto d = run(binary() + " data --config " + config("fashion_mnist_dataset.ini") + " --search-size all");
  REQUIRE_MESSAGE(d.status == 0, d.output);
  CHECK(d.output.find("search S  56000 examples") != std::string::npos);
  auto e = run(binary() + " data --config " + config("fashion_mnist.ini") + " --search-size all");
  CHECK(e.output.find("60000 searched examples") != std::string::npos);
  auto bad = run(binary() + " data --search-size lots");
  CHECK(bad.status == 2);
  CHECK(bad.output.find("option search-size: expected a positive integer or 'all', found 'lots'") != std::string::npos);
  TempDir dir("repsearch_scale");
  auto r = run(search_cmd(dir.file("run"), "--search-size all --population 4096"));
  CHECK(r.status == 2);
  CHECK_MESSAGE(r.output.find("memory plan:") != std::string::npos, r.output);
  CHECK(r.output.find("populations") != std::string::npos);
  CHECK(r.output.find("lower --population") != std::string::npos);
  CHECK(r.output.find("[search] gen") == std::string::npos);
  CHECK(r.output.find("[search] set-up") == std::string::npos);  // refused before the fitness and operators were built
  auto ok = run(search_cmd(dir.file("ok"), "--generations 1"));
  REQUIRE_MESSAGE(ok.status == 0, ok.output);
  CHECK(ok.output.find("GiB  total") != std::string::npos);  // the plan is printed
  // learn --extend smoother: the rest of the training set (60,000 - S 300 - H 200) joins the regression.
  auto l = run(binary() + " learn --archive " + dir.file("ok") + "/archive.h5 --extend smoother --epochs 1 --probe-size 10");
  REQUIRE_MESSAGE(l.status == 0, l.output);
  CHECK(l.output.find("--extend smoother: 59500 more examples") != std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(l.output, m, std::regex("test ([0-9.]+) ->")));
  CHECK(std::stod(m[1]) > 0.3);  // a working classifier (chance 0.1); one epoch on a 1-generation search
}
