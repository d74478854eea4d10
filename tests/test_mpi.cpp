// repsearch::mpi on real ranks: run under mpirun -np 1, 2 and 3 (CTest does). Every rank runs every
// test case, so collective calls stay matched; a failing rank fails the mpirun.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mpi.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <thread>
#include <tuple>

#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/rng.hpp"
#include "repsearch/core/search_run.hpp"
#include "repsearch/mpi/archipelago.hpp"
#include "synthetic.hpp"

using namespace repsearch;

namespace {

const auto F32 = at::TensorOptions().dtype(at::kFloat);

// The same data on every rank.
struct World : testing::Synthetic {
  World() : Synthetic(120, 80, 80, 6, 3, 41) {}
};

int ranks() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}
int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// The first k ranks of MPI_COMM_WORLD for k = 1 .. ranks() (MPI_COMM_NULL on the ranks left out),
// so that one mpirun compares every rank count up to its own; world rank 0 is rank 0 of each.
struct RankCounts {
  std::vector<MPI_Comm> comms;
  RankCounts() {
    for (int k = 1; k <= ranks(); ++k) {
      MPI_Comm c = MPI_COMM_NULL;
      MPI_Comm_split(MPI_COMM_WORLD, rank() < k ? 0 : MPI_UNDEFINED, rank(), &c);
      comms.push_back(c);
    }
  }
  ~RankCounts() {
    for (auto& c : comms)
      if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
  }
  RankCounts(const RankCounts&) = delete;
  RankCounts& operator=(const RankCounts&) = delete;
};

}  // namespace

TEST_CASE("islands are spread over ranks by index") {
  CHECK(mpi::islands_of_rank(0, 2, 5) == std::vector<int64_t>{0, 2, 4});
  CHECK(mpi::islands_of_rank(1, 2, 5) == std::vector<int64_t>{1, 3});
  CHECK(mpi::islands_of_rank(2, 3, 4) == std::vector<int64_t>{2});
}

TEST_CASE("topologies") {
  mpi::MigrationConfig c;
  CHECK(mpi::migration_edges(c, 3, 0, 5) == std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 2}, {2, 0}});
  c.topology = "full";
  CHECK(mpi::migration_edges(c, 3, 0, 5).size() == 6);
  c.topology = "random";
  auto a = mpi::migration_edges(c, 5, 7, 10), b = mpi::migration_edges(c, 5, 7, 10);
  CHECK(a == b);
  for (auto [s, d] : a) CHECK(s != d);
  c.topology = "graph";
  c.edges = "0->2, 2->1:1.0, 1->0:0";
  CHECK(mpi::migration_edges(c, 3, 0, 5) == std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 1}});
  c.edges = "0->7";
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("migration-edges"), OptionError);
  c.edges = "0-1";
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("expected edges like"), OptionError);
  c.topology = "star";
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("unknown topology 'star'"), OptionError);
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("known: none, ring, full, random, graph"), OptionError);
  c.topology = "ring";
  c.edges = "0->1";
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("only used with topology=graph"), OptionError);
  c.edges.clear();
  c.migrants = 0;
  CHECK_THROWS_WITH_AS(mpi::validate(c, 3), doctest::Contains("option migrants"), Error);
  // A topology made once gives what migration_edges gives, generation by generation.
  c.migrants = 1;
  c.topology = "random";
  const auto topology = make_topology(c, 5);
  for (int64_t g = 1; g < 4; ++g) CHECK(topology.edges(5, 7, g) == mpi::migration_edges(c, 5, 7, g));
  CHECK(topology.edges(1, 7, 1).empty());  // one island: nobody to send to
}

