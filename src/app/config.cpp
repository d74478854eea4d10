#include "config.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/dataset.hpp"
#include "repsearch/mpi/archipelago.hpp"

// Boost's lexical_cast reads "-1" as 2^64-1 for an unsigned option; options found by ADL through
// boost::any take this strict reader instead.
namespace boost {
void validate(boost::any& v, const std::vector<std::string>& tokens, unsigned long*, long) {
  namespace po = boost::program_options;
  po::validators::check_first_occurrence(v);
  const std::string& s = po::validators::get_single_string(tokens);
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20)
    throw po::invalid_option_value(s);
  errno = 0;
  const unsigned long long value = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) throw po::invalid_option_value(s);
  v = boost::any(static_cast<unsigned long>(value));
}
}  // namespace boost

namespace repsearch::app {

namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

po::options_description general_options() {
  po::options_description d("General");
  d.add_options()
      ("help,h", "show this help")
      ("config,c", po::value<std::vector<std::string>>()->composing(), "INI config file (repeatable; later files win, the command line wins over all)")
      ("seed", po::value<u64>()->default_value(0), "seed of every random choice (splits, features, search, learners)")
      ("dataset", po::value<std::string>()->default_value("fashion-mnist"), "fashion-mnist | mnist | cifar10 | cifar100")
      ("data-dir", po::value<std::string>()->default_value(""), "directory of the data set files (default: the data set's usual place)")
      ("search-size", po::value<std::string>()->default_value("3000"), "n_s: training examples whose representations are searched (S), or 'all': every training example not in V or H")
      ("val-size", po::value<i64>()->default_value(2000), "|V|: validation pool the fitness draws minibatches from")
      ("heldout-size", po::value<i64>()->default_value(2000), "|H|: held-out split that ranks elites, never seen by the fitness")
      ("out", po::value<std::string>()->default_value("runs/default"), "run directory (archive.h5, checkpoint.h5, results)")
      ("threads", po::value<i64>()->default_value(0), "compute threads per rank (0: cores on the node / ranks on the node)")
      ("device", po::value<std::string>()->default_value("auto"), "auto | cpu | cuda (auto: CUDA device local-rank mod count when LibTorch has CUDA)");
  return d;
}

po::options_description fitness_options() {
  po::options_description d("Fitness");
  d.add_options()
      ("fitness", po::value<std::string>()->default_value("ridge-probe"), "ridge-probe | ridge-probe-learnable")
      ("features", po::value<i64>()->default_value(2048), "p: random ReLU features of the input")
      ("lambda", po::value<double>()->default_value(0.1), "kernel ridge strength relative to tr(phi^T phi)/p (>= 1e-3 used)")
      ("readout-ridge", po::value<double>()->default_value(1e-3), "ridge of the Z -> labels readout relative to tr(Z^T Z)/d")
      ("beta", po::value<double>()->default_value(10.0), "softmax temperature of the fitness cross-entropy")
      ("learnable-weight", po::value<double>()->default_value(0.1), "ridge-probe-learnable: weight of the LOO R^2 term")
      ("val-batch", po::value<i64>()->default_value(512), "V minibatch drawn per island and generation");
  return d;
}

po::options_description search_options() {
  po::options_description d("Search");
  d.add_options()
      ("algorithm", po::value<std::string>()->default_value("ga"), "ga | de")
      ("islands", po::value<i64>()->default_value(4), "logical islands (independent of the rank count)")
      ("population", po::value<i64>()->default_value(32), "individuals per island")
      ("dim", po::value<i64>()->default_value(64), "d: width of the cut layer (columns of Z)")
      ("generations", po::value<i64>()->default_value(100), "generations to run (may grow on --resume)")
      ("init", po::value<std::string>()->default_value("random-features"), "gaussian | random-features | labels")
      ("replacement", po::value<std::string>()->default_value("steady"), "ga: steady | generational")
      ("tournament", po::value<i64>()->default_value(2), "ga: tournament size")
      ("elitism", po::value<i64>()->default_value(1), "ga generational: parents kept unchanged")
      ("crossover", po::value<double>()->default_value(0.1), "ga: probability an offspring is a row-wise crossover")
      ("crossover-align", po::value<bool>()->default_value(true), "ga: Procrustes-align the second parent before crossover")
      ("operators", po::value<std::string>()->default_value("pull,column,gaussian,knn"), "ga: mutation operators mixed by success (pull, column, gaussian, knn)")
      ("mutation-rate", po::value<double>()->default_value(0.02), "ga gaussian: fraction of rows mutated")
      ("sigma", po::value<double>()->default_value(0.3), "ga gaussian: step relative to the column std")
      ("self-adapt", po::value<bool>()->default_value(false), "ga gaussian: 1/5 success rule on sigma")
      ("sigma-min", po::value<double>()->default_value(0.01), "self-adaptation floor")
      ("sigma-max", po::value<double>()->default_value(2.0), "self-adaptation cap")
      ("pull-fraction", po::value<double>()->default_value(0.1), "ga pull: fraction of rows pulled to their class mean")
      ("pull-alpha", po::value<double>()->default_value(0.5), "ga pull: share of the way to the class mean")
      ("pull-noise", po::value<double>()->default_value(0.05), "ga pull: noise relative to the column std")
      ("column-scale", po::value<double>()->default_value(0.3), "ga column: step relative to the column std")
      ("knn-k", po::value<i64>()->default_value(10), "ga knn: input-space neighbours")
      ("knn-fraction", po::value<double>()->default_value(0.1), "ga knn: fraction of rows smoothed")
      ("knn-noise", po::value<double>()->default_value(0.05), "ga knn: noise relative to the column std")
      ("adapt-memory", po::value<double>()->default_value(0.9), "ga: moving-average memory of operator success")
      ("adapt-floor", po::value<double>()->default_value(0.05), "ga: minimum probability of each operator")
      ("de-f", po::value<double>()->default_value(0.5), "de: differential weight F")
      ("de-cr", po::value<double>()->default_value(0.9), "de: per-row crossover probability")
      ("selection", po::value<std::string>()->default_value("fitness"), "ga survival: fitness (by score) | dns (Dominated Novelty Search over parents + trials: mean distance to the dns-k nearest fitter individuals; the fittest always survive)")
      ("dns-k", po::value<i64>()->default_value(3), "dns: nearest fitter individuals averaged")
      ("qd-distance", po::value<std::string>()->default_value("cka"), "dns: cka (1 - linear CKA on the diversity probe rows) | disagreement (share of the generation's V rows where two readouts predict differently)")
      ("diversity-probe", po::value<i64>()->default_value(256), "rows of S on which CKA distances (history, dns, diverse elites, island repulsion) are computed")
      ("island-repulsion", po::value<double>()->default_value(0.0), "> 0: survival ranks fitness - w * mean CKA to the other islands' elites received at the last migration, which become references instead of entering the population")
      ("elites", po::value<i64>()->default_value(8), "representations kept in the archive (see --elite-selection)")
      ("elite-selection", po::value<std::string>()->default_value("top"), "top: the best held-out scores | diverse: of the candidates (4 x elites per island) within --elite-tolerance of the best held-out score, the elites furthest apart (max-min 1 - CKA)")
      ("elite-tolerance", po::value<double>()->default_value(0.02), "elite-selection=diverse: held-out score (the fitness's -CE) below the best still accepted");
  return d;
}

po::options_description migration_options() {
  po::options_description d("Migration");
  d.add_options()
      ("topology", po::value<std::string>()->default_value("ring"), "none | ring | full | random | graph")
      ("migration-edges", po::value<std::string>()->default_value(""), "graph: edges '0->1, 1->2:0.5' (weight = probability of use)")
      ("migration-interval", po::value<i64>()->default_value(25), "generations between migrations (0: never)")
      ("migrants", po::value<i64>()->default_value(1), "best individuals sent along each edge")
      ("migration-align", po::value<bool>()->default_value(true), "Procrustes-align immigrants to the receiver's best");
  return d;
}

po::options_description run_options() {
  po::options_description d("Run control");
  d.add_options()
      ("checkpoint-interval", po::value<i64>()->default_value(0), "generations between checkpoints (0: none by count)")
      ("checkpoint-minutes", po::value<double>()->default_value(10), "minutes between checkpoints by rank 0's clock, taken by every rank a few generations later (0: none by time); a checkpoint is also written at the end and on SIGTERM/SIGUSR1")
      ("resume", po::bool_switch(), "continue from <out>/checkpoint.h5 (config must match; rank count may differ)")
      ("overwrite", po::bool_switch(), "start afresh in a run directory that holds an archive or checkpoint, deleting them")
      ("allow-change", po::value<std::string>()->default_value(""), "resume: comma-separated keys allowed to differ from the checkpoint's config; only keys that do not change what the archive means (see below)")
      ("stall-minutes", po::value<double>()->default_value(30), "give up when the other ranks make no progress for this long (a stopped, lost or cut-off rank): every live rank reports it and the job exits 3")
      ("log-every", po::value<i64>()->default_value(1), "generations between progress lines");
  return d;
}

po::options_description learner_options() {
  po::options_description d("Learner (learn and sgd)");
  d.add_options()
      ("arch", po::value<std::string>()->default_value("auto"), "mlp | cnn | auto (cnn for 3-channel images)")
      ("hidden", po::value<std::string>()->default_value("256"), "mlp: comma-separated widths before the cut layer")
      ("channels", po::value<std::string>()->default_value("32,64,128"), "cnn: channels of the conv3x3-ReLU-maxpool blocks")
      ("optimizer", po::value<std::string>()->default_value("adam"), "adam | sgd (with momentum)")
      ("lr", po::value<double>()->default_value(1e-3), "learning rate")
      ("momentum", po::value<double>()->default_value(0.9), "sgd momentum")
      ("weight-decay", po::value<double>()->default_value(0.0), "L2 weight decay")
      ("epochs", po::value<i64>()->default_value(30), "training epochs (regression for learn, end to end for sgd)")
      ("batch", po::value<i64>()->default_value(128), "minibatch size")
      ("schedule", po::value<std::string>()->default_value("cosine"), "constant | cosine learning-rate schedule")
      ("head", po::value<std::string>()->default_value("ridge"), "learn: ridge (closed form) | ce (train the head alone)")
      ("head-ridge", po::value<double>()->default_value(1e-3), "learn: ridge strength of the head relative to tr(H^T H)/d")
      ("head-epochs", po::value<i64>()->default_value(20), "learn, head=ce: epochs of head training")
      ("head-data", po::value<std::string>()->default_value("search+val"), "learn: search | search+val (the search saw V's labels)")
      ("extend", po::value<std::string>()->default_value("none"), "learn: none | smoother: also regress on every training example outside S and H, its target carried from the searched Z by the fitness's kernel-ridge smoother")
      ("probe-size", po::value<i64>()->default_value(1000), "test images whose cut-layer activations form the trajectory")
      ("trajectory-points", po::value<i64>()->default_value(16), "log-spaced training steps at which the trajectory is recorded")
      ("data", po::value<std::string>()->default_value("search+val"), "sgd: search+val (fair budget) | full (whole training set)")
      ("seeds", po::value<std::string>()->default_value("0"), "sgd: network seeds, e.g. '0', '0,3' or '0..4' (several: an ensemble)");
  return d;
}

po::options_description learn_only_options() {
  po::options_description d("Learn");
  d.add_options()
      ("archive", po::value<std::string>(), "search archive (archive.h5); its config supplies every other option")
      ("elite", po::value<std::string>()->default_value("0"), "elite rank (0 = best), uid (0x...), or all (one network each + ensemble)");
  return d;
}

po::options_description config_command_options() {
  po::options_description d("Config");
  d.add_options()
      ("resolved", po::bool_switch(), "print every option as the other commands resolve it: defaults, then --config files in order (later files win), then the command line (the default action)")
      ("get", po::value<std::string>(), "print the resolved value of one option only (for scripts)");
  return d;
}

po::options_description inspect_options() {
  po::options_description d("Inspect");
  d.add_options()
      ("file", po::value<std::vector<std::string>>(), "archive or results file(s)")
      ("json", po::bool_switch(), "machine-readable JSON instead of the human summary");
  return d;
}

// Everything a config file may hold: the union over subcommands.
po::options_description config_file_options() {
  po::options_description d;
  auto g = general_options();
  for (const auto& o : g.options())
    if (o->long_name() != "help" && o->long_name() != "config") d.add(o);
  d.add(fitness_options()).add(search_options()).add(migration_options()).add(learner_options());
  auto r = run_options();
  for (const auto& o : r.options())
    if (o->long_name() != "resume" && o->long_name() != "overwrite") d.add(o);
  return d;
}

std::string value_text(const po::variable_value& v) {
  const auto& a = v.value();
  if (auto p = boost::any_cast<std::string>(&a)) return *p;
  if (auto p = boost::any_cast<i64>(&a)) return std::to_string(*p);
  if (auto p = boost::any_cast<u64>(&a)) return std::to_string(*p);
  if (auto p = boost::any_cast<bool>(&a)) return *p ? "true" : "false";
  if (auto p = boost::any_cast<double>(&a)) {
    std::ostringstream os;
    os << std::setprecision(17) << *p;
    return os.str();
  }
  return "?";
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string describe_command(const std::string& cmd) {
  if (cmd == "search") return "search: island-model GA over the cut-layer representations of S; writes <out>/archive.h5";
  if (cmd == "data") return "data: load the data set, build the S/V/H splits, print their sizes and class balance";
  if (cmd == "inspect")
    return "inspect: summarise an archive or results file; two results files also give the CKA table of their trajectories";
  if (cmd == "learn")
    return "learn: train networks by regressing the cut layer onto an archive's elites, fit the head, evaluate";
  if (cmd == "sgd") return "sgd: the same network trained end to end with cross-entropy (the baseline)";
  if (cmd == "config")
    return "config: print the options as every command resolves them (defaults < --config files in order < command "
           "line); every option of search, learn and sgd is accepted (see their --help)";
  return cmd;
}

}  // namespace

Options parse_options(const std::string& command, const std::vector<std::string>& args) {
  Options o;
  o.command = command;
  for (const auto& a : args) o.command_line += (o.command_line.empty() ? "" : " ") + a;
  po::options_description visible(describe_command(command) + "\n\nUsage: repsearch " + command + " [options]");
  visible.add(general_options());
  po::options_description cli;
  cli.add(general_options());
  po::positional_options_description positional;
  if (command == "inspect") {
    visible.add(inspect_options());
    cli.add(inspect_options());
    positional.add("file", -1);
  } else {
    if (command == "search") visible.add(fitness_options()).add(search_options()).add(migration_options()).add(run_options());
    if (command == "config") {
      visible.add(config_command_options());
      cli.add(config_command_options());
    }
    if (command == "learn") visible.add(learn_only_options()).add(learner_options());
    if (command == "sgd") visible.add(learner_options());
    if (command == "learn") cli.add(learn_only_options());
    cli.add(fitness_options()).add(search_options()).add(migration_options()).add(run_options()).add(learner_options());
  }
  std::ostringstream help;
  help << visible;
  if (command == "search") {
    help << "\nOn --resume these may differ from the checkpoint's config without asking: ";
    const auto automatic = resume_mutable_keys();
    for (std::size_t i = 0; i < automatic.size(); ++i) help << (i ? ", " : "") << automatic[i];
    help << ".\n--allow-change may add: ";
    const auto extra = allow_change_keys();
    for (std::size_t i = 0; i < extra.size(); ++i) help << (i ? ", " : "") << extra[i];
    help << ". Every other key shapes what the archive holds and is refused.\n";
  }
  o.help_text = help.str();
  try {
    po::store(po::command_line_parser(args).options(cli).positional(positional).run(), o.vm);
  } catch (const po::error& e) {
    fail("command line: ", e.what(), " (see 'repsearch ", command, " --help')");
  }
  if (o.vm.count("help")) {
    o.help = true;
    return o;
  }
  if (o.vm.count("config")) {
    auto file_opts = config_file_options();
    o.config_files = o.vm["config"].as<std::vector<std::string>>();
    // po::store keeps the first value it sees: the command line went in first, then the files from
    // the last to the first, so that later files win over earlier ones.
    for (auto it = o.config_files.rbegin(); it != o.config_files.rend(); ++it) {
      const std::string& path = *it;
      std::error_code ec;
      const auto st = std::filesystem::status(path, ec);
      if (!std::filesystem::exists(st))
        fail("config file ", path, ": cannot be opened: no such file (expected a readable INI file)");
      if (!std::filesystem::is_regular_file(st))
        fail("config file ", path, ": cannot be opened: not a regular file (expected a readable INI file, found a ",
             std::filesystem::is_directory(st) ? "directory" : "special file", ")");
      std::ifstream in(path);
      if (!in) fail("config file ", path, ": cannot be opened: ", std::strerror(errno), " (expected a readable INI file)");
      try {
        po::store(po::parse_config_file(in, file_opts, /*allow_unregistered=*/false), o.vm);
      } catch (const po::error& e) {
        fail("config file ", path, ": ", e.what(), " (expected 'key = value' lines with keys from 'repsearch search --help')");
      }
    }
  }
  try {
    po::notify(o.vm);
  } catch (const po::error& e) {
    fail("options: ", e.what());
  }
  return o;
}

void add_config_text(Options& o, const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  try {
    po::store(po::parse_config_file(in, config_file_options(), /*allow_unregistered=*/false), o.vm);
    po::notify(o.vm);
  } catch (const po::error& e) {
    fail(origin, ": ", e.what());
  }
}

std::string Options::resolved() const {
  std::ostringstream os;
  const auto all = config_file_options();
  for (const auto& opt : all.options()) {
    const auto& name = opt->long_name();
    if (vm.count(name)) os << name << " = " << value_text(vm.at(name)) << "\n";
  }
  return os.str();
}

std::string sha256_hex(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL digest failed");
  std::ostringstream os;
  for (unsigned i = 0; i < len; ++i) os << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(md[i]);
  return os.str();
}

std::string Options::sha256() const {
  // Run control (where, how fast, how often to report) does not change what is computed.
  std::istringstream in(resolved());
  std::string line, science;
  const auto skip = run_control_keys();
  while (std::getline(in, line))
    if (std::find(skip.begin(), skip.end(), line.substr(0, line.find(" = "))) == skip.end()) science += line + "\n";
  return sha256_hex(science);
}

std::vector<std::string> run_control_keys() {
  return {"out", "threads", "device", "checkpoint-interval", "checkpoint-minutes", "log-every", "data-dir", "allow-change",
          "stall-minutes"};
}

std::vector<std::string> allow_change_keys() { return {"elites", "elite-selection", "elite-tolerance"}; }

SplitSizes Options::splits() const {
  SplitSizes s;
  const auto text = get<std::string>("search-size");
  if (text == "all") {
    s.search = SplitSizes::kAll;
  } else {
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos || std::stoll(text) < 1)
      fail("option search-size: expected a positive integer or 'all', found '", text, "'");
    s.search = std::stoll(text);
  }
  s.val = get<i64>("val-size");
  s.heldout = get<i64>("heldout-size");
  return s;
}

