// The example space's unit files and archive (layouts in README.md, "Archive"), through the RAII layer
// over the HDF5 C API (h5_detail.hpp, h5_rows.hpp): every call checked, every file written atomically.
#include "repsearch/io/example_archive.hpp"

#include <hdf5.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <type_traits>

#include "h5_detail.hpp"
#include "h5_rows.hpp"
#include "repsearch/core/diversity.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"

namespace repsearch::io {

using namespace detail;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTargetNames = {"block0", "block1", "block2", "logits", "softmax"};

std::string unit_label(const std::string& path) { return "unit file " + path; }

void write_network(Writer& w, const NetConfig& net, const NetParameters& p, const std::vector<std::int64_t>& input_shape) {
  Handle g = w.group("/network");
  w.attr_string(g.get(), "/network", "batchnorm", net.batchnorm);
  w.attr<double>(g.get(), "/network", "batchnorm_eps", net.batchnorm_eps);
  w.attr<std::int64_t>(g.get(), "/network", "whiten_kernel", net.whiten_kernel);
  w.attr<double>(g.get(), "/network", "whiten_eps", net.whiten_eps);
  w.attr<std::int64_t>(g.get(), "/network", "whiten_images", net.whiten_images);
  w.attr<std::uint64_t>(g.get(), "/network", "seed", net.seed);
  w.vector("/network/widths", net.widths);
  w.vector("/network/input_shape", input_shape);
  w.tensor("/network/whiten_weight", p.whiten_weight.contiguous(), at::kFloat);
  w.tensor("/network/whiten_bias", p.whiten_bias, at::kFloat);
  for (std::size_t b = 0; b < p.conv1.size(); ++b) {
    const auto s = std::to_string(b);
    w.tensor("/network/conv1_" + s, p.conv1[b].contiguous(), at::kFloat);
    w.tensor("/network/conv2_" + s, p.conv2[b].contiguous(), at::kFloat);
    w.tensor("/network/bn1_mean_" + s, p.bn1_mean[b], at::kFloat);
    w.tensor("/network/bn1_var_" + s, p.bn1_var[b], at::kFloat);
    w.tensor("/network/bn2_mean_" + s, p.bn2_mean[b], at::kFloat);
    w.tensor("/network/bn2_var_" + s, p.bn2_var[b], at::kFloat);
  }
  w.tensor("/network/head", p.head.contiguous(), at::kFloat);
}

void read_network(const Reader& r, NetConfig& net, NetParameters& p, std::vector<std::int64_t>& input_shape) {
  Handle g = r.group("/network");
  net.batchnorm = r.attr_string(g.get(), "/network", "batchnorm");
  net.batchnorm_eps = r.attr<double>(g.get(), "/network", "batchnorm_eps");
  net.whiten_kernel = r.attr<std::int64_t>(g.get(), "/network", "whiten_kernel");
  net.whiten_eps = r.attr<double>(g.get(), "/network", "whiten_eps");
  net.whiten_images = r.attr<std::int64_t>(g.get(), "/network", "whiten_images");
  net.seed = r.attr<std::uint64_t>(g.get(), "/network", "seed");
  net.widths = r.vector<std::int64_t>("/network/widths");
  input_shape = r.vector<std::int64_t>("/network/input_shape");
  if (net.widths.size() != 3 || input_shape.size() != 3)
    fail(r.label(), ": /network holds ", net.widths.size(), " widths and an input shape of ", input_shape.size(),
         " numbers, expected 3 and 3");
  p.whiten_weight = r.tensor("/network/whiten_weight", at::kFloat, 4, "[2 C k^2, C, k, k]");
  p.whiten_bias = r.tensor("/network/whiten_bias", at::kFloat, 1, "[2 C k^2]");
  for (int b = 0; b < 3; ++b) {
    const auto s = std::to_string(b);
    p.conv1.push_back(r.tensor("/network/conv1_" + s, at::kFloat, 4, "[out, in, 3, 3]"));
    p.conv2.push_back(r.tensor("/network/conv2_" + s, at::kFloat, 4, "[out, out, 3, 3]"));
    p.bn1_mean.push_back(r.tensor("/network/bn1_mean_" + s, at::kFloat, 1, "[width]"));
    p.bn1_var.push_back(r.tensor("/network/bn1_var_" + s, at::kFloat, 1, "[width]"));
    p.bn2_mean.push_back(r.tensor("/network/bn2_mean_" + s, at::kFloat, 1, "[width]"));
    p.bn2_var.push_back(r.tensor("/network/bn2_var_" + s, at::kFloat, 1, "[width]"));
  }
  p.head = r.tensor("/network/head", at::kFloat, 2, "[classes, features]");
}

// Running sums over the archive's batches, turned into the summary at the end.
struct Tally {
  std::int64_t n = 0, right = 0, evaluations = 0;
  std::vector<double> ce = std::vector<double>(4, 0.0);
  double initial = 0, seconds = 0, forward = 0, operators = 0;
  std::vector<at::Tensor> history, island_history;              // per layer: [G + 1], [R, G + 1]
  std::vector<std::vector<double>> neff_num, neff_den, neff_sum;  // [R][3]: pooled parts, per-example sums
  std::vector<std::vector<std::int64_t>> neff_count;            // [R][3]: examples keeping a candidate
};

// One batch: every island's unit, checked against the spec.
std::vector<IslandUnit> read_batch(const std::string& out_dir, const ExampleArchiveSpec& spec, std::int64_t batch,
                                   std::int64_t first, std::int64_t count) {
  std::vector<IslandUnit> units;
  const auto want = spec.indices.slice(0, first, first + count);
  for (std::int64_t i = 0; i < spec.islands; ++i) {
    const auto path = unit_path(out_dir, batch, i);
    at::Tensor indices;
    std::string sha;
    auto u = read_unit(path, &indices, &sha);
    if (u.batch != batch || u.island != i || !at::equal(indices, want) || sha != spec.unit_hash)
      fail_input(path, unit_label(path), ": holds batch ", u.batch, ", island ", u.island,
                 " of another run or config (expected batch ", batch, ", island ", i, " of config ", spec.unit_hash,
                 "); remove it and resume to search it again");
    units.push_back(std::move(u));
  }
  return units;
}

void tally_neff(Tally& t, const std::vector<IslandUnit>& units, const ExampleArchiveSpec& spec) {
  const auto r = static_cast<std::int64_t>(units.size());
  for (std::int64_t l = 0; l < 3; ++l) {
    std::vector<at::Tensor> xs, keep;
    for (const auto& u : units) {
      xs.push_back(u.targets[static_cast<std::size_t>(l)].flatten(1));
      keep.push_back(u.ce.select(1, l) < std::log(2.0));  // p(true class) > 0.5
    }
    const auto x = at::stack(xs, 1), k = at::stack(keep, 1);
    for (std::int64_t m = 1; m <= r; ++m) {
      const auto parts = n_eff_parts(x.slice(1, 0, m), k.slice(1, 0, m), spec.neff_centre);
      const auto used = parts.sum_sq > 0;
      auto& slot = t.neff_sum[static_cast<std::size_t>(m - 1)][static_cast<std::size_t>(l)];
      slot += (parts.trace_sq / parts.sum_sq.clamp_min(1e-300)).masked_select(used).sum().item<double>();
      t.neff_num[static_cast<std::size_t>(m - 1)][static_cast<std::size_t>(l)] += parts.trace_sq.sum().item<double>();
      t.neff_den[static_cast<std::size_t>(m - 1)][static_cast<std::size_t>(l)] += parts.sum_sq.sum().item<double>();
      t.neff_count[static_cast<std::size_t>(m - 1)][static_cast<std::size_t>(l)] += used.sum().item<std::int64_t>();
    }
  }
}

void tally_batch(Tally& t, const std::vector<IslandUnit>& units, const at::Tensor& best, const at::Tensor& ce,
                 const at::Tensor& logits, const at::Tensor& labels) {
  const auto e = ce.size(0);
  t.n += e;
  for (std::int64_t l = 0; l < 4; ++l) t.ce[static_cast<std::size_t>(l)] += ce.select(1, l).sum().item<double>();
  t.initial += units.front().initial_ce.sum().item<double>();
  t.right += (logits.argmax(1) == labels).sum().item<std::int64_t>();
  (void)best;
  for (std::size_t l = 0; l < 4; ++l) {
    std::vector<at::Tensor> per_island;
    for (const auto& u : units) per_island.push_back(u.history[l] * static_cast<double>(e));
    auto stacked = at::stack(per_island);
    if (!t.island_history[l].defined()) t.island_history[l] = at::zeros_like(stacked);
    t.island_history[l] += stacked;
  }
  for (const auto& u : units) {
    t.evaluations += u.evaluations;
    t.seconds += u.seconds;
    t.forward += u.forward_seconds;
    t.operators += u.operator_seconds;
  }
}

ExampleSummary summarise(const Tally& t, const ExampleArchiveSpec& spec) {
  ExampleSummary s;
  s.examples = t.n;
  s.islands = spec.islands;
  const double n = std::max<double>(1.0, static_cast<double>(t.n));
  for (double v : t.ce) s.mean_best_ce.push_back(v / n);
  s.mean_initial_ce = t.initial / n;
  s.logit_accuracy = static_cast<double>(t.right) / n;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t m = 0; m < t.neff_sum.size(); ++m) {
    std::vector<double> row;
    for (std::size_t l = 0; l < 3; ++l) {
      if (spec.neff_pooled) row.push_back(t.neff_den[m][l] > 0 ? t.neff_num[m][l] / t.neff_den[m][l] : nan);
      else row.push_back(t.neff_count[m][l] > 0 ? t.neff_sum[m][l] / static_cast<double>(t.neff_count[m][l]) : nan);
    }
    s.n_eff_by_islands.push_back(row);
  }
  s.n_eff = spec.islands > 1 ? s.n_eff_by_islands.back() : std::vector<double>(3, nan);
  s.neff_variant = std::string(spec.neff_pooled ? "pooled" : "per-example") + (spec.neff_centre ? ", centred" : ", not centred");
  s.evaluations = t.evaluations;
  s.seconds = t.seconds;
  s.forward_seconds = t.forward;
  s.operator_seconds = t.operators;
  return s;
}

