#!/usr/bin/env python3
"""same_archive.py A B: compare two repsearch archives on the datasets that must be deterministic,
bit for bit: the elites, every island's history (not its wall-clock `seconds`), the migration log.
Prints the differences (at most 8, then a count) and a summary line; exit 1 if any differ or a file
cannot be read. Shared by tests/fault_inject.sh and tests/multihost/test_multihost.sh."""
import sys

import h5py

try:
    a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
except Exception as e:  # noqa: BLE001
    print(f"cannot open: {e}")
    sys.exit(1)
names = [f"/elites/{n}" for n in ("representations", "fitness", "heldout", "uid")]
for island in sorted(set(a["/islands"]) | set(b["/islands"]), key=int):
    names += [f"/islands/{island}/history/{n}" for n in ("best", "mean", "heldout", "evaluations")]
names += [f"/migrations/{n}" for n in sorted(set(a["/migrations"]) | set(b["/migrations"]))]
bad = []
for n in names:
    if n not in a or n not in b:
        bad.append(f"{n}: missing in {'the result' if n not in a else 'the reference'}")
        continue
    x, y = a[n][()], b[n][()]
    if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
        bad.append(f"{n}: differs ({x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)})")
for line in bad[:8]:
    print(line)
if len(bad) > 8:
    print(f"... {len(bad) - 8} more")
migrations = len(a["/migrations/generation"]) if "/migrations/generation" in a else 0
print(f"compared {len(names)} datasets, {len(bad)} different, {migrations} migrations")
sys.exit(1 if bad else 0)