FitnessConfig Options::fitness() const {
  FitnessConfig f;
  f.name = get<std::string>("fitness");
  f.features = get<i64>("features");
  f.lambda = get<double>("lambda");
  f.readout_ridge = get<double>("readout-ridge");
  f.beta = get<double>("beta");
  f.learnable_weight = get<double>("learnable-weight");
  f.seed = get<u64>("seed");
  return f;
}

SearchConfig Options::search() const {
  SearchConfig s;
  s.algorithm = get<std::string>("algorithm");
  s.population = get<i64>("population");
  s.dim = get<i64>("dim");
  s.init = get<std::string>("init");
  s.val_batch = get<i64>("val-batch");
  s.seed = get<u64>("seed");
  s.replacement = get<std::string>("replacement");
  s.tournament = get<i64>("tournament");
  s.elitism = get<i64>("elitism");
  s.crossover = get<double>("crossover");
  s.crossover_align = get<bool>("crossover-align");
  s.operators = split_list(get<std::string>("operators"));
  s.mutation_rate = get<double>("mutation-rate");
  s.sigma = get<double>("sigma");
  s.self_adapt = get<bool>("self-adapt");
  s.sigma_min = get<double>("sigma-min");
  s.sigma_max = get<double>("sigma-max");
  s.pull_fraction = get<double>("pull-fraction");
  s.pull_alpha = get<double>("pull-alpha");
  s.pull_noise = get<double>("pull-noise");
  s.column_scale = get<double>("column-scale");
  s.knn_k = get<i64>("knn-k");
  s.knn_fraction = get<double>("knn-fraction");
  s.knn_noise = get<double>("knn-noise");
  s.adapt_memory = get<double>("adapt-memory");
  s.adapt_floor = get<double>("adapt-floor");
  s.de_f = get<double>("de-f");
  s.de_cr = get<double>("de-cr");
  s.selection = get<std::string>("selection");
  s.dns_k = get<i64>("dns-k");
  s.qd_distance = get<std::string>("qd-distance");
  s.diversity_probe = get<i64>("diversity-probe");
  s.island_repulsion = get<double>("island-repulsion");
  return s;
}