void write_summary(Writer& w, const ExampleSummary& s, const Tally& t, const ExampleArchiveSpec& spec) {
  {
    Handle g = w.group("/summary");
    w.attr<std::int64_t>(g.get(), "/summary", "examples", s.examples);
    w.attr<double>(g.get(), "/summary", "mean_initial_ce", s.mean_initial_ce);
    w.attr<double>(g.get(), "/summary", "logit_accuracy", s.logit_accuracy);
    w.attr_string(g.get(), "/summary", "neff_variant", s.neff_variant);
    w.attr<std::int64_t>(g.get(), "/summary", "evaluations", s.evaluations);
    w.attr<double>(g.get(), "/summary", "seconds", s.seconds);
    w.attr<double>(g.get(), "/summary", "forward_seconds", s.forward_seconds);
    w.attr<double>(g.get(), "/summary", "operator_seconds", s.operator_seconds);
  }
  w.vector("/summary/mean_best_ce", s.mean_best_ce);
  w.vector("/summary/n_eff", s.n_eff);
  std::vector<double> flat;
  for (const auto& row : s.n_eff_by_islands) flat.insert(flat.end(), row.begin(), row.end());
  w.tensor("/summary/n_eff_by_islands", at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).view({-1, 3}), at::kDouble);
  for (std::size_t l = 0; l < 4; ++l) {
    const auto per_island = t.island_history[l].defined() ? t.island_history[l] / std::max<double>(1.0, static_cast<double>(t.n))
                                                          : at::zeros({spec.islands, 0}, at::TensorOptions().dtype(at::kDouble));
    w.tensor("/search/history_island_" + kTargetNames[l], per_island, at::kDouble);
    w.tensor("/search/history_" + kTargetNames[l], per_island.mean(0), at::kDouble);
  }
}

}  // namespace