TEST_CASE("a planted superior individual travels the ring one island per interval") {
  World w;
  FitnessConfig fc;
  fc.features = 256;
  auto fit = make_fitness(fc, w.data);
  // Small Gaussian steps only and the whole V pool: the planted label representation stays its
  // island's best, and its descendants stay near copies of it.
  SearchConfig sc;
  sc.population = 6;
  sc.dim = 4;
  sc.val_batch = 80;
  sc.seed = 2;
  sc.operators = {"gaussian"};
  sc.sigma = 0.05;
  sc.crossover = 0.0;
  auto ctx = make_search_context(w.data.x_search, w.data.y_search, 3, 80, sc);
  mpi::MigrationConfig mc;
  mc.topology = "ring";
  mc.interval = 2;
  const int64_t n_islands = 4;
  mpi::Archipelago arch(MPI_COMM_WORLD, n_islands, sc, mc, fit, ctx);
  arch.initialise();
  // The label representation scores far above the random-feature starts: plant it on island 0.
  auto planted = at::cat({at::one_hot(w.data.y_search, 3).to(at::kFloat), at::zeros({120, 1}, F32)}, 1) * 2.0 - 0.5;
  std::vector<IslandState> local = arch.local();
  for (auto& s : local)
    if (s.island == 0) receive_migrants(s, planted.unsqueeze(0), {0.0}, {999}, /*align=*/false);
  arch.restore(local);

  // Which islands hold a near copy of the planted representation (CKA is rotation-invariant)?
  auto holders = [&]() {
    auto states = arch.gather_states();
    std::vector<int64_t> out;
    for (const auto& s : states) {
      auto cka = linear_cka_batch(s.population, planted);
      if (cka.max().item<double>() > 0.9) out.push_back(s.island);
    }
    return out;
  };
  auto h0 = holders();
  if (rank() == 0) CHECK(h0 == std::vector<int64_t>{0});
  arch.step();  // generation 1: no migration yet
  auto h1 = holders();
  if (rank() == 0) CHECK(h1 == std::vector<int64_t>{0});
  arch.step();  // generation 2: 0 -> 1
  auto h2 = holders();
  if (rank() == 0) CHECK(h2 == std::vector<int64_t>{0, 1});
  for (int i = 0; i < 4; ++i) arch.step();  // generations 4 and 6: 1 -> 2, 2 -> 3
  auto h6 = holders();
  if (rank() == 0) CHECK(h6 == std::vector<int64_t>{0, 1, 2, 3});
  auto events = arch.gather_migrations();
  if (rank() == 0) {
    CHECK(events.size() == 3 * 4);  // every island received one migrant at generations 2, 4, 6
    CHECK(events.front().generation == 2);
  }
  // The elites come from all ranks, best held-out first, with a unit-diagonal CKA matrix.
  auto elites = arch.collect_elites(3);
  if (rank() == 0) {
    REQUIRE(elites.uid.size() == 3);
    CHECK(elites.heldout[0] >= elites.heldout[1]);
    CHECK(linear_cka(elites.representations[0], planted) > 0.9);
    CHECK(at::allclose(elites.cka.diagonal(), at::ones({3}, at::TensorOptions().dtype(at::kDouble))));
  }
}

// Three small islands without migration: any rank count from 1 to 3 hosts them.
struct ThreeIslands {
  World w;
  Fitness fit;
  SearchConfig sc;
  SearchContext ctx;
  ThreeIslands(const FitnessConfig& fc, int64_t population, int64_t dim) : fit(make_fitness(fc, w.data)) {
    sc.population = population;
    sc.dim = dim;
    sc.val_batch = 30;
    ctx = make_search_context(w.data.x_search, w.data.y_search, 3, 80, sc);
  }
  mpi::Archipelago archipelago() const {
    mpi::MigrationConfig none;
    none.topology = "none";
    return mpi::Archipelago(MPI_COMM_WORLD, 3, sc, none, fit, ctx);
  }
};

TEST_CASE("the checkpoint writer's time in for_each_state is not counted as MPI time") {
  // Structural, not a threshold: rank 0's sink sleeps, and the MPI time the call adds must fit in
  // the call's wall time less the sink's own time. Counting the sink would add all of it, sleep
  // included, which cannot fit.
  ThreeIslands t(FitnessConfig{}, 4, 3);
  auto arch = t.archipelago();
  arch.initialise();
  arch.step();
  using clock = std::chrono::steady_clock;
  double in_sink = 0;
  const double mpi0 = arch.time_in_mpi();
  const auto t0 = clock::now();
  arch.for_each_state([&](const IslandState&) {
    const auto s0 = clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    in_sink += std::chrono::duration<double>(clock::now() - s0).count();
  });
  const double wall = std::chrono::duration<double>(clock::now() - t0).count();
  const double added = arch.time_in_mpi() - mpi0;
  CHECK(added >= 0.0);
  if (rank() == 0) {
    CHECK(in_sink >= 3 * 0.020);  // three islands written here
    CHECK_MESSAGE(added <= wall - in_sink + 1e-9, "MPI time " << added << " s, wall " << wall << " s, sink " << in_sink << " s");
  } else {
    CHECK(in_sink == 0.0);
  }
}

