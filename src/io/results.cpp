// Results of one trained network (include/repsearch/io/results.hpp), written and read through the
// HDF5 layer of h5_detail.hpp (checked calls, clear errors, atomic writes). Layout, format_version 1:
//   /              attrs format="repsearch-results", format_version, kind, provenance, seed, elite_*, model...,
//                  model_bytes int64 and model_crc32 uint64 of the network file (absent in files written before them)
//   /data/identity the data set trained and evaluated on (h5_detail.hpp; absent in files written before it)
//   /metrics       epoch int64, phase vlen UTF-8 strings, loss, train_accuracy, val_accuracy,
//                  examples_per_s, seconds float64: one entry per epoch row (0 rows allowed)
//   /accuracy      attrs val, heldout, test, regression_mse (float64, NaN where not measured)
//   /trajectory    steps [T] int64, probe_indices [n_probe] int64,
//                  activations [T, n_probe, d] float32 (chunks [1, n_probe, d], shuffle + gzip 4)
//   /predictions   test_probabilities [n_test, C] float32 (gzip 4), test_labels [n_test] int32 (so ensembles
//                  can be scored from results files alone)
//                  example-space networks also: attrs variant, depth, selected_epoch, kl_weight, island; datasets
//                  heldout_rows [h] int64, heldout_accuracy [E+1], cosine_distance, collision_entropy_within,
//                  collision_entropy_between [E+1, 3], target_collision_entropy_within/_between [3] (float64)
//   /model         (optional; absent in files written before it) attrs arch "mlp"|"cnn"|"convgroups", cut, classes int64,
//                  depth int64 and head_input "normalised"|"raw" (convgroups only),
//                  logit_scale float64, head, normalisation (text); datasets hidden, channels, input_shape
//                  int64 (datasets, not attributes: hidden or channels may be empty), normalisation_mean,
//                  normalisation_std [C] float32. Its own group, so format_version 1 readers still read the file.
// Empty datasets (T = 0, n_test = 0, ...) are stored contiguous and unfiltered: HDF5 refuses chunks
// larger than a fixed dimension. With T = 0, undefined activations are written as [0, n_probe, 0].
#include <hdf5.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "h5_detail.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/results.hpp"

