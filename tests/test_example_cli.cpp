// The example space end to end: the search on real Fashion-MNIST examples lowers the cross-entropy,
// archives are identical on 1, 2 and 3 ranks and after a kill -9 and resume, inspect's view, and the
// errors a user meets.
#include <doctest/doctest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "repsearch/core/data.hpp"
#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/example_archive.hpp"
#include "repsearch/io/results.hpp"
#include "testing.hpp"

using namespace testing;
namespace io = repsearch::io;

namespace {

std::string example_cmd(const std::string& out, const std::string& extra = "", int ranks = 1, int log_every = 1000) {
  return (ranks > 1 ? mpirun(ranks) : std::string()) + binary() + " search --config " + config("smoke.ini") +
         " --space example --log-every " + std::to_string(log_every) + " --checkpoint-interval 0 --out " + out + " " + extra;
}

void check_same_targets(const std::string& a_path, const std::string& b_path) {
  io::ExampleArchive a(a_path), b(b_path);
  REQUIRE(a.examples() == b.examples());
  CHECK(at::equal(a.indices, b.indices));
  for (std::int64_t l = 0; l <= 4; ++l)
    CHECK_MESSAGE(at::equal(a.targets(l, 0, a.examples()), b.targets(l, 0, b.examples())), "layer ", l);
  CHECK(at::equal(a.ce(0, a.examples()), b.ce(0, b.examples())));
  for (std::int64_t l = 0; l < 4; ++l) CHECK(at::equal(a.diversity(l), b.diversity(l)));
  CHECK(a.summary.mean_best_ce == b.summary.mean_best_ce);
}

}  // namespace

TEST_CASE("example-search: a layer's search lowers the cross-entropy of real Fashion-MNIST examples") {
  const auto d = io::load_dataset("fashion-mnist", REPSEARCH_FMNIST_DIR);
  const auto standard = repsearch::fit_standardiser(d.train_images);
  repsearch::NetConfig nc;
  nc.widths = {16, 16, 16};
  nc.whiten_images = 500;
  repsearch::FrozenNet net(nc, standard.apply(d.train_images.slice(0, 0, 500)), 10, at::kCPU);
  repsearch::ExampleSearchConfig c;
  c.parents = 4;
  c.exploratory = c.refinement = 8;
  c.schedule = {{{12, 0.1, 5, 5}, {8, 0.1, 3, 1}, {8, 0.1, 3, 1}, {6, 0.1, 1, 0}}};
  for (std::int64_t layer = 0; layer < 4; ++layer) {
    c.layers = {layer};
    repsearch::ExampleUnit u(net, c, {0, {0}, standard.apply(d.train_images.slice(0, 0, 8)), d.train_labels.slice(0, 0, 8)});
    while (!u.done()) u.step();
    const auto r = u.results().front();
    const auto& h = r.history[static_cast<std::size_t>(layer)];
    // every example's search ends below the network's own cross-entropy, on average well below
    CHECK_MESSAGE(h[-1].item<double>() < 0.8 * r.initial_ce.mean().item<double>(), "layer ", layer);
    // and below where the search started (its initial population: the layer's input, normalised, and noisy copies)
    CHECK_MESSAGE(h[-1].item<double>() < h[0].item<double>() - 0.05, "layer ", layer);
  }
}

TEST_CASE("example-ranks: the archive is the same on 1, 2 and 3 ranks, with independent and with migrating islands") {
  TempDir dir("repsearch_example_ranks");
  for (const std::string islands : {"--migration-interval 0", "--migration-interval 1 --islands 2"}) {
    std::string first;
    for (int np : {1, 2, 3}) {
      const auto out = dir.file("np" + std::to_string(np) + (islands.size() > 25 ? "m" : "i"));
      auto r = run(example_cmd(out, islands, np));
      REQUIRE_MESSAGE(r.status == 0, r.output);
      CHECK(r.output.find("examples 300/300") != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(out + "/units"));  // gone once the archive holds them
      if (first.empty()) first = out + "/archive.h5";
      else check_same_targets(first, out + "/archive.h5");
    }
  }
}

