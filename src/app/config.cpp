#include "config.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <sstream>
#include <type_traits>

#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/core/learner.hpp"
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

// ---- INI text: one reader (files and archives' stored configs) and one writer (the resolved text) ----
//
// `key = value`, one a line; blank lines and lines starting with # are comments, and so is the rest of
// an unquoted value from its first #. A value is written in double quotes when it holds #, ;, a quote,
// a backslash, a control character or leading/trailing spaces; inside quotes \\ \" \n \t \r and
// \xHH stand for themselves, every other byte (UTF-8 included) is taken as is. So every value reads
// back as written.

bool needs_quotes(const std::string& v) {
  if (!v.empty() && (std::isspace(static_cast<unsigned char>(v.front())) || std::isspace(static_cast<unsigned char>(v.back()))))
    return true;
  for (unsigned char c : v)
    if (c == '#' || c == ';' || c == '"' || c == '\\' || c < 0x20 || c == 0x7f) return true;
  return false;
}

std::string ini_value(const std::string& v) {
  if (!needs_quotes(v)) return v;
  std::string out = "\"";
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char hex[5];
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          out += hex;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string trimmed(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

// The value after `key =`: quoted (unescaped; only a comment may follow) or plain (up to a #, trimmed).
std::string ini_read_value(const std::string& raw, const std::string& where) {
  const std::string text = trimmed(raw);
  if (text.empty() || text.front() != '"') return trimmed(text.substr(0, text.find('#')));
  std::string v;
  std::size_t i = 1;
  for (; i < text.size() && text[i] != '"'; ++i) {
    if (text[i] != '\\') {
      v += text[i];
      continue;
    }
    if (++i >= text.size()) break;  // a backslash last: the closing quote is missing
    const char e = text[i];
    if (e == 'n') v += '\n';
    else if (e == 't') v += '\t';
    else if (e == 'r') v += '\r';
    else if (e == '"' || e == '\\') v += e;
    else if (e == 'x' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
             std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      v += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      throw po::error(where + ": unknown escape '\\" + std::string(1, e) +
                      "' in a quoted value (expected \\\\, \\\", \\n, \\t, \\r or \\xHH)");
    }
  }
  if (i >= text.size()) throw po::error(where + ": quoted value without its closing quote: " + text);
  const std::string rest = trimmed(text.substr(i + 1));
  if (!rest.empty() && rest.front() != '#' && rest.front() != ';')
    throw po::error(where + ": text after a quoted value: '" + rest + "' (expected nothing or a # comment)");
  return v;
}

// The INI text's options for po::store; keys `desc` lacks are po::unknown_option. [section] lines
// prefix the keys that follow with `section.`, as Boost's reader does.
po::parsed_options parse_ini(std::istream& in, const po::options_description& desc) {
  po::parsed_options parsed(&desc);
  std::string line, prefix;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = "line " + std::to_string(n);
    const std::string t = trimmed(line);
    if (t.empty() || t.front() == '#') continue;
    if (t.front() == '[' && t.back() == ']') {
      prefix = trimmed(t.substr(1, t.size() - 2)) + ".";
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos || trimmed(t.substr(0, eq)).empty())
      throw po::error(where + ": expected 'key = value', found '" + t + "'");
    const std::string key = prefix + trimmed(t.substr(0, eq));
    if (!desc.find_nothrow(key, false)) throw po::unknown_option(key);
    po::option opt(key, {ini_read_value(t.substr(eq + 1), where)});
    opt.original_tokens = {key, opt.value.front()};
    parsed.options.push_back(std::move(opt));
  }
  return parsed;
}

}  // namespace

// The one reader of comma-separated options: items trimmed of spaces, empty items dropped.
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trimmed(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return list;
}

// ---- checks: each throws OptionError naming the option, the value found and what it may be --------

// The check of one option's value, the others at hand (for limits such as elitism < population).
using Check = std::function<void(const Options&, const std::string& key)>;

void require(const Options& o, const std::string& key, bool ok, const std::string& allowed) {
  if (!ok) throw OptionError(key, value_text(o.vm.at(key)), allowed);
}
Check positive() {
  return [](const Options& o, const std::string& k) { require(o, k, o.get<i64>(k) > 0, "a positive integer"); };
}
Check at_least(i64 least, std::string allowed) {
  return [=](const Options& o, const std::string& k) { require(o, k, o.get<i64>(k) >= least, allowed); };
}
Check fraction(bool open_zero = false) {
  return [=](const Options& o, const std::string& k) {
    const double v = o.get<double>(k);
    require(o, k, open_zero ? (v > 0 && v <= 1) : (v >= 0 && v <= 1), open_zero ? "in (0, 1]" : "in [0, 1]");
  };
}
Check positive_real() {
  return [](const Options& o, const std::string& k) {
    const double v = o.get<double>(k);
    require(o, k, v > 0 && std::isfinite(v), "a positive number");
  };
}
Check non_negative(bool finite = false) {
  return [=](const Options& o, const std::string& k) {
    const double v = o.get<double>(k);
    require(o, k, v >= 0 && (!finite || std::isfinite(v)), ">= 0");
  };
}
Check one_of(std::vector<std::string> names) {
  return [names = std::move(names)](const Options& o, const std::string& k) {
    const auto v = o.get<std::string>(k);
    if (std::find(names.begin(), names.end(), v) == names.end())
      throw OptionError(k, v, "one of " + join(names), detail::cat("option ", k, ": must be one of ", join(names), ", found '", v, "'"));
  };
}
// Both: the second only once the first passed (the order of today's messages).
Check both(Check a, Check b) {
  return [=](const Options& o, const std::string& k) {
    a(o, k);
    b(o, k);
  };
}