TEST_CASE("the same islands evolve identically on any rank count") {
  // The islands run on 1, 2, ... up to this run's ranks (the first k ranks each time); the gathered
  // states must not depend on the rank count: compared against islands run one by one on rank 0 alone.
  FitnessConfig fc;
  fc.features = 32;
  ThreeIslands t(fc, 5, 3);
  const auto &fit = t.fit;
  const auto &sc = t.sc;
  const auto &ctx = t.ctx;
  RankCounts counts;
  std::vector<std::vector<IslandState>> by_count;  // rank 0: the gathered states, per rank count
  for (MPI_Comm comm : counts.comms) {
    if (comm == MPI_COMM_NULL) continue;
    mpi::MigrationConfig none;
    none.topology = "none";
    mpi::Archipelago arch(comm, 3, sc, none, fit, ctx);
    arch.initialise();
    for (int i = 0; i < 3; ++i) arch.step();
    auto states = arch.gather_states();
    if (rank() == 0) by_count.push_back(std::move(states));
  }
  if (rank() == 0) {
    REQUIRE(by_count.size() == static_cast<size_t>(ranks()));
    auto algo = make_algorithm(sc);
    for (int64_t i = 0; i < 3; ++i) {
      auto s = init_island(i, sc, ctx, fit);
      for (int g = 0; g < 3; ++g) algo->step(s, fit, ctx);
      for (size_t k = 0; k < by_count.size(); ++k) {
        CAPTURE(k + 1);  // ranks
        REQUIRE(by_count[k].size() == 3);
        const auto& got = by_count[k][static_cast<size_t>(i)];
        CHECK(got.island == i);
        CHECK(at::equal(s.population, got.population));
        CHECK(at::equal(s.fitness, got.fitness));
        CHECK(s.uid == got.uid);
      }
    }
  }
}

TEST_CASE("progress reports and run-control flags agree across ranks without a barrier") {
  ThreeIslands t(FitnessConfig{}, 6, 4);
  auto arch = t.archipelago();
  arch.initialise();
  std::vector<mpi::Progress> seen;
  std::vector<std::uint32_t> flags;
  for (int g = 1; g <= 6; ++g) {
    arch.step();
    // The last rank raises bit 1 at generation 2, rank 0 bit 2 at generation 3: every rank must see
    // each kAgreeLag calls later.
    flags.push_back(arch.agreed((g == 2 && rank() == ranks() - 1 ? 1u : 0u) | (g == 3 && rank() == 0 ? 2u : 0u)));
    if (g % 2 == 0) arch.post_progress(/*with_diversity=*/g == 6);
    for (auto& p : arch.poll_progress(/*wait=*/g == 6)) seen.push_back(p);
  }
  const int lag = mpi::Archipelago::kAgreeLag;
  for (int g = 1; g <= 6; ++g)
    CHECK(flags[static_cast<size_t>(g - 1)] == (g == 2 + lag ? 1u : 0u) + (g == 3 + lag ? 2u : 0u));
  auto states = arch.gather_states();
  if (rank() != 0) {
    CHECK(seen.empty());
    return;
  }
  REQUIRE(seen.size() == 3);
  for (size_t i = 0; i < seen.size(); ++i) {
    const auto g = static_cast<int64_t>(2 * (i + 1));
    CHECK(seen[i].generation == g);
    double best = -1e300, evals = 0;
    for (const auto& s : states) {
      best = std::max(best, s.history[static_cast<size_t>(g)].best);
      evals += static_cast<double>(s.history[static_cast<size_t>(g)].evaluations);
    }
    CHECK(seen[i].best == best);
    CHECK(static_cast<double>(seen[i].evaluations) == evals);
    CHECK(std::isnan(seen[i].diversity) == (g != 6));
  }
  CHECK(seen.back().diversity > 0.0);
  CHECK(seen.back().diversity <= 1.0);
}

