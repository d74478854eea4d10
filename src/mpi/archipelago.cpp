#include "repsearch/mpi/archipelago.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>
#include <type_traits>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/rng.hpp"
#include "wire.hpp"

namespace repsearch::mpi {

using namespace wire;

void set_stall_seconds(double seconds) {
  if (!(seconds > 0)) throw OptionError("stall-minutes", detail::cat(seconds / 60.0), "positive");
  g_stall_seconds = seconds;
}

MPI_Comm duplicate_with_errors_returned(MPI_Comm comm) {
  MPI_Comm dup;
  check(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup");
  check(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return dup;
}

std::string gather_joined(MPI_Comm comm, const std::string& mine) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  constexpr int kLen = 256;
  char buf[kLen] = {0};
  std::snprintf(buf, kLen, "%s", mine.c_str());
  std::vector<char> all(static_cast<std::size_t>(kLen * size));
  MPI_Request req;
  check(MPI_Igather(buf, kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, 0, comm, &req), "MPI_Igather");
  wait_request(&req, "host and device names");
  std::string out;
  for (int r = 0; r < size && rank == 0; ++r) out += (r ? "," : "") + std::string(all.data() + r * kLen);
  return out;
}

std::vector<std::string> texts_unless_equal(MPI_Comm comm, const std::string& mine) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a: a digest to compare, not a defence
  for (unsigned char c : mine) hash = (hash ^ c) * 1099511628211ull;
  const std::uint64_t key[2] = {static_cast<std::uint64_t>(mine.size()), hash};
  std::vector<std::uint64_t> keys(2 * static_cast<std::size_t>(size));
  MPI_Request req;
  check(MPI_Iallgather(key, 2, MPI_UINT64_T, keys.data(), 2, MPI_UINT64_T, comm, &req), "MPI_Iallgather");
  wait_request(&req, "the ranks' config digests");
  bool same = true;
  for (int r = 1; r < size; ++r) same = same && keys[2 * r] == keys[0] && keys[2 * r + 1] == keys[1];
  if (same) return {};
  std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) {
    counts[r] = static_cast<int>(keys[2 * r]);
    displs[r] = r ? displs[r - 1] + counts[r - 1] : 0;
  }
  std::vector<char> all(static_cast<std::size_t>(displs.back() + counts.back()));
  check(MPI_Iallgatherv(mine.data(), static_cast<int>(mine.size()), MPI_CHAR, all.data(), counts.data(), displs.data(),
                        MPI_CHAR, comm, &req),
        "MPI_Iallgatherv");
  wait_request(&req, "the ranks' configs");
  std::vector<std::string> out;
  for (int r = 0; r < size; ++r) out.emplace_back(all.data() + displs[r], static_cast<std::size_t>(counts[r]));
  return out;
}

std::vector<double> reduce_max(MPI_Comm comm, std::vector<double> values) {
  std::vector<double> out(values.size());
  MPI_Request req;
  check(MPI_Ireduce(values.data(), out.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_MAX, 0, comm, &req),
        "MPI_Ireduce");
  wait_request(&req, "the cost report");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank == 0 ? out : values;
}

std::vector<std::int64_t> broadcast(MPI_Comm comm, std::vector<std::int64_t> values) {
  std::int64_t n = static_cast<std::int64_t>(values.size());
  MPI_Request req;
  check(MPI_Ibcast(&n, 1, MPI_INT64_T, 0, comm, &req), "MPI_Ibcast");
  wait_request(&req, "rank 0's list");
  values.resize(static_cast<std::size_t>(n));
  if (n == 0) return values;
  check(MPI_Ibcast(values.data(), static_cast<int>(n), MPI_INT64_T, 0, comm, &req), "MPI_Ibcast");
  wait_request(&req, "rank 0's list");
  return values;
}

