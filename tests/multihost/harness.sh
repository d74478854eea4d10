#!/usr/bin/env bash
# Several hosts on this machine for the multi-host tests: one network namespace per host, all joined
# by a bridge in a namespace of their own (the "switch"), addresses 10.77.0.1, .2, ... /24, and every
# process started on a host given that host's name (unshare --uts). Open MPI then treats them as
# separate nodes: no shared memory between them, TCP over the bridge, one orted per host, started by
# the rsh agent written here instead of ssh. Nothing is configured outside the namespaces and the
# state directory: no link, address or route in the machine's own namespace, no /etc/hosts lines (the
# hostfile names hosts, the agent maps names to namespaces), nothing installed as a service.
#
#   harness.sh up N             create hosts 0..N-1 (N >= 2); names in $STATE/hosts, one a line
#   harness.sh down             kill every process left on the hosts, delete the namespaces
#   harness.sh exec I CMD...    run CMD on host I (its network and hostname; same files and users)
#   harness.sh name I | addr I  host I's name / address
#   harness.sh mpirun-args H    the mpirun options for hosts H (e.g. 0,1,2): hostfile (one slot each),
#                               the rsh agent, TCP only over the hosts' network, no core binding
#   harness.sh mpirun H ARG...  mpirun on the first host of H, one rank per host of H
#   harness.sh kill I           kill -9 every process on host I (the host is lost)
#   harness.sh cut I | mend I   take host I's link down / up again (at the switch)
#   harness.sh bytes I          bytes sent + received on host I's link so far
#   harness.sh status           the hosts, their addresses and processes
#
# Environment:
#   MULTIHOST_DIR     state directory (default /tmp/repsearch-hosts-$UID); must be an absolute path
#   MULTIHOST_OWNER   PID whose life the hosts belong to (default: the caller of `up`); `up` deletes
#                     namespaces left by owners that are gone (a test killed before its trap ran)
#
# Namespace names are rs<owner pid>n<i> (switch rs<owner pid>sw), so two runs never collide.
# Exit status: 0 done, 1 failure, 77 this machine cannot make namespaces (not root, no ip/unshare/
# nsenter, `ip netns add` refused): callers report it (tests/cannot_run.sh: a failure unless skips
# are allowed).
set -uo pipefail

STATE="${MULTIHOST_DIR:-/tmp/repsearch-hosts-${UID}}"
SUBNET=10.77.0
PREFIX=rs

log() { echo "[hosts] $*"; }
err() { echo "[hosts] error: $*" >&2; }
skip() {
  echo "[hosts] SKIP: $*" >&2
  exit 77
}

