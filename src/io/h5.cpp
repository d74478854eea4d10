// HDF5 archives and checkpoints (layouts in README.md, "Archive" and "Resume"), written and read through the
// RAII layer over the HDF5 C API in h5_detail.hpp: every hid_t/herr_t is checked and a failure
// becomes a repsearch::Error naming the file, the object and HDF5's most specific reason. Writes are
// atomic (`<path>.tmp-<pid>`, flushed, fsync'ed, renamed onto `path`).
#include <hdf5.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <cstdint>
#include <set>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "h5_detail.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"

namespace repsearch::io {

using namespace detail;
namespace fs = std::filesystem;

namespace {

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

constexpr const char* kCheckpointRng =
    "counter-based: every stream derives from (seed, island, generation); no generator state";

// The root attributes of a checkpoint as one text, whose CRC-32 is stored beside them: strings live in
// HDF5's global heap, which carries no checksum of its own.
std::uint64_t header_crc(const Provenance& p, std::int64_t generation) {
  std::string t;
  for (const std::string* f : {&p.repsearch_version, &p.git_commit, &p.created, &p.command_line, &p.config,
                               &p.config_sha256, &p.hosts, &p.devices, &p.fitness, &p.fitness_parameters})
    t += *f + '\x1f';
  t += std::to_string(p.seed) + '\x1f' + std::to_string(p.n_islands) + '\x1f' + std::to_string(p.n_ranks) + '\x1f' +
       std::to_string(generation);
  return crc32_of(t.data(), t.size());
}

template <class T, class F>
std::vector<T> column(const std::vector<HistoryRow>& rows, F field) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (const HistoryRow& row : rows) out.push_back(field(row));
  return out;
}

void write_history(Writer& w, const std::string& group, const std::vector<HistoryRow>& rows) {
  w.group(group);
  using R = const HistoryRow&;
  w.vector(group + "/generation", column<std::int64_t>(rows, [](R r) { return r.generation; }));
  w.vector(group + "/best", column<double>(rows, [](R r) { return r.best; }));
  w.vector(group + "/mean", column<double>(rows, [](R r) { return r.mean; }));
  w.vector(group + "/std", column<double>(rows, [](R r) { return r.std; }));
  w.vector(group + "/heldout", column<double>(rows, [](R r) { return r.heldout; }));
  w.vector(group + "/diversity", column<double>(rows, [](R r) { return r.diversity; }));
  w.vector(group + "/disagreement", column<double>(rows, [](R r) { return r.disagreement; }));
  w.vector(group + "/evaluations", column<std::int64_t>(rows, [](R r) { return r.evaluations; }));
  w.vector(group + "/seconds", column<double>(rows, [](R r) { return r.seconds; }));
  w.vector(group + "/nonfinite", column<std::int64_t>(rows, [](R r) { return r.nonfinite; }));
}

void write_migrations(Writer& w, const std::vector<MigrationEvent>& events) {
  w.group("/migrations");
  std::vector<std::int64_t> generation, source, destination;
  std::vector<std::uint64_t> uid;
  std::vector<double> fitness;
  for (const MigrationEvent& e : events) {
    generation.push_back(e.generation);
    source.push_back(e.source);
    destination.push_back(e.destination);
    uid.push_back(e.uid);
    fitness.push_back(e.fitness);
  }
  w.vector("/migrations/generation", generation);
  w.vector("/migrations/source", source);
  w.vector("/migrations/destination", destination);
  w.vector("/migrations/uid", uid);
  w.vector("/migrations/fitness", fitness);
}

std::vector<HistoryRow> read_history(const Reader& r, const std::string& group) {
  r.group(group);  // a clear "missing group" before any missing column
  const auto generation = r.vector<std::int64_t>(group + "/generation");
  const auto best = r.vector<double>(group + "/best");
  const auto mean = r.vector<double>(group + "/mean");
  const auto stdev = r.vector<double>(group + "/std");
  const auto heldout = r.vector<double>(group + "/heldout");
  const auto diversity = r.vector<double>(group + "/diversity");
  const auto evaluations = r.vector<std::int64_t>(group + "/evaluations");
  const auto seconds = r.vector<double>(group + "/seconds");
  const auto nonfinite = r.vector<std::int64_t>(group + "/nonfinite");
  const std::size_t n = generation.size();
  // Optional: files written before the functional diversity existed read as NaN (not computed).
  auto disagreement = r.exists(group + "/disagreement") ? r.vector<double>(group + "/disagreement")
                                                         : std::vector<double>(n, std::numeric_limits<double>::quiet_NaN());
  require_columns(r, group, n,
                  {{"generation", n}, {"best", best.size()}, {"mean", mean.size()}, {"std", stdev.size()},
                   {"heldout", heldout.size()}, {"diversity", diversity.size()}, {"evaluations", evaluations.size()},
                   {"seconds", seconds.size()}, {"nonfinite", nonfinite.size()}, {"disagreement", disagreement.size()}});
  std::vector<HistoryRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    rows[i].generation = generation[i];
    rows[i].best = best[i];
    rows[i].mean = mean[i];
    rows[i].std = stdev[i];
    rows[i].heldout = heldout[i];
    rows[i].diversity = diversity[i];
    rows[i].disagreement = disagreement[i];
    rows[i].evaluations = evaluations[i];
    rows[i].seconds = seconds[i];
    rows[i].nonfinite = nonfinite[i];
  }
  return rows;
}

