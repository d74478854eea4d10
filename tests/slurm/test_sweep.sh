#!/usr/bin/env bash
# slurm/sweep.sh and slurm/submit.sh without a Slurm (--dry-run): the sweep file's axes become one
# submit.sh per combination with its run directory and sizes, combinations with more ranks than
# islands are skipped, the learn array is sized from the config as repsearch resolves it, and a sweep
# file with a misspelt key or a malformed line is refused naming the file, line and key.
# Exit status: 0 pass, 1 fail. Environment: REPSEARCH_BIN (default build/repsearch).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${REPSEARCH_BIN:-$repo/build/repsearch}"
tmp="$(mktemp -d /tmp/repsearch-sweep-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "[test_sweep] FAIL: $*" >&2
  failures=$((failures + 1))
}

export REPSEARCH_SITE_CONF="$tmp/site.conf"
sed "s|^SITE_REPSEARCH_BIN=.*|SITE_REPSEARCH_BIN=\"$bin\"|" "$repo/slurm/site.conf" >"$REPSEARCH_SITE_CONF"

# Two populations x two island counts on 2 ranks: the 1-island runs are skipped; each run is a search
# on 2 ranks, a learn array sized by the resolved --elites 3 and an sgd array of seeds 1..2.
cat >"$tmp/small.ini" <<'INI'
# a sweep file as documented in slurm/sweep.sh --help
config = configs/smoke.ini   # relative to the repository
population = 4, 8
generations = 2
islands = 1,2
ranks = 2
seeds = 1..2
args = --elites 3
INI
out="$("$repo/slurm/sweep.sh" "$tmp/small.ini" --sweep-dir "$tmp/sweep" --dry-run 2>"$tmp/err")" ||
  fail "sweep.sh --dry-run failed: $(cat "$tmp/err")"
for p in 4 8; do
  grep -q "skipping p$p-g2-i1: 2 ranks cannot host 1 islands" "$tmp/err" || fail "no skip message for p$p-g2-i1"
  # the table: run, population, generations, islands, ranks
  grep -qE "^p$p-g2-i2 +$p +2 +2 +2 " <<<"$out" || fail "no table row 'p$p-g2-i2 $p 2 2 2':"$'\n'"$out"
  grep -q "sbatch .*--job-name=rs-search-p$p-g2-i2 .*--ntasks=2 .*search.sbatch $tmp/sweep/p$p-g2-i2 *\$" "$tmp/err" ||
    fail "no 2-rank search submission for p$p-g2-i2"
  grep -q "sbatch .*--array=0-2 .*learn.sbatch $tmp/sweep/p$p-g2-i2 *\$" "$tmp/err" ||
    fail "no learn array 0-2 (--elites 3) for p$p-g2-i2"
  grep -q "sbatch .*--array=1-2 .*sgd.sbatch $tmp/sweep/p$p-g2-i2 *\$" "$tmp/err" || fail "no sgd array 1-2 for p$p-g2-i2"
done
[[ "$(grep -cE '^p[0-9]+-g' <<<"$out")" == 2 ]] || fail "expected 2 runs in the table:"$'\n'"$out"
# The final analysis waits for both runs' analysis jobs (printf %q writes the placeholders as \<analysis\>).
grep -qE "sbatch .*--dependency=afterany(:\\\\<analysis\\\\>){2} .*analysis.sbatch --out $tmp/sweep/report $tmp/sweep/p4-g2-i2 $tmp/sweep/p8-g2-i2 *\$" "$tmp/err" ||
  fail "the final analysis does not depend on the 2 runs' analysis jobs:"$'\n'"$(cat "$tmp/err")"

# A misspelt key and a line without '=' are errors naming the file and line
# ('seed' for 'seeds': an optional key, so a reader that skips unknown keys would run seeds 0..2.)
printf 'config = configs/smoke.ini\npopulation = 4\ngenerations = 2\nislands = 2\nseed = 5\n' >"$tmp/typo.ini"
if "$repo/slurm/sweep.sh" "$tmp/typo.ini" --sweep-dir "$tmp/t" --dry-run >"$tmp/out" 2>&1; then
  fail "a sweep file with 'seed' (for 'seeds') was accepted"
else
  grep -q "typo.ini:5: unknown key 'seed'" "$tmp/out" || fail "no message naming the misspelt key: $(cat "$tmp/out")"
fi
printf 'config = configs/smoke.ini\npopulation 4\n' >"$tmp/bad.ini"
if "$repo/slurm/sweep.sh" "$tmp/bad.ini" --dry-run >"$tmp/out" 2>&1; then
  fail "a sweep file with the line 'population 4' was accepted"
else
  grep -q "bad.ini:2: expected 'key = value'" "$tmp/out" || fail "no message naming the malformed line: $(cat "$tmp/out")"
fi

if [[ $failures -gt 0 ]]; then
  echo "[test_sweep] $failures failure(s)" >&2
  exit 1
fi
echo "[test_sweep] PASS"