std::string unit_path(const std::string& out_dir, std::int64_t batch, std::int64_t island) {
  char name[64];
  std::snprintf(name, sizeof name, "b%06lld-i%03lld.h5", static_cast<long long>(batch), static_cast<long long>(island));
  return (fs::path(out_dir) / "units" / name).string();
}

void write_unit(const std::string& path, const IslandUnit& unit, const at::Tensor& indices, const std::string& config_sha256) try {
  AtomicWrite how;
  how.checksums = how.metadata_checksums = true;
  write_atomically(path, unit_label(path), [&](Writer& w) {
    {
      Handle root = w.open_group("/");
      w.attr_string(root.get(), "/", "format", kUnitFormat);
      w.attr<std::int64_t>(root.get(), "/", "format_version", kUnitFormatVersion);
      w.attr_string(root.get(), "/", "config_sha256", config_sha256);
      for_each_unit_field(unit, [&](const char* name, const auto& field) {
        using T = std::decay_t<decltype(field)>;
        if constexpr (!std::is_same_v<T, at::Tensor>) w.attr<T>(root.get(), "/", name, field);
      });
    }
    w.tensor("/indices", indices, at::kLong);
    for_each_unit_field(unit, [&](const char* name, const auto& field) {
      using T = std::decay_t<decltype(field)>;
      if constexpr (std::is_same_v<T, at::Tensor>) {
        if (!field.defined()) fail(unit_label(path), ": cannot write: field ", name, " is undefined");
        w.tensor(std::string("/") + name, field, field.scalar_type());
      }
    });
  }, how);
} catch (...) {
  detail::rethrow_as_output(path);
}

