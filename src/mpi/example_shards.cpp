#include "repsearch/mpi/example_shards.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "repsearch/core/error.hpp"
#include "repsearch/mpi/archipelago.hpp"
#include "wire.hpp"

namespace repsearch::mpi {

using namespace wire;

std::vector<std::int64_t> UnitPlan::islands_of(std::int64_t unit, std::int64_t n_islands) const {
  if (groups == n_islands) return {unit % groups};
  std::vector<std::int64_t> all(static_cast<std::size_t>(n_islands));
  for (std::int64_t i = 0; i < n_islands; ++i) all[static_cast<std::size_t>(i)] = i;
  return all;
}

UnitPlan plan_units(std::int64_t examples, std::int64_t example_batch, const ExampleSearchConfig& config) {
  if (example_batch < 1) throw OptionError("example-batch", std::to_string(example_batch), ">= 1");
  UnitPlan p;
  p.batches = (examples + example_batch - 1) / example_batch;
  // Islands that exchange migrants are searched together; independent ones are units of their own.
  p.groups = config.migration.interval > 0 && config.islands > 1 ? 1 : config.islands;
  return p;
}

struct ExampleShards::Pending {
  ProgressChannel<ShardReport> progress;
  Agreement agreement;
  explicit Pending(std::int64_t ranks) : progress(kTagShards, ranks) {}
};

ExampleShards::ExampleShards(MPI_Comm comm, const FrozenNet& net, ExampleSearchConfig config, ExampleWork work,
                             UnitSink sink)
    : comm_(comm), net_(net), config_(std::move(config)), work_(std::move(work)), sink_(std::move(sink)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  validate(config_);
  plan_ = plan_units(work_.labels.size(0), work_.example_batch, config_);
  std::vector<std::int64_t> left;
  auto done = work_.finished;
  std::sort(done.begin(), done.end());
  for (std::int64_t u = 0; u < plan_.batches * plan_.groups; ++u)
    if (!std::binary_search(done.begin(), done.end(), u)) left.push_back(u);
  for (std::size_t i = static_cast<std::size_t>(rank_); i < left.size(); i += static_cast<std::size_t>(size_)) mine_.push_back(left[i]);
  remaining_ = left.size();
  const auto rounds = (static_cast<std::int64_t>(left.size()) + size_ - 1) / size_;
  total_ = rounds * config_.ticks();
  pending_ = std::make_shared<Pending>(size_);
}

ExampleShards::~ExampleShards() = default;

void ExampleShards::restore(std::vector<IslandState>) {
  fail("internal: an example search resumes from its stored units, not from island states");
}
void ExampleShards::restore_migrations(std::vector<MigrationEvent>) {
  fail("internal: an example search keeps no migration log");
}

void ExampleShards::step() {
  if (tick_ >= total_) fail("internal: step ", tick_, " of an example search of ", total_, " steps");
  if (!unit_ && next_ < mine_.size()) {
    const auto u = mine_[next_++];
    const auto b = plan_.batch_of(u), first = b * work_.example_batch;
    const auto last = std::min(work_.labels.size(0), first + work_.example_batch);
    UnitInput in{b, plan_.islands_of(u, config_.islands), work_.images.slice(0, first, last),
                 work_.labels.slice(0, first, last)};
    unit_ = std::make_unique<ExampleUnit>(net_, config_, std::move(in));
  }
  if (unit_) {
    unit_->step();
    if (unit_->done()) {
      const auto results = unit_->results();
      const auto e = results.front().ce.size(0), b = results.front().batch;
      for (const auto& r : results) evaluations_ += r.evaluations;
      sink_(results, work_.indices.slice(0, b * work_.example_batch, b * work_.example_batch + e));
      examples_ += e * static_cast<std::int64_t>(results.size());  // island-examples: one island's search of one example
      ++units_;
      unit_.reset();
    }
  }
  ++tick_;
}

void ExampleShards::post_progress(bool) {
  Timer timer(mpi_seconds_);
  ShardReport r;
  r.generation = tick_;
  r.rank = rank_;
  r.examples = examples_;
  r.units = units_;
  r.evaluations = evaluations_ + (unit_ ? unit_->evaluations() : 0);
  r.mean_best_ce = std::numeric_limits<double>::quiet_NaN();
  if (unit_) {
    const auto names = frozen_layer_names();
    r.layer = std::find(names.begin(), names.end(), unit_->layer_name()) - names.begin();
    r.layer_generation = unit_->generation();
    r.mean_best_ce = unit_->mean_best_ce();  // one scalar read, only when a line is due
  }
  pending_->progress.post(comm_, rank_, r);
  if (rank_ == 0) pending_->progress.posted(tick_);
}

std::vector<Progress> ExampleShards::poll_progress(bool wait) {
  Timer timer(mpi_seconds_);
  if (wait) pending_->agreement.settle();
  std::vector<Progress> out;
  const auto names = frozen_layer_names();
  const auto islands = std::max<std::int64_t>(1, config_.islands);
  for (auto& items : pending_->progress.poll(comm_, rank_, wait)) {
    Progress pr;
    pr.generation = items.front().generation;
    pr.examples_total = work_.labels.size(0);
    double ce = 0;
    int with_unit = 0;
    for (const auto& r : items) {
      pr.evaluations += r.evaluations;
      pr.examples += r.examples;
      if (!std::isnan(r.mean_best_ce)) ce += r.mean_best_ce, ++with_unit;
      if (r.rank == 0 && r.layer >= 0) {
        pr.layer = names[static_cast<std::size_t>(r.layer)];
        pr.layer_generation = r.layer_generation;
        pr.layer_generations = config_.schedule[static_cast<std::size_t>(r.layer)].generations;
      }
    }
    // examples every island has searched (island-examples / islands), counting the units stored before
    const auto before = static_cast<std::int64_t>(work_.finished.size()) * work_.example_batch * islands / plan_.groups;
    pr.examples = std::min(pr.examples_total, (pr.examples + before) / islands);
    pr.mean_best_ce = with_unit ? ce / with_unit : std::numeric_limits<double>::quiet_NaN();
    out.push_back(pr);
  }
  return out;
}

std::uint32_t ExampleShards::agreed(std::uint32_t flags) {
  Timer timer(mpi_seconds_);
  return pending_->agreement.agree(comm_, flags);
}

int ExampleShards::agreement_lag() const { return Agreement::kLag; }

std::vector<double> ExampleShards::reduce_max(std::vector<double> values) const {
  Timer timer(mpi_seconds_);
  return mpi::reduce_max(comm_, std::move(values));
}

}  // namespace repsearch::mpi
