"""Local embedding throughput: semkit's default local path vs sentence-transformers (torch).

    python benchmarks/embed_throughput.py [--rounds N] [--n 2000] [--batch-size 32] [--threads 2]

All contenders run in this one process, interleaved round by round, on the same ~2,000 real
sentences (STSb test, then SICK), batch 32; the table reports medians and the ratio to
sentence-transformers' ``encode``. Absolute numbers move with machine load; the ratios are the
result. The FLOP ceiling uses the real token count of these sentences and a GEMM peak measured
in this run with NumPy (fp32); for int8, FACTS.md's measured ratio (u8s8 GEMM ~1.7x fp32) is
applied.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from benchmarks._data import real_sentences

INT8_OVER_FP32_GEMM = 1.7  # FACTS.md: onnxruntime u8s8 207-259 GOP/s vs fp32 130-154 GFLOP/s


def flops_per_token(config: dict, mean_tokens: float) -> float:
    """Multiply-adds x2 of one BERT-style token: the weight GEMMs plus attention scores/values."""
    h, ffn, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    weights = 2 * layers * (4 * h * h + 2 * h * ffn)
    attention = 2 * layers * 2 * h * mean_tokens
    return float(weights + attention)


def gemm_peak_gflops(threads: int) -> float:
    """Best fp32 GEMM rate NumPy's BLAS reaches here now (the same shapes as the model)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    best = 0.0
    with threadpool_limits(threads):
        for m, k, n in ((512, 384, 1536), (512, 1536, 384), (1024, 1024, 1024)):
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            a @ b
            reps = 20
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--thread-sweep", action="store_true",
                    help="also run the ONNX rows with 1 intra-op thread")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from semkit.embed.local import DEFAULT_PRECISION, load_local, resolve
    from semkit.embed.tokenize_local import LocalTokenizer

    torch.set_num_threads(args.threads)
    texts = real_sentences(args.n)
    folder = resolve("all-MiniLM-L6-v2").folder
    tokens = LocalTokenizer.from_folder(folder, 256).tokenize(texts)
    mean_tokens = float(tokens.lengths.mean())

    st = SentenceTransformer(str(folder), device="cpu")
    contenders: dict[str, Callable[[], object]] = {
        "sentence-transformers torch": lambda: st.encode(texts, batch_size=args.batch_size,
                                                         show_progress_bar=False),
    }
    default = load_local("all-MiniLM-L6-v2", batch_size=args.batch_size, threads=args.threads)
    contenders[f"semkit default ({default.backend} {default.precision})"] = lambda: default.embed(texts)
    rows = [("onnx", "fp32", args.threads), ("onnx", "int8", args.threads)]
    if args.thread_sweep:
        rows += [("onnx", "fp32", 1), ("onnx", "int8", 1)]
    for backend, precision, threads in rows:
        m = load_local("all-MiniLM-L6-v2", backend=backend, precision=precision,
                       batch_size=args.batch_size, threads=threads)
        contenders[f"semkit onnx {precision}, {threads} thread{'s' * (threads > 1)}"] = \
            (lambda m=m: m.embed(texts))
    semkit_torch = load_local("all-MiniLM-L6-v2", backend="torch", batch_size=args.batch_size)
    contenders["semkit torch (sentence-transformers + counts)"] = lambda: semkit_torch.embed(texts)

    for fn in contenders.values():  # warm-up: first-call allocations, lazy init
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            gc.collect()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)

    peak = gemm_peak_gflops(args.threads)
    import json

    config = json.loads((folder / "config.json").read_text())
    fpt = flops_per_token(config, mean_tokens)
    per_sentence = fpt * mean_tokens
    base = len(texts) / statistics.median(times["sentence-transformers torch"])

    print(f"\n{len(texts)} real sentences, mean {mean_tokens:.1f} tokens (unpadded), batch "
          f"{args.batch_size}, {args.threads} threads, {args.rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'contender':48s} {'sent/s':>8s} {'x ST':>6s} {'GFLOP/s':>8s} {'% ceiling':>9s}")
    for name, ts in times.items():
        rate = len(texts) / statistics.median(ts)
        gflops = rate * per_sentence / 1e9
        ceiling = peak * (INT8_OVER_FP32_GEMM if "int8" in name else 1.0)
        print(f"{name:48s} {rate:8.0f} {rate / base:6.2f} {gflops:8.1f} {100 * gflops / ceiling:8.0f}%")
    print(f"\nFLOP ceiling: {fpt / 1e6:.1f} MFLOP/token x {mean_tokens:.1f} tokens = "
          f"{per_sentence / 1e6:.0f} MFLOP/sentence; NumPy fp32 GEMM peak now {peak:.0f} GFLOP/s "
          f"-> at most {peak * 1e9 / per_sentence:.0f} sentences/s fp32, "
          f"~{INT8_OVER_FP32_GEMM * peak * 1e9 / per_sentence:.0f} int8 (x{INT8_OVER_FP32_GEMM} from FACTS.md)")
    print(f"default precision constant: {DEFAULT_PRECISION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