IslandUnit read_unit(const std::string& path, at::Tensor* indices, std::string* config_sha256) try {
  const auto label = unit_label(path);
  Handle file = open_for_read(path, label, kUnitFormat);
  const Reader r(file.get(), label, /*require_checksums=*/true);
  check_format(r, kUnitFormat, "unit file", kUnitFormatVersion);
  Handle root = r.group("/");
  IslandUnit u;
  for_each_unit_field(u, [&](const char* name, auto& field) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, at::Tensor>) field = read_any(r, std::string("/") + name);
    else field = r.attr<T>(root.get(), "/", name);
  });
  if (indices) *indices = r.tensor("/indices", at::kLong, 1, "[B]");
  if (config_sha256) *config_sha256 = r.attr_string(root.get(), "/", "config_sha256");
  for (const auto& t : u.targets)
    if (t.size(0) != u.ce.size(0) || !at::isfinite(t).all().item<bool>())
      fail(label, ": targets of ", t.size(0), " examples (expected ", u.ce.size(0), ") or non-finite values: a damaged unit");
  return u;
} catch (...) {
  detail::rethrow_as_input(path);
}

bool unit_finished(const std::string& path, std::int64_t batch, std::int64_t island, const std::string& config_sha256) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    const auto label = unit_label(path);
    Handle file = open_for_read(path, label, kUnitFormat);
    const Reader r(file.get(), label);
    check_format(r, kUnitFormat, "unit file", kUnitFormatVersion);
    Handle root = r.group("/");
    return r.attr<std::int64_t>(root.get(), "/", "batch") == batch && r.attr<std::int64_t>(root.get(), "/", "island") == island &&
           r.attr_string(root.get(), "/", "config_sha256") == config_sha256;
  } catch (const Error&) {
    return false;  // damaged or foreign: searched again, and replaced
  }
}

std::string archive_space(const std::string& path) try {
  const std::string label = "archive " + path;
  Handle file = open_for_read(path, label, kArchiveFormat);
  const Reader r(file.get(), label);
  Handle root = r.group("/");
  if (H5Aexists(root.get(), "format") <= 0 || r.attr_string(root.get(), "/", "format") != kArchiveFormat)
    fail(label, ": not a repsearch archive (expected format=", kArchiveFormat, ")");
  return H5Aexists(root.get(), "space") > 0 ? r.attr_string(root.get(), "/", "space") : "dataset";
} catch (...) {
  detail::rethrow_as_input(path);
}