namespace repsearch::io {

using namespace detail;
namespace fs = std::filesystem;

namespace {

std::string results_label(const std::string& path) { return "results " + path; }

// No recorded step: trainers leave `activations` undefined (nothing to stack); store [0, n_probe, 0].
at::Tensor activations_or_empty(const Results& r) {
  if (r.activations.defined() || !r.steps.defined() || r.steps.dim() != 1 || r.steps.size(0) != 0 ||
      !r.probe_indices.defined() || r.probe_indices.dim() != 1)
    return r.activations;
  return at::zeros({0, r.probe_indices.size(0), 0}, at::kFloat);
}

// A /model that rebuilds the network that wrote `classes` probabilities and cut-layer `activations`
// (written and read alike: a reader must never build a network that disagrees with its own file).
void validate_spec(const std::string& label, const ModelSpec& m, std::int64_t classes, const at::Tensor& activations) {
  const bool groups = m.arch == "convgroups";
  if (m.arch != "mlp" && m.arch != "cnn" && !groups)
    fail(label, ": /model arch must be mlp, cnn or convgroups, found '", m.arch, "'");
  if (groups && (m.channels.size() != 3 || m.depth < 1))
    fail(label, ": /model of a convgroups network needs 3 block widths (channels) and depth >= 1, found ",
         m.channels.size(), " widths, depth ", m.depth);
  if (m.input_shape.size() != 3 || *std::min_element(m.input_shape.begin(), m.input_shape.end()) < 1)
    fail(label, ": /model input_shape must be [C, H, W] of positive sizes, found [", join(m.input_shape), "]");
  for (const auto* widths : {&m.hidden, &m.channels})
    for (auto w : *widths)
      if (w < 1) fail(label, ": /model hidden and channels must be positive widths, found ", w);
  if ((!groups && m.cut < 1) || m.classes != classes)
    fail(label, ": /model cut ", m.cut, " and classes ", m.classes, " must be >= 1 and the ", classes,
         " columns of test_probabilities");
  if (!groups && activations.size(0) > 0 && activations.size(2) != m.cut)
    fail(label, ": /model cut ", m.cut, " but the trajectory's activations have width ", activations.size(2));
  for (const auto* stat : {&m.normalisation_mean, &m.normalisation_std})
    if (!stat->defined() || stat->dim() != 1 || stat->size(0) != m.input_shape[0])
      fail(label, ": /model normalisation_mean and normalisation_std must hold one value per channel (",
           m.input_shape[0], ")");
  if (!(m.normalisation_std.to(at::kDouble) > 0).all().item<bool>() || !std::isfinite(m.logit_scale) ||
      m.logit_scale <= 0)
    fail(label, ": /model normalisation_std and logit_scale must be positive and finite");
}

// Everything write_results checks before it creates a file.
void validate(const std::string& label, const Results& r, const at::Tensor& activations) {
  if (r.phase.size() != r.epochs.size())
    fail(label, ": cannot write: ", r.phase.size(), " phases for ", r.epochs.size(),
         " metric rows (expected one phase per row)");
  require_rank(label, "steps", r.steps, 1, "int64 [T]");
  require_rank(label, "probe_indices", r.probe_indices, 1, "int64 [n_probe]");
  require_rank(label, "activations", activations, 3, "float32 [T, n_probe, d]");
  require_length(label, "activations (axis 0)", activations.size(0), r.steps.size(0), "T, the length of steps");
  require_length(label, "activations (axis 1)", activations.size(1), r.probe_indices.size(0),
                 "n_probe, the length of probe_indices");
  require_rank(label, "test_probabilities", r.test_probabilities, 2, "float32 [n_test, C]");
  require_rank(label, "test_labels", r.test_labels, 1, "int32 [n_test]");
  require_length(label, "test_labels", r.test_labels.size(0), r.test_probabilities.size(0),
                 "n_test, the rows of test_probabilities");
  if (r.spec.present()) validate_spec(label, r.spec, r.test_probabilities.size(1), activations);
  if (r.example.present()) {
    const auto& e = r.example;
    require_rank(label, "heldout_accuracy", e.heldout_accuracy, 1, "float64 [E+1]");
    const auto rows = e.heldout_accuracy.size(0);
    for (const auto* t : {&e.cosine_distance, &e.entropy_within, &e.entropy_between}) {
      require_rank(label, "example trajectory", *t, 2, "float64 [E+1, 3]");
      require_length(label, "example trajectory (axis 0)", t->size(0), rows, "E+1, the length of heldout_accuracy");
    }
  }
}

template <class T, class F>
std::vector<T> column(const std::vector<EpochRow>& rows, F field) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (const EpochRow& row : rows) out.push_back(field(row));
  return out;
}

// /metrics: one row per epoch and its phase.
std::vector<EpochRow> read_metrics(const Reader& r, std::vector<std::string>& phase) {
  r.group("/metrics");  // a clear "missing group" before any missing column
  const auto epoch = r.vector<std::int64_t>("/metrics/epoch");
  phase = r.strings("/metrics/phase");
  const auto loss = r.vector<double>("/metrics/loss");
  const auto train_accuracy = r.vector<double>("/metrics/train_accuracy");
  const auto val_accuracy = r.vector<double>("/metrics/val_accuracy");
  const auto examples_per_s = r.vector<double>("/metrics/examples_per_s");
  const auto seconds = r.vector<double>("/metrics/seconds");
  const std::size_t n = epoch.size();
  require_columns(r, "/metrics", n,
                  {{"epoch", n}, {"phase", phase.size()}, {"loss", loss.size()},
                   {"train_accuracy", train_accuracy.size()}, {"val_accuracy", val_accuracy.size()},
                   {"examples_per_s", examples_per_s.size()}, {"seconds", seconds.size()}});
  std::vector<EpochRow> rows(n);
  for (std::size_t i = 0; i < n; ++i)
    rows[i] = {epoch[i], loss[i], train_accuracy[i], val_accuracy[i], examples_per_s[i], seconds[i]};
  return rows;
}

ModelSpec read_model(const Reader& r) {
  ModelSpec m;
  Handle model = r.group("/model");
  const hid_t g = model.get();
  m.arch = r.attr_string(g, "/model", "arch");
  m.cut = r.attr<std::int64_t>(g, "/model", "cut");
  m.classes = r.attr<std::int64_t>(g, "/model", "classes");
  m.logit_scale = r.attr<double>(g, "/model", "logit_scale");
  m.head = r.attr_string(g, "/model", "head");
  m.hidden = r.vector<std::int64_t>("/model/hidden");
  m.channels = r.vector<std::int64_t>("/model/channels");
  m.input_shape = r.vector<std::int64_t>("/model/input_shape");
  m.normalisation_mean = r.tensor("/model/normalisation_mean", at::kFloat, 1, "[C]");
  m.normalisation_std = r.tensor("/model/normalisation_std", at::kFloat, 1, "[C]");
  if (H5Aexists(g, "depth") > 0) m.depth = r.attr<std::int64_t>(g, "/model", "depth");
  if (H5Aexists(g, "head_input") > 0) m.head_input = r.attr_string(g, "/model", "head_input");
  return m;
}

}  // namespace

