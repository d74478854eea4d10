#!/usr/bin/env bash
# A private, real Slurm on this machine for the Slurm tests: 4 CPUs in all (declared, whatever the core
# count) and 2 fake GPUs per node (gres File=/dev/null, /dev/zero), its own munged, its own ports, every
# file under one state directory. Nothing is installed as a service and nothing outside the state
# directory is configured; the daemons are stopped by the PIDs in their pid files.
#
# Nodes: one node "localhost", or, with SLURM_HARNESS_HOSTS, one node per host made by
# tests/multihost/harness.sh (network namespaces): node i is named after host i, NodeAddr is its
# address, its slurmd runs on it under its name, and slurmctld runs on host 0. Clients must then run
# on one of the hosts too (tests/multihost/harness.sh exec 0 CMD...): slurmctld listens there only.
#
#   tests/slurm/harness.sh start   check the packages (launch/setup.sh installs them), write the config, start
#                                  munged + slurmctld + one slurmd per node, wait for the nodes to be idle
#   tests/slurm/harness.sh env     print the exports a client needs: eval "$(harness.sh env)"
#   tests/slurm/harness.sh stop    cancel the jobs left, stop the daemons by PID, keep the state dir
#   tests/slurm/harness.sh status  the daemons' PIDs and sinfo
#
# Environment:
#   SLURM_HARNESS_DIR   state directory (default /tmp/repsearch-slurm-$UID); must be an absolute path
#                       readable by the munge user (start makes it mode 0755)
#   SLURM_HARNESS_HOSTS a tests/multihost state directory (MULTIHOST_DIR) whose hosts become the nodes
#
# munged runs as user munge with its key, socket, pid file and log in $STATE/munge.
#
# Exit status: 0 done, 1 failure, 77 this machine cannot run a Slurm (not root, packages not installed,
# slurmd fails on cgroups): callers report it (tests/cannot_run.sh: a failure unless skips are allowed).
set -uo pipefail

STATE="${SLURM_HARNESS_DIR:-/tmp/repsearch-slurm-${UID}}"
CONF="$STATE/etc/slurm.conf"
PACKAGES=(slurmctld slurmd slurm-client munge)
WAIT_IDLE_S=30

log() { echo "[harness] $*"; }
err() { echo "[harness] error: $*" >&2; }
skip() {
  echo "[harness] SKIP: $*" >&2
  exit 77
}

