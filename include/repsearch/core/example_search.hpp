// The example space (the paper's search): for every training example separately, the activation
// tensors at the frozen network's block outputs and its logits are evolved one layer after the other;
// a candidate's fitness is minus the cross-entropy of the frozen network's prediction for the true
// label once the candidate is propagated through the rest of the network.
//
// Work comes in units: one batch of examples searched by one island (or by every island, when islands
// exchange migrants). A unit is a pure function of (config, network, batch, islands): its random
// streams are keyed by (seed, batch, island, layer, generation), so units run in any order, on any
// rank, in any grouping, and give the same result. Everything happens on the unit's device; per
// generation only the tensors it needs are made, and nothing is read back to the host.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/islands.hpp"
#include "repsearch/core/search.hpp"

namespace repsearch {

struct LayerSchedule {
  std::int64_t generations = 0;
  double alpha = 0.1;  // mutation strength: noise std relative to the parents' per-channel std
  double boost = 1.0;  // exploratory children mutate with alpha * boost
  std::int64_t blur = 0;  // 3x3 average-pooling passes on each conv child
};

struct ExampleSearchConfig {
  std::vector<std::int64_t> layers = {0, 1, 2, 3};  // searched layers (increasing); the others: forward pass
  // The paper's CIFAR schedule, layer by layer (block0, block1, block2, logits).
  std::array<LayerSchedule, 4> schedule = {{{300, 0.3, 5, 5}, {100, 0.2, 3, 1}, {100, 0.1, 3, 1}, {10, 0.1, 1, 0}}};
  std::int64_t parents = 20, exploratory = 100, refinement = 120;  // population = their sum
  double init_noise = 0.5;        // initial population: the layer's input + noise of this std relative to
                                  // the input's per-channel std, propagated through the layer
  double normalise_eps = 1e-5;    // conv candidates: zero mean, unit variance over C, H, W
  std::int64_t islands = 1;       // independent runs of the same examples
  MigrationConfig migration{"ring", "", 0, 1, false};  // interval 0: independent (the paper's setting)
  std::uint64_t seed = 0;
  std::int64_t eval_chunk = 256;  // candidates per forward call (the last padded): the same on every rank,
                                  // so results never depend on how many candidates share a call

  std::int64_t population() const { return parents + exploratory + refinement; }
  bool searched(std::int64_t layer) const;
  // Steps of one unit: per searched layer, its initial population and each generation.
  std::int64_t ticks() const;
};

// Names "block0,block1,block2,logits" (or "all") into layer indices; OptionError naming `option`.
std::vector<std::int64_t> parse_layers(const std::string& text, const char* option = "layers");
// OptionError naming the key for a schedule, population split or layer list the search cannot run.
void validate(const ExampleSearchConfig& config);

struct UnitInput {
  std::int64_t batch = 0;              // the unit's example batch (a key of its random streams)
  std::vector<std::int64_t> islands;   // islands searched together (all of them when they migrate)
  at::Tensor images;                   // [B, C, H, W] standardised
  at::Tensor labels;                   // [B] int64
};

// One island's search of one batch: what a unit file stores and the archive is assembled from. Its
// fields are listed once, in for_each_unit_field.
struct IslandUnit {
  std::int64_t batch = 0, island = 0;
  std::array<at::Tensor, 4> targets;   // per layer: the fixed best [B, shape...] (the forward pass where not searched)
  at::Tensor ce;                       // [B, 4] float64: cross-entropy of the fixed best after each layer
  at::Tensor initial_ce;               // [B] float64: the untrained network's own cross-entropy
  std::array<at::Tensor, 4> history;   // per layer: [G + 1] float64 mean best cross-entropy per generation
                                       // (generation 0 = the initial population); empty where not searched
  std::int64_t evaluations = 0;        // candidates scored
  double seconds = 0, forward_seconds = 0, operator_seconds = 0;
};

template <class Unit, class Visit>  // Unit: IslandUnit or const IslandUnit
void for_each_unit_field(Unit& u, Visit&& visit) {
  visit("batch", u.batch);
  visit("island", u.island);
  visit("block0", u.targets[0]);
  visit("block1", u.targets[1]);
  visit("block2", u.targets[2]);
  visit("logits", u.targets[3]);
  visit("ce", u.ce);
  visit("initial_ce", u.initial_ce);
  visit("history_block0", u.history[0]);
  visit("history_block1", u.history[1]);
  visit("history_block2", u.history[2]);
  visit("history_logits", u.history[3]);
  visit("evaluations", u.evaluations);
  visit("seconds", u.seconds);
  visit("forward_seconds", u.forward_seconds);
  visit("operator_seconds", u.operator_seconds);
}

// A unit's search, advanced one step at a time (so a run can poll for a stop between generations).
class ExampleUnit {
 public:
  ExampleUnit(const FrozenNet& net, const ExampleSearchConfig& config, UnitInput input);
  ~ExampleUnit();
  ExampleUnit(ExampleUnit&&) noexcept;
  std::int64_t ticks() const { return config_.ticks(); }
  std::int64_t tick() const { return tick_; }
  bool done() const { return layer_ >= FrozenNet::kLayers; }
  void step();                          // a layer's initial population, or one generation
  std::string layer_name() const;       // where the unit stands
  std::int64_t generation() const { return generation_; }
  double mean_best_ce() const;          // over its examples and islands at the current layer (reads one scalar)
  std::vector<IslandUnit> results() const;  // when done: one per island, in input order
  std::int64_t evaluations() const;

 private:
  struct Island;
  void start_layer();
  void advance_unsearched();
  void init_population(Island& s);
  void generation_step();
  void migrate();
  void fix_layer();
  at::Tensor score(const at::Tensor& candidates, std::int64_t examples);  // [E, n] fitness = -CE

  const FrozenNet& net_;
  ExampleSearchConfig config_;
  UnitInput input_;
  std::vector<Island> islands_;
  std::int64_t layer_ = 0, generation_ = -1, tick_ = 0;
  double forward_seconds_ = 0, operator_seconds_ = 0, seconds_ = 0;
  bool timed_ = true;
};

// What one rank of an example search holds at once (one unit, the data, the network), item by item,
// before anything is allocated; `islands_per_unit` is 1 for independent islands, all when they migrate.
MemoryPlan plan_example_memory(const FrozenNet& net, const ExampleSearchConfig& config, std::int64_t example_batch,
                               std::int64_t islands_per_unit, double data_bytes);

// The operators, exposed for tests and benches (x: candidates [..., C, H, W] or logits [..., classes]).
at::Tensor blur(const at::Tensor& x, std::int64_t passes);                 // repeated 3x3 average pooling
at::Tensor normalise_candidates(const at::Tensor& x, double eps);          // zero mean, unit variance over C, H, W
at::Tensor channel_std(const at::Tensor& x);                               // [..., C] std over H, W (biased)
at::Tensor cross_entropy_each(const at::Tensor& logits, const at::Tensor& labels);  // [N] -log p(label)
// n children per example from pool [E, m, ...] (spread `sigma` [E, m, C] per channel, or [E, m] for
// logits): each the mean of two pool members drawn at random, plus Gaussian noise of std strength x
// their mean spread; conv children are then blurred `blur_passes` times and normalised (when
// normalise_eps > 0), logits centred. [E, n, ...]
at::Tensor breed(const at::Tensor& pool, const at::Tensor& sigma, std::int64_t n, double strength,
                 std::int64_t blur_passes, double normalise_eps, at::Generator& gen);

}  // namespace repsearch
