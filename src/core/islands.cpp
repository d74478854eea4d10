#include "repsearch/core/islands.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <sstream>
#include <tuple>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/registry.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

// ---- topologies -----------------------------------------------------------------------------------

struct NoMigration {
  Edges edges(std::int64_t, std::uint64_t, std::int64_t) const { return {}; }
};

struct Ring {
  Edges edges(std::int64_t n, std::uint64_t, std::int64_t) const {
    Edges out;
    for (std::int64_t i = 0; i < n; ++i) out.emplace_back(i, (i + 1) % n);
    return out;
  }
};

struct Full {
  Edges edges(std::int64_t n, std::uint64_t, std::int64_t) const {
    Edges out;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        if (i != j) out.emplace_back(i, j);
    return out;
  }
};

struct RandomOne {  // each island sends to one other, re-drawn per migration
  Edges edges(std::int64_t n, std::uint64_t seed, std::int64_t generation) const {
    auto gen = make_generator(seed, Stream::migration, {static_cast<std::uint64_t>(generation)});
    auto pick = at::randint(n - 1, {n}, gen, at::TensorOptions().dtype(at::kLong));
    Edges out;
    for (std::int64_t i = 0; i < n; ++i) {
      auto j = pick[i].item<std::int64_t>();
      out.emplace_back(i, j >= i ? j + 1 : j);
    }
    return out;
  }
};

// One "a->b[:w]" item; false when malformed.
bool parse_edge(const std::string& item, long long* a, long long* b, double* w) {
  const auto arrow = item.find("->");
  if (arrow == std::string::npos) return false;
  const auto colon = item.find(':', arrow);
  const std::string dst = item.substr(arrow + 2, colon == std::string::npos ? std::string::npos : colon - arrow - 2);
  char extra = 0;
  return std::sscanf(item.substr(0, arrow).c_str(), "%lld%c", a, &extra) == 1 &&
         std::sscanf(dst.c_str(), "%lld%c", b, &extra) == 1 &&
         (colon == std::string::npos || std::sscanf(item.substr(colon + 1).c_str(), "%lf%c", w, &extra) == 1);
}

struct Graph {  // the user's edges, each used with its probability
  Edges list;
  std::vector<double> weights;
  Graph(const std::string& text, std::int64_t n_islands) {
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(std::remove_if(item.begin(), item.end(), [](unsigned char c) { return std::isspace(c); }), item.end());
      if (item.empty()) continue;
      long long a = -1, b = -1;
      double w = 1.0;
      if (!parse_edge(item, &a, &b, &w))
        fail_option("migration-edges", item, "edges like '0->1, 1->2:0.5'",
                    "option migration-edges: expected edges like '0->1, 1->2:0.5', found '", item, "'");
      if (a < 0 || b < 0 || a >= n_islands || b >= n_islands || a == b)
        fail_option("migration-edges", item, detail::cat("edges between two different islands in [0, ", n_islands, ")"),
                    "option migration-edges: edge '", item, "' must join two different islands in [0, ", n_islands, ")");
      if (!(w >= 0.0 && w <= 1.0))
        fail_option("migration-edges", item, "weights in [0, 1]", "option migration-edges: weight of '", item,
                    "' must lie in [0, 1], found ", w);
      list.emplace_back(a, b);
      weights.push_back(w);
    }
    if (list.empty())
      fail_option("migration-edges", text, "at least one edge for topology graph",
                  "option migration-edges: topology 'graph' needs at least one edge, found '", text, "'");
  }
  Edges edges(std::int64_t, std::uint64_t seed, std::int64_t generation) const {
    auto gen = make_generator(seed, Stream::migration, {static_cast<std::uint64_t>(generation)});
    auto u = at::rand({static_cast<std::int64_t>(list.size())}, gen, at::TensorOptions().dtype(at::kDouble));
    Edges out;
    for (std::size_t e = 0; e < list.size(); ++e)
      if (u[static_cast<std::int64_t>(e)].item<double>() < weights[e]) out.push_back(list[e]);
    return out;
  }
};

