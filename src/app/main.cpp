// repsearch: search representations with an island GA (MPI), learn networks from them, compare.
#include <malloc.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "space.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/mpi/session.hpp"

namespace {

const char* kUsage =
    "repsearch " REPSEARCH_VERSION " (" REPSEARCH_GIT_COMMIT ") — decoupled search and learning\n"
    "\n"
    "Usage: repsearch <command> [options]     (repsearch <command> --help for its options)\n"
    "\n"
    "Commands:\n"
    "  data      load the data set and print the search/validation/held-out splits\n"
    "  search    island-model GA over cut-layer representations (run under mpirun/srun for\n"
    "            several ranks); writes <out>/archive.h5 and <out>/checkpoint.h5\n"
    "  learn     train networks by regressing their cut layer onto an archive's elites\n"
    "            (--archive runs/x/archive.h5 --elite 0|0x<uid>|all)\n"
    "  sgd       the same network trained end to end (the baseline; --seeds 0..4, --data full)\n"
    "  inspect   summarise archives and results files; two results files: CKA of their\n"
    "            trajectories (--json for scripts)\n"
    "  config    print the options as every command resolves them (--get KEY for one value)\n"
    "\n"
    "Options come from INI files (--config configs/fashion_mnist.ini; later files win) and the command\n"
    "line, which wins over all. Exit status: 0 done, 2 error, 3 search stalled (a rank stopped or lost),\n"
    "75 search stopped by a signal after writing its checkpoint (continue with --resume).\n";

// What to lower when `command` runs out of memory: its own options.
std::string memory_advice(const std::string& command) {
  if (command == "search")
    return "lower --population, --search-size, --features, --dim or the islands per rank (--islands, or more ranks)";
  const std::string network = "lower --batch, --hidden (mlp) or --channels (cnn), --probe-size or --trajectory-points";
  if (command == "learn") return network + ", or use --extend none";
  if (command == "sgd") return network + ", or use --data search+val";
  return "free memory on this machine";
}

// A person's message for an exception: ours as is; LibTorch's without its C++ stack; an allocation
// failure as what to lower.
std::string describe(const std::exception& e, const std::string& command) {
  std::string msg = e.what();
  if (dynamic_cast<const repsearch::Error*>(&e) != nullptr) return msg;
  for (const char* cut : {"\nException raised from", "\nframe #"}) msg = msg.substr(0, msg.find(cut));
  const auto alloc = msg.find("you tried to allocate ");
  if (alloc != std::string::npos || dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    std::string bytes;
    if (alloc != std::string::npos) {
      const auto start = alloc + std::strlen("you tried to allocate ");
      bytes = msg.substr(start, msg.find(' ', start) - start);
    }
    return "out of memory" + (bytes.empty() ? std::string() : " (an allocation of " + bytes + " bytes failed)") + ": " +
           memory_advice(command);
  }
  return "internal error: " + msg;
}

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

// A search allocates and frees tensors of tens of MiB every generation: glibc would hand each back to
// the kernel (mmap/munmap, trimming) and fault it in again, zeroed, the next time; measured at 2.5x the
// example space's time on one thread. Keep freed memory in the process instead.
void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);  // no block of its own for big ones either: the heap keeps them for reuse
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
}

int main(int argc, char** argv) {
  keep_freed_memory();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "repsearch " REPSEARCH_VERSION " (" REPSEARCH_GIT_COMMIT ")\n";
    return 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  using repsearch::app::Options;
  std::optional<repsearch::mpi::Session> mpi;  // search only
  try {
    Options o = repsearch::app::parse_options(command, args);
    if (o.help) {
      std::cout << o.help_text;
      return 0;
    }
    if (command == "inspect") return repsearch::app::cmd_inspect(o);
    // learn and sgd validate once an archive's config is in
    if (command == "learn") return repsearch::app::cmd_learn(o);
    if (command == "sgd") return repsearch::app::cmd_sgd(o);
    repsearch::app::validate(o);
    repsearch::app::search_space(o.get<std::string>("space"));  // an unknown space: the registry's OptionError
    if (command == "config") return repsearch::app::cmd_config(o);
    if (command == "data") return repsearch::app::cmd_data(o);
    mpi.emplace(argc, argv);
    int rc = repsearch::app::cmd_search(o);
    mpi->finalize();
    return rc;
  } catch (const std::exception& e) {
    // Every failing rank says so itself, with its place: on a cluster the reason may exist on one node only.
    const bool stalled = dynamic_cast<const repsearch::Stalled*>(&e) != nullptr;
    const int code = stalled ? 3 : 2;
    if (mpi && dynamic_cast<const repsearch::app::ReportedByRankZero*>(&e) != nullptr) {
      mpi->finalize();  // waits there for rank 0's report and abort, so that one rank speaks
      return code;
    }
    std::string where;
    if (mpi && mpi->size() > 1)
      where = " on rank " + std::to_string(mpi->rank()) + " of " + std::to_string(mpi->size()) + " (host " + host_name() + ")";
    std::cerr << "repsearch " << command << ": error" << where << ": " << describe(e, command) << std::endl;
    if (mpi && mpi->size() > 1) mpi->abort(code);
    // One rank: nobody to stop; the Session finalizes, sparing the user Open MPI's abort banner.
    return code;
  }
}