namespace {

// Each example's row from the island whose sequence ends with the lowest cross-entropy (the lowest
// island index on a tie): [E, ...] of stacked [R, E, ...].
at::Tensor pick(const std::vector<at::Tensor>& per_island, const at::Tensor& flat_index) {
  return at::stack(per_island).flatten(0, 1).index_select(0, flat_index);
}

struct ArchiveRows {
  std::vector<std::unique_ptr<RowWriter>> targets, diversity;  // block0..logits, softmax; block0..logits, ce
  std::unique_ptr<RowWriter> ce, initial_ce, island;
  std::int64_t diversity_rows = 0;
};

ArchiveRows open_rows(Writer& w, const ExampleArchiveSpec& spec, const std::vector<IslandUnit>& first) {
  ArchiveRows rows;
  const auto n = static_cast<hsize_t>(spec.indices.size(0)), r = static_cast<hsize_t>(spec.islands);
  const auto chunk = static_cast<hsize_t>(spec.example_batch);
  const auto dtype = spec.targets_dtype == "float16" ? at::kHalf : at::kFloat;
  rows.diversity_rows = std::min<std::int64_t>(spec.diversity_examples, spec.indices.size(0));
  const auto m = static_cast<hsize_t>(rows.diversity_rows);
  w.group("/targets");
  w.group("/diversity");
  for (std::size_t l = 0; l < 4; ++l) {
    std::vector<hsize_t> shape(first.front().targets[l].sizes().begin() + 1, first.front().targets[l].sizes().end());
    std::vector<hsize_t> dims = {n}, div = {m, r};
    dims.insert(dims.end(), shape.begin(), shape.end());
    div.insert(div.end(), shape.begin(), shape.end());
    rows.targets.push_back(std::make_unique<RowWriter>(w, "/targets/" + kTargetNames[l], dtype, dims, chunk));
    rows.diversity.push_back(std::make_unique<RowWriter>(w, "/diversity/" + kTargetNames[l], dtype, div, chunk));
  }
  const auto classes = static_cast<hsize_t>(first.front().targets[3].size(1));
  rows.targets.push_back(std::make_unique<RowWriter>(w, "/targets/softmax", at::kFloat, std::vector<hsize_t>{n, classes}, chunk));
  rows.diversity.push_back(std::make_unique<RowWriter>(w, "/diversity/ce", at::kDouble, std::vector<hsize_t>{m, r, 4}, chunk));
  rows.ce = std::make_unique<RowWriter>(w, "/targets/ce", at::kDouble, std::vector<hsize_t>{n, 4}, chunk);
  rows.initial_ce = std::make_unique<RowWriter>(w, "/targets/initial_ce", at::kDouble, std::vector<hsize_t>{n}, chunk);
  rows.island = std::make_unique<RowWriter>(w, "/targets/island", at::kInt, std::vector<hsize_t>{n}, chunk);
  return rows;
}

// One batch's rows: the best island's sequence per example, and every island's for the diversity rows.
void write_batch(ArchiveRows& rows, Tally& t, const std::vector<IslandUnit>& units, std::int64_t first,
                 const at::Tensor& labels) {
  const auto e = units.front().ce.size(0);
  std::vector<at::Tensor> ces;
  for (const auto& u : units) ces.push_back(u.ce);
  const auto all_ce = at::stack(ces);                                   // [R, E, 4]
  const auto best = all_ce.select(2, 3).argmin(0);                      // [E]
  const auto flat = best * e + at::arange(e, best.options());
  at::Tensor logits;
  for (std::size_t l = 0; l < 4; ++l) {
    std::vector<at::Tensor> per;
    for (const auto& u : units) per.push_back(u.targets[l]);
    auto chosen = pick(per, flat);
    rows.targets[l]->write(chosen);
    if (l == 3) logits = chosen;
  }
  rows.targets[4]->write(at::softmax(logits.to(at::kFloat), 1));
  const auto ce = pick(ces, flat);
  rows.ce->write(ce);
  rows.initial_ce->write(units.front().initial_ce);
  rows.island->write(best.to(at::kInt));
  const auto keep = std::max<std::int64_t>(0, std::min(e, rows.diversity_rows - first));
  if (keep > 0) {
    for (std::size_t l = 0; l < 4; ++l) {
      std::vector<at::Tensor> per;
      for (const auto& u : units) per.push_back(u.targets[l].slice(0, 0, keep));
      rows.diversity[l]->write(at::stack(per, 1));
    }
    rows.diversity[4]->write(all_ce.slice(1, 0, keep).transpose(0, 1));
  }
  tally_batch(t, units, best, ce, logits, labels);
}

void write_header(Writer& w, const ExampleArchiveSpec& spec) {
  {
    Handle root = w.open_group("/");
    write_provenance(w, root.get(), kArchiveFormat, spec.provenance, kExampleArchiveVersion);
    w.attr_string(root.get(), "/", "space", "example");
  }
  write_data_group(w, spec.dataset, spec.data_dir, spec.normalisation);
  w.tensor("/data/indices", spec.indices, at::kLong);
  w.tensor("/data/labels", spec.labels, at::kLong);
  write_data_identity(w, spec.provenance.data);
  write_network(w, spec.net, spec.net_parameters, spec.input_shape);
  Handle g = w.group("/search");
  w.attr<std::int64_t>(g.get(), "/search", "example_batch", spec.example_batch);
  w.attr<std::int64_t>(g.get(), "/search", "islands", spec.islands);
  w.attr<std::int64_t>(g.get(), "/search", "diversity_examples", spec.diversity_examples);
  w.attr_string(g.get(), "/search", "targets_dtype", spec.targets_dtype);
  w.vector("/search/layers", spec.layers);
}

}  // namespace

