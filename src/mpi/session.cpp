#include "repsearch/mpi/session.hpp"

#include <unistd.h>

#include <cstdlib>
#include <exception>

#include "repsearch/mpi/archipelago.hpp"

namespace repsearch::mpi {

Session::Session(int& argc, char**& argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

Session::~Session() { finalize(); }

void Session::finalize() {
  if (finalized_) return;
  finalized_ = true;
  MPI_Finalize();
}

void Session::abort(int code) {
  // Give Open MPI a moment to forward this rank's message before the abort tears the job down.
  ::usleep(300000);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // not reached: MPI_Abort does not return
}

Communicator::Communicator() : comm_(duplicate_with_errors_returned(MPI_COMM_WORLD)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Communicator::~Communicator() {
  if (std::uncaught_exceptions() == 0) MPI_Comm_free(&comm_);
}

}  // namespace repsearch::mpi