mpi::MigrationConfig Options::migration() const {
  mpi::MigrationConfig m;
  m.topology = get<std::string>("topology");
  m.edges = get<std::string>("migration-edges");
  m.interval = get<i64>("migration-interval");
  m.migrants = get<i64>("migrants");
  m.align = get<bool>("migration-align");
  return m;
}

namespace {

template <class T>
void require(const Options& o, const std::string& key, bool ok, const std::string& allowed) {
  if (!ok) fail("option ", key, ": must be ", allowed, ", found ", value_text(o.vm.at(key)));
}
void positive(const Options& o, const std::string& key) { require<i64>(o, key, o.get<i64>(key) > 0, "a positive integer"); }
void fraction(const Options& o, const std::string& key, bool open_zero = false) {
  double v = o.get<double>(key);
  require<double>(o, key, open_zero ? (v > 0 && v <= 1) : (v >= 0 && v <= 1), open_zero ? "in (0, 1]" : "in [0, 1]");
}
void positive_real(const Options& o, const std::string& key) {
  double v = o.get<double>(key);
  require<double>(o, key, v > 0 && std::isfinite(v), "a positive number");
}
void one_of(const Options& o, const std::string& key, const std::vector<std::string>& names) {
  auto v = o.get<std::string>(key);
  if (std::find(names.begin(), names.end(), v) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fail("option ", key, ": must be one of ", list, ", found '", v, "'");
  }
}

}  // namespace

