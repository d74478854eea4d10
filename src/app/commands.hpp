#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "repsearch/core/data.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/io/provenance.hpp"
#include "repsearch/io/rundir.hpp"
#include "repsearch/core/search_run.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/mpi/session.hpp"

#include <filesystem>
#include <memory>

namespace repsearch::app {

int cmd_data(const Options& options);
int cmd_learn(const Options& options);
int cmd_sgd(const Options& options);

// The data every command shares: splits from the seed, inputs standardised with training statistics.
struct Prepared {
  io::Dataset dataset;
  Splits splits;
  Standardiser standardiser;
  FitnessData fitness_data;  // S, V, H flattened to [n, D] on the device (when asked for)
  std::string normalisation;
};
// fitness_inputs: also build fitness_data (the search needs it; learn, sgd and data do not).
Prepared prepare(const Options& options, const at::Device& device, bool fitness_inputs = true);
void add_fitness_inputs(Prepared& prepared, const at::Device& device);

// The data identity of the prepared data (io/identity.hpp).
io::DataIdentity data_identity(const Prepared& prepared);
// Refuses (InputError about `file`) data whose identity differs from the one `file` records, naming
// each differing split, the file and the data directory (and REPSEARCH_DATA_DIR when it came from
// there). A file written before identities were recorded: a warning on stderr, and nothing checked.
void check_data_identity(const io::DataIdentity& recorded, const std::string& file, const Prepared& prepared,
                         const Options& options);
// The same for any identity `now` of the data in `data_dir` (the example space's searched examples).
void check_data_identity(const io::DataIdentity& recorded, const std::string& file, const io::DataIdentity& now,
                         const std::string& data_dir, const Options& options);

// A writer's hold on its outputs in `dir`, taken before any data is loaded: a RunLock per name in
// `locks` (io::kRunLockName: the whole directory; `<output>.lock`: one output, so that array tasks
// write other outputs beside it), the directory proven writable, and the temporaries of `files` left
// by killed writers removed (reported as "[tag] removed N temporary file(s)").
using OutputLocks = std::vector<std::unique_ptr<io::RunLock>>;
OutputLocks own_outputs(const std::filesystem::path& dir, const std::string& tag, const std::string& what,
                        const std::vector<std::string>& locks, const std::vector<std::string>& files);

void set_threads(int threads);  // LibTorch's pool and OpenBLAS's
int node_cores();
at::Device choose_device(const std::string& want, int local_rank);
std::string now_iso();
// Where a file written by this command comes from: version, commit, time, command line, resolved config.
io::Origin run_origin(const Options& options);
std::string tensor_list(const at::Tensor& t, int precision = 4);
int cmd_search(const Options& options);  // needs MPI initialised; dispatches to the space (space.hpp)

// The search's shared start (SearchStart, space.hpp) and run control.
void install_stop_handlers();
bool stop_requested();  // a stop signal was seen
std::unique_ptr<io::RunLock> own_run_dir(const std::filesystem::path& out, bool resume, bool overwrite, const std::string& what);
// Returns the checkpoint's header (its provenance holds the data identity to check once data is loaded).
io::Checkpoint check_resume_config(const Options& o, const std::string& ckpt_path);
// Collective (host and device names are gathered); complete on rank 0.
io::Provenance make_provenance(const Options& o, const mpi::Communicator& comm, const io::DataIdentity& data,
                               const std::string& fitness, const std::string& fitness_parameters,
                               const std::string& device);
RunControl run_control(const Options& o, const std::string& ckpt_path);
// The run's checkpoints go to the io layer's writer (rank 0).
struct CheckpointFile : CheckpointSink {
  io::CheckpointWriter writer;
  CheckpointFile(const std::string& path, const io::Provenance& prov, std::int64_t generation) : writer(path, prov, generation) {}
  void add(const IslandState& island) override { writer.add(island); }
  void finish(const std::vector<MigrationEvent>& migrations) override { writer.finish(migrations); }
};

// Before any work: every rank resolved the same config (an OptionError on rank 0 otherwise).
void check_ranks_agree(const Options& o, const mpi::Communicator& comm);
int cmd_inspect(const Options& options);
int cmd_config(const Options& options);  // the resolved options, as INI text or one value

// An error every rank found alike, which rank 0 reports: the others leave quietly (main).
struct ReportedByRankZero : Error {
  using Error::Error;
};

// Exit code of a search stopped by SIGTERM/SIGUSR1 after writing its checkpoint (EX_TEMPFAIL):
// schedulers requeue, `--resume` continues.
inline constexpr int kExitCheckpointed = 75;

}  // namespace repsearch::app
