# shellcheck shell=bash
# Sourced by the test scripts. cannot_run PREFIX REASON...: this machine cannot run the test (not root,
# no namespaces, no cgroup filesystem, a package missing). By default that is a failure (exit 1) that
# names the reason, so a machine that tests less never reports all passed; with REPSEARCH_ALLOW_SKIPS=1
# (launch/test.sh --allow-skips) it is a skip (exit 77, CTest's SKIP_RETURN_CODE), printed as loudly.
cannot_run() {
  local prefix="$1"
  shift
  if [[ "${REPSEARCH_ALLOW_SKIPS:-0}" == 1 ]]; then
    echo "[$prefix] SKIP (REPSEARCH_ALLOW_SKIPS=1): cannot run on this machine: $*" >&2
    exit 77
  fi
  echo "[$prefix] FAIL: cannot run on this machine: $*" >&2
  echo "[$prefix] (the tests need root and what launch/setup.sh installs; launch/test.sh --allow-skips turns this into a skip)" >&2
  exit 1
}
