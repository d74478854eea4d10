// One island's search: its state, initialisation and the algorithm plug-ins (`ga`, `de`) that advance
// it by one generation. Islands never touch MPI: the mpi layer moves migrants between them.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "repsearch/core/fitness.hpp"

namespace repsearch {

struct SearchConfig {
  std::string algorithm = "ga";        // ga | de
  std::int64_t population = 32;        // P per island
  std::int64_t dim = 64;               // d, width of the cut layer
  std::string init = "random-features";  // gaussian | random-features | labels
  std::int64_t val_batch = 512;        // V minibatch drawn per generation
  std::uint64_t seed = 0;
  // ga
  std::string replacement = "steady";  // steady: trial replaces its slot if better; generational
  std::int64_t tournament = 2;
  std::int64_t elitism = 1;            // generational only
  double crossover = 0.1;              // probability an offspring is a row-wise crossover
  bool crossover_align = true;         // Procrustes-align the second parent first
  std::vector<std::string> operators = {"pull", "column", "gaussian", "knn"};
  double mutation_rate = 0.02;         // gaussian: fraction of rows
  double sigma = 0.3;                  // gaussian: step relative to column std
  bool self_adapt = false;             // 1/5 rule on sigma (measured to run to its cap: off)
  double sigma_min = 0.01, sigma_max = 2.0;
  double pull_fraction = 0.1, pull_alpha = 0.5, pull_noise = 0.05;
  double column_scale = 0.3;
  std::int64_t knn_k = 10;
  double knn_fraction = 0.1, knn_noise = 0.05;
  double adapt_memory = 0.9, adapt_floor = 0.05;
  // de
  double de_f = 0.5, de_cr = 0.9;
  // selection (ga): which of parents + trials survive a generation
  std::string selection = "fitness";   // fitness: today's rule (steady or generational); dns: Dominated
                                       // Novelty Search over parents + trials (diversity.hpp)
  std::int64_t dns_k = 3;              // dns: nearest fitter individuals averaged
  std::string qd_distance = "cka";     // dns: cka (1 - CKA on the probe rows) | disagreement (readout
                                       // predictions on the generation's V rows)
  std::int64_t diversity_probe = 256;  // rows of S on which every CKA distance is computed
  double island_repulsion = 0.0;       // > 0: survival ranks fitness - w * mean CKA to the other islands'
                                       // elites received at the last migration, which become references
                                       // instead of entering the population
};

std::vector<std::string> algorithm_names();
std::vector<std::string> operator_names();
std::vector<std::string> init_names();

// What every island of a rank shares: the search set and what the operators need from the inputs.
struct SearchContext {
  at::Tensor x_search;     // [n, D] standardised inputs of S (device)
  at::Tensor y_search;     // [n] int64 (device)
  std::int64_t n_classes = 10;
  std::int64_t val_pool = 0;  // |V|
  at::Tensor phi;          // [n, q] random features of S: input-predictable directions (column move)
  at::Tensor neighbours;   // [n, knn_k] input-space nearest neighbours within S (kNN smoothing)
  at::Tensor probe;        // [m] int64 (device): the fixed rows of S every CKA distance uses
};
SearchContext make_search_context(const at::Tensor& x_search, const at::Tensor& y_search, std::int64_t n_classes,
                                  std::int64_t val_pool, const SearchConfig& config);

// What one rank of a search will hold, item by item, before anything is allocated; the search
// prints it and refuses to start when it exceeds the memory of the host or the GPU.
struct MemoryPlan {
  struct Item {
    std::string what;
    double bytes = 0;
    std::string lower;  // the options that shrink it
  };
  std::vector<Item> items;
  double total() const;
  std::string table() const;  // one line per item, then the total
};
struct MemoryPlanInput {
  std::int64_t n_search = 0, n_val = 0, n_heldout = 0, input_dim = 0, n_classes = 10;
  std::int64_t features = 2048;       // p of the fitness's random features
  bool learnable = false;             // ridge-probe-learnable keeps an [n, p] basis
  std::int64_t islands_here = 1;      // islands this rank hosts
  std::int64_t islands_total = 1;     // rank 0 receives one other island at a time for checkpoints
  bool writer = false;                // rank 0
  double dataset_bytes = 0;           // the data set as loaded (images and labels)
  std::int64_t elites = 8;            // candidates per island gathered for the archive
};
MemoryPlan plan_search_memory(const SearchConfig& config, const MemoryPlanInput& input);

struct HistoryRow {
  std::int64_t generation = 0;
  double best = 0, mean = 0, std = 0;  // fitness on this generation's minibatch (finite values only)
  double heldout = 0;                  // held-out score of the island best
  double diversity = 0;                // mean 1 - CKA(best, individual) over a sample of 8 (probe rows)
  double disagreement = 0;             // mean share of this generation's V rows where the readout of the
                                       // best and of the same 8 predict differently (NaN: not computed)
  std::int64_t evaluations = 0;        // cumulative
  double seconds = 0;                  // cumulative wall time of this island's steps
  std::int64_t nonfinite = 0;          // cumulative count of NaN/Inf scores
};

// One migrant's passage, logged by the receiving island (ids only, never genomes).
struct MigrationEvent {
  std::int64_t generation = 0, source = 0, destination = 0;
  std::uint64_t uid = 0;
  double fitness = 0;
};

struct IslandState {
  std::int64_t island = 0;
  std::int64_t generation = 0;
  at::Tensor population;               // [P, n, d] float32 on the device
  at::Tensor fitness;                  // [P] float64 CPU, on this generation's minibatch
  std::vector<std::uint64_t> uid;      // island << 40 | serial, unique over the run
  std::vector<std::int32_t> born;      // generation each individual was made
  std::uint64_t next_serial = 0;
  std::vector<double> op_weights;      // adaptive operator success averages, one per operator
  double sigma = 0.3;
  std::int64_t evaluations = 0;
  std::int64_t nonfinite = 0;
  double seconds = 0;
  std::vector<HistoryRow> history;
  at::Tensor foreign;                  // [R, m, d] float32: probe rows of the other islands' elites
                                       // (island_repulsion > 0; checkpointed), else undefined
  at::Tensor predictions;              // [P, b] int64 CPU: readout predictions on this generation's V
                                       // rows when known (transient: never checkpointed)