ExampleSummary write_example_archive(const std::string& path, const std::string& out_dir, const ExampleArchiveSpec& spec) try {
  const auto n = spec.indices.size(0), b = spec.example_batch, r = spec.islands;
  if (n < 1 || b < 1 || r < 1 || spec.labels.size(0) != n)
    fail("archive ", path, ": cannot write: ", n, " examples, batch ", b, ", ", r, " islands, ", spec.labels.size(0), " labels");
  Tally t;
  t.history.resize(4);
  t.island_history.resize(4);
  for (auto* v : {&t.neff_num, &t.neff_den, &t.neff_sum}) v->assign(static_cast<std::size_t>(r), std::vector<double>(3, 0.0));
  t.neff_count.assign(static_cast<std::size_t>(r), std::vector<std::int64_t>(3, 0));
  ExampleSummary summary;
  AtomicWrite how;
  how.checksums = how.metadata_checksums = true;
  write_atomically(path, "archive " + path, [&](Writer& w) {
    write_header(w, spec);
    ArchiveRows rows;
    for (std::int64_t batch = 0, first = 0; first < n; ++batch, first += b) {
      const auto count = std::min(b, n - first);
      const auto units = read_batch(out_dir, spec, batch, first, count);
      if (batch == 0) rows = open_rows(w, spec, units);
      write_batch(rows, t, units, first, spec.labels.slice(0, first, first + count));
      tally_neff(t, units, spec);
    }
    for (auto* list : {&rows.targets, &rows.diversity})
      for (auto& writer : *list) writer->finish();
    for (auto* writer : {rows.ce.get(), rows.initial_ce.get(), rows.island.get()}) writer->finish();
    summary = summarise(t, spec);
    write_summary(w, summary, t, spec);
  }, how);
  return summary;
} catch (...) {
  detail::rethrow_as_output(path);
}

// ---- reading ----------------------------------------------------------------------------------------------

namespace {

Handle open_example(const std::string& path, const std::string& label) {
  Handle file = open_for_read(path, label, kArchiveFormat);
  const Reader r(file.get(), label);
  check_format(r, kArchiveFormat, "archive", kExampleArchiveVersion, kExampleArchiveVersion);
  Handle root = r.group("/");
  if (H5Aexists(root.get(), "space") <= 0 || r.attr_string(root.get(), "/", "space") != "example")
    fail(label, ": not an archive of the example space (no space=example attribute)");
  return file;
}

ExampleSummary read_summary(const Reader& r, std::int64_t islands) {
  ExampleSummary s;
  Handle g = r.group("/summary");
  s.examples = r.attr<std::int64_t>(g.get(), "/summary", "examples");
  s.islands = islands;
  s.mean_initial_ce = r.attr<double>(g.get(), "/summary", "mean_initial_ce");
  s.logit_accuracy = r.attr<double>(g.get(), "/summary", "logit_accuracy");
  s.neff_variant = r.attr_string(g.get(), "/summary", "neff_variant");
  s.evaluations = r.attr<std::int64_t>(g.get(), "/summary", "evaluations");
  s.seconds = r.attr<double>(g.get(), "/summary", "seconds");
  s.forward_seconds = r.attr<double>(g.get(), "/summary", "forward_seconds");
  s.operator_seconds = r.attr<double>(g.get(), "/summary", "operator_seconds");
  s.mean_best_ce = r.vector<double>("/summary/mean_best_ce");
  s.n_eff = r.vector<double>("/summary/n_eff");
  auto by = r.tensor("/summary/n_eff_by_islands", at::kDouble, 2, "[R, 3]");
  for (std::int64_t i = 0; i < by.size(0); ++i)
    s.n_eff_by_islands.emplace_back(by[i].data_ptr<double>(), by[i].data_ptr<double>() + by.size(1));
  return s;
}

}  // namespace

