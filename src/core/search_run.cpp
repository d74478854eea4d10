#include "repsearch/core/search_run.hpp"

#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "repsearch/core/error.hpp"

namespace repsearch {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kStop = 1, kCheckpointDue = 2;  // agreement flags

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

SearchRun::SearchRun(IslandGroup& islands, RunControl control, OpenCheckpoint open_checkpoint)
    : islands_(islands), control_(std::move(control)), open_checkpoint_(std::move(open_checkpoint)) {
  if (control_.log_every < 1) throw OptionError("log-every", std::to_string(control_.log_every), ">= 1");
  if (!control_.stop_requested) control_.stop_requested = [] { return false; };
}

void SearchRun::start() {
  islands_.initialise();
  last_checkpoint_ = t0_ = Clock::now();
}

void SearchRun::resume(std::int64_t generation, std::vector<IslandState> local, std::vector<MigrationEvent> migrations) {
  islands_.restore(std::move(local));
  islands_.restore_migrations(std::move(migrations));
  checkpoint_generation_ = generation;
  last_checkpoint_ = t0_ = Clock::now();
}

SearchRun::Result SearchRun::write_checkpoint(bool keep_histories) {
  last_checkpoint_ = Clock::now();
  std::unique_ptr<CheckpointSink> sink;  // islands stream into it one at a time
  if (islands_.is_root()) sink = open_checkpoint_(islands_.generation());
  Result r;
  islands_.for_each_state([&](const IslandState& s) {
    sink->add(s);
    if (!keep_histories) return;
    if (r.histories.size() <= static_cast<std::size_t>(s.island)) r.histories.resize(static_cast<std::size_t>(s.island) + 1);
    r.histories[static_cast<std::size_t>(s.island)] = s.history;
  });
  r.migrations = islands_.gather_migrations();
  if (sink) sink->finish(r.migrations);
  checkpoint_generation_ = islands_.generation();
  return r;
}

// Root prints each posted generation once all islands have reported it; no process waits for that.
// The island bests' diversity is shown only on the lines of the generations it was computed for.
void SearchRun::report(bool wait) {
  for (const auto& pr : islands_.poll_progress(wait)) {
    if (evals0_ < 0) {
      evals0_ = pr.evaluations;
      examples0_ = pr.examples;
    }
    const double secs = seconds_since(t0_);
    const double rate = secs > 0 ? static_cast<double>(pr.evaluations - evals0_) / secs : 0.0;
    const double eta = pr.generation > g0_ ? secs / static_cast<double>(pr.generation - g0_) *
                                                 static_cast<double>(control_.generations - pr.generation)
                                           : NAN;
    if (pr.examples_total > 0) {
      char where[64] = "between units", ce[32] = "-";
      if (!pr.layer.empty())
        std::snprintf(where, sizeof where, "%s gen %lld/%lld", pr.layer.c_str(), static_cast<long long>(std::max<std::int64_t>(pr.layer_generation, 0)),
                      static_cast<long long>(pr.layer_generations));
      if (!std::isnan(pr.mean_best_ce)) std::snprintf(ce, sizeof ce, "%.4f", pr.mean_best_ce);
      std::printf("[search] step %lld/%lld  %s  best CE %s  examples %lld/%lld (%.2f/s)  %.0f eval/s  ETA %s\n",
                  static_cast<long long>(pr.generation), static_cast<long long>(control_.generations), where,
                  ce, static_cast<long long>(pr.examples), static_cast<long long>(pr.examples_total),
                  secs > 0 ? static_cast<double>(pr.examples - examples0_) / secs : 0.0, rate, format_duration(eta).c_str());
    } else {
      char div[48] = "";
      if (!std::isnan(pr.diversity)) std::snprintf(div, sizeof div, "  diversity %.3f", pr.diversity);
      std::printf("[search] gen %5lld/%lld  best %.4f  mean %.4f  heldout %.4f%s  %.0f eval/s%s  ETA %s\n",
                  static_cast<long long>(pr.generation), static_cast<long long>(control_.generations), pr.best, pr.mean,
                  pr.heldout, div, rate, pr.nonfinite ? "  (non-finite scores seen)" : "", format_duration(eta).c_str());
    }
    std::fflush(stdout);
  }
}

bool SearchRun::checkpoint_due(std::int64_t g, std::uint32_t agreed) const {
  const auto every = control_.checkpoint_interval;
  return ((agreed & kCheckpointDue) || (every > 0 && g % every == 0)) && g < control_.generations;
}

SearchRun::Outcome SearchRun::run() {
  t0_ = Clock::now();
  mpi0_ = islands_.time_in_mpi();
  migration0_ = islands_.time_in_migration();
  g0_ = islands_.generation();
  islands_.post_progress(true);
  report(true);
  const bool root = islands_.is_root();
  bool requested = false;  // root asks for a timed checkpoint once, then waits for the agreed one
  try {
    while (islands_.generation() < control_.generations) {
      islands_.step();
      const std::int64_t g = islands_.generation();
      std::uint32_t want = control_.stop_requested() ? kStop : 0;
      if (root && control_.checkpoint_seconds > 0 && !requested &&
          seconds_since(last_checkpoint_) >= control_.checkpoint_seconds) {
        want |= kCheckpointDue;
        requested = true;
      }
      const auto agreed = islands_.agreed(want);
      const bool stop = agreed & kStop, last = g == control_.generations;
      if (g % control_.log_every == 0 || last || stop) islands_.post_progress(g % 10 == 0 || last || stop);
      report(last || stop);
      if (stop) {
        write_checkpoint();
        if (root)
          std::cout << "[search] stopped by signal at " << control_.step_name << " " << g << "; checkpoint " << control_.checkpoint_path
                    << " written; continue with --resume" << std::endl;
        return Outcome::stopped;
      }
      if (checkpoint_due(g, agreed)) {
        write_checkpoint();
        requested = false;
        if (root) std::cout << "[search] checkpoint at " << control_.step_name << " " << g << ": " << control_.checkpoint_path << std::endl;
      }
    }
  } catch (const Stalled& e) {
    throw Stalled("at " + control_.step_name + " " + std::to_string(islands_.generation()) + ": " + e.what() + "; " +
                  (checkpoint_generation_ >= 0
                       ? "the newest checkpoint is " + control_.checkpoint_path + " (generation " +
                             std::to_string(checkpoint_generation_) + "): continue with --resume"
                       : std::string("no checkpoint was written yet")));
  }
  return Outcome::finished;
}

SearchRun::Result SearchRun::finish() {
  loop_peak_mib_ = peak_rss_mib();  // set-up and generations, before the final gathers
  auto result = write_checkpoint(/*keep_histories=*/true);
  result.elites = islands_.collect_elites(control_.elites, control_.elite_selection);
  return result;
}

void SearchRun::report_cost(double population_mib) {
  const double loop = seconds_since(t0_);
  const double in_mpi = islands_.time_in_mpi() - mpi0_;
  const auto worst = islands_.reduce_max({loop, in_mpi, islands_.time_in_migration() - migration0_, peak_rss_mib(),
                                          loop_peak_mib_, 100.0 * in_mpi / std::max(loop, 1e-9)});
  if (!islands_.is_root()) return;
  std::printf("[search] %.1f s since start/resume: MPI (migration, gathers, signal agreement) %.2f s (%.1f%% of that "
              "rank's time), of which migration %.2f s; peak RSS %.0f MiB per rank (max; %.0f MiB before the final "
              "checkpoint and archive), one island's population %.1f MiB\n",
              worst[0], worst[1], worst[5], worst[2], worst[3], worst[4], population_mib);
}

}  // namespace repsearch