  std::uint64_t new_uid() { return (static_cast<std::uint64_t>(island) << 40) | next_serial++; }
  std::int64_t best_index() const;
};

// The persistent fields of an island's state, in one order and under the names the checkpoint uses
// (attributes for scalars, datasets for the rest): `visit(name, field)` for each. Transport and
// storage both walk this list, so a new field is added here once. `predictions` is transient.
template <class State, class Visit>  // State: IslandState or const IslandState
void for_each_island_field(State& s, Visit&& visit) {
  visit("island", s.island);
  visit("generation", s.generation);
  visit("population", s.population);
  visit("fitness", s.fitness);
  visit("uid", s.uid);
  visit("born", s.born);
  visit("next_serial", s.next_serial);
  visit("op_weights", s.op_weights);
  visit("sigma", s.sigma);
  visit("evaluations", s.evaluations);
  visit("nonfinite", s.nonfinite);
  visit("seconds", s.seconds);
  visit("history", s.history);
  visit("foreign", s.foreign);  // undefined unless island_repulsion > 0
}

// The V rows island `island` scores on at `generation` (a function of seed, island, generation).
at::Tensor minibatch_rows(const SearchConfig& config, std::int64_t val_pool, std::int64_t island, std::int64_t generation);

// Generation 0: population drawn by `init`, scored on its minibatch, history row 0 recorded.
IslandState init_island(std::int64_t island, const SearchConfig& config, const SearchContext& context,
                        const Fitness& fitness);

// An algorithm plug-in advances an island by one generation (state.generation + 1).
class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual std::string name() const = 0;
  virtual void step(IslandState& state, const Fitness& fitness, const SearchContext& context) const = 0;
};
std::unique_ptr<Algorithm> make_algorithm(const SearchConfig& config);

// Appends the history row of the state's current generation (held-out of the best, diversity on the
// probe rows, disagreement of predictions when the fitness can predict).
void record_history(IslandState& state, const Fitness& fitness, const SearchConfig& config, const SearchContext& context);

// island_repulsion: the probe rows of immigrants [m, n, d] replace the island's references.
void receive_references(IslandState& state, const at::Tensor& immigrants, const SearchContext& context);
// The score survival ranks by: fitness - w * mean CKA to the island's references (fitness when none).
at::Tensor repelled(const IslandState& state, const at::Tensor& population, const at::Tensor& fitness,
                    const SearchConfig& config, const SearchContext& context);

// Replace the worst individuals by immigrants [m, n, d] (aligned to the island best by Procrustes).
void receive_migrants(IslandState& state, const at::Tensor& immigrants, const std::vector<double>& fitness,
                      const std::vector<std::uint64_t>& uids, bool align);

}  // namespace repsearch
