// The MPI wire of the archipelago (internal to src/mpi): checked calls, polled waits with the stall
// deadline, flat byte messages, non-blocking sends, gathers to rank 0, and the packed forms of island
// states, elite candidates and migrants.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/core/islands.hpp"
#include "repsearch/core/search.hpp"

namespace repsearch::mpi::wire {

inline void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail("[MPI] ", what, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
  }
}

inline double g_stall_seconds = 1800.0;

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

inline void wait_request(MPI_Request* req, const char* what) {
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

inline int rank_of(std::int64_t island, int ranks) { return static_cast<int>(island % ranks); }

inline std::vector<char> receive_message(MPI_Message* msg, MPI_Status* status, const char* what) {
  int count = 0;
  check(MPI_Get_count(status, MPI_BYTE, &count), "MPI_Get_count");
  std::vector<char> buf(static_cast<std::size_t>(count));
  MPI_Request req;
  check(MPI_Imrecv(buf.data(), count, MPI_BYTE, msg, &req), "MPI_Imrecv");
  wait_request(&req, what);
  return buf;
}

inline std::vector<char> receive(MPI_Comm comm, int source, int tag, const char* what) {
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
inline void stream_to_root(MPI_Comm comm, int tag, const char* what, std::size_t n_local,
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
inline std::vector<std::vector<char>> gather_items(MPI_Comm comm, std::vector<std::vector<char>> local, int tag,
                                            const char* what) {
  std::vector<std::vector<char>> all;
  stream_to_root(
      comm, tag, what, local.size(), [&](std::size_t i) { return std::move(local[i]); },
      [&](std::size_t i) { all.push_back(std::move(local[i])); },
      [&](std::vector<char> b) { all.push_back(std::move(b)); });
  return all;
}

// The lagged agreement on run-control flags: each call starts a bitwise OR over ranks of its flags and
// returns the OR started kLag calls earlier (0 before), so every rank acts at the same step without
// waiting for the others' current one. Every rank calls it at the same steps.
class Agreement {
 public:
  static constexpr int kLag = 3;
  std::uint32_t agree(MPI_Comm comm, std::uint32_t flags) {
    auto v = std::make_unique<std::uint32_t[]>(2);
    v[0] = flags;
    v[1] = 0;
    pending_.emplace_back(MPI_REQUEST_NULL, std::move(v));
    auto& [req, buf] = pending_.back();
    check(MPI_Iallreduce(&buf[0], &buf[1], 1, MPI_UINT32_T, MPI_BOR, comm, &req), "MPI_Iallreduce");
    if (static_cast<int>(pending_.size()) <= kLag) return 0;
    wait_request(&pending_.front().first, "the stop/checkpoint agreement");
    const auto out = pending_.front().second[1];
    pending_.erase(pending_.begin());
    return out;
  }
  void settle() {  // completes the agreements in flight (before the run's final collectives)
    for (auto& a : pending_) wait_request(&a.first, "the stop/checkpoint agreement");
    pending_.clear();
  }

 private:
  std::vector<std::pair<MPI_Request, std::unique_ptr<std::uint32_t[]>>> pending_;
};

// Progress reports to rank 0 that never hold a rank back: every rank posts its reports for a step and
// returns at once; rank 0 hands back a step's reports once `expected` of them have arrived, oldest
// first. Report: a message type with a `generation` field and a for_each_field schema.
template <class Report>
class ProgressChannel {
 public:
  ProgressChannel(int tag, std::int64_t expected) : tag_(tag), expected_(expected) {}
  void post(MPI_Comm comm, int rank, Report r);
  void posted(std::int64_t generation) { posted_.push_back(generation); }  // rank 0, after its own posts
  // rank 0: complete steps, oldest first; wait: until every announced step is complete (and, on other
  // ranks, until their reports are delivered).
  std::vector<std::vector<Report>> poll(MPI_Comm comm, int rank, bool wait);

 private:
  int tag_;
  std::int64_t expected_;
  Sends sends_;
  std::map<std::int64_t, std::vector<Report>> reports_;
  std::vector<std::int64_t> posted_;
};

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

constexpr int kTagStates = 32001, kTagEvents = 32002, kTagElites = 32003, kTagBests = 32004, kTagShards = 32005;

struct Migrant {
  std::int64_t source = 0, destination = 0, generation = 0;
  std::uint64_t uid = 0;
  double fitness = 0;
  at::Tensor genome;  // [n, d]
};

// One island's line of a generation's progress, for rank 0.
struct Report {
  std::int64_t generation = 0, island = 0;
  double best = 0, mean = 0, heldout = 0;
  std::int64_t evaluations = 0, nonfinite = 0;
  at::Tensor probe_best;  // the island best's probe rows; undefined when diversity is not computed
};

// One rank's line of an example search's progress, for rank 0.
struct ShardReport {
  std::int64_t generation = 0, rank = 0;       // generation: the run's step
  std::int64_t layer = -1, layer_generation = -1;  // where this rank's current unit stands (-1: none)
  std::int64_t examples = 0, units = 0;        // finished by this rank in this run
  std::int64_t evaluations = 0;                // cumulative, this run
  double mean_best_ce = 0;                     // of the current unit's layer (NaN: no unit)
};

// The one schema of every message: its fields in visit order (an island's are for_each_island_field's,
// which the checkpoint writes too). pack and unpack below serve them all.
template <class Message, class Visit>
void for_each_field(Message& m, Visit&& visit) {
  using T = std::remove_const_t<Message>;
  if constexpr (std::is_same_v<T, IslandState>) {
    for_each_island_field(m, visit);
  } else if constexpr (std::is_same_v<T, EliteCandidate>) {
    visit("heldout", m.heldout);
    visit("fitness", m.fitness);
    visit("island", m.island);
    visit("born", m.born);
    visit("uid", m.uid);
    visit("z", m.z);
  } else if constexpr (std::is_same_v<T, Migrant>) {
    visit("source", m.source);
    visit("destination", m.destination);
    visit("generation", m.generation);
    visit("uid", m.uid);
    visit("fitness", m.fitness);
    visit("genome", m.genome);
  } else if constexpr (std::is_same_v<T, ShardReport>) {
    visit("generation", m.generation);
    visit("rank", m.rank);
    visit("layer", m.layer);
    visit("layer_generation", m.layer_generation);
    visit("examples", m.examples);
    visit("units", m.units);
    visit("evaluations", m.evaluations);
    visit("mean_best_ce", m.mean_best_ce);
  } else {
    static_assert(std::is_same_v<T, Report>, "for_each_field: no schema for this type");
    visit("generation", m.generation);
    visit("island", m.island);
    visit("best", m.best);
    visit("mean", m.mean);
    visit("heldout", m.heldout);
    visit("evaluations", m.evaluations);
    visit("nonfinite", m.nonfinite);
    visit("probe_best", m.probe_best);
  }
}

// Tensors go with a flag (undefined ones are allowed), vectors with their length, the rest as bytes.
template <class Message>
std::vector<char> pack(const Message& m) {
  Writer w;
  for_each_field(m, [&](const char*, const auto& field) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, at::Tensor>) {
      w.put<std::int8_t>(field.defined() ? 1 : 0);
      if (field.defined()) w.put_tensor(field);
    } else if constexpr (IsVector<T>::value) {
      w.put_vector(field);
    } else {
      w.put(field);
    }
  });
  return std::move(w.buf);
}

template <class Message>
Message unpack(const std::vector<char>& b) {
  Reader r(b);
  Message m;
  for_each_field(m, [&](const char*, auto& field) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, at::Tensor>) {
      if (r.get<std::int8_t>()) field = r.get_tensor();
    } else if constexpr (IsVector<T>::value) {
      field = r.get_vector<typename T::value_type>();
    } else {
      field = r.get<T>();
    }
  });
  return m;
}