TEST_CASE("the archipelago's option errors carry the option, the value and what it may be") {
  ThreeIslands t(FitnessConfig{}, 5, 3);
  mpi::MigrationConfig none;
  none.topology = "none";
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int64_t too_few = size > 1 ? size - 1 : 0;  // every rank must host an island; and at least one
  try {
    mpi::Archipelago(MPI_COMM_WORLD, too_few, t.sc, none, t.fit, t.ctx);
    FAIL("an archipelago of ", too_few, " islands on ", size, " ranks was made");
  } catch (const OptionError& e) {
    CHECK(e.option == "islands");
    CHECK(e.value == std::to_string(too_few));
    CHECK(e.expected == (size > 1 ? ">= the number of ranks (" + std::to_string(size) + ")" : std::string(">= 1")));
  }
  try {
    (void)t.archipelago().collect_elites(0);
    FAIL("collect_elites(0) returned");
  } catch (const OptionError& e) {
    CHECK(std::string(e.what()) == "option elites: must be >= 1, found 0");
  }
  try {
    mpi::set_stall_seconds(0);
    FAIL("a stall limit of 0 s was taken");
  } catch (const OptionError& e) {
    CHECK(e.option == "stall-minutes");
    CHECK(e.expected == "positive");
  }
}

TEST_CASE("elite selectors validate their parameters and rank candidates by held-out score, island, uid") {
  EliteSelection s;
  s.mode = "best";
  CHECK_THROWS_WITH_AS(make_elite_selector(s), doctest::Contains("must be top or diverse, found 'best'"), Error);
  s.mode = "diverse";
  s.tolerance = -1;
  CHECK_THROWS_WITH_AS(make_elite_selector(s), doctest::Contains("elite-tolerance"), Error);
  CHECK(make_elite_selector(s = EliteSelection{}).pool(3) == 3);
  s.mode = "diverse";
  CHECK(make_elite_selector(s).pool(3) == 12);
  CHECK(elite_selection_names() == std::vector<std::string>{"top", "diverse"});

  // A migrant's two copies (uid 10) count once, the better kept; held-out ties go to the lower island.
  ThreeIslands t(FitnessConfig{}, 5, 3);
  auto z = [](int64_t seed) { return at::randn({120, 3}, make_generator(seed, Stream::init, {}), F32); };
  std::vector<EliteCandidate> cands = {{-0.5, 0, 1, 4, 10, z(1)},  {-0.5, 0, 0, 2, 20, z(2)}, {-1.0, 0, 2, 3, 30, z(3)},
                                       {-0.7, 0, 2, 5, 10, z(4)}, {-2.0, 0, 0, 1, 40, z(5)}};
  auto e = select_elites(cands, 3, make_elite_selector(EliteSelection{}), t.fit, t.ctx);
  CHECK(e.uid == std::vector<uint64_t>{20, 10, 30});
  CHECK(e.heldout == std::vector<double>{-0.5, -0.5, -1.0});
  CHECK(e.island == std::vector<int32_t>{0, 1, 2});
  CHECK(e.generation == std::vector<int32_t>{2, 4, 3});
  CHECK(e.selection == "top");
  CHECK(at::equal(e.representations[1], cands[0].z));
  REQUIRE(e.cka.sizes() == at::IntArrayRef({3, 3}));
  CHECK(e.cka[0][0].item<double>() == doctest::Approx(1.0));
}

// SearchRun's checkpoints kept in memory (rank 0): what was opened, what each received.
struct MemoryCheckpoints {
  struct Written {
    int64_t generation = 0;
    std::vector<IslandState> islands;
    std::vector<MigrationEvent> migrations;
    bool finished = false;
  };
  std::deque<Written> written;
  struct Sink : CheckpointSink {
    Written& w;
    explicit Sink(Written& to) : w(to) {}
    void add(const IslandState& s) override { w.islands.push_back(s); }
    void finish(const std::vector<MigrationEvent>& m) override {
      w.migrations = m;
      w.finished = true;
    }
  };
  OpenCheckpoint opener() {
    return [this](int64_t g) {
      written.push_back({});
      written.back().generation = g;
      return std::make_unique<Sink>(written.back());
    };
  }
  std::vector<int64_t> generations() const {
    std::vector<int64_t> out;
    for (const auto& w : written) out.push_back(w.generation);
    return out;
  }
};

// Every rank gets rank 0's migration log (a real resume reads it from the checkpoint on every rank).
std::vector<MigrationEvent> broadcast(std::vector<MigrationEvent> log) {
  int n = static_cast<int>(log.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  log.resize(static_cast<size_t>(n));
  MPI_Bcast(log.data(), n * static_cast<int>(sizeof(MigrationEvent)), MPI_BYTE, 0, MPI_COMM_WORLD);
  return log;
}

bool same_log(const std::vector<MigrationEvent>& a, const std::vector<MigrationEvent>& b) {
  auto key = [](const MigrationEvent& e) { return std::tie(e.generation, e.source, e.destination, e.uid, e.fitness); };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [&](const auto& x, const auto& y) { return key(x) == key(y); });
}