void validate(const Options& o) {
  one_of(o, "dataset", io::dataset_names());
  one_of(o, "device", {"auto", "cpu", "cuda"});
  o.splits();  // search-size: a positive integer or 'all'

  positive(o, "val-size");
  positive(o, "heldout-size");
  require<i64>(o, "threads", o.get<i64>("threads") >= 0, ">= 0 (0 = automatic)");
  one_of(o, "fitness", fitness_names());
  positive(o, "features");
  positive_real(o, "lambda");
  positive_real(o, "readout-ridge");
  positive_real(o, "beta");
  require<double>(o, "learnable-weight", o.get<double>("learnable-weight") >= 0, ">= 0");
  positive(o, "val-batch");
  if (o.get<i64>("val-batch") > o.get<i64>("val-size"))
    fail("option val-batch: must not exceed val-size (", o.get<i64>("val-size"), "), the pool it is drawn from, found ",
         o.get<i64>("val-batch"));
  one_of(o, "algorithm", algorithm_names());
  positive(o, "islands");
  require<i64>(o, "population", o.get<i64>("population") >= 2, ">= 2");
  positive(o, "dim");
  require<i64>(o, "generations", o.get<i64>("generations") >= 0, ">= 0");
  one_of(o, "init", init_names());
  one_of(o, "replacement", {"steady", "generational"});
  positive(o, "tournament");
  require<i64>(o, "elitism", o.get<i64>("elitism") >= 0 && o.get<i64>("elitism") < o.get<i64>("population"),
               "in [0, population)");
  fraction(o, "crossover");
  auto ops = split_list(o.get<std::string>("operators"));
  if (ops.empty()) fail("option operators: needs at least one of pull, column, gaussian, knn, found ''");
  for (const auto& op : ops) {
    auto known = operator_names();
    if (std::find(known.begin(), known.end(), op) == known.end())
      fail("option operators: unknown operator '", op, "'; known: pull, column, gaussian, knn");
  }
  fraction(o, "mutation-rate", true);
  positive_real(o, "sigma");
  positive_real(o, "sigma-min");
  positive_real(o, "sigma-max");
  if (o.get<double>("sigma-min") > o.get<double>("sigma-max"))
    fail("option sigma-min: must not exceed sigma-max (", o.get<double>("sigma-max"), "), found ", o.get<double>("sigma-min"));
  fraction(o, "pull-fraction", true);
  fraction(o, "pull-alpha");
  require<double>(o, "pull-noise", o.get<double>("pull-noise") >= 0, ">= 0");
  positive_real(o, "column-scale");
  positive(o, "knn-k");
  fraction(o, "knn-fraction", true);
  require<double>(o, "knn-noise", o.get<double>("knn-noise") >= 0, ">= 0");
  fraction(o, "adapt-memory");
  require<double>(o, "adapt-floor", o.get<double>("adapt-floor") >= 0 &&
                                        o.get<double>("adapt-floor") * static_cast<double>(ops.size()) <= 1.0,
                  "in [0, 1/number of operators]");
  positive_real(o, "de-f");
  fraction(o, "de-cr");
  if (o.get<std::string>("algorithm") == "de")
    require<i64>(o, "population", o.get<i64>("population") >= 4, ">= 4 for algorithm=de");
  positive(o, "elites");
  one_of(o, "selection", selection_names());
  positive(o, "dns-k");
  one_of(o, "qd-distance", qd_distance_names());
  if (o.get<std::string>("selection") == "dns" && o.get<std::string>("algorithm") != "ga")
    fail("option selection: dns needs algorithm=ga, found algorithm=", o.get<std::string>("algorithm"));
  positive(o, "diversity-probe");
  require<double>(o, "island-repulsion", o.get<double>("island-repulsion") >= 0 && std::isfinite(o.get<double>("island-repulsion")), ">= 0");
  one_of(o, "elite-selection", mpi::elite_selection_names());
  require<double>(o, "elite-tolerance", o.get<double>("elite-tolerance") >= 0 && std::isfinite(o.get<double>("elite-tolerance")), ">= 0");
  mpi::validate(o.migration(), o.get<i64>("islands"));
  if (o.get<i64>("migrants") >= o.get<i64>("population"))
    fail("option migrants: must be below population (", o.get<i64>("population"), "), found ", o.get<i64>("migrants"));
  require<i64>(o, "checkpoint-interval", o.get<i64>("checkpoint-interval") >= 0, ">= 0");
  require<double>(o, "checkpoint-minutes", o.get<double>("checkpoint-minutes") >= 0, ">= 0");
  positive(o, "log-every");
  positive_real(o, "stall-minutes");
  {
    const auto automatic = resume_mutable_keys(), extra = allow_change_keys();
    const auto known = config_file_options();
    for (const auto& key : split_list(o.get<std::string>("allow-change"))) {
      if (!known.find_nothrow(key, false))
        fail("option allow-change: unknown key '", key, "' (expected option names such as elites)");
      if (std::find(automatic.begin(), automatic.end(), key) == automatic.end() &&
          std::find(extra.begin(), extra.end(), key) == extra.end())
        fail("option allow-change: '", key, "' shapes what the search computes or what the archive holds, so it cannot ",
             "change on a resume (the archive's config would not describe the run); keys that may: ",
             [&] {
               std::string list;
               for (const auto& k : extra) list += (list.empty() ? "" : ", ") + k;
               return list;
             }(),
             " and the run-control keys (see 'repsearch search --help'); start a new run directory instead");
    }
  }
  one_of(o, "arch", {"auto", "mlp", "cnn"});
  for (const char* key : {"hidden", "channels"}) {
    auto list = split_list(o.get<std::string>(key));
    if (list.empty()) fail("option ", key, ": expected comma-separated positive integers, found ''");
    for (const auto& v : list)
      if (v.find_first_not_of("0123456789") != std::string::npos || std::stoll(v) < 1)
        fail("option ", key, ": expected comma-separated positive integers, found '", o.get<std::string>(key), "'");
  }
  one_of(o, "optimizer", {"adam", "sgd"});
  positive_real(o, "lr");
  fraction(o, "momentum");
  require<double>(o, "weight-decay", o.get<double>("weight-decay") >= 0, ">= 0");
  require<i64>(o, "epochs", o.get<i64>("epochs") >= 0, ">= 0");
  positive(o, "batch");
  one_of(o, "schedule", {"constant", "cosine"});
  one_of(o, "head", {"ridge", "ce"});
  positive_real(o, "head-ridge");
  require<i64>(o, "head-epochs", o.get<i64>("head-epochs") >= 0, ">= 0");
  one_of(o, "head-data", {"search", "search+val"});
  one_of(o, "extend", {"none", "smoother"});
  positive(o, "probe-size");
  require<i64>(o, "trajectory-points", o.get<i64>("trajectory-points") >= 2, ">= 2");
  one_of(o, "data", {"search+val", "full"});
  parse_seeds(o.get<std::string>("seeds"));
  if (o.get<std::string>("init") == "labels" && o.get<i64>("dim") < 10)
    fail("option dim: init=labels needs dim >= the number of classes (10), found ", o.get<i64>("dim"));
}

