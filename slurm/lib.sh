# Shell helpers shared by slurm/submit.sh and slurm/sweep.sh (sourced, not run).

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

# ini_get FILE KEY: the last 'KEY = VALUE' of a sweep file (comments after '#' dropped), or nothing. Never for
# repsearch configs: `repsearch config --get KEY` resolves those exactly as the search does.
ini_get() {
  awk -v key="$2" '
    { sub(/#.*/, "") }
    index($0, "=") {
      k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
      gsub(/^[ \t]+|[ \t\r]+$/, "", k); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
      if (k == key) found = v
    }
    END { if (found != "") print found }' "$1"
}
