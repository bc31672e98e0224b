"""How many padded tokens one ONNX call should hold (``models/local.py::DEFAULT_TOKEN_BUDGET``).

Embeds 2,000 distinct SciFact sentences (the server load benchmark's texts) in one call with
each padded-token budget, and with the old fixed 32-row batches, interleaved over ``--rounds``,
for int8 and fp32; prints texts/s (median and best) per budget, the ratio to fixed rows, and
checks the vectors are bit-identical whatever the budget. Prints the CPU model and load.

    python benchmarks/token_budget.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=[256, 512, 768, 1024, 1536, 2048, 4096, 8192])
    ap.add_argument("--precisions", nargs="+", default=["int8", "fp32"], choices=["int8", "fp32"])
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from semkit.models.local import DEFAULT_PRECISION, DEFAULT_TOKEN_BUDGET, load_local
    from server_load import cpu_model, load_average, scifact_sentences

    texts = scifact_sentences()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); default precision here: {DEFAULT_PRECISION}; "
          f"current DEFAULT_TOKEN_BUDGET {DEFAULT_TOKEN_BUDGET}; load at start: {load_average()}")
    configs = [("32 rows", 10**9, 32)] + [(f"budget {b}", b, 256) for b in args.budgets]
    for precision in args.precisions:
        model = load_local("all-MiniLM-L6-v2", precision=precision)
        model.embed(texts[:256])  # warm-up
        rates: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        reference = None
        for _ in range(args.rounds):
            for name, budget, rows in configs:
                model.token_budget, model.batch_size = budget, rows
                t0 = time.perf_counter()
                vectors = model.embed(texts)
                rates[name].append(len(texts) / (time.perf_counter() - t0))
                if reference is None:
                    reference = vectors
                elif not np.array_equal(vectors, reference):
                    raise SystemExit(f"{precision} {name}: vectors differ from the first configuration")
        fixed = float(np.median(rates["32 rows"]))
        print(f"\n{precision} (vectors bit-identical across all configurations); load {load_average()}")
        print(f"{'batches':>12s} {'median':>8s} {'best':>8s} {'vs 32 rows':>11s}")
        for name, values in rates.items():
            med = float(np.median(values))
            print(f"{name:>12s} {med:8.0f} {max(values):8.0f} {med / fixed:10.2f}x")
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    main()