ExampleArchive::ExampleArchive(const std::string& path) try : path_(path) {
  const std::string label = "archive " + path;
  Handle file = open_example(path, label);
  const Reader r(file.get(), label);
  provenance = read_provenance(r);
  provenance.data = read_data_identity(r);
  read_data_group(r, dataset, data_dir, normalisation);
  indices = r.tensor("/data/indices", at::kLong, 1, "[n]");
  labels = r.tensor("/data/labels", at::kLong, 1, "[n]");
  if (labels.size(0) != indices.size(0)) fail(label, ": /data/labels and /data/indices differ in length");
  read_network(r, net, net_parameters, input_shape);
  Handle g = r.group("/search");
  example_batch = r.attr<std::int64_t>(g.get(), "/search", "example_batch");
  islands = r.attr<std::int64_t>(g.get(), "/search", "islands");
  targets_dtype = r.attr_string(g.get(), "/search", "targets_dtype");
  layers = r.vector<std::int64_t>("/search/layers");
  for (const auto& name : {"block0", "block1", "block2", "logits"})
    history.push_back(r.vector<double>(std::string("/search/history_") + name));
  summary = read_summary(r, islands);
} catch (...) {
  detail::rethrow_as_input(path);
}

std::vector<std::int64_t> ExampleArchive::layer_shape(std::int64_t layer) const {
  const FrozenNet net_shape(net, net_parameters, input_shape, at::kCPU);
  if (layer == 4) return net_shape.layer_shape(3);
  return net_shape.layer_shape(layer);
}

at::Tensor ExampleArchive::targets(std::int64_t layer, std::int64_t first, std::int64_t count) const try {
  if (layer < 0 || layer > 4) fail("archive ", path_, ": no target layer ", layer, " (0..4: block0, block1, block2, logits, softmax)");
  const std::string label = "archive " + path_;
  Handle file = open_example(path_, label);
  const Reader r(file.get(), label);
  const auto name = "/targets/" + kTargetNames[static_cast<std::size_t>(layer)];
  const auto type = float_type_of(r, name);
  return read_rows(r, name, type, layer == 3 || layer == 4 ? 2 : 4, first, count).to(at::kFloat);
} catch (...) {
  detail::rethrow_as_input(path_);
}

at::Tensor ExampleArchive::ce(std::int64_t first, std::int64_t count) const try {
  const std::string label = "archive " + path_;
  Handle file = open_example(path_, label);
  const Reader r(file.get(), label);
  return read_rows(r, "/targets/ce", at::kDouble, 2, first, count);
} catch (...) {
  detail::rethrow_as_input(path_);
}

at::Tensor ExampleArchive::diversity(std::int64_t layer) const try {
  const std::string label = "archive " + path_;
  Handle file = open_example(path_, label);
  const Reader r(file.get(), label);
  const auto name = "/diversity/" + kTargetNames.at(static_cast<std::size_t>(layer));
  return r.tensor(name, float_type_of(r, name), layer == 3 ? 3 : 5, "[m, R, ...]").to(at::kFloat);
} catch (...) {
  detail::rethrow_as_input(path_);
}

at::Tensor ExampleArchive::diversity_ce() const try {
  const std::string label = "archive " + path_;
  Handle file = open_example(path_, label);
  const Reader r(file.get(), label);
  return r.tensor("/diversity/ce", at::kDouble, 3, "[m, R, 4]");
} catch (...) {
  detail::rethrow_as_input(path_);
}

}  // namespace repsearch::io
