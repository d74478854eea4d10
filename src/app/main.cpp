// repsearch: search representations with an island GA (MPI), learn networks from them, compare.
#include <mpi.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "repsearch/core/error.hpp"

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
    "\n"
    "Options come from INI files (--config configs/fashion_mnist.ini) and the command line, which wins.\n";

}  // namespace

int main(int argc, char** argv) {
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
  bool mpi_up = false;
  int rank = 0;
  try {
    if (command != "data" && command != "search" && command != "inspect" && command != "learn" && command != "sgd")
      repsearch::fail("unknown command '", command,
                      "'; expected one of data, search, learn, sgd, inspect (see 'repsearch --help')");
    Options o = repsearch::app::parse_options(command, args);
    if (o.help) {
      std::cout << o.help_text;
      return 0;
    }
    if (command == "inspect") return repsearch::app::cmd_inspect(o);
    if (command == "learn") return repsearch::app::cmd_learn(o);  // validates once the archive's config is in
    repsearch::app::validate(o);
    if (command == "sgd") return repsearch::app::cmd_sgd(o);
    if (command == "data") return repsearch::app::cmd_data(o);
    MPI_Init(&argc, &argv);
    mpi_up = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc = repsearch::app::cmd_search(o);
    MPI_Finalize();
    return rc;
  } catch (const std::exception& e) {
    // repsearch::Error carries a message for people; anything else is reported as internal.
    const bool ours = dynamic_cast<const repsearch::Error*>(&e) != nullptr;
    std::string msg = e.what();
    if (!ours) msg = "internal error: " + msg.substr(0, msg.find("\nException raised from"));
    if (rank == 0 || !ours) std::cerr << "repsearch " << command << ": error: " << msg << std::endl;
    if (mpi_up) MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
}
