#pragma once
#include "config.hpp"

namespace repsearch::app {

int cmd_data(const Options& options);
int cmd_search(const Options& options);  // needs MPI initialised
int cmd_inspect(const Options& options);

// Exit code of a search stopped by SIGTERM/SIGUSR1 after writing its checkpoint (EX_TEMPFAIL):
// schedulers requeue, `--resume` continues.
inline constexpr int kExitCheckpointed = 75;

}  // namespace repsearch::app
