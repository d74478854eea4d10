// Logical islands hosted by MPI ranks, with migration between them. The island count is the
// config's; a rank hosts islands i with i % ranks == rank. Library code takes an MPI_Comm and never
// calls MPI_Init or touches MPI_COMM_WORLD.
//
// Migration happens at generation boundaries: every `interval` generations each island sends copies
// of its best `migrants` individuals along the topology's edges (one message per migrant: header +
// raw float32 genome, non-blocking send, matched-probe receive) and each receiver replaces its worst
// by them, Procrustes-aligned to its best. Edges and every random choice are keyed by (seed,
// generation), so results do not depend on the rank count.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/core/islands.hpp"
#include "repsearch/core/search.hpp"
#include "repsearch/core/search_run.hpp"

namespace repsearch::mpi {

// The stall limit of every wait in this library; past it the wait throws repsearch::Stalled (default 30 minutes). While waiting, a rank polls
// with a growing sleep (up to 20 ms) instead of spinning in MPI.
void set_stall_seconds(double seconds);
// A duplicate of `comm` whose errors are returned (and reported as Error) instead of aborting, so that
// library traffic never mixes with the caller's. Free it with MPI_Comm_free.
MPI_Comm duplicate_with_errors_returned(MPI_Comm comm);
// Rank 0: every rank's `mine` (at most 255 bytes each), comma-joined in rank order; "" elsewhere.
std::string gather_joined(MPI_Comm comm, const std::string& mine);
// Every rank's `mine` in rank order when they are not all equal, else nothing: each rank sends its
// length and a 64-bit hash first, so ranks that agree exchange no more (e.g. the resolved config,
// compared before any work). Collective.
std::vector<std::string> texts_unless_equal(MPI_Comm comm, const std::string& mine);
// Rank 0: the element-wise maximum of `values` over ranks; other ranks get their own values back.
std::vector<double> reduce_max(MPI_Comm comm, std::vector<double> values);

// Every rank gets rank 0's `values` (the others' are ignored).
std::vector<std::int64_t> broadcast(MPI_Comm comm, std::vector<std::int64_t> values);
// Every rank: the ranks (in order) where `ok` is false; empty when it holds everywhere.
std::vector<std::int64_t> ranks_failing(MPI_Comm comm, bool ok);

std::vector<std::int64_t> islands_of_rank(int rank, int ranks, std::int64_t n_islands);
// This rank's place on its node: index (for choosing a GPU) and how many ranks share the node
// (for dividing its cores).
struct NodePlace {
  int rank = 0, ranks = 1;
};
NodePlace node_place(MPI_Comm comm);

// What needs no transport lives in core (islands.hpp, search_run.hpp); these names stay for callers.
using repsearch::Elites;
using repsearch::EliteSelection;
using repsearch::elite_selection_names;
using repsearch::migration_edges;
using repsearch::MigrationConfig;
using repsearch::Progress;
using repsearch::topology_names;
using repsearch::validate;

class Archipelago : public IslandGroup {
 public:
  Archipelago(MPI_Comm comm, std::int64_t n_islands, SearchConfig search, MigrationConfig migration,
              const Fitness& fitness, const SearchContext& context);

  void initialise() override;                              // generation 0 on every local island
  void restore(std::vector<IslandState> local) override;   // this rank's islands from a checkpoint
  void restore_migrations(std::vector<MigrationEvent> events) override;  // the log so far (any rank may hold it)
  void step() override;                                 // one generation everywhere, then migration when due

  std::int64_t generation() const override { return generation_; }
  bool is_root() const override { return rank_ == 0; }
  const std::vector<IslandState>& local() const { return islands_; }
  int rank() const { return rank_; }
  int ranks() const { return size_; }

  // Progress and the stop decision never hold a rank back (a collective every generation made the
  // slowest rank set every generation's pace):
  // post_progress sends this rank's islands' newest history rows (with_diversity: their best genomes
  // too, the costly part; rank 0 computes their pairwise CKA) to rank 0 and returns at once. Every
  // rank calls it at the same generations.
  void post_progress(bool with_diversity) override;
  // Rank 0: the progress of each posted generation that every island has reported, oldest first
  // (empty on other ranks). wait: block until all posted generations are complete, and complete this
  // rank's sends and agreements in flight; every rank calls it so before the run's final collectives.
  std::vector<Progress> poll_progress(bool wait) override;
  // Agreement on run-control flags (stop, checkpoint due): starts a bitwise OR over ranks of `flags`
  // and returns the OR started kAgreeLag calls earlier (0 until then), so every rank acts at the same
  // generation without waiting for the others' current one. Every rank calls it at the same generations.
  static constexpr int kAgreeLag = 3;
  std::uint32_t agreed(std::uint32_t flags) override;
  int agreement_lag() const override { return kAgreeLag; }

  // Collective calls: every rank must make them, in the same order.
  std::vector<IslandState> gather_states() const;        // rank 0: all islands sorted by index
  // Rank 0: `sink` sees every island once, one at a time (its own first, then by rank), so a
  // checkpoint never holds more than one other rank's population at once. Other ranks: sends only.
  void for_each_state(const std::function<void(const IslandState&)>& sink) const override;
  std::vector<MigrationEvent> gather_migrations() const override;  // rank 0: sorted by generation, destination
  Elites collect_elites(std::int64_t k, const EliteSelection& selection = {}) const override;
  // Root: the element-wise maximum over ranks; other ranks get their own values back.
  std::vector<double> reduce_max(std::vector<double> values) const override;
  double time_in_migration() const override { return migration_seconds_; }
  // Wall seconds this rank spent in MPI calls (migration, gathers, progress, stop agreement), waiting
  // included; not the time in for_each_state's sink (rank 0 writes the checkpoint there).
  double time_in_mpi() const override { return mpi_seconds_; }

 private:
  void migrate();
  struct Pending;  // progress reports and stop reductions in flight
  std::shared_ptr<Pending> pending_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::int64_t n_islands_;
  SearchConfig search_;
  MigrationConfig migration_;
  std::optional<Topology> topology_;  // made once the island count is checked
  Fitness fitness_;
  SearchContext context_;
  std::unique_ptr<Algorithm> algorithm_;
  std::vector<IslandState> islands_;
  std::vector<MigrationEvent> events_;
  std::int64_t generation_ = 0;
  double migration_seconds_ = 0;
  mutable double mpi_seconds_ = 0;
};

}  // namespace repsearch::mpi