std::vector<MigrationEvent> read_migrations(const Reader& r) {
  r.group("/migrations");
  const auto generation = r.vector<std::int64_t>("/migrations/generation");
  const auto source = r.vector<std::int64_t>("/migrations/source");
  const auto destination = r.vector<std::int64_t>("/migrations/destination");
  const auto uid = r.vector<std::uint64_t>("/migrations/uid");
  const auto fitness = r.vector<double>("/migrations/fitness");
  const std::size_t m = generation.size();
  require_columns(r, "/migrations", m,
                  {{"generation", m}, {"source", source.size()}, {"destination", destination.size()},
                   {"uid", uid.size()}, {"fitness", fitness.size()}});
  std::vector<MigrationEvent> events(m);
  for (std::size_t i = 0; i < m; ++i) events[i] = {generation[i], source[i], destination[i], uid[i], fitness[i]};
  return events;
}

// The island indices named by the groups under /islands, sorted.
std::vector<std::int64_t> island_indices(const Reader& r) {
  std::vector<std::int64_t> indices;
  for (const std::string& name : r.children("/islands")) {
    const bool digits = !name.empty() && name.size() <= 18 &&
                        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::to_string(std::stoll(name)) != name)
      fail(r.label(), ": unexpected object /islands/", name, " (expected groups named by decimal island index)");
    indices.push_back(std::stoll(name));
  }
  std::sort(indices.begin(), indices.end());
  return indices;
}

std::string archive_label(const std::string& path) { return "archive " + path; }
std::string checkpoint_label(const std::string& path) { return "checkpoint " + path; }

}  // namespace

// ---- archive --------------------------------------------------------------------------------------

