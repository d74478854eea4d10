#include "space.hpp"

#include <algorithm>

#include "commands.hpp"
#include "repsearch/core/registry.hpp"

namespace repsearch::app {

namespace {

const std::vector<SearchSpace>& spaces() {
  static const std::vector<SearchSpace> table = {ExampleSpace{}, DatasetSpace{}};
  return table;
}

struct Named {  // registry::find's view of a space
  std::string name;
  const SearchSpace* space;
};

}  // namespace

std::vector<std::string> search_space_names() {
  std::vector<std::string> out;
  for (const auto& s : spaces()) out.push_back(s.name());
  return out;
}

const SearchSpace& search_space(const std::string& name) {
  std::vector<Named> named;
  for (const auto& s : spaces()) named.push_back({s.name(), &s});
  return *registry::find(named, name, "space", "search space").space;
}

SearchStart::SearchStart(const Options& o)
    : started(std::chrono::steady_clock::now()), device(at::kCPU) {
  install_stop_handlers();  // a signal during a long set-up still ends in a checkpoint
  mpi::set_stall_seconds(60.0 * o.get<double>("stall-minutes"));
  check_ranks_agree(o, comm);
  node = mpi::node_place(comm.get());
  threads = o.get<std::int64_t>("threads") > 0 ? static_cast<int>(o.get<std::int64_t>("threads"))
                                               : std::max(1, node_cores() / node.ranks);
  set_threads(threads);
  device = choose_device(o.get<std::string>("device"), node.rank);
  out = o.get<std::string>("out");
  archive_path = (out / "archive.h5").string();
  ckpt_path = (out / "checkpoint.h5").string();
  resume = o.vm["resume"].as<bool>();
  overwrite = o.vm["overwrite"].as<bool>();
  if (resume && overwrite)
    throw OptionError("overwrite", "with --resume", "not with --resume",
                      "options resume and overwrite: give one (--resume continues the run, --overwrite deletes it)");
  // pre-flight, before any data is loaded: the writing rank owns the run directory
  if (comm.rank() == 0) lock = own_run_dir(out, resume, overwrite, "repsearch search " + o.command_line);
  if (resume) head = check_resume_config(o, ckpt_path);
}

std::string SearchStart::where() const {
  return std::to_string(comm.size()) + " rank(s), " + std::to_string(threads) + " thread(s)/rank, " + device.str();
}

int cmd_search(const Options& o) {
  const auto& space = search_space(o.get<std::string>("space"));
  SearchStart start(o);
  return space.search(o, start);
}

int cmd_data(const Options& o) { return search_space(o.get<std::string>("space")).data(o); }

}  // namespace repsearch::app