std::vector<std::int64_t> ranks_failing(MPI_Comm comm, bool ok) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  std::int32_t mine = ok ? 0 : 1;
  std::vector<std::int32_t> all(static_cast<std::size_t>(size));
  MPI_Request req;
  check(MPI_Iallgather(&mine, 1, MPI_INT32_T, all.data(), 1, MPI_INT32_T, comm, &req), "MPI_Iallgather");
  wait_request(&req, "every rank's check");
  std::vector<std::int64_t> out;
  for (int r = 0; r < size; ++r)
    if (all[static_cast<std::size_t>(r)]) out.push_back(r);
  return out;
}

std::vector<std::int64_t> islands_of_rank(int rank, int ranks, std::int64_t n_islands) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = rank; i < n_islands; i += ranks) out.push_back(i);
  return out;
}

NodePlace node_place(MPI_Comm comm) {
  MPI_Comm node;
  check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  NodePlace p;
  MPI_Comm_rank(node, &p.rank);
  MPI_Comm_size(node, &p.ranks);
  MPI_Comm_free(&node);
  return p;
}

struct Archipelago::Pending {
  ProgressChannel<Report> progress;
  Agreement agreement;
  explicit Pending(std::int64_t n_islands) : progress(kTagBests, n_islands) {}
};

Archipelago::Archipelago(MPI_Comm comm, std::int64_t n_islands, SearchConfig search, MigrationConfig migration,
                         const Fitness& fitness, const SearchContext& context)
    : pending_(std::make_shared<Pending>(n_islands)), comm_(comm), n_islands_(n_islands), search_(std::move(search)),
      migration_(std::move(migration)), fitness_(fitness), context_(context), algorithm_(make_algorithm(search_)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  if (n_islands_ < 1) throw OptionError("islands", std::to_string(n_islands_), ">= 1");
  if (n_islands_ < size_)
    throw OptionError("islands", std::to_string(n_islands_), detail::cat(">= the number of ranks (", size_, ")"),
                      detail::cat("option islands: ", n_islands_, " islands cannot occupy ", size_,
                                  " ranks (every rank hosts at least one)"));
  topology_ = make_topology(migration_, n_islands_);
  validate(migration_, n_islands_);
}

void Archipelago::initialise() {
  islands_.clear();
  for (auto i : islands_of_rank(rank_, size_, n_islands_)) {
    islands_.push_back(init_island(i, search_, context_, fitness_));
    record_history(islands_.back(), fitness_, search_, context_);
  }
  generation_ = 0;
}

void Archipelago::restore(std::vector<IslandState> local) {
  auto want = islands_of_rank(rank_, size_, n_islands_);
  if (local.size() != want.size()) fail("resume: rank ", rank_, " expected ", want.size(), " islands, got ", local.size());
  std::sort(local.begin(), local.end(), [](const auto& a, const auto& b) { return a.island < b.island; });
  for (std::size_t i = 0; i < local.size(); ++i) {
    if (local[i].island != want[i]) fail("resume: rank ", rank_, " got island ", local[i].island, ", expected ", want[i]);
    if (i > 0 && local[i].generation != local[0].generation) fail("resume: islands are at different generations");
    local[i].population = local[i].population.to(context_.x_search.device()).contiguous();
    if (local[i].foreign.defined()) local[i].foreign = local[i].foreign.to(context_.x_search.device()).contiguous();
  }
  islands_ = std::move(local);
  generation_ = islands_.empty() ? 0 : islands_.front().generation;
}

void Archipelago::restore_migrations(std::vector<MigrationEvent> events) {
  events_.clear();
  for (auto& e : events)  // each rank keeps the events of the islands it hosts (it logs new ones so)
    if (rank_of(e.destination, size_) == rank_) events_.push_back(e);
}

void Archipelago::step() {
  for (auto& s : islands_) algorithm_->step(s, fitness_, context_);
  generation_ += 1;
  if (migration_.interval > 0 && generation_ % migration_.interval == 0) migrate();
  for (auto& s : islands_) record_history(s, fitness_, search_, context_);
}

