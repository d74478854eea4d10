// Options of every subcommand: Boost.Program_options, INI files (`--config`, several allowed; later
// files and then the command line win), one validate() after parsing. Config files may hold any
// option of any subcommand, so one INI file drives search, learn and sgd.
#pragma once
#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "repsearch/core/data.hpp"
#include "repsearch/core/example_search.hpp"
#include "repsearch/core/frozen_net.hpp"
#include "repsearch/core/fitness.hpp"
#include "repsearch/core/islands.hpp"
#include "repsearch/core/models.hpp"
#include "repsearch/core/search.hpp"

namespace repsearch::app {

namespace po = boost::program_options;

struct Options {
  std::string command;
  po::variables_map vm;
  bool help = false;
  std::string help_text;
  std::vector<std::string> config_files;
  std::string command_line;

  template <class T>
  T get(const std::string& key) const { return vm.at(key).as<T>(); }
  bool has(const std::string& key) const { return vm.count(key) > 0 && !vm.at(key).defaulted(); }
  // Every config option with its value, one `key = value` line each, in a fixed order: the text that
  // archives store and that config_sha256 hashes. Values that need it are quoted (README, "Configs"),
  // so that the text reads back (add_config_text, --config) to the same values.
  std::string resolved() const;
  // One option's value as text, unquoted (what `config --get` prints).
  std::string value(const std::string& key) const;
  // The keys --allow-change names (comma-separated, spaces trimmed): what validate() checks is what
  // the resume allows.
  std::vector<std::string> allowed_changes() const;
  // SHA-256 of the resolved text without the run-control keys: equal for runs that compute the same.
  std::string sha256() const;

  SplitSizes splits() const;
  FitnessConfig fitness() const;
  SearchConfig search() const;
  MigrationConfig migration() const;
  NetConfig net() const;                      // the example space's frozen network
  ExampleSearchConfig example_search() const;  // the example space's search
  ModelConfig model(const std::vector<std::int64_t>& input_shape, std::int64_t classes) const;  // cut = dim
  TrainConfig train() const;
};

// Stores more config text (e.g. an archive's resolved config) below what is already set.
void add_config_text(Options& options, const std::string& text, const std::string& origin);
// The one reader of comma-separated options: items trimmed of spaces, empty items dropped.
std::vector<std::string> split_list(const std::string& s);
// "0", "0,3,5" or "0..4".
std::vector<std::uint64_t> parse_seeds(const std::string& text);

// Throws Error for unknown/malformed options (naming the file or option, what was expected, what was
// found). `argv` starts after the subcommand.
Options parse_options(const std::string& command, const std::vector<std::string>& args);
// The checks of every option's range and of contradictions, in one place.
void validate(const Options& options);
// Keys that say where and how a run reports, not what it computes.
std::vector<std::string> run_control_keys();
// Keys the ranks of one search may resolve differently: where each finds its data, what it computes on.
std::vector<std::string> per_rank_keys();
// What every rank of a search must resolve alike: the resolved text less per_rank_keys(), and the
// start flags (resume, overwrite).
std::string rank_agreed_text(const Options& options);
// Keys whose values may change when resuming (e.g. generations); others must match.
std::vector<std::string> resume_mutable_keys();
// Keys --allow-change may add on a resume: they change only how the final archive is collected, so
// the archive's stored config still describes the whole run. Structural keys are refused.
std::vector<std::string> allow_change_keys();
// Keys (in resolved text order) whose values differ between two resolved configs.
std::vector<std::string> differing_keys(const std::string& a, const std::string& b);
std::string sha256_hex(const std::string& text);

}  // namespace repsearch::app