void check_operators(const Options& o, const std::string& key) {
  const auto ops = split_list(o.get<std::string>(key));
  const auto known = operator_names();  // core's registry: an operator added there is known here
  if (ops.empty())
    throw OptionError(key, o.get<std::string>(key), "at least one of " + join(known),
                      "option operators: needs at least one of " + join(known) + ", found ''");
  for (const auto& op : ops)
    if (std::find(known.begin(), known.end(), op) == known.end())
      throw OptionError(key, op, "one of " + join(known), "option operators: unknown operator '" + op + "'; known: " + join(known));
}

void check_widths(const Options& o, const std::string& key) {
  const auto text = o.get<std::string>(key);
  const auto list = split_list(text);
  bool ok = !list.empty();
  for (const auto& v : list)
    ok = ok && v.size() <= 12 && v.find_first_not_of("0123456789") == std::string::npos && std::stoll(v) >= 1;
  if (!ok)
    throw OptionError(key, text, "comma-separated positive integers",
                      detail::cat("option ", key, ": expected comma-separated positive integers, found '", text, "'"));
}

void check_allow_change(const Options& o, const std::string& key);  // after config_file_options()

// ---- one declaration per option: name, default, help and check -------------------------------------

struct Group {
  std::string caption;
  po::options_description options;
  std::vector<std::pair<std::string, Check>> checks;  // in declaration order
};

class Declare {
 public:
  explicit Declare(Group& g) : g_(g) {}
  template <class T>
  Declare& opt(const char* name, const T& def, const char* help, Check check = {}) {
    if constexpr (std::is_same_v<T, bool>) {  // --help shows true/false (what the INI files say), not 1/0
      g_.options.add_options()(name, po::value<T>()->default_value(def, def ? "true" : "false"), help);
    } else if constexpr (std::is_floating_point_v<T>) {  // --help shows 0.1, not 0.10000000000000001
      std::ostringstream text;
      text << std::setprecision(15) << def;
      g_.options.add_options()(name, po::value<T>()->default_value(def, text.str()), help);
    } else {
      g_.options.add_options()(name, po::value<T>()->default_value(def), help);
    }
    if (check) g_.checks.emplace_back(name, std::move(check));
    return *this;
  }
  Declare& flag(const char* name, const char* help) {
    g_.options.add_options()(name, po::bool_switch(), help);
    return *this;
  }
  Declare& plain(const char* name, const char* help) {  // present or not, no value
    g_.options.add_options()(name, help);
    return *this;
  }
  Declare& bare(const char* name, const po::value_semantic* value, const char* help) {
    g_.options.add_options()(name, value, help);
    return *this;
  }

 private:
  Group& g_;
};

// Built once (each caller keeps it in a static) and kept for the program's life.
template <class Body>
const Group& group(const char* caption, Body&& body) {
  auto* g = new Group{caption, po::options_description(caption), {}};
  Declare d(*g);
  body(d);
  return *g;
}

using S = std::string;

const Group& general_group() {
  static const Group& g = group("General", [](Declare& d) {
    d.plain("help,h", "show this help")
     .bare("config,c", po::value<std::vector<S>>()->composing(), "INI config file (repeatable; later files win, the command line wins over all)")
     .opt<u64>("seed", 0, "seed of every random choice (splits, features, search, learners)")
     .opt<S>("space", "example", "the search: example (the paper's: every training example's activations, layer by layer, through a frozen untrained CNN) | dataset (repsearch's own: one representation matrix Z for a search set at one cut layer)")  // checked by search_space() (space.cpp), the registry
     .opt<S>("dataset", "fashion-mnist", "fashion-mnist | mnist | cifar10 | cifar100", one_of(io::dataset_names()))
     .opt<S>("data-dir", "", "directory of the data set files (default: $REPSEARCH_DATA_DIR/<data set's folder> when set, else the data set's usual place)")
     .opt<S>("search-size", "3000", "n_s: training examples whose representations are searched (S), or 'all': every training example (space=example) or every one not in V or H (space=dataset)",
             [](const Options& o, const S&) { o.splits(); })
     .opt<i64>("val-size", 2000, "|V|: validation pool the fitness draws minibatches from", positive())
     .opt<i64>("heldout-size", 2000, "|H|: held-out split that ranks elites, never seen by the fitness", positive())
     .opt<S>("out", "runs/default", "run directory (archive.h5, checkpoint.h5, results)")
     .opt<i64>("threads", 0, "compute threads per rank (0: cores on the node / ranks on the node)", at_least(0, ">= 0 (0 = automatic)"))
     .opt<S>("device", "auto", "auto | cpu | cuda (auto: CUDA device local-rank mod count when LibTorch has CUDA)", one_of({"auto", "cpu", "cuda"}));
  });
  return g;
}

const Group& fitness_group() {
  static const Group& g = group("Fitness", [](Declare& d) {
    d.opt<S>("fitness", "ridge-probe", "ridge-probe | ridge-probe-learnable", one_of(fitness_names()))
     .opt<i64>("features", 2048, "p: random ReLU features of the input", positive())
     .opt<double>("lambda", 0.1, "kernel ridge strength relative to tr(phi^T phi)/p (>= 1e-3 used)", positive_real())
     .opt<double>("readout-ridge", 1e-3, "ridge of the Z -> labels readout relative to tr(Z^T Z)/d", positive_real())
     .opt<double>("beta", 10.0, "logit scale of the fitness cross-entropy: softmax(beta * logits), an inverse temperature", positive_real())
     .opt<double>("learnable-weight", 0.1, "ridge-probe-learnable: weight of the LOO R^2 term", non_negative())
     .opt<i64>("val-batch", 512, "V minibatch drawn per island and generation", both(positive(), [](const Options& o, const S& k) {
       if (o.get<i64>(k) > o.get<i64>("val-size"))
         throw OptionError(k, std::to_string(o.get<i64>(k)), detail::cat("at most val-size (", o.get<i64>("val-size"), ")"),
                           detail::cat("option val-batch: must not exceed val-size (", o.get<i64>("val-size"),
                                       "), the pool it is drawn from, found ", o.get<i64>(k)));
     }));
  });
  return g;
}