namespace {

void write_root(Writer& w, const Results& r) {
  Handle root = w.open_group("/");
  const hid_t g = root.get();
  w.attr_string(g, "/", "format", kResultsFormat);
  w.attr<std::int64_t>(g, "/", "format_version", kResultsFormatVersion);
  w.attr_string(g, "/", "kind", r.kind);
  write_origin(w, g, r);
  w.attr_string(g, "/", "archive_path", r.archive_path);
  w.attr_string(g, "/", "archive_sha256", r.archive_sha256);
  w.attr<std::uint64_t>(g, "/", "elite_uid", r.elite_uid);
  w.attr<std::int64_t>(g, "/", "elite_rank", r.elite_rank);
  w.attr_string(g, "/", "model", r.model);
  w.attr_string(g, "/", "train_data", r.train_data);
  w.attr_string(g, "/", "model_path", r.model_path);
  if (r.model_bytes >= 0) {
    w.attr<std::int64_t>(g, "/", "model_bytes", r.model_bytes);
    w.attr<std::uint64_t>(g, "/", "model_crc32", r.model_crc32);
  }
}

void write_model(Writer& w, const ModelSpec& m) {
  Handle model = w.group("/model");
  const hid_t g = model.get();
  w.attr_string(g, "/model", "arch", m.arch);
  w.attr<std::int64_t>(g, "/model", "cut", m.cut);
  w.attr<std::int64_t>(g, "/model", "classes", m.classes);
  w.attr<double>(g, "/model", "logit_scale", m.logit_scale);
  w.attr_string(g, "/model", "head", m.head);
  if (m.arch == "convgroups") {
    w.attr<std::int64_t>(g, "/model", "depth", m.depth);
    w.attr_string(g, "/model", "head_input", m.head_input);
  }
  w.attr_string(g, "/model", "normalisation",
                "x = (images / 255 - normalisation_mean[c]) / normalisation_std[c], per channel c, "
                "statistics of the training set; logits = logit_scale * head(encoder(x))");
  w.vector("/model/hidden", m.hidden);
  w.vector("/model/channels", m.channels);
  w.vector("/model/input_shape", m.input_shape);
  w.tensor("/model/normalisation_mean", m.normalisation_mean, at::kFloat);
  w.tensor("/model/normalisation_std", m.normalisation_std, at::kFloat);
}

void write_example_trajectory(Writer& w, const ExampleTrajectory& e) {
  Handle traj = w.open_group("/trajectory");
  const hid_t g = traj.get();
  w.attr_string(g, "/trajectory", "space", "example");
  w.attr_string(g, "/trajectory", "variant", e.variant);
  w.attr<std::int64_t>(g, "/trajectory", "depth", e.depth);
  w.attr<std::int64_t>(g, "/trajectory", "selected_epoch", e.selected_epoch);
  w.attr<double>(g, "/trajectory", "kl_weight", e.kl_weight);
  w.attr<std::int64_t>(g, "/trajectory", "island", e.island);
  w.attr_string(g, "/trajectory", "definitions",
                "row t = after epoch t (0: before training), on the held-out searched examples; cosine_distance: mean "
                "of 1 - cos(block output, searched target), flattened; collision_entropy: -log(sum_ij K_ij^2 / "
                "(sum_i K_ii)^2), K the cosine similarities; within = mean over classes of the entropy of the "
                "class's outputs, between = the entropy of the class means (nats)");
  w.tensor("/trajectory/heldout_rows", e.heldout_rows, at::kLong);
  w.tensor("/trajectory/heldout_accuracy", e.heldout_accuracy, at::kDouble);
  w.tensor("/trajectory/cosine_distance", e.cosine_distance, at::kDouble);
  w.tensor("/trajectory/collision_entropy_within", e.entropy_within, at::kDouble);
  w.tensor("/trajectory/collision_entropy_between", e.entropy_between, at::kDouble);
  w.tensor("/trajectory/target_collision_entropy_within", e.target_entropy_within, at::kDouble);
  w.tensor("/trajectory/target_collision_entropy_between", e.target_entropy_between, at::kDouble);
}

ExampleTrajectory read_example_trajectory(const Reader& r) {
  ExampleTrajectory e;
  Handle traj = r.group("/trajectory");
  const hid_t g = traj.get();
  if (H5Aexists(g, "variant") <= 0) return e;
  e.variant = r.attr_string(g, "/trajectory", "variant");
  e.depth = r.attr<std::int64_t>(g, "/trajectory", "depth");
  e.selected_epoch = r.attr<std::int64_t>(g, "/trajectory", "selected_epoch");
  e.kl_weight = r.attr<double>(g, "/trajectory", "kl_weight");
  e.island = r.attr<std::int64_t>(g, "/trajectory", "island");
  e.heldout_rows = r.tensor("/trajectory/heldout_rows", at::kLong, 1, "[h]");
  e.heldout_accuracy = r.tensor("/trajectory/heldout_accuracy", at::kDouble, 1, "[E+1]");
  e.cosine_distance = r.tensor("/trajectory/cosine_distance", at::kDouble, 2, "[E+1, 3]");
  e.entropy_within = r.tensor("/trajectory/collision_entropy_within", at::kDouble, 2, "[E+1, 3]");
  e.entropy_between = r.tensor("/trajectory/collision_entropy_between", at::kDouble, 2, "[E+1, 3]");
  e.target_entropy_within = r.tensor("/trajectory/target_collision_entropy_within", at::kDouble, 1, "[3]");
  e.target_entropy_between = r.tensor("/trajectory/target_collision_entropy_between", at::kDouble, 1, "[3]");
  for (const auto* t : {&e.cosine_distance, &e.entropy_within, &e.entropy_between})
    require_size(r, "/trajectory/cosine_distance", t->size(0), e.heldout_accuracy.size(0),
                 "one row per entry of /trajectory/heldout_accuracy");
  return e;
}

void write_results_as(const std::string& path, const Results& r, const AtomicWrite& how) {
  const std::string label = results_label(path);
  const at::Tensor activations = activations_or_empty(r);
  validate(label, r, activations);
  write_atomically(path, label, [&](Writer& w) {
    write_root(w, r);
    write_data_identity(w, r.data);

    w.group("/metrics");
    using R = const EpochRow&;
    w.vector("/metrics/epoch", column<std::int64_t>(r.epochs, [](R e) { return e.epoch; }));
    w.strings("/metrics/phase", r.phase);
    w.vector("/metrics/loss", column<double>(r.epochs, [](R e) { return e.loss; }));
    w.vector("/metrics/train_accuracy", column<double>(r.epochs, [](R e) { return e.train_accuracy; }));
    w.vector("/metrics/val_accuracy", column<double>(r.epochs, [](R e) { return e.val_accuracy; }));
    w.vector("/metrics/examples_per_s", column<double>(r.epochs, [](R e) { return e.examples_per_s; }));
    w.vector("/metrics/seconds", column<double>(r.epochs, [](R e) { return e.seconds; }));

    {
      Handle accuracy = w.group("/accuracy");
      const hid_t g = accuracy.get();
      w.attr<double>(g, "/accuracy", "val", r.val_accuracy);
      w.attr<double>(g, "/accuracy", "heldout", r.heldout_accuracy);
      w.attr<double>(g, "/accuracy", "test", r.test_accuracy);
      w.attr<double>(g, "/accuracy", "regression_mse", r.regression_mse);
    }

    w.group("/trajectory");
    w.tensor("/trajectory/steps", r.steps, at::kLong);
    w.tensor("/trajectory/probe_indices", r.probe_indices, at::kLong);
    // One recorded step per chunk: [1, n_probe, d], shuffle + gzip 4.
    w.tensor("/trajectory/activations", activations, at::kFloat, /*compress_rows=*/true);
    if (r.example.present()) write_example_trajectory(w, r.example);

    w.group("/predictions");
    // Blocks of whole rows of about 1 MiB, gzip 4 (no shuffle).
    const std::int64_t classes = std::max<std::int64_t>(1, r.test_probabilities.size(1));
    const hsize_t rows = std::max<hsize_t>(1, (hsize_t{1} << 20) / (static_cast<hsize_t>(classes) * sizeof(float)));
    w.tensor("/predictions/test_probabilities", r.test_probabilities, at::kFloat, /*compress_rows=*/true, rows,
             /*shuffle=*/false);
    w.tensor("/predictions/test_labels", r.test_labels, at::kInt);

    if (r.spec.present()) write_model(w, r.spec);
  }, how);
}

// Size and CRC-32 of a file's bytes; errno in *error (0 when read).
std::pair<std::int64_t, std::uint64_t> file_crc32(const std::string& path, int* error) {
  *error = 0;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = errno;
    return {-1, 0};
  }
  std::vector<unsigned char> buf(1 << 20);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  std::int64_t bytes = 0;
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0; bytes += static_cast<std::int64_t>(n))
    crc = ::crc32(crc, buf.data(), static_cast<uInt>(n));
  if (std::ferror(f)) *error = errno ? errno : EIO;
  std::fclose(f);
  return {bytes, crc};
}

}  // namespace