[[ "$STATE" == /* ]] || {
  err "SLURM_HARNESS_DIR must be absolute (got '$STATE')"
  exit 1
}

# ---- nodes ------------------------------------------------------------------------------------------
HOSTS_DIR="${SLURM_HARNESS_HOSTS:-}"
MULTIHOST="$(cd "$(dirname "${BASH_SOURCE[0]}")/../multihost" && pwd)/harness.sh"
NODES=(localhost) ADDRS=("")
CPUS_IN_ALL=4
if [[ -n "$HOSTS_DIR" ]]; then
  [[ -s "$HOSTS_DIR/hosts" ]] || {
    err "SLURM_HARNESS_HOSTS=$HOSTS_DIR holds no hosts (tests/multihost/harness.sh up N first)"
    exit 1
  }
  mapfile -t NODES <"$HOSTS_DIR/hosts"
  ADDRS=()
  for ((i = 0; i < ${#NODES[@]}; i++)); do
    ADDRS+=("$(MULTIHOST_DIR="$HOSTS_DIR" "$MULTIHOST" addr "$i")") || exit 1
  done
fi
CPUS_PER_NODE=$((CPUS_IN_ALL / ${#NODES[@]} > 0 ? CPUS_IN_ALL / ${#NODES[@]} : 1))

# on_node I CMD...: CMD where node I lives (its host, under its name), or here for localhost.
on_node() {
  local i="$1"
  shift
  if [[ -n "$HOSTS_DIR" ]]; then MULTIHOST_DIR="$HOSTS_DIR" "$MULTIHOST" exec "$i" "$@"; else "$@"; fi
}
# The harness's own client commands run where slurmctld is reachable.
client() { on_node 0 "$@"; }

# ---- processes by pid file -------------------------------------------------------------------------
# pid_of NAME: the PID in $STATE/run/NAME.pid (slurmd-NODE for a node's slurmd) when that process is alive and is ours (its command line
# mentions the state directory), else nothing.
pidfile() { if [[ "$1" == munged ]]; then echo "$STATE/munge/munged.pid"; else echo "$STATE/run/$1.pid"; fi; }

pid_of() {
  local f pid
  f="$(pidfile "$1")"
  [[ -s "$f" ]] || return 1
  pid="$(tr -dc 0-9 <"$f")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STATE" || return 1
  echo "$pid"
}

# stop_pids NAME...: SIGTERM the processes of the NAMEs' pid files together (each takes seconds to
# wind down), wait up to 15 s for all, then SIGKILL those left.
stop_pids() {
  local name pid i names=() pids=() left
  for name in "$@"; do
    pid="$(pid_of "$name")" || continue
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    names+=("$name") pids+=("$pid")
  done
  for ((i = 0; i < 150; i++)); do
    left=0
    for pid in ${pids[@]+"${pids[@]}"}; do kill -0 "$pid" 2>/dev/null && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} (pid ${pids[$i]}) still alive after 15 s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null
      sleep 0.2
    fi
    rm -f "$(pidfile "${names[$i]}")"
  done
}

client_env() {
  export SLURM_CONF="$CONF"
  # A Slurm environment inherited from an enclosing job would confuse the clients.
  unset SLURM_JOB_ID SLURM_JOBID SLURM_JOB_NAME SLURM_NODELIST SLURM_JOB_NODELIST SQUEUE_FORMAT
}

# ---- packages ---------------------------------------------------------------------------------------
installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$status" == *" ok installed" ]]
}

# The packages come from launch/setup.sh: installing here would run apt-get on a namespace host,
# which reaches no package archive.
ensure_packages() {
  local missing=() p
  command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian system (no dpkg-query): cannot check for Slurm"
  for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] ||
    skip "Slurm packages not installed: ${missing[*]} (launch/setup.sh installs them)"
}

# ---- configuration ----------------------------------------------------------------------------------
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# Two free TCP ports (slurmctld, slurmd), so that this Slurm never meets another one on the host.
pick_ports() {
  local base tries
  for ((tries = 0; tries < 50; tries++)); do
    base=$((20000 + RANDOM % 20000))
    if port_free "$base" && port_free "$((base + 1))"; then
      CTLD_PORT=$base
      SLURMD_PORT=$((base + 1))
      return 0
    fi
  done
  err "no free port pair found"
  return 1
}

write_config() {
  local mem
  local i ctld nodes="" gres=""
  # RealMemory from slurmd -C (never more than the host has), at most 8 GiB.
  mem="$(slurmd -C 2>/dev/null | grep -o 'RealMemory=[0-9]*' | cut -d= -f2)"
  [[ -n "$mem" ]] || mem=1024
  ((mem > 8192)) && mem=8192
  pick_ports || return 1
  ctld="localhost"
  [[ -n "$HOSTS_DIR" ]] && ctld="${NODES[0]}(${ADDRS[0]})"
  for ((i = 0; i < ${#NODES[@]}; i++)); do
    nodes+="NodeName=${NODES[$i]}${ADDRS[$i]:+ NodeAddr=${ADDRS[$i]}} CPUs=$CPUS_PER_NODE Boards=1 SocketsPerBoard=1"
    nodes+=" CoresPerSocket=$CPUS_PER_NODE ThreadsPerCore=1 RealMemory=$mem Gres=gpu:2 State=UNKNOWN"$'\n'
    gres+="NodeName=${NODES[$i]} Name=gpu File=/dev/null"$'\n'"NodeName=${NODES[$i]} Name=gpu File=/dev/zero"$'\n'
  done
  cat >"$CONF" <<EOF
# Written by tests/slurm/harness.sh: a private Slurm for the repsearch tests (${#NODES[@]} node(s)).
ClusterName=repsearchtest
SlurmctldHost=$ctld
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
GresTypes=gpu
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=10
MinJobAge=600
InactiveLimit=0
StateSaveLocation=$STATE/state
# Per node (%n): several slurmd share this machine's files. TmpFS also holds the pmix plugin's
# per-step directories, which would collide between nodes in one /tmp.
SlurmdSpoolDir=$STATE/spool/%n
TmpFS=$STATE/tmp/%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
${nodes}PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  {
    echo "# Two fake GPUs per node: enough for --gpus-per-task scripts (each task sees CUDA_VISIBLE_DEVICES)."
    printf '%s' "$gres"
  } >"$STATE/etc/gres.conf"
  cat >"$STATE/etc/cgroup.conf" <<EOF
CgroupPlugin=autodetect
EOF
}

# ---- start ------------------------------------------------------------------------------------------
start_munged() {
  local i
  getent passwd munge >/dev/null || {
    err "no munge user (the munge package should have created it)"
    return 1
  }
  install -d -m 0711 -o munge -g munge "$STATE/munge"
  if [[ ! -s "$STATE/munge/munge.key" ]]; then
    mungekey --create --keyfile="$STATE/munge/munge.key" >/dev/null 2>&1 ||
      dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$STATE/munge/munge.key"
    chmod 0400 "$STATE/munge/munge.key"
  fi
  runuser -u munge -- /usr/sbin/munged \
    --socket="$STATE/munge/munge.socket" \
    --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed" \
    --origin=127.0.0.1 || { # not this host's name: a namespace host's name resolves nowhere
    err "munged failed to start:"
    tail -n 5 "$STATE/munge/munged.log" >&2
    return 1
  }
  for ((i = 0; i < 50; i++)); do
    pid_of munged >/dev/null && [[ -S "$STATE/munge/munge.socket" ]] && break
    sleep 0.1
  done
  munge -n --socket="$STATE/munge/munge.socket" | unmunge --socket="$STATE/munge/munge.socket" >/dev/null || {
    err "munged does not answer on $STATE/munge/munge.socket"
    return 1
  }
  log "munged pid $(pid_of munged)"
}

node_state() { client scontrol -o show node "$1" 2>/dev/null | grep -o 'State=[^ ]*' | cut -d= -f2; }
slurmds_up() { # every node's slurmd alive
  local n
  for n in "${NODES[@]}"; do pid_of "slurmd-$n" >/dev/null || return 1; done
}

start() {
  local i pid st n k logs
  [[ $EUID -eq 0 ]] || skip "slurmd must run as root (this is uid $EUID)"
  if pid_of slurmctld >/dev/null && slurmds_up && pid_of munged >/dev/null; then
    log "already running in $STATE"
    return 0
  fi
  mkdir -p "$STATE"/{etc,run,log,state,spool,tmp}
  for n in "${NODES[@]}"; do mkdir -p "$STATE/spool/$n" "$STATE/tmp/$n"; done
  chmod 0755 "$STATE" "$STATE/run" "$STATE/log"
  ensure_packages
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    skip "slurmctld/slurmd/munged not found although ${PACKAGES[*]} are installed"
  fi
  write_config || return 1
  client_env

  pid_of munged >/dev/null || start_munged || return 1

  on_node 0 slurmctld -f "$CONF" -c -i || { # -c: no jobs from an earlier start
    err "slurmctld failed to start:"
    tail -n 20 "$STATE/log/slurmctld.log" >&2
    return 1
  }
  for ((i = 0; i < 100; i++)); do
    client scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.1
  done
  pid="$(pid_of slurmctld)" || {
    err "slurmctld exited:"
    tail -n 20 "$STATE/log/slurmctld.log" >&2
    return 1
  }
  log "slurmctld pid $pid (port $CTLD_PORT)"

  for ((k = 0; k < ${#NODES[@]}; k++)); do
    on_node "$k" slurmd -f "$CONF" -N "${NODES[$k]}" >"$STATE/log/slurmd-${NODES[$k]}.start" 2>&1
  done
  for ((k = 0; k < ${#NODES[@]}; k++)); do
    n="${NODES[$k]}"
    logs=("$STATE/log/slurmd-$n.log" "$STATE/log/slurmd-$n.start")
    for ((i = 0; i < 10 * WAIT_IDLE_S; i++)); do
      st="$(node_state "$n")"
      [[ "$st" == IDLE* ]] && break
      if ! pid_of "slurmd-$n" >/dev/null && ((i > 20)); then break; fi
      sleep 0.1
    done
    if ! pid_of "slurmd-$n" >/dev/null; then
      if grep -qi 'cgroup' "${logs[@]}" 2>/dev/null; then
        grep -hi 'cgroup' "${logs[@]}" | tail -n 5 >&2
        stop
        skip "slurmd cannot start on this host because of cgroups (its cgroup plugin failed: no usable cgroup filesystem; log lines above)"
      fi
      err "slurmd of node $n failed to start:"
      tail -n 20 "${logs[@]}" >&2
      return 1
    fi
    [[ "$st" == IDLE* ]] || {
      err "node $n not idle after ${WAIT_IDLE_S} s (state '$st'):"
      client scontrol show node "$n" >&2
      return 1
    }
    log "slurmd pid $(pid_of "slurmd-$n") (port $SLURMD_PORT): node $n${ADDRS[$k]:+ (${ADDRS[$k]})} idle"
  done
  log "${#NODES[@]} node(s) idle; SLURM_CONF=$CONF${HOSTS_DIR:+; clients on host 0 (${NODES[0]})}"
}

# ---- stop -------------------------------------------------------------------------------------------
stop() {
  local i jobs
  client_env
  if pid_of slurmctld >/dev/null; then
    jobs="$(client squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
    if [[ -n "${jobs// /}" ]]; then
      log "cancelling jobs left: $jobs"
      # shellcheck disable=SC2086
      client scancel $jobs 2>/dev/null
      for ((i = 0; i < 300; i++)); do
        [[ -z "$(client squeue -h -o %A 2>/dev/null)" ]] && break
        sleep 0.1
      done
    fi
  fi
  # The daemons (their job steps are gone by now) together, then munged, which they authenticate with.
  stop_pids "${NODES[@]/#/slurmd-}" slurmctld
  stop_pids munged
  return 0
}

status() {
  local n
  for n in munged slurmctld "${NODES[@]/#/slurmd-}"; do
    if pid_of "$n" >/dev/null; then echo "$n: pid $(pid_of "$n")"; else echo "$n: not running"; fi
  done
  client_env
  pid_of slurmctld >/dev/null && client sinfo
  return 0
}

case "${1:-}" in
  start)
    mkdir -p "$STATE/log"
    start || {
      rc=$?
      [[ $rc -eq 77 ]] && exit 77
      stop
      exit 1
    }
    ;;
  stop) stop ;;
  env)
    echo "export SLURM_CONF=$(printf '%q' "$CONF")"
    echo "unset SLURM_JOB_ID SLURM_JOBID SLURM_JOB_NAME SLURM_NODELIST SLURM_JOB_NODELIST SQUEUE_FORMAT"
    [[ -z "$HOSTS_DIR" ]] || echo "# clients reach slurmctld from the hosts only: MULTIHOST_DIR=$HOSTS_DIR tests/multihost/harness.sh exec 0 CMD..."
    ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|env|status   (state directory: \$SLURM_HARNESS_DIR, default /tmp/repsearch-slurm-\$UID)" >&2
    exit 2
    ;;
esac
