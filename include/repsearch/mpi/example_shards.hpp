// The example space over MPI ranks: its units (an example batch searched by one island, or by every
// island when they migrate) are dealt to ranks in order, unit i of those left to do going to rank
// i mod ranks. Units are independent, so ranks never wait on each other's work; they keep in step only
// through the run loop's lagged stop/checkpoint agreement and the progress reports (SearchRun drives
// this group like the dataset space's Archipelago). A finished unit goes to the sink (its unit files)
// on the rank that searched it; nothing of it passes through another rank.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/search_run.hpp"

namespace repsearch::mpi {

struct ExampleWork {
  at::Tensor images;                  // [n, C, H, W] standardised (any device; a unit's rows move to the net's)
  at::Tensor labels;                  // [n] int64
  at::Tensor indices;                 // [n] int64: training indices, for the sink
  std::int64_t example_batch = 32;
  std::vector<std::int64_t> finished;  // unit ids stored by an earlier run (never searched again)
};

// The units of a run: ids batch * groups + group, a group being one island (independent islands) or
// all of them (migration).
struct UnitPlan {
  std::int64_t batches = 0, groups = 0;
  std::vector<std::int64_t> islands_of(std::int64_t unit, std::int64_t n_islands) const;
  std::int64_t batch_of(std::int64_t unit) const { return unit / groups; }
};
UnitPlan plan_units(std::int64_t examples, std::int64_t example_batch, const ExampleSearchConfig& config);

// A finished unit: its islands' results and the training indices of its examples.
using UnitSink = std::function<void(const std::vector<IslandUnit>& unit, const at::Tensor& indices)>;

class ExampleShards : public IslandGroup {
 public:
  ExampleShards(MPI_Comm comm, const FrozenNet& net, ExampleSearchConfig config, ExampleWork work, UnitSink sink);
  ~ExampleShards() override;
  // Steps of this run on every rank (ranks with fewer units idle through the last ones).
  std::int64_t total_steps() const { return total_; }
  std::int64_t units_left() const { return static_cast<std::int64_t>(remaining_); }

  bool is_root() const override { return rank_ == 0; }
  std::int64_t generation() const override { return tick_; }
  void initialise() override {}
  void restore(std::vector<IslandState>) override;
  void restore_migrations(std::vector<MigrationEvent>) override;
  void step() override;
  void post_progress(bool with_diversity) override;
  std::vector<Progress> poll_progress(bool wait) override;
  std::uint32_t agreed(std::uint32_t flags) override;
  int agreement_lag() const override;
  void for_each_state(const std::function<void(const IslandState&)>&) const override {}  // units store themselves
  std::vector<MigrationEvent> gather_migrations() const override { return {}; }
  Elites collect_elites(std::int64_t, const EliteSelection&) const override { return {}; }
  std::vector<double> reduce_max(std::vector<double> values) const override;
  double time_in_mpi() const override { return mpi_seconds_; }
  double time_in_migration() const override { return 0; }

 private:
  struct Pending;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  const FrozenNet& net_;
  ExampleSearchConfig config_;
  ExampleWork work_;
  UnitSink sink_;
  UnitPlan plan_;
  std::vector<std::int64_t> mine_;    // this rank's units, in order
  std::size_t next_ = 0, remaining_ = 0;
  std::unique_ptr<ExampleUnit> unit_;
  std::int64_t tick_ = 0, total_ = 0, examples_ = 0, units_ = 0, evaluations_ = 0;
  std::shared_ptr<Pending> pending_;
  mutable double mpi_seconds_ = 0;
};

}  // namespace repsearch::mpi
