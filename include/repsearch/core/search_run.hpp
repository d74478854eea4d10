// A search run as a library: the generation loop with its checkpoint cadence, the stop/checkpoint
// agreement, progress lines and the final elites. It drives islands through `IslandGroup` (the MPI
// layer's Archipelago is one) and writes checkpoints through `CheckpointSink` (the io layer's writer
// behind a small adapter), so the loop needs neither MPI nor HDF5 and is tested in-process.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "repsearch/core/islands.hpp"
#include "repsearch/core/search.hpp"

namespace repsearch {

struct Progress {  // over all islands; meaningful on the root
  std::int64_t generation = 0;
  // diversity: mean pairwise 1 - CKA of the island bests on the probe rows; NaN where it was not
  // computed (not posted with_diversity, or a single island)
  double best = 0, mean = 0, heldout = 0, diversity = 0;
  std::int64_t evaluations = 0, nonfinite = 0;
  // The example space's (examples_total > 0): where rank 0's current unit stands, the examples stored
  // so far over all ranks, and the mean best cross-entropy of the units in progress.
  std::string layer;
  std::int64_t layer_generation = -1, layer_generations = 0, examples = 0, examples_total = 0;
  double mean_best_ce = 0;
};

// Islands spread over processes, seen by the loop. Every method marked collective is called by every
// process at the same generations, in the same order.
class IslandGroup {
 public:
  virtual ~IslandGroup() = default;
  virtual bool is_root() const = 0;
  virtual std::int64_t generation() const = 0;
  virtual void initialise() = 0;                                        // generation 0
  virtual void restore(std::vector<IslandState> local) = 0;             // this process's islands
  virtual void restore_migrations(std::vector<MigrationEvent> events) = 0;
  virtual void step() = 0;                                              // collective
  virtual void post_progress(bool with_diversity) = 0;                  // never waits
  virtual std::vector<Progress> poll_progress(bool wait) = 0;           // root: complete generations
  // OR over processes of `flags`, returned `agreement_lag()` calls later (0 before).
  virtual std::uint32_t agreed(std::uint32_t flags) = 0;
  virtual int agreement_lag() const = 0;
  virtual void for_each_state(const std::function<void(const IslandState&)>& sink) const = 0;  // collective
  virtual std::vector<MigrationEvent> gather_migrations() const = 0;   // collective; root gets all
  virtual Elites collect_elites(std::int64_t k, const EliteSelection& selection) const = 0;  // collective
  virtual std::vector<double> reduce_max(std::vector<double> values) const = 0;             // collective
  virtual double time_in_mpi() const = 0;        // seconds in communication, waiting included
  virtual double time_in_migration() const = 0;
};

// One checkpoint being written (root only): every island once, then the migration log.
class CheckpointSink {
 public:
  virtual ~CheckpointSink() = default;
  virtual void add(const IslandState& island) = 0;
  virtual void finish(const std::vector<MigrationEvent>& migrations) = 0;
};
using OpenCheckpoint = std::function<std::unique_ptr<CheckpointSink>(std::int64_t generation)>;

struct RunControl {
  std::int64_t generations = 0;          // run until every island is at this generation
  std::int64_t log_every = 1;            // progress line every this many generations
  std::int64_t checkpoint_interval = 0;  // checkpoint every this many generations (0 = only at the end)
  double checkpoint_seconds = 0;         // and when this long has passed since the last (0 = never)
  std::int64_t elites = 1;
  EliteSelection elite_selection;
  std::string checkpoint_path;           // named in messages only
  std::string step_name = "generation";  // what one step is called in messages
  std::function<bool()> stop_requested;  // polled every generation on every process (a signal seen)
};

class SearchRun {
 public:
  SearchRun(IslandGroup& islands, RunControl control, OpenCheckpoint open_checkpoint);

  void start();  // generation 0
  // Continue from a checkpoint at `generation`: this process's islands and the migration log.
  void resume(std::int64_t generation, std::vector<IslandState> local, std::vector<MigrationEvent> migrations);

  enum class Outcome { finished, stopped };
  // The generations up to control.generations; `stopped` after the checkpoint a stop request (on any
  // process) led to. A stall names the newest checkpoint to resume from.
  Outcome run();

  struct Result {  // root: what the archive needs
    Elites elites;
    std::vector<std::vector<HistoryRow>> histories;  // by island
    std::vector<MigrationEvent> migrations;
  };
  // The final checkpoint and the elites (collective).
  Result finish();
  // Root prints each process's communication share since start/resume and peak memory (collective).
  void report_cost(double population_mib);

  std::int64_t checkpoint_generation() const { return checkpoint_generation_; }  // newest written, -1 none

 private:
  // The histories are copied only for the final one (keep_histories), not at every checkpoint.
  Result write_checkpoint(bool keep_histories = false);
  void report(bool wait);
  bool checkpoint_due(std::int64_t g, std::uint32_t agreed) const;

  IslandGroup& islands_;
  RunControl control_;
  OpenCheckpoint open_checkpoint_;
  std::int64_t checkpoint_generation_ = -1;
  std::chrono::steady_clock::time_point t0_, last_checkpoint_;
  double mpi0_ = 0, migration0_ = 0, loop_peak_mib_ = 0;
  std::int64_t g0_ = 0, evals0_ = -1, examples0_ = 0;
};

// "h:mm:ss"; "?" for a negative or non-finite duration.
std::string format_duration(double seconds);

}  // namespace repsearch