void Archipelago::migrate() {
  Timer timer(mpi_seconds_);
  auto t0 = std::chrono::steady_clock::now();
  auto edges = topology_->edges(n_islands_, search_.seed, generation_);
  // Emigrants are chosen from the state before any island receives (order-independent).
  std::map<std::int64_t, std::vector<Migrant>> out;
  for (const auto& s : islands_) {
    for (const auto idx : emigrant_indices(s, migration_.migrants)) {
      Migrant m;
      m.source = s.island;
      m.generation = generation_;
      m.uid = s.uid[static_cast<std::size_t>(idx)];
      m.fitness = s.fitness[idx].item<double>();
      m.genome = s.population[idx];
      out[s.island].push_back(m);
    }
  }
  Sends sends;
  sends.bufs.reserve(edges.size() * static_cast<std::size_t>(migration_.migrants));
  sends.reqs.reserve(sends.bufs.capacity());
  std::map<std::int64_t, std::vector<Migrant>> inbox;
  for (const auto& [src, dst] : edges) {
    if (rank_of(src, size_) != rank_) continue;
    for (auto m : out[src]) {
      m.destination = dst;
      if (rank_of(dst, size_) == rank_) inbox[dst].push_back(m);
      else sends.post(comm_, pack(m), rank_of(dst, size_), static_cast<int>(dst));
    }
  }
  // Receive in edge order: messages from one rank with one tag arrive in the order they were sent.
  std::map<std::int64_t, std::vector<Migrant>> ordered;
  for (const auto& [src, dst] : edges) {
    if (rank_of(dst, size_) != rank_) continue;
    if (rank_of(src, size_) == rank_) {
      for (auto& m : inbox[dst])
        if (m.source == src) ordered[dst].push_back(m);
    } else {
      auto k = std::min<std::int64_t>(migration_.migrants, search_.population - 1);
      for (std::int64_t j = 0; j < k; ++j) {
        auto m = unpack<Migrant>(receive(comm_, rank_of(src, size_), static_cast<int>(dst), "migrants"));
        if (m.source != src || m.destination != dst || m.generation != generation_)
          fail("[MPI] migration out of step: expected island ", src, "->", dst, " at generation ", generation_,
               ", got ", m.source, "->", m.destination, " at ", m.generation);
        ordered[dst].push_back(std::move(m));
      }
    }
  }
  for (auto& s : islands_) {
    auto& in = ordered[s.island];
    if (in.empty()) continue;
    // Never replace the whole island: keep at most P - 1 immigrants (the first in edge order).
    if (static_cast<std::int64_t>(in.size()) >= s.population.size(0)) in.resize(static_cast<std::size_t>(s.population.size(0) - 1));
    std::vector<at::Tensor> genomes;
    std::vector<double> fit;
    std::vector<std::uint64_t> uids;
    for (const auto& m : in) {
      genomes.push_back(m.genome.to(s.population.device()));
      fit.push_back(m.fitness);
      uids.push_back(m.uid);
      events_.push_back({generation_, m.source, s.island, m.uid, m.fitness});
    }
    // island-repulsion: the other islands' elites are kept apart from, not bred with.
    if (search_.island_repulsion > 0) receive_references(s, at::stack(genomes), context_);
    else receive_migrants(s, at::stack(genomes), fit, uids, migration_.align);
  }
  sends.wait("migrants to be delivered");
  migration_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Archipelago::post_progress(bool with_diversity) {
  Timer timer(mpi_seconds_);
  for (const auto& s : islands_) {
    const auto& h = s.history.back();
    Report r{generation_, s.island, h.best, h.mean, h.heldout, h.evaluations, h.nonfinite, {}};
    if (with_diversity) r.probe_best = s.population[s.best_index()].index_select(0, context_.probe).cpu();
    pending_->progress.post(comm_, rank_, std::move(r));
  }
  if (rank_ == 0) pending_->progress.posted(generation_);
}

std::vector<Progress> Archipelago::poll_progress(bool wait) {
  Timer timer(mpi_seconds_);
  if (wait) pending_->agreement.settle();
  std::vector<Progress> out;
  for (auto& items : pending_->progress.poll(comm_, rank_, wait)) {
    Progress pr;
    pr.generation = items.front().generation;
    pr.best = pr.heldout = -std::numeric_limits<double>::infinity();
    pr.diversity = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::pair<std::int64_t, at::Tensor>> bests;
    for (const auto& r : items) {
      pr.best = std::max(pr.best, r.best);
      pr.mean += r.mean / static_cast<double>(items.size());
      pr.heldout = std::max(pr.heldout, r.heldout);
      pr.evaluations += r.evaluations;
      pr.nonfinite += r.nonfinite;
      if (r.probe_best.defined()) bests.emplace_back(r.island, r.probe_best);
    }
    if (bests.size() > 1) {  // mean pairwise 1 - CKA of the island bests, in island order
      std::sort(bests.begin(), bests.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<at::Tensor> zs;
      for (auto& b : bests) zs.push_back(b.second);
      pr.diversity = mean_pairwise(cka_distance_matrix(at::stack(zs)));
    }
    out.push_back(pr);
  }
  return out;
}

static_assert(Agreement::kLag == Archipelago::kAgreeLag, "one lag for every search space");

std::uint32_t Archipelago::agreed(std::uint32_t flags) {
  Timer timer(mpi_seconds_);
  return pending_->agreement.agree(comm_, flags);
}

void Archipelago::for_each_state(const std::function<void(const IslandState&)>& sink) const {
  Timer timer(mpi_seconds_);
  // Rank 0 writes the checkpoint in `sink`: disk time, not MPI time.
  auto write = [&](const IslandState& s) {
    const auto t0 = std::chrono::steady_clock::now();
    sink(s);
    mpi_seconds_ -= std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  stream_to_root(
      comm_, kTagStates, "the island states (checkpoint gather)", islands_.size(),
      [&](std::size_t i) { return pack(islands_[i]); }, [&](std::size_t i) { write(islands_[i]); },
      [&](std::vector<char> b) { write(unpack<IslandState>(b)); });
}

std::vector<IslandState> Archipelago::gather_states() const {
  std::vector<IslandState> out;
  for_each_state([&](const IslandState& s) {
    IslandState copy = s;
    copy.population = s.population.cpu().clone();
    out.push_back(std::move(copy));
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.island < b.island; });
  return out;
}

std::vector<MigrationEvent> Archipelago::gather_migrations() const {
  Writer w;
  w.put_vector(events_);
  auto all = gather_items(comm_, {std::move(w.buf)}, kTagEvents, "the migration logs (checkpoint gather)");
  std::vector<MigrationEvent> out;
  for (const auto& b : all) {
    Reader r(b);
    auto v = r.get_vector<MigrationEvent>();
    out.insert(out.end(), v.begin(), v.end());
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.generation, a.destination, a.source) < std::tie(b.generation, b.destination, b.source);
  });
  return out;
}

std::vector<double> Archipelago::reduce_max(std::vector<double> values) const {
  Timer timer(mpi_seconds_);
  return mpi::reduce_max(comm_, std::move(values));
}

Elites Archipelago::collect_elites(std::int64_t k, const EliteSelection& selection) const {
  if (k < 1) throw OptionError("elites", std::to_string(k), ">= 1");
  const auto selector = make_elite_selector(selection);
  std::vector<std::vector<char>> items;
  for (const auto& s : islands_)
    for (const auto& c : elite_candidates(s, k, selector, fitness_)) items.push_back(pack(c));
  auto all = gather_items(comm_, std::move(items), kTagElites, "the elites (archive gather)");
  if (rank_ != 0) return {};
  std::vector<EliteCandidate> candidates;
  for (const auto& b : all) candidates.push_back(unpack<EliteCandidate>(b));
  return select_elites(std::move(candidates), k, selector, fitness_, context_);
}

}  // namespace repsearch::mpi