TEST_CASE("a search run checkpoints on its cadence, stops where the ranks agree, and resumes to the same elites") {
  FitnessConfig fc;
  fc.features = 32;
  ThreeIslands t(fc, 5, 3);
  mpi::MigrationConfig ring;
  ring.interval = 2;
  auto islands = [&] { return mpi::Archipelago(MPI_COMM_WORLD, 3, t.sc, ring, t.fit, t.ctx); };
  RunControl control;
  control.generations = 8;
  control.checkpoint_interval = 3;
  control.log_every = 2;
  control.elites = 4;
  const int lag = mpi::Archipelago::kAgreeLag;

  // Uninterrupted: checkpoints at multiples of the interval, and the final one.
  MemoryCheckpoints full;
  auto a = islands();
  SearchRun whole(a, control, full.opener());
  whole.start();
  CHECK(whole.run() == SearchRun::Outcome::finished);
  const auto done = whole.finish();
  CHECK(whole.checkpoint_generation() == 8);
  if (rank() == 0) {
    CHECK(full.generations() == std::vector<int64_t>{3, 6, 8});
    for (const auto& w : full.written) {
      CHECK(w.finished);
      REQUIRE(w.islands.size() == 3);
      for (const auto& s : w.islands) CHECK(s.generation == w.generation);
    }
    REQUIRE(done.histories.size() == 3);
    for (const auto& h : done.histories) CHECK(h.size() == 9);
    CHECK(!done.migrations.empty());
    CHECK(same_log(done.migrations, full.written.back().migrations));
    CHECK(done.elites.uid.size() == 4);
  } else {
    CHECK(full.written.empty());  // only rank 0 writes
  }

  // The last rank sees a signal from generation 2: every rank stops kAgreeLag generations later,
  // after a checkpoint at that generation.
  MemoryCheckpoints part;
  auto b = islands();
  RunControl stop = control;
  stop.stop_requested = [&] { return rank() == ranks() - 1 && b.generation() >= 2; };
  SearchRun stopped(b, stop, part.opener());
  stopped.start();
  CHECK(stopped.run() == SearchRun::Outcome::stopped);
  CHECK(b.generation() == 2 + lag);
  CHECK(stopped.checkpoint_generation() == 2 + lag);
  std::vector<MigrationEvent> log;
  if (rank() == 0) {
    CHECK(part.generations() == std::vector<int64_t>{3, 2 + lag});
    const auto& last = part.written.back();
    CHECK(last.finished);
    REQUIRE(last.islands.size() == 3);
    for (const auto& mine : b.local())  // what rank 0 holds is what it checkpointed
      for (const auto& s : last.islands)
        if (s.island == mine.island) CHECK(at::equal(s.population.cpu(), mine.population.cpu()));
    log = last.migrations;
  }

  // Resumed from there: the uninterrupted run's checkpoints, elites and log.
  MemoryCheckpoints rest;
  auto c = islands();
  SearchRun resumed(c, control, rest.opener());
  resumed.resume(2 + lag, b.local(), broadcast(log));
  CHECK(resumed.checkpoint_generation() == 2 + lag);
  CHECK(resumed.run() == SearchRun::Outcome::finished);
  const auto again = resumed.finish();
  if (rank() == 0) {
    CHECK(rest.generations() == std::vector<int64_t>{6, 8});
    CHECK(again.elites.uid == done.elites.uid);
    CHECK(at::equal(again.elites.representations, done.elites.representations));
    CHECK(again.elites.heldout == done.elites.heldout);
    CHECK(same_log(again.migrations, done.migrations));
    REQUIRE(again.histories.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      REQUIRE(again.histories[i].size() == done.histories[i].size());
      for (size_t g = 0; g < done.histories[i].size(); ++g) {
        CHECK(again.histories[i][g].best == done.histories[i][g].best);
        CHECK(again.histories[i][g].evaluations == done.histories[i][g].evaluations);
      }
    }
  }
}