const Group& search_group() {
  static const Group& g = group("Search", [](Declare& d) {
    d.opt<S>("algorithm", "ga", "ga | de", one_of(algorithm_names()))
     .opt<i64>("islands", 4, "logical islands (independent of the rank count)", positive())
     .opt<i64>("population", 32, "individuals per island", [](const Options& o, const S& k) {
       require(o, k, o.get<i64>(k) >= 2, ">= 2");
       if (o.get<S>("algorithm") == "de") require(o, k, o.get<i64>(k) >= 4, ">= 4 for algorithm=de");
     })
     .opt<i64>("dim", 64, "d: width of the cut layer (columns of Z)", both(positive(), [](const Options& o, const S& k) {
       // init=labels writes one column per class: 10, or 100 for CIFAR-100.
       const i64 classes = io::dataset_classes(o.get<S>("dataset"));
       if (o.get<S>("init") == "labels" && o.get<i64>(k) < classes)
         throw OptionError(k, std::to_string(o.get<i64>(k)), detail::cat(">= ", classes, " for init=labels"),
                           detail::cat("option dim: init=labels needs dim >= the number of classes (", classes, "), found ",
                                       o.get<i64>(k)));
     }))
     .opt<i64>("generations", 100, "generations to run (may grow on --resume)", at_least(0, ">= 0"))
     .opt<S>("init", "random-features", "gaussian | random-features | labels", one_of(init_names()))
     .opt<S>("replacement", "steady", "ga: steady | generational", one_of({"steady", "generational"}))
     .opt<i64>("tournament", 2, "ga: tournament size", positive())
     .opt<i64>("elitism", 1, "ga generational: parents kept unchanged", [](const Options& o, const S& k) {
       require(o, k, o.get<i64>(k) >= 0 && o.get<i64>(k) < o.get<i64>("population"), "in [0, population)");
     })
     .opt<double>("crossover", 0.1, "ga: probability an offspring is a row-wise crossover", fraction())
     .opt<bool>("crossover-align", true, "ga: Procrustes-align the second parent before crossover")
     .opt<S>("operators", "pull,column,gaussian,knn", "ga: mutation operators mixed by success (pull, column, gaussian, knn)", check_operators)
     .opt<double>("mutation-rate", 0.02, "ga gaussian: fraction of rows mutated", fraction(true))
     .opt<double>("sigma", 0.3, "ga gaussian: step relative to the column std", positive_real())
     .opt<bool>("self-adapt", false, "ga gaussian: 1/5 success rule on sigma")
     .opt<double>("sigma-min", 0.01, "self-adaptation floor", positive_real())
     .opt<double>("sigma-max", 2.0, "self-adaptation cap", both(positive_real(), [](const Options& o, const S&) {
       if (o.get<double>("sigma-min") > o.get<double>("sigma-max"))
         throw OptionError("sigma-min", value_text(o.vm.at("sigma-min")), detail::cat("at most sigma-max (", o.get<double>("sigma-max"), ")"),
                           detail::cat("option sigma-min: must not exceed sigma-max (", o.get<double>("sigma-max"), "), found ",
                                       o.get<double>("sigma-min")));
     }))
     .opt<double>("pull-fraction", 0.1, "ga pull: fraction of rows pulled to their class mean", fraction(true))
     .opt<double>("pull-alpha", 0.5, "ga pull: share of the way to the class mean", fraction())
     .opt<double>("pull-noise", 0.05, "ga pull: noise relative to the column std", non_negative())
     .opt<double>("column-scale", 0.3, "ga column: step relative to the column std", positive_real())
     .opt<i64>("knn-k", 10, "ga knn: input-space neighbours", positive())
     .opt<double>("knn-fraction", 0.1, "ga knn: fraction of rows smoothed", fraction(true))
     .opt<double>("knn-noise", 0.05, "ga knn: noise relative to the column std", non_negative())
     .opt<double>("adapt-memory", 0.9, "ga: moving-average memory of operator success", fraction())
     .opt<double>("adapt-floor", 0.05, "ga: minimum probability of each operator", [](const Options& o, const S& k) {
       const double v = o.get<double>(k), n = static_cast<double>(split_list(o.get<S>("operators")).size());
       require(o, k, v >= 0 && v * n <= 1.0, "in [0, 1/number of operators]");
     })
     .opt<double>("de-f", 0.5, "de: differential weight F", positive_real())
     .opt<double>("de-cr", 0.9, "de: per-row crossover probability", fraction())
     .opt<S>("selection", "fitness", "ga survival: fitness (by score) | dns (Dominated Novelty Search over parents + trials: mean distance to the dns-k nearest fitter individuals; the fittest always survive)",
             both(one_of(selection_names()), [](const Options& o, const S& k) {
               if (o.get<S>(k) == "dns" && o.get<S>("algorithm") != "ga")
                 throw OptionError(k, "dns", "fitness unless algorithm=ga",
                                   "option selection: dns needs algorithm=ga, found algorithm=" + o.get<S>("algorithm"));
             }))
     .opt<i64>("dns-k", 3, "dns: nearest fitter individuals averaged", positive())
     .opt<S>("qd-distance", "cka", "dns: cka (1 - linear CKA on the diversity probe rows) | disagreement (share of the generation's V rows where two readouts predict differently)", one_of(qd_distance_names()))
     .opt<i64>("diversity-probe", 256, "rows of S on which CKA distances (history, dns, diverse elites, island repulsion) are computed", positive())
     .opt<double>("island-repulsion", 0.0, "> 0: survival ranks fitness - w * mean CKA to the other islands' elites received at the last migration, which become references instead of entering the population", non_negative(true))
     .opt<i64>("elites", 8, "representations kept in the archive, at most islands x population (see --elite-selection)",
               both(positive(), [](const Options& o, const S& k) {
                 const i64 most = o.get<i64>("islands") * o.get<i64>("population");
                 if (o.get<i64>(k) > most)
                   throw OptionError(k, std::to_string(o.get<i64>(k)), detail::cat("at most islands x population (", most, ")"),
                                     detail::cat("option elites: at most islands x population = ", o.get<i64>("islands"),
                                                 " x ", o.get<i64>("population"), " = ", most,
                                                 " individuals exist to keep, found ", o.get<i64>(k)));
               }))
     .opt<S>("elite-selection", "top", "top: the best held-out scores | diverse: of the candidates (4 x elites per island) within --elite-tolerance of the best held-out score, the elites furthest apart (max-min 1 - CKA)", one_of(mpi::elite_selection_names()))
     .opt<double>("elite-tolerance", 0.02, "elite-selection=diverse: held-out score (the fitness's -CE) below the best still accepted", non_negative(true));
  });
  return g;
}

