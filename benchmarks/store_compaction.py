"""What the embedded store's compaction costs: the first search after a third of a collection
was deleted (its catch-up compacts the in-memory mirror), and the process's peak RSS.

Each run is its own process, so peak RSS is that code's alone. ``--src`` points at the
``src`` folder of another checkout to measure that code the same way, interleaved with this
one; e.g. the re-read compaction of 1215ae0::

    git worktree add /tmp/before 1215ae0
    python benchmarks/store_compaction.py --src /tmp/before/src

Vectors are random (the compaction moves rows; their values do not matter), 384-d float32,
exact search only (no HNSW graph to rebuild, so the figure is the mirror's own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ONE_RUN = """
import resource, sys, tempfile, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from semkit.store.base import CollectionSpec
from semkit.store.embedded import EmbeddedStore

n, dims = int(sys.argv[2]), 384
vecs = np.random.default_rng(0).normal(size=(n, dims)).astype(np.float32)
ids = [f"r{i}" for i in range(n)]
with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(tmp, index="none") as store:
    store.create_collection(CollectionSpec("c", dims))
    for start in range(0, n, 10_000):
        store.upsert("c", ids[start:start + 10_000], vecs[start:start + 10_000])
    store.query("c", vecs[:1], 5, exact=True)  # the mirror, before the deletions
    store.delete("c", ids=ids[::3])  # a third: past the compaction fraction (a quarter)
    began = time.perf_counter()
    store.query("c", vecs[1:2], 5, exact=True)  # catch-up, compaction, search
    took = time.perf_counter() - began
print(took * 1000, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def run(src: Path, n: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", ONE_RUN, str(src), str(n)], capture_output=True, text=True,
                         check=True)
    ms, peak = out.stdout.split()
    return float(ms), float(peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", type=Path, action="append", default=[],
                    help="The src folder of another checkout to measure beside this one (repeat)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _machine import cpu_model

    sources = [REPO / "src", *args.src]
    print(f"CPU: {cpu_model()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.records:,} records of 384-d float32, a third deleted; medians of {args.rounds} interleaved rounds")
    results: dict[Path, list[tuple[float, float]]] = {src: [] for src in sources}
    for _ in range(args.rounds):
        for src in sources:
            results[src].append(run(src, args.records))
    base = statistics.median(ms for ms, _ in results[sources[0]])
    for src, rows in results.items():
        ms = statistics.median(m for m, _ in rows)
        peak = statistics.median(p for _, p in rows)
        print(f"  {src!s:40s} first search after the deletions {ms:7.0f} ms ({ms / base:.2f}x this checkout); "
              f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