void write_archive(const std::string& path, const Archive& a) try {
  const std::string label = archive_label(path);
  write_atomically(path, label, [&](Writer& w) {
    {
      Handle root = w.open_group("/");
      write_provenance(w, root.get(), kArchiveFormat, a.provenance, kFormatVersion);
    }
    // Each section is validated as it is written: a failure midway removes the temporary file.
    require_rank(label, "search_indices", a.search_indices, 1, "int64 [n_s]");
    require_rank(label, "search_labels", a.search_labels, 1, "int32 [n_s]");
    require_rank(label, "val_indices", a.val_indices, 1, "int64 [n_val]");
    require_rank(label, "heldout_indices", a.heldout_indices, 1, "int64 [n_heldout]");
    const std::int64_t n_s = a.search_indices.size(0);
    require_length(label, "search_labels", a.search_labels.size(0), n_s, "one label per search index");
    write_data_group(w, a.dataset, a.data_dir, a.normalisation);
    w.tensor("/data/search_indices", a.search_indices, at::kLong);
    w.tensor("/data/search_labels", a.search_labels, at::kInt);
    w.tensor("/data/val_indices", a.val_indices, at::kLong);
    w.tensor("/data/heldout_indices", a.heldout_indices, at::kLong);
    write_data_identity(w, a.provenance.data);

    require_rank(label, "representations", a.representations, 3, "float32 [k, n_s, d]");
    const std::int64_t k = a.representations.size(0);
    require_length(label, "representations (axis 1)", a.representations.size(1), n_s,
                   "n_s, the length of search_indices");
    require_rank(label, "fitness", a.fitness, 1, "float64 [k]");
    require_rank(label, "heldout", a.heldout, 1, "float64 [k]");
    require_rank(label, "island", a.island, 1, "int32 [k]");
    require_rank(label, "generation", a.generation, 1, "int32 [k]");
    require_rank(label, "cka", a.cka, 2, "float64 [k, k]");
    require_length(label, "fitness", a.fitness.size(0), k, "one per elite");
    require_length(label, "heldout", a.heldout.size(0), k, "one per elite");
    require_length(label, "island", a.island.size(0), k, "one per elite");
    require_length(label, "generation", a.generation.size(0), k, "one per elite");
    require_length(label, "uid", static_cast<std::int64_t>(a.uid.size()), k, "one per elite");
    require_length(label, "cka (rows)", a.cka.size(0), k, "one per elite");
    require_length(label, "cka (columns)", a.cka.size(1), k, "one per elite");
    w.group("/elites");
    w.tensor("/elites/representations", a.representations, at::kFloat, /*compress_rows=*/true);
    w.tensor("/elites/fitness", a.fitness, at::kDouble);
    w.tensor("/elites/heldout", a.heldout, at::kDouble);
    w.tensor("/elites/island", a.island, at::kInt);
    w.tensor("/elites/generation", a.generation, at::kInt);
    w.vector("/elites/uid", a.uid);
    w.tensor("/elites/cka", a.cka, at::kDouble);
    if (a.disagreement.defined()) {
      require_length(label, "disagreement (rows)", a.disagreement.size(0), k, "one per elite");
      w.tensor("/elites/disagreement", a.disagreement, at::kDouble);
    }
    if (!a.elite_selection.empty()) {
      Handle g = w.open_group("/elites");
      w.attr_string(g.get(), "/elites", "selection", a.elite_selection);
    }

    w.group("/islands");
    for (std::size_t i = 0; i < a.histories.size(); ++i) {
      const std::string group = "/islands/" + std::to_string(i);
      w.group(group);
      write_history(w, group + "/history", a.histories[i]);
    }
    write_migrations(w, a.migrations);
  });
} catch (...) {
  detail::rethrow_as_output(path);
}

Archive read_archive(const std::string& path) try {
  const std::string label = archive_label(path);
  Handle file = open_for_read(path, label, kArchiveFormat);
  const Reader r(file.get(), label);
  check_format(r, kArchiveFormat, "archive", kFormatVersion);
  Archive a;
  a.provenance = read_provenance(r);
  read_data_group(r, a.dataset, a.data_dir, a.normalisation);
  a.search_indices = r.tensor("/data/search_indices", at::kLong, 1, "[n_s]");
  a.search_labels = r.tensor("/data/search_labels", at::kInt, 1, "[n_s]");
  a.val_indices = r.tensor("/data/val_indices", at::kLong, 1, "[n_val]");
  a.heldout_indices = r.tensor("/data/heldout_indices", at::kLong, 1, "[n_heldout]");
  a.provenance.data = read_data_identity(r);
  const std::int64_t n_s = a.search_indices.size(0);
  require_size(r, "/data/search_labels", a.search_labels.size(0), n_s, "n_s, the length of /data/search_indices");

  r.group("/elites");
  a.representations = r.tensor("/elites/representations", at::kFloat, 3, "[k, n_s, d]");
  const std::int64_t k = a.representations.size(0);
  require_size(r, "/elites/representations", a.representations.size(1), n_s,
               "axis 1 is n_s, the length of /data/search_indices");
  a.fitness = r.tensor("/elites/fitness", at::kDouble, 1, "[k]");
  a.heldout = r.tensor("/elites/heldout", at::kDouble, 1, "[k]");
  a.island = r.tensor("/elites/island", at::kInt, 1, "[k]");
  a.generation = r.tensor("/elites/generation", at::kInt, 1, "[k]");
  a.uid = r.vector<std::uint64_t>("/elites/uid");
  a.cka = r.tensor("/elites/cka", at::kDouble, 2, "[k, k]");
  const char* per_elite = "k, the number of elites in /elites/representations";
  require_size(r, "/elites/fitness", a.fitness.size(0), k, per_elite);
  require_size(r, "/elites/heldout", a.heldout.size(0), k, per_elite);
  require_size(r, "/elites/island", a.island.size(0), k, per_elite);
  require_size(r, "/elites/generation", a.generation.size(0), k, per_elite);
  require_size(r, "/elites/uid", static_cast<std::int64_t>(a.uid.size()), k, per_elite);
  require_size(r, "/elites/cka", a.cka.size(0), k, per_elite);
  require_size(r, "/elites/cka", a.cka.size(1), k, per_elite);
  if (r.exists("/elites/disagreement")) {
    a.disagreement = r.tensor("/elites/disagreement", at::kDouble, 2, "[k, k]");
    require_size(r, "/elites/disagreement", a.disagreement.size(0), k, per_elite);
    require_size(r, "/elites/disagreement", a.disagreement.size(1), k, per_elite);
  }
  {
    Handle g = r.group("/elites");
    if (H5Aexists(g.get(), "selection") > 0) a.elite_selection = r.attr_string(g.get(), "/elites", "selection");
  }

  const std::vector<std::int64_t> islands = island_indices(r);
  for (std::size_t i = 0; i < islands.size(); ++i)
    if (islands[i] != static_cast<std::int64_t>(i))
      fail(label, ": /islands holds groups ", join(islands), ", expected 0..", islands.size() - 1);
  for (std::size_t i = 0; i < islands.size(); ++i)
    a.histories.push_back(read_history(r, "/islands/" + std::to_string(i) + "/history"));
  a.migrations = read_migrations(r);
  return a;
} catch (...) {
  detail::rethrow_as_input(path);
}