// Comma-separated values, one per frozen-network layer (block0, block1, block2, logits).
template <class T>
std::vector<T> per_layer(const Options& o, const std::string& key) {
  const auto text = o.get<std::string>(key);
  std::vector<T> out;
  for (const auto& item : split_list(text)) {
    std::size_t used = 0;
    T v{};
    try {
      if constexpr (std::is_integral_v<T>) v = static_cast<T>(std::stoll(item, &used));
      else v = static_cast<T>(std::stod(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty()) out.clear(), out.resize(5);  // a bad item: refused below
    else out.push_back(v);
  }
  if (out.size() != 4)
    throw OptionError(key, text, "4 comma-separated numbers (block0, block1, block2, logits)",
                      detail::cat("option ", key, ": expected 4 comma-separated numbers, one per layer (block0, block1, block2, ",
                                  "logits), found '", text, "'"));
  return out;
}

const Group& example_group() {
  static const Group& g = group("Example space (space = example: the paper's search)", [](Declare& d) {
    d.opt<S>("net-width", "256", "channels of the frozen network's blocks: one number for all three, or three", check_widths)
     .opt<S>("net-batchnorm", "identity", "BatchNorm in the untrained network: identity (eval mode of an untrained BatchNorm) | calibrated (statistics of the whitening images, fixed)", one_of(batchnorm_names()))
     .opt<i64>("whiten-images", 5000, "first training images whose 2x2 patches fit the whitening conv", positive())
     .opt<S>("layers", "all", "layers searched: all, or some of block0,block1,block2,logits (the others take the network's forward pass; one block alone: the paper's fitness-scaling runs)",
             [](const Options& o, const S& k) { parse_layers(o.get<S>(k), "layers"); })
     .opt<S>("layer-generations", "300,100,100,10", "generations per layer (block0, block1, block2, logits)", [](const Options& o, const S&) { validate(o.example_search()); })
     .opt<S>("layer-alpha", "0.3,0.2,0.1,0.1", "mutation strength per layer: noise std / the parents' per-channel std")
     .opt<S>("layer-boost", "5,3,3,1", "exploratory children's strength multiplier per layer")
     .opt<S>("layer-blur", "5,1,1,0", "3x3 average-pooling passes on each child per layer (the logits take none)")
     .opt<i64>("parents", 20, "k: per example, the best kept each generation (never re-scored)")
     .opt<i64>("exploratory", 100, "children per example and generation with strength alpha x boost, bred from the parents")
     .opt<i64>("refinement", 120, "children per example and generation with strength alpha, bred from the parents and explorers")
     .opt<double>("init-noise", 0.5, "initial population: the layer's input + noise of this std relative to its per-channel std")
     .opt<i64>("example-batch", 32, "examples per unit of work (a unit: one batch searched by one island); fixed by the config, so archives never depend on the device", positive())
     .opt<i64>("eval-chunk", 256, "candidates per forward call of the frozen network (the last padded); lower it when memory is short", positive())
     .opt<S>("targets-dtype", "float32", "float32 | float16: how the archive stores the targets (the softmax stays float32)", one_of({"float32", "float16"}))
     .opt<i64>("diversity-examples", 1000, "first examples whose every island's targets the archive keeps", at_least(0, ">= 0"))
     .opt<S>("neff", "per-example", "N_eff of the island bests: per-example (each example's, averaged) | pooled (the sums over examples)", one_of({"per-example", "pooled"}))
     .opt<bool>("neff-centre", false, "N_eff: centre each example's candidates over the islands before the cosine similarities");
  });
  return g;
}

const Group& migration_group() {
  static const Group& g = group("Migration", [](Declare& d) {
    d.opt<S>("topology", "ring", "none | ring | full | random | graph",
             [](const Options& o, const S&) { mpi::validate(o.migration(), o.get<i64>("islands")); })
     .opt<S>("migration-edges", "", "graph: edges '0->1, 1->2:0.5' (weight = probability of use)")
     .opt<i64>("migration-interval", 0, "generations between migrations (0: never; the islands are independent runs, the paper's setting)", at_least(0, ">= 0"))
     .opt<i64>("migrants", 1, "best individuals sent along each edge (example space: per example)", [](const Options& o, const S& k) {
       // the dataset space's island keeps one of its own; the example space sends from its parents
       const bool example = o.get<S>("space") == "example";
       const i64 limit = example ? o.get<i64>("parents") + 1 : o.get<i64>("population");
       const char* what = example ? "at most parents" : "below population";
       if (o.get<i64>(k) < 1 || o.get<i64>(k) >= limit)
         throw OptionError(k, std::to_string(o.get<i64>(k)), detail::cat(">= 1 and ", what, " (", limit - (example ? 1 : 0), ")"),
                           detail::cat("option migrants: must be >= 1 and ", what, " (", limit - (example ? 1 : 0), "), found ",
                                       o.get<i64>(k)));
     })
     .opt<bool>("migration-align", true, "Procrustes-align immigrants to the receiver's best");
  });
  return g;
}

const Group& run_group() {
  static const Group& g = group("Run control", [](Declare& d) {
    d.opt<i64>("checkpoint-interval", 0, "generations between checkpoints (0: none by count)", at_least(0, ">= 0"))
     .opt<double>("checkpoint-minutes", 10, "minutes between checkpoints by rank 0's clock, taken by every rank a few generations later (0: none by time); a checkpoint is also written at the end and on SIGTERM/SIGUSR1", non_negative())
     .opt<S>("allow-change", "", "resume: comma-separated keys allowed to differ from the checkpoint's config; only keys that do not change what the archive means (see below)", check_allow_change)
     .opt<double>("stall-minutes", 30, "give up when the other ranks make no progress for this long (a stopped, lost or cut-off rank): every live rank reports it and the job exits 3", positive_real())
     .opt<i64>("log-every", 1, "generations (example space: steps) between progress lines", positive())
     .opt<bool>("keep-units", false, "example space: keep <out>/units/ (every island's targets of every example) once the archive is written");
  });
  return g;
}

// Command line only: what a run directory's state is to be.
const Group& start_group() {
  static const Group& g = group("Start", [](Declare& d) {
    d.flag("resume", "continue from <out>/checkpoint.h5 (config must match; rank count may differ)")
     .flag("overwrite", "start afresh in a run directory that holds an archive or checkpoint, deleting them");
  });
  return g;
}

const Group& learner_group() {
  static const Group& g = group("Learner (learn and sgd)", [](Declare& d) {
    d.opt<S>("arch", "auto", "mlp | cnn | auto (cnn for 3-channel images)", one_of({"auto", "mlp", "cnn"}))
     .opt<S>("hidden", "256", "mlp: comma-separated widths before the cut layer", check_widths)
     .opt<S>("channels", "32,64,128", "cnn: channels of the conv3x3-ReLU-maxpool blocks", check_widths)
     .opt<S>("optimizer", "adam", "adam | sgd (with momentum)", one_of({"adam", "sgd"}))
     .opt<double>("lr", 1e-3, "learning rate", positive_real())
     .opt<double>("momentum", 0.9, "sgd momentum", fraction())
     .opt<double>("weight-decay", 0.0, "L2 weight decay", non_negative())
     .opt<i64>("epochs", 30, "training epochs (regression for learn, end to end for sgd)", at_least(0, ">= 0"))
     .opt<i64>("batch", 128, "minibatch size", positive())
     .opt<S>("schedule", "cosine", "constant | cosine learning-rate schedule", one_of({"constant", "cosine"}))
     .opt<S>("head", "ridge", "learn: ridge (closed form) | ce (train the head alone)", one_of({"ridge", "ce"}))
     .opt<double>("head-ridge", 1e-3, "learn: ridge strength of the head relative to tr(H^T H)/d", positive_real())
     .opt<i64>("head-epochs", 20, "learn, head=ce: epochs of head training", at_least(0, ">= 0"))
     .opt<S>("head-data", "search+val", "learn: search | search+val (the search saw V's labels)", one_of({"search", "search+val"}))
     .opt<S>("extend", "none", "learn: none | smoother: also regress on every training example outside S and H, its target carried from the searched Z by the fitness's kernel-ridge smoother", one_of({"none", "smoother"}))
     .opt<i64>("probe-size", 1000, "test images whose cut-layer activations form the trajectory", positive())
     .opt<i64>("trajectory-points", 16, "log-spaced training steps at which the trajectory is recorded", at_least(2, ">= 2"))
     .opt<S>("data", "search+val", "sgd: search+val (fair budget) | full (whole training set)", one_of({"search+val", "full"}))
     .opt<S>("seeds", "0", "sgd (and learn on an example archive): network seeds, e.g. '0', '0,3' or '0..4' (several: an ensemble; the report's mean +- std)",
             [](const Options& o, const S& k) { parse_seeds(o.get<S>(k)); });
  });
  return g;
}

// Comma-separated ConvGroups per block, each 1..8 ("1,2,3": one network per depth).
void check_depths(const Options& o, const std::string& key) {
  check_widths(o, key);
  for (const auto& v : split_list(o.get<std::string>(key)))
    if (std::stoll(v) > 8)
      throw OptionError(key, o.get<std::string>(key), "comma-separated depths 1..8 (the paper: 1, 2, 3)",
                        detail::cat("option ", key, ": expected ConvGroups per block in 1..8 (the paper uses 1, 2, 3), found ", v));
}

const Group& paper_learner_group() {
  static const Group& g = group("Example-space learner (learn and sgd on an example archive: the paper's Section 4)", [](Declare& d) {
    d.opt<S>("depth", "2", "ConvGroups per block of the learned and SGD networks (2 convs each; the search network has 1): e.g. '2' or '1,2,3' (one network each); the paper: 3 for CIFAR, 2 for MNIST", check_depths)
     .opt<S>("supervise", "all", "learn: blocks regressed onto their targets: all | skip-block0 | all,skip-block0 (one network each)",
             [](const Options& o, const S& k) {
               const auto list = split_list(o.get<S>(k));
               const auto names = supervise_names();
               for (const auto& v : list)
                 if (std::find(names.begin(), names.end(), v) == names.end())
                   throw OptionError(k, v, "all, skip-block0 or both, comma-separated",
                                     detail::cat("option ", k, ": expected all, skip-block0 or both (comma-separated), found '", v, "'"));
               if (list.empty()) throw OptionError(k, o.get<S>(k), "all, skip-block0 or both, comma-separated");
             })
     .opt<S>("targets", "best", "learn: best (each example's best island, the paper's) | islands (beyond the paper: one network per island, each from that island's own targets, on the examples the archive keeps every island's targets for: diversity-examples)", one_of({"best", "islands"}))
     .opt<double>("kl-weight", 0.03, "learn: lambda of the head's KL(searched softmax || head(stop_gradient(last block)))", non_negative(true))
     .opt<bool>("normalise-outputs", true, "learn: normalise each block output per example (zero mean, unit variance over C, H, W, as the search normalises every target) before the squared error and the cosine distances")
     .opt<S>("head-input", "normalised", "learn and sgd: what the linear head reads: normalised (the last block's output normalised per example, as the search network's head reads the normalised targets) | raw", one_of(head_input_names()))
     .opt<double>("learner-lr", 0.05, "SGD learning rate (PyTorch's form, on mean losses; the paper's 4.0 is airbench's form: ARCHITECTURE.md)", positive_real())
     .opt<double>("learner-momentum", 0.85, "Nesterov momentum (the paper: 0.85)", fraction())
     .opt<double>("learner-weight-decay", 0.0, "L2 weight decay", non_negative(true))
     .opt<i64>("learner-epochs", 30, "epochs (the paper: 90 CIFAR, 1,000 MNIST)", at_least(0, ">= 0"))
     .opt<i64>("learner-batch", 100, "minibatch size (the paper: 2,000)", positive())
     .opt<S>("learner-schedule", "cosine", "constant | cosine learning rate (per step, to 0)", one_of({"constant", "cosine"}))
     .opt<S>("augment", "none", "none | flip-crop (horizontal flip + 2-pixel crop; the example's cached target is reused)", one_of(augment_names()))
     .opt<double>("heldout-share", 0.08, "searched examples held out for model selection and the per-epoch trajectories (the paper: 8 %)",
                  [](const Options& o, const S& k) { require(o, k, o.get<double>(k) > 0 && o.get<double>(k) < 1, "in (0, 1)"); })
     .opt<i64>("target-chunk", 4096, "archive rows of targets in memory at once (peak memory; >= the examples: read once)", positive())
     .opt<i64>("trajectory-examples", 500, "held-out examples whose block outputs the per-epoch cosine distances and collision entropies use", positive());
  });
  return g;
}

const Group& archive_group() {
  static const Group& g = group("Archive", [](Declare& d) {
    d.bare("archive", po::value<S>(), "search archive (archive.h5): its config supplies every other option, its "
                                      "data identity and splits are checked against the data loaded, and the "
                                      "results go beside it (unless --out); sgd: optional, the baseline on exactly "
                                      "the data that archive was searched on");
  });
  return g;
}

const Group& learn_group() {
  static const Group& g = group("Learn", [](Declare& d) {
    d.opt<S>("elite", "0", "elite rank (0 = best), uid (0x...), or all (one network each + ensemble)");
  });
  return g;
}

const Group& config_command_group() {
  static const Group& g = group("Config", [](Declare& d) {
    d.flag("resolved", "print every option as the other commands resolve it: defaults, then --config files in order (later files win), then the command line (the default action)")
     .bare("get", po::value<S>(), "print the resolved value of one option only (for scripts)");
  });
  return g;
}

const Group& inspect_group() {
  static const Group& g = group("Inspect", [](Declare& d) {
    d.plain("help,h", "show this help")
     .bare("file", po::value<std::vector<S>>(), "archive or results file(s)")
     .flag("json", "machine-readable JSON instead of the human summary");
  });
  return g;
}

// What config files (and an archive's config) may hold: the options of search, learn and sgd, in the
// order of the resolved text that archives store and config_sha256 hashes.
std::vector<const Group*> config_groups() {
  return {&general_group(), &example_group(), &fitness_group(), &search_group(), &migration_group(), &learner_group(), &paper_learner_group(), &run_group()};
}

po::options_description config_file_options() {
  po::options_description d;
  for (const Group* g : config_groups())
    for (const auto& o : g->options.options())
      if (o->long_name() != "help" && o->long_name() != "config") d.add(o);
  return d;
}

void check_allow_change(const Options& o, const std::string& key) {
  const auto automatic = resume_mutable_keys(), extra = allow_change_keys();
  const auto known = config_file_options();
  for (const auto& name : o.allowed_changes()) {
    if (!known.find_nothrow(name, false))
      throw OptionError(key, name, "option names such as elites",
                        "option allow-change: unknown key '" + name + "' (expected option names such as elites)");
    if (std::find(automatic.begin(), automatic.end(), name) == automatic.end() &&
        std::find(extra.begin(), extra.end(), name) == extra.end())
      throw OptionError(key, name, join(extra) + " or a run-control key",
                        detail::cat("option allow-change: '", name, "' shapes what the search computes or what the archive ",
                                    "holds, so it cannot change on a resume (the archive's config would not describe the ",
                                    "run); keys that may: ", join(extra), " and the run-control keys (see 'repsearch search ",
                                    "--help'); start a new run directory instead"));
  }
}

// ---- per command: what it takes on the command line (mlpack style) -----------------------------------

struct Command {
  const char* name;
  const char* summary;                // first line of its --help
  std::vector<const Group*> shown;    // its --help lists these
  std::vector<const Group*> also;     // taken as well, named in a note of its --help
  const char* also_note;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"data", "data: load the data set, build the S/V/H splits, print their sizes and class balance",
       {&general_group()}, {}, ""},
      {"search", "search: the island-model search of representations (--space example: the paper's, per training example; dataset: repsearch's own); writes <out>/archive.h5",
       {&general_group(), &example_group(), &fitness_group(), &search_group(), &migration_group(), &run_group(), &start_group()},
       {&learner_group(), &paper_learner_group()},
       "the archive stores them, and learn takes them from there (see 'repsearch learn --help')"},
      {"learn", "learn: train networks from an archive: on an example archive the paper's learner (every block regressed onto its searched targets, a KL head), on a dataset archive the cut layer regressed onto an elite",
       {&general_group(), &archive_group(), &learn_group(), &paper_learner_group(), &learner_group()}, {}, ""},
      {"sgd", "sgd: the same network family trained end to end with cross-entropy (the baseline; example space: on the searched examples, at each --depth)",
       {&general_group(), &archive_group(), &paper_learner_group(), &learner_group()},
       {&example_group(), &fitness_group(), &search_group(), &migration_group(), &run_group()},
       "its results record the whole config, so a search's command line serves sgd too; dim, the split sizes and "
       "seed shape its network and data, the others only the record (see 'repsearch search --help')"},
      {"inspect", "inspect: summarise an archive or results file; two results files also give the CKA table of their trajectories",
       {&inspect_group()}, {}, ""},
      {"config",
       "config: print the options as every command resolves them (defaults < --config files in order < command "
       "line); every option of search, learn and sgd is accepted (see their --help)",
       {&general_group(), &config_command_group()},
       {&example_group(), &fitness_group(), &search_group(), &migration_group(), &run_group(), &start_group(), &learner_group(),
        &paper_learner_group()},
       "it resolves them for the commands that use them"},
  };
  return table;
}