using TopologyFactory = std::function<Topology(const MigrationConfig&, std::int64_t)>;
const std::vector<std::pair<std::string, TopologyFactory>>& topologies() {  // in the order help lists them
  static const std::vector<std::pair<std::string, TopologyFactory>> r = {
      {"none", [](const MigrationConfig&, std::int64_t) { return Topology{NoMigration{}}; }},
      {"ring", [](const MigrationConfig&, std::int64_t) { return Topology{Ring{}}; }},
      {"full", [](const MigrationConfig&, std::int64_t) { return Topology{Full{}}; }},
      {"random", [](const MigrationConfig&, std::int64_t) { return Topology{RandomOne{}}; }},
      {"graph", [](const MigrationConfig& c, std::int64_t n) { return Topology{Graph{c.edges, n}}; }},
  };
  return r;
}

// ---- elite selections -----------------------------------------------------------------------------

struct TopElites {  // the k best held-out scores
  std::int64_t pool(std::int64_t k) const { return k; }
  EliteSelector::Chosen choose(const std::vector<EliteCandidate>& ranked, std::int64_t k, const at::Tensor&) const {
    EliteSelector::Chosen c;
    for (std::size_t i = 0; i < ranked.size() && static_cast<std::int64_t>(c.indices.size()) < k; ++i) c.indices.push_back(i);
    c.description = "top";
    return c;
  }
};

struct DiverseElites {  // far apart among those near the best
  double tolerance;
  explicit DiverseElites(double t) : tolerance(t) {
    if (!(tolerance >= 0)) fail_option("elite-tolerance", tolerance, ">= 0");
  }
  std::int64_t pool(std::int64_t k) const { return 4 * k; }  // a wider pool to choose far-apart elites from
  EliteSelector::Chosen choose(const std::vector<EliteCandidate>& ranked, std::int64_t k, const at::Tensor& probe) const {
    EliteSelector::Chosen c;
    if (ranked.empty()) return c;
    std::size_t within = 0;  // candidates within the tolerance of the best (a prefix: ranked by held-out)
    while (within < ranked.size() && ranked[within].heldout >= ranked.front().heldout - tolerance) ++within;
    std::vector<at::Tensor> probes;
    for (std::size_t i = 0; i < within; ++i) probes.push_back(ranked[i].z.index_select(0, probe));
    for (auto i : furthest_apart(cka_distance_matrix(at::stack(probes)), k)) c.indices.push_back(static_cast<std::size_t>(i));
    for (std::size_t i = within; i < ranked.size() && static_cast<std::int64_t>(c.indices.size()) < k; ++i)
      c.indices.push_back(i);
    std::sort(c.indices.begin(), c.indices.end());  // best held-out first
    c.description = "diverse tolerance=" + std::to_string(tolerance) + " within=" + std::to_string(within);
    return c;
  }
};

using SelectorFactory = std::function<EliteSelector(const EliteSelection&)>;
const std::vector<std::pair<std::string, SelectorFactory>>& selectors() {
  static const std::vector<std::pair<std::string, SelectorFactory>> r = {
      {"top", [](const EliteSelection&) { return EliteSelector{TopElites{}}; }},
      {"diverse", [](const EliteSelection& s) { return EliteSelector{DiverseElites{s.tolerance}}; }},
  };
  return r;
}

}  // namespace

std::vector<std::string> topology_names() { return registry::names(topologies()); }

Topology make_topology(const MigrationConfig& c, std::int64_t n_islands) {
  const auto& entry = registry::find(topologies(), c.topology, "topology", "topology");
  if (c.topology != "graph" && !c.edges.empty())
    fail_option("migration-edges", c.edges, "empty unless topology=graph",
                "option migration-edges: only used with topology=graph, found topology=", c.topology);
  return entry.second(c, n_islands);
}