template <class Report>
void ProgressChannel<Report>::post(MPI_Comm comm, int rank, Report r) {
  if (rank == 0) reports_[r.generation].push_back(std::move(r));
  else sends_.post(comm, pack(r), 0, tag_);
}

template <class Report>
std::vector<std::vector<Report>> ProgressChannel<Report>::poll(MPI_Comm comm, int rank, bool wait) {
  if (rank != 0) {
    if (wait) sends_.wait("progress reports to reach rank 0");
    else sends_.reap();
    return {};
  }
  auto complete = [&](std::int64_t g) { return static_cast<std::int64_t>(reports_[g].size()) == expected_; };
  for (;;) {  // take what has arrived; when waiting, until the newest announced step is complete
    int flag = 0;
    MPI_Message msg;
    MPI_Status status;
    const bool need = wait && !posted_.empty() && !complete(posted_.back());
    auto probe = [&] {
      check(MPI_Improbe(MPI_ANY_SOURCE, tag_, comm, &flag, &msg, &status), "MPI_Improbe");
      return flag != 0;
    };
    if (need) wait_until(probe, "progress reports from the other ranks");
    else if (!probe()) break;
    auto r = unpack<Report>(receive_message(&msg, &status, "a progress report"));
    reports_[r.generation].push_back(std::move(r));
  }
  std::vector<std::vector<Report>> out;
  while (!posted_.empty() && complete(posted_.front())) {
    out.push_back(std::move(reports_[posted_.front()]));
    reports_.erase(posted_.front());
    posted_.erase(posted_.begin());
  }
  return out;
}

}  // namespace repsearch::mpi::wire
