// What an island model decides without any transport: migration topologies, which individuals
// emigrate, and how the archive's elites are chosen. The MPI layer moves the bytes.
//
// Topologies and elite selections are plug-ins in the manner of `Fitness`: a plain struct that
// validates its own parameters on construction, wrapped by value in a type-erased `Topology` /
// `EliteSelector`; adding one is the struct plus one line in its registry (src/core/islands.cpp).
//   topology:        Edges edges(std::int64_t n_islands, std::uint64_t seed, std::int64_t generation) const;
//   elite selection: std::int64_t pool(std::int64_t k) const;   // candidates per island
//                    Chosen choose(const std::vector<EliteCandidate>& ranked, std::int64_t k,
//                                  const at::Tensor& probe) const;
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "repsearch/core/fitness.hpp"
#include "repsearch/core/search.hpp"

namespace repsearch {

// ---- migration ------------------------------------------------------------------------------------

struct MigrationConfig {
  std::string topology = "ring";  // none | ring | full | random | graph
  std::string edges;              // graph: "0->1, 1->2:0.5" (":w" = probability the edge is used, default 1)
  std::int64_t interval = 0;      // generations between migrations (0 = never: independent islands); the option's default
  std::int64_t migrants = 1;      // best individuals sent along each edge
  bool align = true;              // Procrustes-align immigrants to the receiver's best
};

using Edges = std::vector<std::pair<std::int64_t, std::int64_t>>;  // directed (source, destination)

class Topology {
 public:
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, Topology>>>
  Topology(T impl) : self_(std::make_shared<Model<T>>(std::move(impl))) {}  // NOLINT: wrap by value
  // The edges used at `generation`, in a fixed order; none with fewer than two islands.
  Edges edges(std::int64_t n_islands, std::uint64_t seed, std::int64_t generation) const {
    return n_islands < 2 ? Edges{} : self_->edges(n_islands, seed, generation);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual Edges edges(std::int64_t, std::uint64_t, std::int64_t) const = 0;
  };
  template <class T>
  struct Model final : Concept {
    explicit Model(T v) : impl(std::move(v)) {}
    Edges edges(std::int64_t n, std::uint64_t s, std::int64_t g) const override { return impl.edges(n, s, g); }
    T impl;
  };
  std::shared_ptr<const Concept> self_;
};

std::vector<std::string> topology_names();
// Error naming the option when the topology, its edges, the interval or the migrant count is wrong.
Topology make_topology(const MigrationConfig& config, std::int64_t n_islands);
void validate(const MigrationConfig& config, std::int64_t n_islands);
Edges migration_edges(const MigrationConfig& config, std::int64_t n_islands, std::uint64_t seed, std::int64_t generation);

// Indices of an island's `migrants` best individuals (never the whole island), best first.
std::vector<std::int64_t> emigrant_indices(const IslandState& island, std::int64_t migrants);

// ---- elites ---------------------------------------------------------------------------------------

// How the archive's k elites are chosen from the islands' candidates (every rank count gives the
// same choice: candidates are ordered by held-out score, island, uid before anything is picked).
struct EliteSelection {
  std::string mode = "top";   // top: the k best held-out scores; diverse: of the candidates whose
                              // held-out score is within `tolerance` of the best, the k furthest apart
                              // (max-min 1 - CKA on the probe rows, starting from the best), topped up
                              // by held-out order when fewer qualify
  double tolerance = 0.02;    // diverse: in held-out score units (the fitness's -CE)
};
std::vector<std::string> elite_selection_names();

struct EliteCandidate {
  double heldout = 0, fitness = 0;
  std::int32_t island = 0, born = 0;
  std::uint64_t uid = 0;
  at::Tensor z;  // [n, d]
};

class EliteSelector {
 public:
  struct Chosen {
    std::vector<std::size_t> indices;  // into the ranked candidates, ascending
    std::string description;           // stored in the archive
  };
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, EliteSelector>>>
  EliteSelector(T impl) : self_(std::make_shared<Model<T>>(std::move(impl))) {}  // NOLINT: wrap by value
  std::int64_t pool(std::int64_t k) const { return self_->pool(k); }
  Chosen choose(const std::vector<EliteCandidate>& ranked, std::int64_t k, const at::Tensor& probe) const {
    return self_->choose(ranked, k, probe);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::int64_t pool(std::int64_t) const = 0;
    virtual Chosen choose(const std::vector<EliteCandidate>&, std::int64_t, const at::Tensor&) const = 0;
  };
  template <class T>
  struct Model final : Concept {
    explicit Model(T v) : impl(std::move(v)) {}
    std::int64_t pool(std::int64_t k) const override { return impl.pool(k); }
    Chosen choose(const std::vector<EliteCandidate>& c, std::int64_t k, const at::Tensor& p) const override {
      return impl.choose(c, k, p);
    }
    T impl;
  };
  std::shared_ptr<const Concept> self_;
};
EliteSelector make_elite_selector(const EliteSelection& selection);

// An island's candidates for the archive: its selector.pool(k) best by fitness, with held-out scores.
std::vector<EliteCandidate> elite_candidates(const IslandState& island, std::int64_t k, const EliteSelector& selector,
                                             const Fitness& fitness);

struct Elites {  // k elites over all islands, best held-out score first
  at::Tensor representations;  // [k, n, d] float32 CPU
  std::vector<double> fitness, heldout;
  std::vector<std::int32_t> island, generation;
  std::vector<std::uint64_t> uid;
  at::Tensor cka;           // [k, k] linear CKA on all rows of S
  at::Tensor disagreement;  // [k, k] share of the V pool where their readouts predict differently
                            // (undefined when the fitness cannot predict)
  std::string selection;    // mode used, with its tolerance
};
// Every island's candidates in, the archive's elites out: ranked (held-out, island, uid), a
// migrant's copies merged (the best kept), the selector's choice, then CKA and disagreement.
Elites select_elites(std::vector<EliteCandidate> candidates, std::int64_t k, const EliteSelector& selector,
                     const Fitness& fitness, const SearchContext& context);

}  // namespace repsearch
