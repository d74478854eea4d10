# shellcheck shell=bash disable=SC2034,SC2154  # kind comes from the job script, which uses bin and threads
# slurm/job_env.sh: the environment every job script starts from (sourced by slurm/*.sbatch after the
# run's pipeline.env, never run): the site's settings, modules and exports. sbatch runs a copy of the
# job script from Slurm's spool directory, so the scripts find this file through REPSEARCH_ROOT
# (from pipeline.env), not beside themselves; a requeued job reads it again, edits included.
#
# Needs: kind (the job script's name, for messages) and pipeline.env's variables.
# Sets: bin (the repsearch binary; require_bin checks it) and threads (SLURM_CPUS_PER_TASK, else 1);
# exports OPENBLAS_NUM_THREADS (threads, unless the site set it).

# shellcheck source=SCRIPTDIR/site.conf
source "$REPSEARCH_SITE_CONF" || { echo "[$kind] error: cannot read site settings $REPSEARCH_SITE_CONF" >&2; exit 1; }
if [[ ${#SITE_MODULES[@]} -gt 0 || "${SITE_MODULE_PURGE:-0}" == 1 ]]; then
  if ! type module >/dev/null 2>&1; then
    for f in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh /usr/share/lmod/lmod/init/bash; do
      # shellcheck source=/dev/null
      [[ -r "$f" ]] && source "$f" && break
    done
  fi
  [[ "${SITE_MODULE_PURGE:-0}" == 1 ]] && module purge
  [[ ${#SITE_MODULES[@]} -gt 0 ]] && { module load "${SITE_MODULES[@]}" || { echo "[$kind] error: module load ${SITE_MODULES[*]} failed" >&2; exit 1; }; }
fi
[[ -n "${SITE_LD_LIBRARY_PATH:-}" ]] && export LD_LIBRARY_PATH="$SITE_LD_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for kv in ${SITE_ENV[@]+"${SITE_ENV[@]}"}; do export "${kv?}"; done
bin="${SITE_REPSEARCH_BIN:-$REPSEARCH_ROOT/build/repsearch}"
threads="${SLURM_CPUS_PER_TASK:-1}"
# OpenBLAS starts its thread pool when the library loads, one thread per core of the node, before
# repsearch can size it to --threads: on a 128-core node that is 127 threads spinning at each start.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$threads}"

require_bin() { # the search, learn and sgd jobs run the binary; analysis runs Python only
  [[ -x "$bin" ]] || { echo "[$kind] error: repsearch binary '$bin' not found (SITE_REPSEARCH_BIN in $REPSEARCH_SITE_CONF)" >&2; exit 1; }
}