TEST_CASE("example-kill: kill -9 at any moment, then --resume, gives the uninterrupted archive") {
  TempDir dir("repsearch_example_kill");
  const auto ref = dir.file("ref");
  auto r = run(example_cmd(ref));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  for (double after : {0.0, 1.5, 3.0}) {
    const auto out = dir.file("k" + std::to_string(static_cast<int>(after * 10)));
    {
      Background bg(example_cmd(out, "--keep-units true", 2), out + ".log");
      REQUIRE(bg.wait_for("to search in", 300));
      std::this_thread::sleep_for(std::chrono::duration<double>(after));
      ::kill(-bg.pid, SIGKILL);
      bg.wait(30);
    }
    auto resumed = run(example_cmd(out, "--resume --keep-units true", 3));
    REQUIRE_MESSAGE(resumed.status == 0, resumed.output);
    CHECK(resumed.output.find("resumed:") != std::string::npos);
    check_same_targets(ref + "/archive.h5", out + "/archive.h5");
    auto again = run(example_cmd(out, "--resume"));
    CHECK(again.status == 0);
    CHECK(again.output.find("complete: nothing to resume") != std::string::npos);
  }
}

TEST_CASE("example-inspect: inspect --json reports the search's numbers") {
  TempDir dir("repsearch_example_inspect");
  const auto out = dir.file("run");
  auto r = run(example_cmd(out, "--islands 3"));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  auto j = run(binary() + " inspect --json " + out + "/archive.h5");
  REQUIRE_MESSAGE(j.status == 0, j.output);
  const auto js = nlohmann::json::parse(j.output);
  CHECK(js["space"] == "example");
  CHECK(js["examples"] == 300);
  CHECK(js["islands"] == 3);
  CHECK(js["layer_shapes"]["block0"] == std::vector<int>{8, 13, 13});
  CHECK(js["layer_shapes"]["logits"] == std::vector<int>{10});
  for (const auto* layer : {"block0", "block1", "block2", "logits"}) {
    CHECK(js["mean_best_ce"][layer].get<double>() > 0);
    CHECK(js["mean_best_ce"][layer].get<double>() < js["mean_initial_ce"].get<double>());
  }
  CHECK(js["logit_accuracy"].get<double>() > 0.5);
  REQUIRE(js.contains("n_eff"));
  CHECK(js["n_eff_by_islands"].size() == 3);
  CHECK(js["n_eff_by_islands"][0][0].get<double>() == doctest::Approx(1.0));  // one island: one solution
  const double n3 = js["n_eff"]["block0"].get<double>();
  CHECK(n3 >= 1.0);
  CHECK(n3 <= 3.0);
  // the numbers are the archive's: the logits' accuracy recomputed from its rows
  io::ExampleArchive a(out + "/archive.h5");
  const auto right = (a.targets(3, 0, a.examples()).argmax(1) == a.labels).to(at::kDouble).mean().item<double>();
  CHECK(js["logit_accuracy"].get<double>() == doctest::Approx(right));
  auto human = run(binary() + " inspect " + out + "/archive.h5");
  CHECK(human.output.find("N_eff of the island bests") != std::string::npos);
}

TEST_CASE("example-errors: bad options and run directories are errors naming what to change") {
  TempDir dir("repsearch_example_errors");
  auto expect = [&](const std::string& extra, std::vector<std::string> words) {
    auto r = run(example_cmd(dir.file("bad"), extra));
    CHECK_MESSAGE(r.status == 2, r.output);
    for (const auto& w : words) CHECK_MESSAGE(r.output.find(w) != std::string::npos, w, " in ", r.output);
  };
  expect("--layer-generations 4,2,2", {"option layer-generations", "4 comma-separated", "'4,2,2'"});
  expect("--layer-alpha 0.1,x,0.1,0.1", {"option layer-alpha"});
  expect("--layer-boost 1,1,0,1", {"option layer-boost", "> 0"});
  expect("--layers block2,block0", {"option layers", "increasing order"});
  expect("--parents 1", {"option parents", ">= 2"});
  expect("--net-width 8,8", {"option net-width", "three"});
  auto space = run(binary() + " search --config " + config("smoke.ini") + " --space graph --out " + dir.file("bad"));
  CHECK(space.status == 2);
  CHECK_MESSAGE(space.output.find("option space: unknown search space 'graph'; known: example, dataset") != std::string::npos,
                space.output);
  expect("--migration-interval 1 --islands 2 --migrants 9", {"option migrants", "parents"});
  // the memory plan refuses before any work and names the example batch this memory takes
  auto plan = run("prlimit --as=1500000000 " + example_cmd(dir.file("big"), "--net-width 256 --example-batch 200"));
  CHECK(plan.status == 2);
  CHECK_MESSAGE(std::regex_search(plan.output, std::regex("example-batch [0-9]+ fits here")), plan.output);
  CHECK_FALSE(std::filesystem::exists(dir.file("big") + "/units"));
  const auto out = dir.file("run");
  REQUIRE(run(example_cmd(out, "--keep-units true")).status == 0);
  std::filesystem::remove(out + "/checkpoint.h5");
  std::filesystem::remove(out + "/checkpoint.prev.h5");
  std::filesystem::remove(out + "/archive.h5");
  auto again = run(example_cmd(out));
  CHECK(again.status == 2);
  CHECK(again.output.find("already holds units/") != std::string::npos);
  CHECK(run(example_cmd(out, "--overwrite")).status == 0);
}

