// Search spaces: what `repsearch search` runs, what `repsearch data` shows and how `inspect` reads
// an archive. A space is a plain struct wrapped by value, as fitnesses, topologies and elite
// selections are, with one line in spaces() (src/app/space.cpp):
//   std::string name() const;
//   std::string summary() const;                                  // one line
//   int search(const Options&, SearchStart&) const;               // after the shared start; exit status
//   int data(const Options&) const;                               // `repsearch data`
//   nlohmann::json inspect(const std::string& archive, bool print) const;
//   std::int64_t damaged(const nlohmann::json& inspected) const;  // how many stored items inspect found damaged
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config.hpp"
#include "repsearch/core/data.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/rundir.hpp"
#include "repsearch/mpi/archipelago.hpp"
#include "repsearch/mpi/session.hpp"

namespace repsearch::app {

// What every search starts with, whatever its space: stop signals caught, MPI's communicator, threads
// and device chosen, the run directory owned (rank 0 holds its lock) and, on --resume, the
// checkpoint's config compared with this one, all before any data is loaded.
// The example space's searched examples: their training indices (from the seed and search-size),
// labels, and with `images` their standardised images [n, C, H, W] float32 CPU.
struct ExampleData {
  io::Dataset dataset;
  Standardiser standardiser;
  std::string normalisation;
  at::Tensor indices, labels, images;
};
ExampleData load_examples(const Options& o, bool images = true);

struct SearchStart {
  explicit SearchStart(const Options& o);
  std::chrono::steady_clock::time_point started;
  mpi::Communicator comm;
  mpi::NodePlace node;
  int threads = 1;
  at::Device device;
  std::filesystem::path out;
  std::string archive_path, ckpt_path;
  bool resume = false, overwrite = false;
  std::unique_ptr<io::RunLock> lock;
  io::Checkpoint head;  // --resume: the checkpoint's header (its config and data identity)
  std::string where() const;  // "2 rank(s), 1 thread(s)/rank, cpu"
};

class SearchSpace {
 public:
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, SearchSpace>>>
  SearchSpace(T impl) : self_(std::make_shared<Model<T>>(std::move(impl))) {}  // NOLINT: wrap by value
  std::string name() const { return self_->name(); }
  std::string summary() const { return self_->summary(); }
  int search(const Options& o, SearchStart& start) const { return self_->search(o, start); }
  int data(const Options& o) const { return self_->data(o); }
  nlohmann::json inspect(const std::string& archive, bool print) const { return self_->inspect(archive, print); }
  std::int64_t damaged(const nlohmann::json& inspected) const { return self_->damaged(inspected); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::string name() const = 0;
    virtual std::string summary() const = 0;
    virtual int search(const Options&, SearchStart&) const = 0;
    virtual int data(const Options&) const = 0;
    virtual nlohmann::json inspect(const std::string&, bool) const = 0;
    virtual std::int64_t damaged(const nlohmann::json&) const = 0;
  };
  template <class T>
  struct Model final : Concept {
    explicit Model(T v) : impl(std::move(v)) {}
    std::string name() const override { return impl.name(); }
    std::string summary() const override { return impl.summary(); }
    int search(const Options& o, SearchStart& s) const override { return impl.search(o, s); }
    int data(const Options& o) const override { return impl.data(o); }
    nlohmann::json inspect(const std::string& a, bool p) const override { return impl.inspect(a, p); }
    std::int64_t damaged(const nlohmann::json& j) const override { return impl.damaged(j); }
    T impl;
  };
  std::shared_ptr<const Concept> self_;
};

std::vector<std::string> search_space_names();
// The space called `name`; OptionError naming option `space` and the known names otherwise.
const SearchSpace& search_space(const std::string& name);

// The two spaces (src/app/commands.cpp: dataset; src/app/example_space.cpp: example).
struct DatasetSpace {
  std::string name() const { return "dataset"; }
  std::string summary() const { return "repsearch's own: one representation matrix Z for a search set at one cut layer"; }
  int search(const Options& o, SearchStart& start) const;
  int data(const Options& o) const;
  nlohmann::json inspect(const std::string& archive, bool print) const;
  std::int64_t damaged(const nlohmann::json& inspected) const;
};

struct ExampleSpace {
  std::string name() const { return "example"; }
  std::string summary() const {
    return "the paper's: every training example's activations, layer by layer, through a frozen untrained CNN";
  }
  int search(const Options& o, SearchStart& start) const;
  int data(const Options& o) const;
  nlohmann::json inspect(const std::string& archive, bool print) const;
  std::int64_t damaged(const nlohmann::json& inspected) const;
};

}  // namespace repsearch::app