void write_results(const std::string& path, const Results& r) try {
  write_results_as(path, r, {});
} catch (...) {
  detail::rethrow_as_output(path);
}

void write_results_with_model(const std::string& path, Results& r,
                              const std::function<void(const std::string& tmp)>& save) try {
  const std::string model_tmp = r.model_path + ".tmp-" + std::to_string(::getpid());
  try {
    save(model_tmp);
    if (const int error = fsync_path(model_tmp)) fail_output(r.model_path, "cannot sync ", model_tmp, ": ", std::strerror(error));
    int error = 0;
    std::tie(r.model_bytes, r.model_crc32) = file_crc32(model_tmp, &error);
    if (error) fail_output(r.model_path, "cannot read back ", model_tmp, ": ", std::strerror(error));
    AtomicWrite how;
    how.before_rename = [&] {
      if (std::remove(path.c_str()) != 0 && errno != ENOENT)
        fail_output(path, "cannot remove the previous ", path, ": ", std::strerror(errno));
      if (std::rename(model_tmp.c_str(), r.model_path.c_str()) != 0)
        fail_output(r.model_path, "cannot rename ", model_tmp, " onto ", r.model_path, ": ", std::strerror(errno));
    };
    write_results_as(path, r, how);
  } catch (...) {
    std::remove(model_tmp.c_str());
    throw;
  }
} catch (...) {
  detail::rethrow_as_output(path);
}