std::vector<std::uint64_t> parse_seeds(const std::string& text) {
  std::vector<std::uint64_t> out;
  auto bad = [&]() { fail("option seeds: expected 'N', 'A,B,C' or 'A..B' (non-negative integers), found '", text, "'"); };
  auto number = [&](const std::string& s) -> std::uint64_t {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) bad();
    return std::stoull(s);
  };
  auto dots = text.find("..");
  if (dots != std::string::npos) {
    auto a = number(text.substr(0, dots)), b = number(text.substr(dots + 2));
    if (b < a || b - a > 1000) bad();
    for (auto s = a; s <= b; ++s) out.push_back(s);
  } else {
    for (const auto& s : split_list(text)) out.push_back(number(s));
  }
  if (out.empty()) bad();
  return out;
}

ModelConfig Options::model(const std::vector<std::int64_t>& input_shape, std::int64_t classes) const {
  ModelConfig m;
  m.arch = get<std::string>("arch");
  m.hidden.clear();
  for (const auto& v : split_list(get<std::string>("hidden"))) m.hidden.push_back(std::stoll(v));
  m.channels.clear();
  for (const auto& v : split_list(get<std::string>("channels"))) m.channels.push_back(std::stoll(v));
  m.cut = get<i64>("dim");
  m.classes = classes;
  m.input_shape = input_shape;
  return m;
}