void validate(const MigrationConfig& c, std::int64_t n_islands) {
  const auto names = topology_names();
  if (std::find(names.begin(), names.end(), c.topology) == names.end()) make_topology(c, n_islands);  // names them
  if (c.interval < 0) fail_option("migration-interval", c.interval, ">= 0 (0 = never)");
  if (c.migrants < 1) fail_option("migrants", c.migrants, ">= 1");
  make_topology(c, n_islands);  // the topology's own parameters
}

Edges migration_edges(const MigrationConfig& c, std::int64_t n, std::uint64_t seed, std::int64_t generation) {
  if (n < 2 || c.topology == "none") return {};
  return make_topology(c, n).edges(n, seed, generation);
}

std::vector<std::int64_t> emigrant_indices(const IslandState& s, std::int64_t migrants) {
  const auto k = std::min<std::int64_t>(migrants, s.population.size(0) - 1);
  auto top = std::get<1>(s.fitness.topk(k));
  std::vector<std::int64_t> out;
  for (std::int64_t j = 0; j < k; ++j) out.push_back(top[j].item<std::int64_t>());
  return out;
}

std::vector<std::string> elite_selection_names() { return registry::names(selectors()); }

EliteSelector make_elite_selector(const EliteSelection& s) {
  const auto& r = selectors();
  auto it = std::find_if(r.begin(), r.end(), [&](const auto& kv) { return kv.first == s.mode; });
  if (it == r.end())
    fail_option("elite-selection", s.mode, "top or diverse", "option elite-selection: must be top or diverse, found '", s.mode, "'");
  return it->second(s);
}

std::vector<EliteCandidate> elite_candidates(const IslandState& s, std::int64_t k, const EliteSelector& selector,
                                             const Fitness& fitness) {
  const auto m = std::min<std::int64_t>(selector.pool(k), s.population.size(0));
  auto top = std::get<1>(s.fitness.topk(m));
  auto z = s.population.index_select(0, top.to(s.population.device()));
  auto held = fitness.heldout(z);
  std::vector<EliteCandidate> out;
  for (std::int64_t j = 0; j < m; ++j) {
    const auto idx = static_cast<std::size_t>(top[j].item<std::int64_t>());
    out.push_back({held[j].item<double>(), s.fitness[static_cast<std::int64_t>(idx)].item<double>(),
                   static_cast<std::int32_t>(s.island), s.born[idx], s.uid[idx], z[j]});
  }
  return out;
}

Elites select_elites(std::vector<EliteCandidate> cands, std::int64_t k, const EliteSelector& selector,
                     const Fitness& fitness, const SearchContext& context) {
  // Best held-out first; ties broken by island then uid so the order never depends on ranks.
  std::sort(cands.begin(), cands.end(), [](const EliteCandidate& a, const EliteCandidate& b) {
    return std::tie(b.heldout, a.island, a.uid) < std::tie(a.heldout, b.island, b.uid);
  });
  std::vector<EliteCandidate> ranked;  // a migrant's copies: keep the best
  std::vector<std::uint64_t> seen;
  for (auto& c : cands) {
    if (std::find(seen.begin(), seen.end(), c.uid) != seen.end()) continue;
    seen.push_back(c.uid);
    ranked.push_back(std::move(c));
  }
  const auto chosen = selector.choose(ranked, k, context.probe.cpu());
  Elites e;
  e.selection = chosen.description;
  std::vector<at::Tensor> zs;
  for (auto i : chosen.indices) {
    const auto& c = ranked[i];
    zs.push_back(c.z);
    e.heldout.push_back(c.heldout);
    e.fitness.push_back(c.fitness);
    e.island.push_back(c.island);
    e.generation.push_back(c.born);
    e.uid.push_back(c.uid);
  }
  e.representations = at::stack(zs).to(at::kFloat).contiguous();
  e.cka = linear_cka_matrix(e.representations);
  if (fitness.can_predict()) {
    auto all_v = at::arange(context.val_pool, at::TensorOptions().dtype(at::kLong));
    e.disagreement = disagreement_matrix(fitness.predict(e.representations.to(context.x_search.device()), all_v));
  }
  return e;
}

}  // namespace repsearch