[[ "$STATE" == /* ]] || {
  err "MULTIHOST_DIR must be absolute (got '$STATE')"
  exit 1
}

hosts() { cat "$STATE/hosts" 2>/dev/null; }
name_of() {
  local n
  n="$(sed -n "$(($1 + 1))p" "$STATE/hosts" 2>/dev/null)"
  [[ -n "$n" ]] || {
    err "no host $1 (hosts: $(hosts | tr '\n' ' '))"
    return 1
  }
  echo "$n"
}
addr_of() { echo "$SUBNET.$(($1 + 1))"; }
switch_ns() { cat "$STATE/switch"; }

# ---- cleanup ----------------------------------------------------------------------------------------
# remove_ns NS: kill -9 what still runs in NS (processes this harness's users started there), delete it.
remove_ns() {
  local ns="$1" pids i
  ip netns list 2>/dev/null | grep -qw -- "$ns" || return 0
  for ((i = 0; i < 50; i++)); do
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    [[ -z "${pids// /}" ]] && break
    # shellcheck disable=SC2086  # a list of pids
    kill -9 $pids 2>/dev/null
    sleep 0.1
  done
  [[ -z "${pids// /}" ]] || err "processes still in $ns after kill -9: $pids"
  ip netns del "$ns" 2>/dev/null || err "could not delete namespace $ns"
}

down() {
  local ns
  [[ -f "$STATE/namespaces" ]] || return 0
  # Hosts first (their processes), the switch last.
  while read -r ns; do [[ -n "$ns" ]] && remove_ns "$ns"; done < <(tac "$STATE/namespaces")
  log "removed $(wc -l <"$STATE/namespaces") namespace(s)"
  rm -f "$STATE/namespaces" "$STATE/hosts" "$STATE/switch" "$STATE/agent" "$STATE"/hostfile-*
}

# Namespaces of earlier runs whose owner is gone (killed before its trap could run).
reap_orphans() {
  local ns owner
  while read -r ns _; do
    [[ "$ns" =~ ^${PREFIX}([0-9]+)(n[0-9]+|sw)$ ]] || continue
    owner="${BASH_REMATCH[1]}"
    kill -0 "$owner" 2>/dev/null && continue
    log "removing $ns, left by process $owner which is gone"
    remove_ns "$ns"
  done < <(ip netns list 2>/dev/null)
}

# ---- up -----------------------------------------------------------------------------------------------
up() {
  local n="${1:-}" owner="${MULTIHOST_OWNER:-$PPID}" tag sw i ns tool
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 2 || n > 250)); then
    err "up needs a host count from 2 to 250 (got '$n')"
    return 1
  fi
  [[ $EUID -eq 0 ]] || skip "network namespaces need root (this is uid $EUID)"
  for tool in ip nsenter unshare hostname; do # iproute2, util-linux, hostname
    command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (Debian packages iproute2, util-linux)"
  done
  mkdir -p "$STATE"
  reap_orphans
  tag="$PREFIX$owner"
  sw="${tag}sw"
  # Recorded before it is made, so that `down` removes whatever part was made.
  echo "$sw" >"$STATE/namespaces"
  ip netns add "$sw" 2>"$STATE/netns.err" || {
    rm -f "$STATE/namespaces"
    skip "this machine cannot make network namespaces: ip netns add: $(cat "$STATE/netns.err")"
  }
  echo "$sw" >"$STATE/switch"
  : >"$STATE/hosts"
  ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || return 1
  for ((i = 0; i < n; i++)); do
    ns="${tag}n$i"
    echo "$ns" >>"$STATE/namespaces"
    ip netns add "$ns" || return 1
    echo "$ns" >>"$STATE/hosts"
    # The pair is made inside the two namespaces, so its names never meet another run's.
    if ! { ip link add eth0 netns "$ns" type veth peer name "h$i" netns "$sw" &&
      ip -n "$sw" link set "h$i" master br0 && ip -n "$sw" link set "h$i" up &&
      ip -n "$ns" addr add "$(addr_of "$i")/24" dev eth0 && ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up; }; then
      err "could not wire host $i ($ns)"
      return 1
    fi
  done
  write_agent
  # The bridge forwards once its ports leave the learning state; wait until host 0 reaches the last.
  for ((i = 0; i < 100; i++)); do
    [[ "$(nsenter --net="/run/netns/${tag}n0" bash -c "exec 3<>/dev/tcp/$(addr_of $((n - 1)))/9" 2>&1)" == *refused* ]] && break
    sleep 0.1
  done
  ((i < 100)) || {
    err "host $((n - 1)) does not answer host 0 over the bridge"
    return 1
  }
  log "$n hosts up: $(hosts | tr '\n' ' ')(addresses $SUBNET.1-$n, state $STATE)"
}

# The rsh agent mpirun starts the remote daemons with: `AGENT [options] HOST COMMAND...`, like ssh.
write_agent() {
  local i ns cases=""
  for ((i = 0; i < $(hosts | wc -l); i++)); do
    ns="$(name_of "$i")"
    cases+="  $ns | $(addr_of "$i")) ns=$ns ;;"$'\n'
  done
  cat >"$STATE/agent" <<EOF
#!/usr/bin/env bash
# Written by tests/multihost/harness.sh: mpirun's rsh agent for the hosts of $STATE.
while [[ \$# -gt 0 && "\$1" == -* ]]; do shift; done # ssh-style options: none apply here
host="\${1:?usage: agent HOST COMMAND...}"
shift
case "\$host" in
$cases  *) echo "agent: unknown host '\$host'" >&2; exit 255 ;;
esac
# Like ssh: the remote shell parses the command line it is given.
exec nsenter --net="/run/netns/\$ns" unshare --uts /bin/bash -c "hostname \$ns && \$*"
EOF
  chmod 0755 "$STATE/agent"
}

# ---- using the hosts ------------------------------------------------------------------------------------
on_host() { # on_host I CMD...: CMD in host I's network namespace, under its hostname
  local ns
  ns="$(name_of "$1")" || return 1
  shift
  # shellcheck disable=SC2016  # $1 and $@ belong to the inner shell
  exec nsenter --net="/run/netns/$ns" unshare --uts -- /bin/sh -c 'hostname "$1" && shift && exec "$@"' sh "$ns" "$@"
}

# host_list SPEC: "0,2" -> "0 2" (checked).
host_list() {
  local h hs out=()
  IFS=, read -r -a hs <<<"$1"
  for h in "${hs[@]}"; do
    name_of "$h" >/dev/null || return 1
    out+=("$h")
  done
  [[ ${#out[@]} -gt 0 ]] || {
    err "no hosts in '$1'"
    return 1
  }
  echo "${out[*]}"
}

mpirun_args() {
  local list h f
  list="$(host_list "$1")" || return 1
  f="$STATE/hostfile-${1//,/-}"
  : >"$f"
  for h in $list; do echo "$(name_of "$h") slots=1" >>"$f"; done
  # TCP only (no shared memory is possible between hosts anyway; this also keeps loopback out), for
  # the ranks (btl) and for mpirun's daemons (oob). No binding: every host's first rank would be bound
  # to core 0, the same core of this one machine.
  echo "--hostfile $f --mca plm_rsh_agent $STATE/agent --mca btl tcp,self" \
    "--mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24 --bind-to none"
}

run_mpirun() {
  local spec="$1" list args first
  shift
  list="$(host_list "$spec")" || return 1
  args="$(mpirun_args "$spec")" || return 1
  first="${list%% *}"
  [[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # shellcheck disable=SC2086  # the options are words without spaces
  on_host "$first" mpirun $args -np "$(wc -w <<<"$list")" "$@"
}

kill_host() {
  local ns pids
  ns="$(name_of "$1")" || return 1
  pids="$(ip netns pids "$ns" | tr '\n' ' ')"
  log "host $1 ($ns) lost: kill -9 ${pids:-(nothing running)}"
  # shellcheck disable=SC2086  # a list of pids
  [[ -z "${pids// /}" ]] || kill -9 $pids
}

link() { # link I up|down
  name_of "$1" >/dev/null || return 1
  ip -n "$(switch_ns)" link set "h$1" "$2" && log "host $1 link $2"
}

bytes() {
  local ns
  ns="$(name_of "$1")" || return 1
  echo $(($(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/rx_bytes) + $(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/tx_bytes)))
}

status() {
  local i n
  [[ -s "$STATE/hosts" ]] || {
    echo "no hosts up in $STATE"
    return 0
  }
  n="$(hosts | wc -l)"
  for ((i = 0; i < n; i++)); do
    echo "host $i: $(name_of "$i") $(addr_of "$i") link $(ip -n "$(switch_ns)" -br link show "h$i" | awk '{print $2}')," \
      "processes: $(ip netns pids "$(name_of "$i")" | tr '\n' ' ')"
  done
}

case "${1:-}" in
  up)
    if [[ -s "$STATE/namespaces" ]]; then
      err "hosts already up in $STATE (harness.sh down first)"
      exit 1
    fi
    up "${2:-}" || {
    rc=$?
    [[ $rc -eq 77 ]] || down
    exit "$rc"
  } ;;
  down) down ;;
  exec)
    shift
    [[ $# -ge 2 ]] || {
      err "usage: exec I CMD..."
      exit 1
    }
    on_host "$@"
    ;;
  name) name_of "${2:?host index}" ;;
  addr) name_of "${2:?host index}" >/dev/null && addr_of "$2" ;;
  mpirun-args) mpirun_args "${2:?hosts, e.g. 0,1}" ;;
  mpirun)
    shift
    run_mpirun "$@"
    ;;
  kill) kill_host "${2:?host index}" ;;
  cut) link "${2:?host index}" down ;;
  mend) link "${2:?host index}" up ;;
  bytes) bytes "${2:?host index}" ;;
  status) status ;;
  *)
    echo "usage: $0 up N|down|exec I CMD...|name I|addr I|mpirun-args H|mpirun H ARG...|kill I|cut I|mend I|bytes I|status" >&2
    echo "       (state directory: \$MULTIHOST_DIR, default /tmp/repsearch-hosts-\$UID)" >&2
    exit 2
    ;;
esac