TEST_CASE("example-signals: a stop signal ends in exit 75 and a resume finishes the run; a stopped rank is a stall") {
  TempDir dir("repsearch_example_signals");
  const auto ref = dir.file("ref");
  REQUIRE(run(example_cmd(ref, "--migration-interval 0")).status == 0);
  // launch/search.sh turns SIGTERM into SIGUSR1 for mpirun: every rank stops at an agreed step
  const auto out = dir.file("stopped");
  {
    Background job("env REPSEARCH_BIN=" + binary() + " " + std::string(REPSEARCH_SOURCE_DIR) +
                       "/launch/search.sh -np 2 --mpirun --oversubscribe -- --config " + config("smoke.ini") +
                       " --space example --migration-interval 0 --log-every 1 --checkpoint-interval 0 --out " + out,
                   dir.file("stopped.log"));
    REQUIRE_MESSAGE(job.wait_for("block1 gen", 300), job.output());
    ::kill(job.pid, SIGTERM);
    CHECK_MESSAGE(job.wait(120) == 75, job.output());
    CHECK(job.output().find("stopped by signal at step") != std::string::npos);
  }
  auto resumed = run(example_cmd(out, "--resume --migration-interval 0"));
  REQUIRE_MESSAGE(resumed.status == 0, resumed.output);
  check_same_targets(ref + "/archive.h5", out + "/archive.h5");

  // a rank stopped with SIGSTOP: the other waits at most --stall-minutes, says so, and the job exits 3
  const auto stalled = dir.file("stalled");
  Background job(example_cmd(stalled, "--migration-interval 0 --stall-minutes 0.05", 2, 1), dir.file("stall.log"));
  REQUIRE_MESSAGE(job.wait_for("block0 gen 1", 300), job.output());
  const auto ranks = children_of(job.pid);
  REQUIRE_MESSAGE(ranks.size() == 2, job.output());
  REQUIRE(::kill(ranks[1], SIGSTOP) == 0);
  const int rc = job.wait(120);
  CHECK_MESSAGE(rc == 3, job.output());
  CHECK(job.output().find("no progress from the other ranks") != std::string::npos);
}