TEST_CASE("a search run's timed checkpoint is asked for by rank 0 and taken where the ranks agree") {
  FitnessConfig fc;
  fc.features = 32;
  ThreeIslands t(fc, 5, 3);
  RunControl control;
  control.generations = 8;
  control.checkpoint_seconds = 1e-9;  // due at once: rank 0 asks after generation 1, and again after the checkpoint
  MemoryCheckpoints timed;
  auto a = t.archipelago();
  SearchRun run(a, control, timed.opener());
  run.start();
  CHECK(run.run() == SearchRun::Outcome::finished);
  run.finish();
  const int lag = mpi::Archipelago::kAgreeLag;
  // Asked at 1 -> taken at 1 + lag; asked again at 2 + lag -> agreed at 2 + 2 lag = 8, the end (the final one).
  if (rank() == 0) CHECK(timed.generations() == std::vector<int64_t>{1 + lag, 8});
  CHECK(run.checkpoint_generation() == 8);
}

TEST_CASE("a search run refuses a progress cadence below one") {
  ThreeIslands t(FitnessConfig{}, 5, 3);
  auto a = t.archipelago();
  RunControl control;
  control.log_every = 0;
  CHECK_THROWS_WITH_AS(SearchRun(a, control, nullptr), doctest::Contains("log-every"), Error);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  at::set_num_threads(1);
  doctest::Context ctx(argc, argv);
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (me != 0) ctx.setOption("out", "/dev/null");  // one report; failures still set every rank's exit code
  int rc = ctx.run();
  int any = 0;
  MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}

TEST_CASE("dns, island repulsion and diverse elites give the same archive on any rank count") {
  // Ring migration every 2 generations with repulsion (immigrants become references, checked to
  // travel), DNS selection, then the diverse elite choice: gathered over this run's ranks, and
  // recomputed by rank 0 alone on MPI_COMM_SELF, the two archives must be identical.
  World w;
  FitnessConfig fc;
  fc.features = 32;
  auto fit = make_fitness(fc, w.data);
  SearchConfig sc;
  sc.population = 6;
  sc.dim = 4;
  sc.val_batch = 30;
  sc.selection = "dns";
  sc.island_repulsion = 0.5;
  sc.diversity_probe = 50;
  auto ctx = make_search_context(w.data.x_search, w.data.y_search, 3, 80, sc);
  mpi::MigrationConfig mc;
  mc.topology = "ring";
  mc.interval = 2;
  mpi::EliteSelection es;
  es.mode = "diverse";
  es.tolerance = 0.05;
  auto run = [&](MPI_Comm comm) {
    mpi::Archipelago arch(comm, 3, sc, mc, fit, ctx);
    arch.initialise();
    for (int g = 0; g < 4; ++g) arch.step();
    for (const auto& s : arch.local()) {
      REQUIRE(s.foreign.defined());  // the ring's elites arrived as references
      CHECK(s.foreign.sizes() == at::IntArrayRef({1, 50, 4}));
    }
    return std::make_pair(arch.collect_elites(4, es), arch.collect_elites(4));
  };
  // Every rank count up to this run's, each against rank 0 alone on MPI_COMM_SELF.
  RankCounts counts;
  std::vector<std::pair<mpi::Elites, mpi::Elites>> by_count;
  for (MPI_Comm comm : counts.comms) {
    if (comm == MPI_COMM_NULL) continue;
    auto r = run(comm);
    if (rank() == 0) by_count.push_back(std::move(r));
  }
  if (rank() == 0) {
    REQUIRE(by_count.size() == static_cast<size_t>(ranks()));
    auto [alone, alone_top] = run(MPI_COMM_SELF);
    for (size_t k = 0; k < by_count.size(); ++k) {
      CAPTURE(k + 1);  // ranks
      const auto& [diverse, top] = by_count[k];
      REQUIRE(diverse.uid.size() == 4);
      CHECK(diverse.uid == alone.uid);
      CHECK(at::equal(diverse.representations, alone.representations));
      CHECK(top.uid == alone_top.uid);
      CHECK(at::equal(top.representations, alone_top.representations));
      CHECK(diverse.selection.rfind("diverse", 0) == 0);
      REQUIRE(diverse.disagreement.defined());
      CHECK(diverse.disagreement.sizes() == at::IntArrayRef({4, 4}));
      CHECK(at::equal(diverse.disagreement, alone.disagreement));
      // Best held-out first; the best of all is always kept; all within the tolerance when enough were.
      CHECK(diverse.uid.front() == top.uid.front());
      for (size_t i = 1; i < diverse.heldout.size(); ++i) CHECK(diverse.heldout[i - 1] >= diverse.heldout[i]);
      const int within = std::stoi(diverse.selection.substr(diverse.selection.find("within=") + 7));
      if (within >= 4) CHECK(diverse.heldout.back() >= diverse.heldout.front() - es.tolerance);
    }
  }
}
