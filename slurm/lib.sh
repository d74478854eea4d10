# Shell helpers shared by slurm/submit.sh and slurm/sweep.sh (sourced, not run).
# shellcheck shell=bash

die() { # die MESSAGE: "<script>: error: MESSAGE" on stderr, exit 1
  echo "${0##*/}: error: $*" >&2
  exit 1
}

abspath() { # abspath PATH: absolute, without requiring it to exist
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/${1#./}" ;;
  esac
}

# ini_read FILE KEY...: the sweep file's 'KEY = VALUE' lines into the associative array INI (the last
# value of a key wins; '#' starts a comment); dies on a line of another form or a key not among KEY...,
# so that a misspelt key is an error, not a silently missing axis. Sweep files only: repsearch configs
# are resolved by `repsearch config --get KEY`, exactly as the search resolves them.
# shellcheck disable=SC2034  # INI is for the caller
ini_read() {
  local file="$1" line n=0
  shift
  declare -gA INI=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line="${line%%#*}"
    [[ "$line" =~ ^[[:space:]]*$ ]] && continue
    [[ "$line" =~ ^[[:space:]]*([^=[:space:]]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]] ||
      die "$file:$n: expected 'key = value', found '$line'"
    [[ " $* " == *" ${BASH_REMATCH[1]} "* ]] || die "$file:$n: unknown key '${BASH_REMATCH[1]}' (known: $*)"
    INI[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
  done <"$file"
}
