// MPI's lifetime and communicators as objects, so that the program never calls MPI itself.
#pragma once
#include <mpi.h>

namespace repsearch::mpi {

// MPI_Init for the program's lifetime; MPI_Finalize at the end unless finalize() or abort() came first.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int rank() const { return rank_; }  // in MPI_COMM_WORLD
  int size() const { return size_; }
  void finalize();
  // Ends every rank of the job with `code` (after a moment for this rank's last message to travel).
  [[noreturn]] void abort(int code);

 private:
  int rank_ = 0, size_ = 1;
  bool finalized_ = false;
};

// A duplicate of MPI_COMM_WORLD whose errors come back as repsearch::Error (MPI_ERRORS_RETURN), so
// library traffic never mixes with anyone else's. Freed at scope end, except while an exception
// unwinds (other ranks may still be talking on it; the abort or finalize that follows cleans up).
class Communicator {
 public:
  Communicator();
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace repsearch::mpi
