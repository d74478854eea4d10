// HDF5 files of a search: the archive users inspect (layout in README.md, "Archive") and the checkpoint a
// search resumes from. Both are written to `<path>.tmp-<pid>` and renamed, so a reader never sees a
// half-written file and a crash mid-write leaves the previous file intact.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "repsearch/core/search.hpp"
#include "repsearch/io/provenance.hpp"

namespace repsearch::io {

inline constexpr const char* kArchiveFormat = "repsearch-archive";
inline constexpr const char* kCheckpointFormat = "repsearch-checkpoint";
inline constexpr std::int64_t kFormatVersion = 1;
// 2: a crc32 attribute on every dataset and checksummed HDF5 metadata; version 1 is still read.
inline constexpr std::int64_t kCheckpointFormatVersion = 2;

struct Archive {
  Provenance provenance;
  // /data
  std::string dataset, data_dir, normalisation;
  at::Tensor search_indices, val_indices, heldout_indices;  // int64
  at::Tensor search_labels;                                 // int32
  // /elites, ranked by held-out score (best first)
  at::Tensor representations;  // [k, n_s, d] float32
  at::Tensor fitness, heldout;  // [k] float64
  at::Tensor island, generation;  // [k] int32
  std::vector<std::uint64_t> uid;
  at::Tensor cka;  // [k, k] float64
  // Optional (absent in archives written before them; undefined / "" when absent):
  at::Tensor disagreement;  // [k, k] float64: share of V where two elites' readouts predict differently
  std::string elite_selection;  // attribute of /elites: how the elites were chosen ("top", "diverse ...")
  // /islands/<i>/history, index = island
  std::vector<std::vector<HistoryRow>> histories;
  // /migrations
  std::vector<MigrationEvent> migrations;
};

// The root `format` attribute of a repsearch HDF5 file ("" when absent); Error when not HDF5.
std::string read_format(const std::string& path);

void write_archive(const std::string& path, const Archive& archive);
// Refuses (repsearch::Error naming the path and what is missing/wrong) a file that is not HDF5, not a
// repsearch archive, of another format_version, or lacks a required group/dataset.
Archive read_archive(const std::string& path);

struct Checkpoint {
  Provenance provenance;
  std::int64_t generation = 0;          // every island is at this generation
  std::vector<IslandState> islands;     // all islands (write) or those asked for (read)
  std::vector<MigrationEvent> migrations;
};

// Writes `<path>.tmp-<pid>`, reads it back in full (checksums, finite values), then keeps the file it
// replaces as previous_checkpoint(path) and renames the new one onto `path`: a crash at any moment
// leaves a checkpoint that resumes at `path`, and a damaged new one never replaces a good one.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// The same, one island at a time (a rank gathering a checkpoint never holds every population): add()
// each island, then finish() with the migration log. Destroyed unfinished, it leaves `path` as it was.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::string& path, const Provenance& provenance, std::int64_t generation);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  void add(const IslandState& island);
  void finish(const std::vector<MigrationEvent>& migrations);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
// "<dir>/checkpoint.h5" -> "<dir>/checkpoint.prev.h5"
std::string previous_checkpoint(const std::string& path);
// Reads provenance, generation, migrations, and the states of `islands` (all when empty), placing
// populations on `device`. Refuses truncated, foreign or damaged files (a dataset whose CRC-32 differs
// from the one written, non-finite or overflowing populations) with a clear error.
Checkpoint read_checkpoint(const std::string& path, const std::vector<std::int64_t>& islands, const at::Device& device);
// The island indices a checkpoint holds, sorted.
std::vector<std::int64_t> checkpoint_islands(const std::string& path);
// Reads a whole checkpoint back, one island at a time (checksums, finite values), and returns its
// header; Error as read_checkpoint's when anything is damaged.
Checkpoint verify_checkpoint(const std::string& path);
// Provenance and generation only (cheap: for comparing configs before a resume).
Checkpoint read_checkpoint_header(const std::string& path);

}  // namespace repsearch::io