std::string model_file(const std::string& results_path, const Results& r) {
  const fs::path beside = fs::path(results_path).replace_extension(".pt");
  std::error_code ec;
  if (fs::exists(beside, ec) || r.model_path.empty()) return beside.string();
  return r.model_path;
}

std::string check_model_file(const std::string& results_path, const Results& r) {
  if (r.model_bytes < 0) return "";
  const std::string file = model_file(results_path, r);
  int error = 0;
  const auto [bytes, crc] = file_crc32(file, &error);
  if (error) return repsearch::detail::cat("its network file ", file, " cannot be read: ", std::strerror(error));
  if (bytes != r.model_bytes || crc != r.model_crc32)
    return repsearch::detail::cat("its network file ", file, " is not the one written with it (", bytes, " bytes, CRC-32 ", crc,
                       "; the results record ", r.model_bytes, " bytes, CRC-32 ", r.model_crc32,
                       "): a mismatched pair (a write interrupted between the two files, or one copied over)");
  return "";
}

Results read_results(const std::string& path) try {
  const std::string label = results_label(path);
  Handle file = open_for_read(path, label, kResultsFormat);
  const Reader r(file.get(), label);
  check_format(r, kResultsFormat, "results file", kResultsFormatVersion);
  Results out;
  {
    Handle root = r.group("/");
    const hid_t g = root.get();
    out.kind = r.attr_string(g, "/", "kind");
    static_cast<Origin&>(out) = read_origin(r, g);
    out.archive_path = r.attr_string(g, "/", "archive_path");
    out.archive_sha256 = r.attr_string(g, "/", "archive_sha256");
    out.elite_uid = r.attr<std::uint64_t>(g, "/", "elite_uid");
    out.elite_rank = r.attr<std::int64_t>(g, "/", "elite_rank");
    out.model = r.attr_string(g, "/", "model");
    out.train_data = r.attr_string(g, "/", "train_data");
    out.model_path = r.attr_string(g, "/", "model_path");
    if (H5Aexists(g, "model_bytes") > 0) {
      out.model_bytes = r.attr<std::int64_t>(g, "/", "model_bytes");
      out.model_crc32 = r.attr<std::uint64_t>(g, "/", "model_crc32");
    }
  }
  out.data = read_data_identity(r);

  out.epochs = read_metrics(r, out.phase);

  {
    Handle accuracy = r.group("/accuracy");
    const hid_t g = accuracy.get();
    out.val_accuracy = r.attr<double>(g, "/accuracy", "val");
    out.heldout_accuracy = r.attr<double>(g, "/accuracy", "heldout");
    out.test_accuracy = r.attr<double>(g, "/accuracy", "test");
    out.regression_mse = r.attr<double>(g, "/accuracy", "regression_mse");
  }

  r.group("/trajectory");
  out.steps = r.tensor("/trajectory/steps", at::kLong, 1, "[T]");
  out.probe_indices = r.tensor("/trajectory/probe_indices", at::kLong, 1, "[n_probe]");
  out.activations = r.tensor("/trajectory/activations", at::kFloat, 3, "[T, n_probe, d]");
  require_size(r, "/trajectory/activations", out.activations.size(0), out.steps.size(0),
               "axis 0 is T, the length of /trajectory/steps");
  require_size(r, "/trajectory/activations", out.activations.size(1), out.probe_indices.size(0),
               "axis 1 is n_probe, the length of /trajectory/probe_indices");
  out.example = read_example_trajectory(r);

  r.group("/predictions");
  out.test_probabilities = r.tensor("/predictions/test_probabilities", at::kFloat, 2, "[n_test, C]");
  out.test_labels = r.tensor("/predictions/test_labels", at::kInt, 1, "[n_test]");
  require_size(r, "/predictions/test_labels", out.test_labels.size(0), out.test_probabilities.size(0),
               "one label per row of /predictions/test_probabilities");

  if (r.exists("/model")) {
    out.spec = read_model(r);
    validate_spec(label, out.spec, out.test_probabilities.size(1), out.activations);
  }
  return out;
} catch (...) {
  detail::rethrow_as_input(path);
}

}  // namespace repsearch::io