// Boost's own option errors (a missing value, a bad conversion) as OptionError, named when Boost names it.
OptionError po_option_error(const po::error& e, const std::string& message) {
  std::string name;
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) name = named->get_option_name();
  name.erase(0, name.find_first_not_of('-'));
  return OptionError(name, "", "", message);
}

const Command& find_command(const std::string& name) {
  std::string names;
  for (const auto& c : commands()) {
    if (name == c.name) return c;
    names += (names.empty() ? "" : ", ") + std::string(c.name);
  }
  throw OptionError("command", name, "one of " + names,
                    detail::cat("unknown command '", name, "'; expected one of ", names, " (see 'repsearch --help')"));
}

std::string help_text(const Command& c) {
  po::options_description visible(std::string(c.summary) + "\n\nUsage: repsearch " + c.name + " [options]");
  for (const Group* g : c.shown) visible.add(g->options);
  std::ostringstream help;
  help << visible;
  if (!c.also.empty()) {
    std::vector<std::string> captions;
    for (const Group* g : c.also) captions.push_back(g->caption);
    help << "\nAlso taken: the " << join(captions) << " options; " << c.also_note << ".\n";
  }
  if (std::string(c.name) == "search")
    help << "\nOn --resume these may differ from the checkpoint's config without asking: " << join(resume_mutable_keys())
         << ".\n--allow-change may add: " << join(allow_change_keys())
         << ". Every other key shapes what the archive holds and is refused.\n";
  return help.str();
}

