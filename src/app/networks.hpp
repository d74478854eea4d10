// What learn and sgd share in both spaces (learn.cpp) and the example space's learn and sgd
// (example_learn.cpp): output ownership, summaries, an archive's config taken in.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"

namespace repsearch::app {

std::string hex(std::uint64_t v);
void write_summary(const std::filesystem::path& path, const nlohmann::json& j);
// A run's hold on its outputs in `out`: one lock per network `<stem>.lock` and, when the run writes a
// summary (several networks), the summary's.
OutputLocks own_networks(const std::filesystem::path& out, const std::string& tag, const std::string& what,
                         const std::vector<std::string>& stems, const std::string& summary_stem);
// Before the first network of a run replaces anything: the summary this run will write, or one that
// lists a network it replaces, is removed (a summary never outlives the results it describes).
void retire_summary(const std::filesystem::path& out, const std::string& tag, const std::string& what,
                    const std::vector<std::string>& stems, const std::string& summary_stem);
// Beside the archive given, unless --out was given: the archive's own `out` may be another machine's path.
std::filesystem::path output_dir(const Options& cli, const std::string& archive_path);
// An archive's stored config below the command line's (a relative data-dir becomes the archive's
// recorded directory); validated; the seed must be the archive's.
void adopt_archive_config(const Options& cli, Options& o, const std::string& archive_path, const std::string& config,
                          const std::string& data_dir, std::uint64_t seed);

int learn_example(const Options& cli, const std::string& archive_path);
// archive_path "" : <out>/archive.h5 of the config's example-space search.
int sgd_example(const Options& cli, const std::string& archive_path);

}  // namespace repsearch::app
