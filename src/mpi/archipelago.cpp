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

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch::mpi {

namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail("[MPI] ", what, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
  }
}

double g_stall_seconds = 1800.0;

// Polls `done()` (an MPI_Test-like call that also drives MPI's progress) with a growing sleep in
// between, so a rank that waits on a stopped or lost peer neither spins a core nor waits forever.
template <class Done>
void wait_until(Done&& done, const char* what) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto pause = std::chrono::microseconds(0);
  for (int polls = 0;; ++polls) {
    if (done()) return;
    const double waited = std::chrono::duration<double>(clock::now() - t0).count();
    if (waited > g_stall_seconds)
      throw Stalled(detail::cat("no progress from the other ranks for ", static_cast<long long>(waited),
                                " s while waiting for ", what, " (--stall-minutes ", g_stall_seconds / 60.0,
                                "): a rank is stopped, lost or cut off"));
    if (polls > 100) {  // a short busy phase keeps fast exchanges fast
      pause = std::min(std::chrono::microseconds(20000), std::max(std::chrono::microseconds(50), pause * 2));
      std::this_thread::sleep_for(pause);
    }
  }
}

void wait_request(MPI_Request* req, const char* what) {
  wait_until([&] {
    int flag = 0;
    check(MPI_Test(req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    return flag != 0;
  }, what);
}

// Flat byte messages: POD fields and tensors (dtype, shape, raw bytes).
class Writer {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  template <class T>
  void put_vector(const std::vector<T>& v) {
    put<std::int64_t>(static_cast<std::int64_t>(v.size()));
    const char* p = reinterpret_cast<const char*>(v.data());
    buf.insert(buf.end(), p, p + v.size() * sizeof(T));
  }
  void put_tensor(const at::Tensor& t) {
    auto c = t.cpu().contiguous();
    put<std::int8_t>(static_cast<std::int8_t>(c.scalar_type()));
    put<std::int64_t>(c.dim());
    for (auto s : c.sizes()) put<std::int64_t>(s);
    const char* p = static_cast<const char*>(c.data_ptr());
    buf.insert(buf.end(), p, p + c.nbytes());
  }
  std::vector<char> buf;
};

class Reader {
 public:
  explicit Reader(const std::vector<char>& b) : buf_(b) {}
  template <class T>
  T get() {
    T v;
    need(sizeof(T));
    std::memcpy(&v, buf_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_vector() {
    auto n = static_cast<std::size_t>(get<std::int64_t>());
    need(n * sizeof(T));
    std::vector<T> v(n);
    std::memcpy(v.data(), buf_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  at::Tensor get_tensor() {
    auto type = static_cast<at::ScalarType>(get<std::int8_t>());
    auto dim = get<std::int64_t>();
    std::vector<std::int64_t> sizes;
    for (std::int64_t i = 0; i < dim; ++i) sizes.push_back(get<std::int64_t>());
    auto t = at::empty(sizes, at::TensorOptions().dtype(type));
    need(t.nbytes());
    std::memcpy(t.data_ptr(), buf_.data() + pos_, t.nbytes());
    pos_ += t.nbytes();
    return t;
  }

 private:
  void need(std::size_t n) const {
    if (pos_ + n > buf_.size()) fail("[MPI] a message is shorter than its header says (internal error)");
  }
  const std::vector<char>& buf_;
  std::size_t pos_ = 0;
};

struct Timer {  // adds the scope's wall time to a counter
  double& sink;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  explicit Timer(double& s) : sink(s) {}
  ~Timer() { sink += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

int rank_of(std::int64_t island, int ranks) { return static_cast<int>(island % ranks); }

std::vector<char> receive_message(MPI_Message* msg, MPI_Status* status, const char* what) {
  int count = 0;
  check(MPI_Get_count(status, MPI_BYTE, &count), "MPI_Get_count");
  std::vector<char> buf(static_cast<std::size_t>(count));
  MPI_Request req;
  check(MPI_Imrecv(buf.data(), count, MPI_BYTE, msg, &req), "MPI_Imrecv");
  wait_request(&req, what);
  return buf;
}

std::vector<char> receive(MPI_Comm comm, int source, int tag, const char* what) {
  MPI_Message msg;
  MPI_Status status;
  wait_until([&] {
    int flag = 0;
    check(MPI_Improbe(source, tag, comm, &flag, &msg, &status), "MPI_Improbe");
    return flag != 0;
  }, what);
  return receive_message(&msg, &status, what);
}

struct Sends {
  std::vector<std::vector<char>> bufs;
  std::vector<MPI_Request> reqs;
  void post(MPI_Comm comm, std::vector<char> b, int dest, int tag) {
    if (b.size() > static_cast<std::size_t>(INT_MAX)) fail("[MPI] a message of ", b.size(), " bytes exceeds 2 GiB");
    bufs.push_back(std::move(b));
    reqs.emplace_back();
    check(MPI_Isend(bufs.back().data(), static_cast<int>(bufs.back().size()), MPI_BYTE, dest, tag, comm, &reqs.back()),
          "MPI_Isend");
  }
  void wait(const char* what) {
    if (!reqs.empty())
      wait_until([&] {
        int flag = 0;
        check(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall");
        return flag != 0;
      }, what);
    bufs.clear();
    reqs.clear();
  }
  void reap() {  // frees the buffers of completed sends without waiting for the others
    std::size_t kept = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      int done = 0;
      check(MPI_Test(&reqs[i], &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) continue;
      reqs[kept] = reqs[i];
      std::swap(bufs[kept], bufs[i]);
      ++kept;
    }
    reqs.resize(kept);
    bufs.resize(kept);
  }
};

// Every rank's items reach rank 0 (root's own first, then by rank). One message per item.
// Every rank's `n_local` items reach rank 0 one at a time, so no rank holds more than one packed item
// in flight: rank 0 calls `own(i)` for its own, then `received(bytes)` for the others' in rank order;
// other ranks send `pack(i)` and wait for each before packing the next.
void stream_to_root(MPI_Comm comm, int tag, const char* what, std::size_t n_local,
                    const std::function<std::vector<char>(std::size_t)>& pack,
                    const std::function<void(std::size_t)>& own,
                    const std::function<void(std::vector<char>)>& received) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int mine = static_cast<int>(n_local);
  std::vector<int> counts(static_cast<std::size_t>(size));
  MPI_Request req;
  check(MPI_Igather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm, &req), "MPI_Igather");
  wait_request(&req, what);
  if (rank != 0) {
    for (std::size_t i = 0; i < n_local; ++i) {
      Sends one;
      one.post(comm, pack(i), 0, tag);
      one.wait(what);
    }
    return;
  }
  for (std::size_t i = 0; i < n_local; ++i) own(i);
  for (int r = 1; r < size; ++r)
    for (int i = 0; i < counts[static_cast<std::size_t>(r)]; ++i) received(receive(comm, r, tag, what));
}

// Every rank's items reach rank 0 (root's own first, then by rank).
std::vector<std::vector<char>> gather_items(MPI_Comm comm, std::vector<std::vector<char>> local, int tag,
                                            const char* what) {
  std::vector<std::vector<char>> all;
  stream_to_root(
      comm, tag, what, local.size(), [&](std::size_t i) { return std::move(local[i]); },
      [&](std::size_t i) { all.push_back(std::move(local[i])); },
      [&](std::vector<char> b) { all.push_back(std::move(b)); });
  return all;
}

constexpr int kTagStates = 32001, kTagEvents = 32002, kTagElites = 32003, kTagBests = 32004;

std::vector<char> pack_state(const IslandState& s) {
  Writer w;
  w.put(s.island);
  w.put(s.generation);
  w.put_tensor(s.population);
  w.put_tensor(s.fitness);
  w.put_vector(s.uid);
  w.put_vector(s.born);
  w.put(s.next_serial);
  w.put_vector(s.op_weights);
  w.put(s.sigma);
  w.put(s.evaluations);
  w.put(s.nonfinite);
  w.put(s.seconds);
  w.put_vector(s.history);
  w.put<std::int8_t>(s.foreign.defined() ? 1 : 0);
  if (s.foreign.defined()) w.put_tensor(s.foreign);
  return std::move(w.buf);
}

IslandState unpack_state(const std::vector<char>& b) {
  Reader r(b);
  IslandState s;
  s.island = r.get<std::int64_t>();
  s.generation = r.get<std::int64_t>();
  s.population = r.get_tensor();
  s.fitness = r.get_tensor();
  s.uid = r.get_vector<std::uint64_t>();
  s.born = r.get_vector<std::int32_t>();
  s.next_serial = r.get<std::uint64_t>();
  s.op_weights = r.get_vector<double>();
  s.sigma = r.get<double>();
  s.evaluations = r.get<std::int64_t>();
  s.nonfinite = r.get<std::int64_t>();
  s.seconds = r.get<double>();
  s.history = r.get_vector<HistoryRow>();
  if (r.get<std::int8_t>()) s.foreign = r.get_tensor();
  return s;
}

struct Migrant {
  std::int64_t source = 0, destination = 0, generation = 0;
  std::uint64_t uid = 0;
  double fitness = 0;
  at::Tensor genome;  // [n, d]
};

std::vector<char> pack_migrant(const Migrant& m) {
  Writer w;
  w.put(m.source);
  w.put(m.destination);
  w.put(m.generation);
  w.put(m.uid);
  w.put(m.fitness);
  w.put_tensor(m.genome.to(at::kFloat));
  return std::move(w.buf);
}

Migrant unpack_migrant(const std::vector<char>& b) {
  Reader r(b);
  Migrant m;
  m.source = r.get<std::int64_t>();
  m.destination = r.get<std::int64_t>();
  m.generation = r.get<std::int64_t>();
  m.uid = r.get<std::uint64_t>();
  m.fitness = r.get<double>();
  m.genome = r.get_tensor();
  return m;
}

std::vector<std::pair<std::int64_t, std::int64_t>> parse_edges(const std::string& text, std::vector<double>* weights,
                                                               std::int64_t n_islands) {
  std::vector<std::pair<std::int64_t, std::int64_t>> edges;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (item.empty()) continue;
    auto arrow = item.find("->");
    long long a = -1, b = -1;
    double w = 1.0;
    char extra = 0;
    bool ok = arrow != std::string::npos;
    if (ok) {
      auto colon = item.find(':', arrow);
      std::string dst = item.substr(arrow + 2, colon == std::string::npos ? std::string::npos : colon - arrow - 2);
      ok = std::sscanf(item.substr(0, arrow).c_str(), "%lld%c", &a, &extra) == 1 &&
           std::sscanf(dst.c_str(), "%lld%c", &b, &extra) == 1 &&
           (colon == std::string::npos || std::sscanf(item.substr(colon + 1).c_str(), "%lf%c", &w, &extra) == 1);
    }
    if (!ok) fail("option migration-edges: expected edges like '0->1, 1->2:0.5', found '", item, "'");
    if (a < 0 || b < 0 || a >= n_islands || b >= n_islands || a == b)
      fail("option migration-edges: edge '", item, "' must join two different islands in [0, ", n_islands, ")");
    if (!(w >= 0.0 && w <= 1.0)) fail("option migration-edges: weight of '", item, "' must lie in [0, 1], found ", w);
    edges.emplace_back(a, b);
    if (weights) weights->push_back(w);
  }
  if (edges.empty()) fail("option migration-edges: topology 'graph' needs at least one edge, found '", text, "'");
  return edges;
}

}  // namespace

void set_stall_seconds(double seconds) {
  if (!(seconds > 0)) fail("option stall-minutes: must be positive, found ", seconds / 60.0);
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

std::vector<std::string> topology_names() { return {"none", "ring", "full", "random", "graph"}; }

void validate(const MigrationConfig& c, std::int64_t n_islands) {
  auto names = topology_names();
  if (std::find(names.begin(), names.end(), c.topology) == names.end())
    fail("option topology: unknown topology '", c.topology, "'; known: none, ring, full, random, graph");
  if (c.interval < 0) fail("option migration-interval: must be >= 0 (0 = never), found ", c.interval);
  if (c.migrants < 1) fail("option migrants: must be >= 1, found ", c.migrants);
  if (c.topology == "graph") parse_edges(c.edges, nullptr, n_islands);
  else if (!c.edges.empty()) fail("option migration-edges: only used with topology=graph, found topology=", c.topology);
}

std::vector<std::pair<std::int64_t, std::int64_t>> migration_edges(const MigrationConfig& c, std::int64_t n,
                                                                   std::uint64_t seed, std::int64_t generation) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  if (n < 2 || c.topology == "none") return out;
  if (c.topology == "ring") {
    for (std::int64_t i = 0; i < n; ++i) out.emplace_back(i, (i + 1) % n);
  } else if (c.topology == "full") {
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        if (i != j) out.emplace_back(i, j);
  } else if (c.topology == "random") {  // each island sends to one other, re-drawn per migration
    auto gen = make_generator(seed, Stream::migration, {static_cast<std::uint64_t>(generation)});
    auto pick = at::randint(n - 1, {n}, gen, at::TensorOptions().dtype(at::kLong));
    for (std::int64_t i = 0; i < n; ++i) {
      auto j = pick[i].item<std::int64_t>();
      out.emplace_back(i, j >= i ? j + 1 : j);
    }
  } else if (c.topology == "graph") {
    std::vector<double> w;
    auto edges = parse_edges(c.edges, &w, n);
    auto gen = make_generator(seed, Stream::migration, {static_cast<std::uint64_t>(generation)});
    auto u = at::rand({static_cast<std::int64_t>(edges.size())}, gen, at::TensorOptions().dtype(at::kDouble));
    for (std::size_t e = 0; e < edges.size(); ++e)
      if (u[static_cast<std::int64_t>(e)].item<double>() < w[e]) out.push_back(edges[e]);
  } else {
    fail("option topology: unknown topology '", c.topology, "'");
  }
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
  Sends sends;                                   // this rank's progress messages (buffers kept until sent)
  std::map<std::int64_t, std::vector<std::vector<char>>> reports;  // rank 0: generation -> items so far
  std::vector<std::int64_t> posted;              // rank 0: generations announced, oldest first
  std::vector<std::pair<MPI_Request, std::unique_ptr<std::uint32_t[]>>> agreements;  // in flight: request, {in, out}
};

Archipelago::Archipelago(MPI_Comm comm, std::int64_t n_islands, SearchConfig search, MigrationConfig migration,
                         const Fitness& fitness, const SearchContext& context)
    : comm_(comm), n_islands_(n_islands), search_(std::move(search)), migration_(std::move(migration)),
      fitness_(fitness), context_(context), algorithm_(make_algorithm(search_)), pending_(std::make_shared<Pending>()) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  if (n_islands_ < 1) fail("option islands: must be >= 1, found ", n_islands_);
  if (n_islands_ < size_)
    fail("option islands: ", n_islands_, " islands cannot occupy ", size_, " ranks (every rank hosts at least one)");
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
  auto edges = migration_edges(migration_, n_islands_, search_.seed, generation_);
  // Emigrants are chosen from the state before any island receives (order-independent).
  std::map<std::int64_t, std::vector<Migrant>> out;
  for (const auto& s : islands_) {
    auto k = std::min<std::int64_t>(migration_.migrants, s.population.size(0) - 1);
    auto top = std::get<1>(s.fitness.topk(k));
    for (std::int64_t j = 0; j < k; ++j) {
      auto idx = top[j].item<std::int64_t>();
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
      else sends.post(comm_, pack_migrant(m), rank_of(dst, size_), static_cast<int>(dst));
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
        auto m = unpack_migrant(receive(comm_, rank_of(src, size_), static_cast<int>(dst), "migrants"));
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
  auto& p = *pending_;
  for (const auto& s : islands_) {
    Writer w;
    const auto& h = s.history.back();
    w.put(generation_);
    w.put(s.island);
    w.put(h.best);
    w.put(h.mean);
    w.put(h.heldout);
    w.put(h.evaluations);
    w.put(h.nonfinite);
    w.put<std::int8_t>(with_diversity ? 1 : 0);
    if (with_diversity) w.put_tensor(s.population[s.best_index()].index_select(0, context_.probe));  // probe rows only
    if (rank_ == 0) p.reports[generation_].push_back(std::move(w.buf));
    else p.sends.post(comm_, std::move(w.buf), 0, kTagBests);
  }
  if (rank_ == 0) p.posted.push_back(generation_);
}

std::vector<Progress> Archipelago::poll_progress(bool wait) {
  Timer timer(mpi_seconds_);
  auto& p = *pending_;
  if (wait) {
    for (auto& a : p.agreements) wait_request(&a.first, "the stop/checkpoint agreement");
    p.agreements.clear();
  }
  if (rank_ != 0) {
    if (wait) p.sends.wait("progress reports to reach rank 0");
    else p.sends.reap();
    return {};
  }
  auto complete = [&](std::int64_t g) {
    return static_cast<std::int64_t>(p.reports[g].size()) == n_islands_;
  };
  for (;;) {  // take what has arrived; when waiting, until the newest posted generation is complete
    int flag = 0;
    MPI_Message msg;
    MPI_Status status;
    const bool need = wait && !p.posted.empty() && !complete(p.posted.back());
    auto probe = [&] {
      check(MPI_Improbe(MPI_ANY_SOURCE, kTagBests, comm_, &flag, &msg, &status), "MPI_Improbe");
      return flag != 0;
    };
    if (need) wait_until(probe, "progress reports from the other ranks");
    else if (!probe()) break;
    std::vector<char> buf = receive_message(&msg, &status, "a progress report");
    Reader r(buf);
    p.reports[r.get<std::int64_t>()].push_back(std::move(buf));
  }
  std::vector<Progress> out;
  while (!p.posted.empty() && complete(p.posted.front())) {
    const auto g = p.posted.front();
    p.posted.erase(p.posted.begin());
    auto items = std::move(p.reports[g]);
    p.reports.erase(g);
    Progress pr;
    pr.generation = g;
    pr.best = pr.heldout = -std::numeric_limits<double>::infinity();
    pr.diversity = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::pair<std::int64_t, at::Tensor>> bests;
    for (const auto& b : items) {
      Reader r(b);
      r.get<std::int64_t>();
      const auto island = r.get<std::int64_t>();
      double best = r.get<double>(), mean = r.get<double>(), held = r.get<double>();
      pr.best = std::max(pr.best, best);
      pr.mean += mean / static_cast<double>(items.size());
      pr.heldout = std::max(pr.heldout, held);
      pr.evaluations += r.get<std::int64_t>();
      pr.nonfinite += r.get<std::int64_t>();
      if (r.get<std::int8_t>()) bests.emplace_back(island, r.get_tensor());
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

std::uint32_t Archipelago::agreed(std::uint32_t flags) {
  Timer timer(mpi_seconds_);
  auto& pending = pending_->agreements;
  auto v = std::make_unique<std::uint32_t[]>(2);
  v[0] = flags;
  v[1] = 0;
  pending.emplace_back(MPI_REQUEST_NULL, std::move(v));
  auto& [req, buf] = pending.back();
  check(MPI_Iallreduce(&buf[0], &buf[1], 1, MPI_UINT32_T, MPI_BOR, comm_, &req), "MPI_Iallreduce");
  if (static_cast<int>(pending.size()) <= kAgreeLag) return 0;
  wait_request(&pending.front().first, "the stop/checkpoint agreement");
  const auto out = pending.front().second[1];
  pending.erase(pending.begin());
  return out;
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
      [&](std::size_t i) { return pack_state(islands_[i]); }, [&](std::size_t i) { write(islands_[i]); },
      [&](std::vector<char> b) { write(unpack_state(b)); });
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
  if (k < 1) fail("option elites: must be >= 1, found ", k);
  const bool diverse = selection.mode == "diverse";
  if (!diverse && selection.mode != "top") fail("option elite-selection: must be top or diverse, found '", selection.mode, "'");
  if (!(selection.tolerance >= 0)) fail("option elite-tolerance: must be >= 0, found ", selection.tolerance);
  std::vector<std::vector<char>> items;
  for (const auto& s : islands_) {
    // diverse: a wider pool per island (4k by fitness) to choose far-apart elites from
    auto m = std::min<std::int64_t>(diverse ? 4 * k : k, s.population.size(0));
    auto top = std::get<1>(s.fitness.topk(m));
    auto cand = s.population.index_select(0, top.to(s.population.device()));
    auto held = fitness_.heldout(cand);
    for (std::int64_t j = 0; j < m; ++j) {
      auto idx = top[j].item<std::int64_t>();
      Writer w;
      w.put(held[j].item<double>());
      w.put(s.fitness[idx].item<double>());
      w.put(static_cast<std::int32_t>(s.island));
      w.put(s.born[static_cast<std::size_t>(idx)]);
      w.put(s.uid[static_cast<std::size_t>(idx)]);
      w.put_tensor(cand[j]);
      items.push_back(std::move(w.buf));
    }
  }
  auto all = gather_items(comm_, std::move(items), kTagElites, "the elites (archive gather)");
  Elites e;
  if (rank_ != 0) return e;
  auto c_probe = [&](const at::Tensor& z) { return z.index_select(0, context_.probe.cpu()); };
  struct Cand {
    double held, fit;
    std::int32_t island, born;
    std::uint64_t uid;
    at::Tensor z;
  };
  std::vector<Cand> cands;
  for (const auto& b : all) {
    Reader r(b);
    Cand c;
    c.held = r.get<double>();
    c.fit = r.get<double>();
    c.island = r.get<std::int32_t>();
    c.born = r.get<std::int32_t>();
    c.uid = r.get<std::uint64_t>();
    c.z = r.get_tensor();
    cands.push_back(std::move(c));
  }
  // Best held-out first; ties broken by island then uid so the order never depends on ranks.
  std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    return std::tie(b.held, a.island, a.uid) < std::tie(a.held, b.island, b.uid);
  });
  {  // a migrant's copies: keep the best
    std::vector<Cand> unique;
    std::vector<std::uint64_t> seen;
    for (auto& c : cands) {
      if (std::find(seen.begin(), seen.end(), c.uid) != seen.end()) continue;
      seen.push_back(c.uid);
      unique.push_back(std::move(c));
    }
    cands = std::move(unique);
  }
  std::vector<std::size_t> chosen;
  if (diverse && !cands.empty()) {
    std::size_t within = 0;  // candidates within the tolerance of the best (a prefix: sorted by held-out)
    while (within < cands.size() && cands[within].held >= cands.front().held - selection.tolerance) ++within;
    std::vector<at::Tensor> probes;
    for (std::size_t i = 0; i < within; ++i) probes.push_back(c_probe(cands[i].z));
    for (auto i : furthest_apart(cka_distance_matrix(at::stack(probes)), k)) chosen.push_back(static_cast<std::size_t>(i));
    for (std::size_t i = within; i < cands.size() && static_cast<std::int64_t>(chosen.size()) < k; ++i) chosen.push_back(i);
    std::sort(chosen.begin(), chosen.end());  // best held-out first
    e.selection = "diverse tolerance=" + std::to_string(selection.tolerance) + " within=" + std::to_string(within);
  } else {
    for (std::size_t i = 0; i < cands.size() && static_cast<std::int64_t>(chosen.size()) < k; ++i) chosen.push_back(i);
    e.selection = "top";
  }
  std::vector<at::Tensor> zs;
  for (auto i : chosen) {
    const auto& c = cands[i];
    zs.push_back(c.z);
    e.heldout.push_back(c.held);
    e.fitness.push_back(c.fit);
    e.island.push_back(c.island);
    e.generation.push_back(c.born);
    e.uid.push_back(c.uid);
  }
  e.representations = at::stack(zs).to(at::kFloat).contiguous();
  e.cka = linear_cka_matrix(e.representations);
  if (fitness_.can_predict()) {
    auto dev = context_.x_search.device();
    auto all_v = at::arange(context_.val_pool, at::TensorOptions().dtype(at::kLong));
    e.disagreement = disagreement_matrix(fitness_.predict(e.representations.to(dev), all_v));
  }
  return e;
}
}  // namespace repsearch::mpi