// The command line as `c` takes it; an option of another command is named as such.
void store_command_line(Options& o, const Command& c, const std::vector<std::string>& args) {
  po::options_description cli;
  for (const auto* list : {&c.shown, &c.also})
    for (const Group* g : *list) cli.add(g->options);
  po::positional_options_description positional;
  if (std::string(c.name) == "inspect") positional.add("file", -1);
  try {
    po::store(po::command_line_parser(args).options(cli).positional(positional).run(), o.vm);
  } catch (const po::error& e) {
    std::string option;
    if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) option = named->get_option_name();
    option.erase(0, option.find_first_not_of('-'));
    std::vector<std::string> takers;
    if (dynamic_cast<const po::unknown_option*>(&e) != nullptr)
      for (const auto& other : commands())
        for (const auto* list : {&other.shown, &other.also})
          for (const Group* g : *list)
            if (g->options.find_nothrow(option, false) &&
                std::find(takers.begin(), takers.end(), other.name) == takers.end())
              takers.push_back(other.name);
    const std::string expected = "an option (and value) that 'repsearch " + o.command + " --help' lists";
    if (!takers.empty())
      throw OptionError(option, "", expected,
                        detail::cat("command line: option '--", option, "' is not an option of 'repsearch ", o.command,
                                    "' (it is one of ", join(takers), "; see 'repsearch ", o.command, " --help')"));
    throw OptionError(option, "", expected, detail::cat("command line: ", e.what(), " (see 'repsearch ", o.command, " --help')"));
  }
}