TEST_CASE("example-learn: learn and sgd on an example archive: files, selection, determinism, streamed targets, errors") {
  TempDir dir("repsearch_example_learn");
  const auto out = dir.file("run");
  auto s = run(example_cmd(out, "--search-size 100"));
  REQUIRE_MESSAGE(s.status == 0, s.output);
  const auto archive = out + "/archive.h5";
  const std::string common = " --threads 1 --learner-epochs 3 --learner-batch 20 ";
  auto learn = run(binary() + " learn --archive " + archive + common + "--supervise all,skip-block0 --seeds 0..1");
  REQUIRE_MESSAGE(learn.status == 0, learn.output);
  CHECK(learn.output.find("ETA") != std::string::npos);
  CHECK(learn.output.find("ensemble of the 4 networks") != std::string::npos);
  for (const auto* stem : {"learn-all-d2-s0", "learn-all-d2-s1", "learn-skip-block0-d2-s0", "learn-skip-block0-d2-s1"}) {
    CHECK_MESSAGE(std::filesystem::exists(out + "/" + stem + ".pt"), stem);
    const auto r = io::read_results(out + "/" + stem + ".h5");
    CHECK(r.kind == "learn");
    CHECK(r.spec.arch == "convgroups");
    CHECK(r.spec.depth == 2);
    CHECK(io::check_model_file(out + "/" + stem + ".h5", r).empty());
    REQUIRE(r.example.present());
    CHECK(r.example.heldout_rows.size(0) == 8);  // 8 % of 100
    CHECK(r.example.cosine_distance.sizes() == at::IntArrayRef({4, 3}));
    // the chosen epoch is the one with the best held-out accuracy, and /accuracy reports it
    CHECK(r.heldout_accuracy == r.example.heldout_accuracy.max().item<double>());
    CHECK(r.example.heldout_accuracy[r.example.selected_epoch].item<double>() == r.heldout_accuracy);
    CHECK(r.test_accuracy >= 0.0);
    CHECK(r.test_probabilities.size(0) == 10000);
  }
  auto summary = nlohmann::json::parse(std::ifstream(out + "/learn-summary.json"));
  CHECK(summary["networks"].size() == 4);
  auto sgd = run(binary() + " sgd --archive " + archive + common + "--depth 1,2");
  REQUIRE_MESSAGE(sgd.status == 0, sgd.output);
  const auto s1 = io::read_results(out + "/sgd-d1-s0.h5"), s2 = io::read_results(out + "/sgd-d2-s0.h5");
  CHECK(s1.example.variant == "end-to-end");
  CHECK(s1.spec.depth == 1);
  CHECK(s2.model.find("depth 2") != std::string::npos);
  CHECK(at::equal(s1.example.heldout_rows, io::read_results(out + "/learn-all-d2-s0.h5").example.heldout_rows));  // one split

  // the same command, the same results file's numbers (seeded minibatches, one thread)
  auto again = run(binary() + " learn --archive " + archive + common + "--out " + dir.file("again"));
  REQUIRE_MESSAGE(again.status == 0, again.output);
  const auto a = io::read_results(out + "/learn-all-d2-s0.h5"), b = io::read_results(dir.file("again") + "/learn-all-d2-s0.h5");
  CHECK(at::equal(a.test_probabilities, b.test_probabilities));
  CHECK(at::equal(a.example.cosine_distance, b.example.cosine_distance));

  // targets streamed 7 rows at a time give the numbers of targets read whole
  auto whole = run(binary() + " learn --archive " + archive + " --threads 1 --learner-epochs 0 --out " + dir.file("whole"));
  auto chunked = run(binary() + " learn --archive " + archive + " --threads 1 --learner-epochs 0 --target-chunk 7 --out " + dir.file("chunked"));
  REQUIRE_MESSAGE(whole.status == 0, whole.output);
  REQUIRE_MESSAGE(chunked.status == 0, chunked.output);
  const auto w = io::read_results(dir.file("whole") + "/learn-all-d2-s0.h5"), c = io::read_results(dir.file("chunked") + "/learn-all-d2-s0.h5");
  CHECK(at::allclose(w.example.cosine_distance, c.example.cosine_distance));
  CHECK(at::allclose(w.example.entropy_within, c.example.entropy_within));
  CHECK(at::allclose(w.example.target_entropy_between, c.example.target_entropy_between));

  // errors name the option or the file
  auto bad_depth = run(binary() + " learn --archive " + archive + " --depth 2,x");
  CHECK(bad_depth.status == 2);
  CHECK_MESSAGE(bad_depth.output.find("option depth") != std::string::npos, bad_depth.output);
  auto bad_variant = run(binary() + " learn --archive " + archive + " --supervise all,block1");
  CHECK(bad_variant.status == 2);
  CHECK_MESSAGE(bad_variant.output.find("'block1'") != std::string::npos, bad_variant.output);
  auto no_archive = run(binary() + " sgd --config " + config("smoke.ini") + " --space example --out " + dir.file("none"));
  CHECK(no_archive.status == 2);
  CHECK_MESSAGE(no_archive.output.find("no archive at") != std::string::npos, no_archive.output);
  auto elite = run(binary() + " learn --archive " + archive + " --elite 0");  // the dataset space's option
  CHECK(elite.status == 2);
  CHECK_MESSAGE(elite.output.find("option elite applies to dataset-space archives") != std::string::npos, elite.output);
  auto seed = run(binary() + " learn --archive " + archive + " --seed 5");
  CHECK(seed.status == 2);
  CHECK_MESSAGE(seed.output.find("option seed") != std::string::npos, seed.output);
}