TrainConfig Options::train() const {
  TrainConfig t;
  t.optimizer = get<std::string>("optimizer");
  t.lr = get<double>("lr");
  t.momentum = get<double>("momentum");
  t.weight_decay = get<double>("weight-decay");
  t.epochs = get<i64>("epochs");
  t.batch = get<i64>("batch");
  t.schedule = get<std::string>("schedule");
  t.seed = get<u64>("seed");
  t.trajectory_points = get<i64>("trajectory-points");
  return t;
}

std::vector<std::string> resume_mutable_keys() {
  auto keys = run_control_keys();
  keys.push_back("generations");
  const auto learner = learner_options();  // they shape learn/sgd, not the search
  for (const auto& o : learner.options()) keys.push_back(o->long_name());
  return keys;
}

std::vector<std::string> differing_keys(const std::string& a, const std::string& b) {
  auto parse = [](const std::string& text) {
    std::map<std::string, std::string> kv;
    std::vector<std::string> order;
    std::istringstream is(text);
    std::string line;
    while (std::getline(is, line)) {
      auto eq = line.find(" = ");
      if (eq == std::string::npos) continue;
      kv[line.substr(0, eq)] = line.substr(eq + 3);
      order.push_back(line.substr(0, eq));
    }
    return std::make_pair(kv, order);
  };
  auto [ka, oa] = parse(a);
  auto [kb, ob] = parse(b);
  std::vector<std::string> out;
  for (const auto& k : oa)
    if (!kb.count(k) || kb[k] != ka[k]) out.push_back(k);
  for (const auto& k : ob)
    if (!ka.count(k)) out.push_back(k);
  return out;
}

}  // namespace repsearch::app