// The config files, later ones winning; then every option of search, learn and sgd gets its default
// (the resolved text and validate() see them all, whatever the command).
void store_config_files(Options& o) {
  const auto file_opts = config_file_options();
  if (o.vm.count("config")) {
    o.config_files = o.vm["config"].as<std::vector<std::string>>();
    // po::store keeps the first value it sees: the command line went in first, then the files from
    // the last to the first, so that later files win over earlier ones.
    for (auto it = o.config_files.rbegin(); it != o.config_files.rend(); ++it) {
      const std::string& path = *it;
      std::error_code ec;
      const auto st = std::filesystem::status(path, ec);
      if (!std::filesystem::exists(st))
        throw InputError(path, "cannot be opened: no such file (expected a readable INI file)",
                         "config file " + path + ": cannot be opened: no such file (expected a readable INI file)");
      if (!std::filesystem::is_regular_file(st))
        fail_input(path, "config file ", path, ": cannot be opened: not a regular file (expected a readable INI file, found a ",
                   std::filesystem::is_directory(st) ? "directory" : "special file", ")");
      std::ifstream in(path);
      if (!in)
        fail_input(path, "config file ", path, ": cannot be opened: ", std::strerror(errno), " (expected a readable INI file)");
      try {
        po::store(parse_ini(in, file_opts), o.vm);
      } catch (const po::error& e) {
        fail_input(path, "config file ", path, ": ", e.what(),
                   " (expected 'key = value' lines with keys from 'repsearch search --help')");
      }
    }
  }
  std::istringstream none;
  po::store(parse_ini(none, file_opts), o.vm);
}

}  // namespace