// ---- checkpoint -----------------------------------------------------------------------------------

std::string previous_checkpoint(const std::string& path) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + ".prev" + p.extension().string())).string();
}

struct CheckpointWriter::Impl {
  std::string path, label;
  std::int64_t generation = 0;
  std::set<std::int64_t> seen;
  std::unique_ptr<AtomicFile> file;
};

CheckpointWriter::CheckpointWriter(const std::string& path, const Provenance& provenance, std::int64_t generation)
    try : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->label = checkpoint_label(path);
  impl_->generation = generation;
  AtomicWrite how;
  how.checksums = how.metadata_checksums = true;
  const std::string label = impl_->label;
  how.verify = [label](const std::string& temp) {  // read back in full, one island at a time
    try {
      verify_checkpoint(temp);
    } catch (const Error& e) {
      fail(label, ": the new checkpoint did not read back intact, so it was not used (", e.what(), ")");
    }
  };
  how.keep_previous = previous_checkpoint(path);
  impl_->file = std::make_unique<AtomicFile>(path, impl_->label, how);
  Writer& w = impl_->file->writer();
  {
    Handle root = w.open_group("/");
    write_provenance(w, root.get(), kCheckpointFormat, provenance, kCheckpointFormatVersion);
    w.attr<std::int64_t>(root.get(), "/", "generation", generation);
    w.attr<std::uint64_t>(root.get(), "/", "header_crc32", header_crc(provenance, generation));
    w.attr_string(root.get(), "/", "rng", kCheckpointRng);
    w.attr<std::int64_t>(root.get(), "/", "pending_migrants", 0);
  }
  write_data_identity(w, provenance.data);
  w.group("/islands");
} catch (...) {
  detail::rethrow_as_output(path);
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::add(const IslandState& s) try {
  const std::string& label = impl_->label;
  if (!impl_->file) fail(label, ": cannot add island ", s.island, " after finish()");
  if (s.island < 0) fail(label, ": cannot write: island index ", s.island, " is negative");
  if (!impl_->seen.insert(s.island).second) fail(label, ": cannot write: island ", s.island, " appears twice");
  if (s.generation != impl_->generation)
    fail(label, ": cannot write: island ", s.island, " is at generation ", s.generation, ", the checkpoint at ",
         impl_->generation, " (a checkpoint holds one generation for all islands)");
  const std::string group = "/islands/" + std::to_string(s.island);
  const std::string island = "island " + std::to_string(s.island) + " ";
  require_rank(label, (island + "population").c_str(), s.population, 3, "float32 [P, n, d]");
  const std::int64_t p = s.population.size(0);
  require_rank(label, (island + "fitness").c_str(), s.fitness, 1, "float64 [P]");
  require_length(label, (island + "fitness").c_str(), s.fitness.size(0), p, "one per individual");
  require_length(label, (island + "uid").c_str(), static_cast<std::int64_t>(s.uid.size()), p, "one per individual");
  require_length(label, (island + "born").c_str(), static_cast<std::int64_t>(s.born.size()), p, "one per individual");
  Writer& w = impl_->file->writer();
  Handle g = w.group(group);
  // The island's fields as for_each_island_field lists them (the MPI wire walks the same list):
  // scalars as attributes of the group, the rest as datasets; undefined tensors are left out.
  for_each_island_field(s, [&](const char* name, const auto& field) {
    using T = std::decay_t<decltype(field)>;
    const std::string path = group + "/" + name;
    if constexpr (std::is_same_v<T, at::Tensor>) {
      if (field.defined()) w.tensor(path, field, field.scalar_type());  // contiguous, unfiltered: speed
    } else if constexpr (std::is_same_v<T, std::vector<HistoryRow>>) {
      write_history(w, path, field);
    } else if constexpr (IsVector<T>::value) {
      w.vector(path, field);
    } else {
      w.attr<T>(g.get(), group, name, field);
    }
  });
} catch (...) {
  detail::rethrow_as_output(impl_->path);
}

void CheckpointWriter::finish(const std::vector<MigrationEvent>& migrations) try {
  if (!impl_->file) fail(impl_->label, ": finish() called twice");
  write_migrations(impl_->file->writer(), migrations);
  impl_->file->commit();
  impl_->file.reset();
} catch (...) {
  detail::rethrow_as_output(impl_->path);
}

void write_checkpoint(const std::string& path, const Checkpoint& c) {
  CheckpointWriter w(path, c.provenance, c.generation);
  for (const IslandState& s : c.islands) w.add(s);
  w.finish(c.migrations);
}

namespace {

Checkpoint read_header(const Reader& r) {
  const auto version = check_format(r, kCheckpointFormat, "checkpoint", kCheckpointFormatVersion, 1);
  Checkpoint c;
  c.provenance = read_provenance(r);
  Handle root = r.group("/");
  c.generation = r.attr<std::int64_t>(root.get(), "/", "generation");
  if (version >= 2 && r.attr<std::uint64_t>(root.get(), "/", "header_crc32") != header_crc(c.provenance, c.generation))
    fail(r.label(), ": the root attributes (config, provenance, generation) are corrupt: their CRC-32 differs from ",
         "header_crc32; the file was damaged after it was written");
  c.provenance.data = read_data_identity(r);
  return c;
}

IslandState read_island(const Reader& r, std::int64_t index, std::int64_t generation, const at::Device& device) {
  const std::string group = "/islands/" + std::to_string(index);
  IslandState s;
  {
    Handle g = r.group(group);
    for_each_island_field(s, [&](const char* name, auto& field) {  // the list the writer walks
      using T = std::decay_t<decltype(field)>;
      const std::string path = group + "/" + name;
      if constexpr (std::is_same_v<T, at::Tensor>) {
        if (r.exists(path)) field = read_any(r, path);  // optional ones (foreign) may be absent
      } else if constexpr (std::is_same_v<T, std::vector<HistoryRow>>) {
        field = read_history(r, path);
      } else if constexpr (IsVector<T>::value) {
        field = r.vector<typename T::value_type>(path);
      } else {
        field = r.attr<T>(g.get(), group, name);
      }
    });
  }
  if (s.island != index)
    fail(r.label(), ": group ", group, " says island=", s.island, ", expected ", index, " (its name)");
  if (s.generation != generation)
    fail(r.label(), ": island ", index, " is at generation ", s.generation, ", the checkpoint at ", generation,
         ": an inconsistent checkpoint");
  auto expect = [&](const at::Tensor& t, const char* name, at::ScalarType type, std::int64_t rank, const char* shape) {
    if (!t.defined()) fail(r.label(), ": missing dataset ", group, "/", name);
    if (t.scalar_type() != type || t.dim() != rank)
      fail(r.label(), ": dataset ", group, "/", name, " holds ", t.scalar_type(), " ", t.sizes(), ", expected ", type, " ", shape);
  };
  expect(s.population, "population", at::kFloat, 3, "[P, n, d]");
  expect(s.fitness, "fitness", at::kDouble, 1, "[P]");
  if (s.foreign.defined()) expect(s.foreign, "foreign", at::kFloat, 3, "[R, m, d]");
  const at::Tensor population = s.population;
  const std::int64_t p = population.size(0);
  const char* per_individual = "P, the population size of its population dataset";
  require_size(r, group + "/fitness", s.fitness.size(0), p, per_individual);
  require_size(r, group + "/uid", static_cast<std::int64_t>(s.uid.size()), p, per_individual);
  require_size(r, group + "/born", static_cast<std::int64_t>(s.born.size()), p, per_individual);
  if (s.foreign.defined()) s.foreign = s.foreign.to(device);
  // A population the search could not have made (it would overflow the fitness's float32 products).
  const double largest = population.numel() > 0 ? population.abs().max().item<double>() : 0.0;
  if (!(largest < 1e18))
    fail(r.label(), ": dataset ", group, "/population holds ", std::isfinite(largest) ? "values as large as " : "",
         std::isfinite(largest) ? std::to_string(largest) : "non-finite values", " (a damaged checkpoint)");
  if (s.fitness.numel() > 0 && (at::isnan(s.fitness).any().item<bool>() || (s.fitness == INFINITY).any().item<bool>()))
    fail(r.label(), ": dataset ", group, "/fitness holds NaN or +inf (a damaged checkpoint)");
  s.population = population.to(device);
  return s;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path, const std::vector<std::int64_t>& islands,
                           const at::Device& device) try {
  const std::string label = checkpoint_label(path);
  Handle file = open_for_read(path, label, kCheckpointFormat);
  const Reader probe(file.get(), label);
  const bool checksummed = check_format(probe, kCheckpointFormat, "checkpoint", kCheckpointFormatVersion, 1) >= 2;
  const Reader r(file.get(), label, checksummed);
  Checkpoint c = read_header(r);
  const std::vector<std::int64_t> available = island_indices(r);
  const std::vector<std::int64_t> wanted = islands.empty() ? available : islands;
  std::vector<std::int64_t> missing;
  for (std::int64_t i : wanted)
    if (!std::binary_search(available.begin(), available.end(), i)) missing.push_back(i);
  if (!missing.empty())
    fail(label, ": no island ", join(missing), " in this checkpoint (it holds islands ",
         available.empty() ? std::string("none") : join(available), ")");
  for (std::int64_t i : wanted) c.islands.push_back(read_island(r, i, c.generation, device));
  c.migrations = read_migrations(r);
  return c;
} catch (...) {
  detail::rethrow_as_input(path);
}

std::vector<std::int64_t> checkpoint_islands(const std::string& path) try {
  const std::string label = checkpoint_label(path);
  Handle file = open_for_read(path, label, kCheckpointFormat);
  const Reader r(file.get(), label);
  return island_indices(r);
} catch (...) {
  detail::rethrow_as_input(path);
}

Checkpoint verify_checkpoint(const std::string& path) {
  Checkpoint head = read_checkpoint_header(path);
  for (std::int64_t i : checkpoint_islands(path)) read_checkpoint(path, {i}, at::Device(at::kCPU));
  return head;
}

Checkpoint read_checkpoint_header(const std::string& path) try {
  const std::string label = checkpoint_label(path);
  Handle file = open_for_read(path, label, kCheckpointFormat);
  const Reader r(file.get(), label);
  return read_header(r);
} catch (...) {
  detail::rethrow_as_input(path);
}

}  // namespace repsearch::io

namespace repsearch::io {

std::string read_format(const std::string& path) try {
  using namespace detail;
  const std::string label = "file " + path;
  Handle file = open_for_read(path, label, "repsearch");
  const Reader r(file.get(), label);
  Handle root = r.group("/");
  const htri_t present = H5Aexists(root.get(), "format");
  if (present <= 0) return "";
  return r.attr_string(root.get(), "/", "format");
} catch (...) {
  detail::rethrow_as_input(path);
}

}  // namespace repsearch::io