Options parse_options(const std::string& command, const std::vector<std::string>& args) {
  Options o;
  o.command = command;
  for (const auto& a : args) o.command_line += (o.command_line.empty() ? "" : " ") + a;
  const Command& c = find_command(command);
  o.help_text = help_text(c);
  store_command_line(o, c, args);
  if (o.vm.count("help")) {
    o.help = true;
    return o;
  }
  if (command != "inspect") store_config_files(o);
  try {
    po::notify(o.vm);
  } catch (const po::error& e) {
    throw po_option_error(e, detail::cat("options: ", e.what()));
  }
  return o;
}

void add_config_text(Options& o, const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  try {
    po::store(parse_ini(in, config_file_options()), o.vm);
    po::notify(o.vm);
  } catch (const po::error& e) {
    throw po_option_error(e, detail::cat(origin, ": ", e.what()));
  }
}

std::string Options::resolved() const {
  std::ostringstream os;
  const auto all = config_file_options();
  for (const auto& opt : all.options()) {
    const auto& name = opt->long_name();
    if (vm.count(name)) os << name << " = " << ini_value(value_text(vm.at(name))) << "\n";
  }
  return os.str();
}

std::string Options::value(const std::string& key) const { return value_text(vm.at(key)); }

std::vector<std::string> Options::allowed_changes() const { return split_list(get<std::string>("allow-change")); }

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
          "stall-minutes", "keep-units"};
}

std::vector<std::string> per_rank_keys() { return {"threads", "device", "data-dir"}; }

std::string rank_agreed_text(const Options& o) {
  std::istringstream in(o.resolved());
  std::string line, text;
  const auto own = per_rank_keys();
  while (std::getline(in, line))
    if (std::find(own.begin(), own.end(), line.substr(0, line.find(" = "))) == own.end()) text += line + "\n";
  for (const char* flag : {"resume", "overwrite"})
    if (o.vm.count(flag)) text += std::string(flag) + " = " + value_text(o.vm.at(flag)) + "\n";
  return text;
}

std::vector<std::string> allow_change_keys() { return {"elites", "elite-selection", "elite-tolerance"}; }

SplitSizes Options::splits() const {
  SplitSizes s;
  const auto text = get<std::string>("search-size");
  if (text == "all") {
    s.search = SplitSizes::kAll;
  } else {
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos || std::stoll(text) < 1)
      throw OptionError("search-size", text, "a positive integer or 'all'",
                        "option search-size: expected a positive integer or 'all', found '" + text + "'");
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

NetConfig Options::net() const {
  NetConfig n;
  std::vector<i64> w;
  for (const auto& v : split_list(get<std::string>("net-width"))) w.push_back(std::stoll(v));
  if (w.size() == 1) w.assign(3, w.front());
  if (w.size() != 3)
    throw OptionError("net-width", get<std::string>("net-width"), "one width, or three (block0, block1, block2)");
  n.widths = w;
  n.batchnorm = get<std::string>("net-batchnorm");
  n.whiten_images = get<i64>("whiten-images");
  n.seed = get<u64>("seed");
  return n;
}

ExampleSearchConfig Options::example_search() const {
  ExampleSearchConfig c;
  c.layers = parse_layers(get<std::string>("layers"), "layers");
  const auto generations = per_layer<i64>(*this, "layer-generations");
  const auto alpha = per_layer<double>(*this, "layer-alpha"), boost = per_layer<double>(*this, "layer-boost");
  const auto blur = per_layer<i64>(*this, "layer-blur");
  for (std::size_t l = 0; l < 4; ++l) c.schedule[l] = {generations[l], alpha[l], boost[l], blur[l]};
  c.parents = get<i64>("parents");
  c.exploratory = get<i64>("exploratory");
  c.refinement = get<i64>("refinement");
  c.init_noise = get<double>("init-noise");
  c.islands = get<i64>("islands");
  c.migration = migration();
  c.seed = get<u64>("seed");
  c.eval_chunk = get<i64>("eval-chunk");
  return c;
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

// Every option's check, in declaration order (each names its option, what it may be and what was found).
void validate(const Options& o) {
  for (const Group* g : config_groups())
    for (const auto& [key, check] : g->checks) check(o, key);
}

std::vector<std::uint64_t> parse_seeds(const std::string& text) {
  std::vector<std::uint64_t> out;
  auto bad = [&]() {
    throw OptionError("seeds", text, "'N', 'A,B,C' or 'A..B' (non-negative integers)",
                      "option seeds: expected 'N', 'A,B,C' or 'A..B' (non-negative integers), found '" + text + "'");
  };
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
  for (const auto* g : {&learner_group(), &paper_learner_group()})
    for (const auto& o : g->options.options()) keys.push_back(o->long_name());  // they shape learn/sgd, not the search
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
