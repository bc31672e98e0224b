"""Local embedding throughput: semkit's default local path vs sentence-transformers (torch).

    python benchmarks/embed_throughput.py [--rounds N] [--n 2000] [--batch-size 32] [--threads 2]

All contenders run in this one process, interleaved round by round, on the same ~2,000 real
sentences (STSb test, then SICK), batch 32; the table reports medians and the ratio to
sentence-transformers' ``encode``. Absolute numbers move with machine load; the ratios are the
result. The FLOP ceiling uses the real token count of these sentences and onnxruntime's own
GEMM peak (fp32 MatMul, u8s8 MatMulInteger) measured in this run; this host has AVX-512 and
VNNI, so FACTS.md's Zen 3 figures (no AVX-512, int8 only 1.7x fp32) do not apply.
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


def flops_per_token(config: dict, mean_tokens: float) -> float:
    """Multiply-adds x2 of one BERT-style token: the weight GEMMs plus attention scores/values."""
    h, ffn, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    weights = 2 * layers * (4 * h * h + 2 * h * ffn)
    attention = 2 * layers * 2 * h * mean_tokens
    return float(weights + attention)


def gemm_peak(int8: bool, threads: int, m: int = 512, k: int = 384, n: int = 1536) -> float:
    """GOP/s of onnxruntime's own GEMM (fp32 MatMul, or u8 x s8 MatMulInteger as the int8
    model uses) on the model's feed-forward shape, measured now, with 1 and ``threads``
    threads: the best is the ceiling."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        w = rng.integers(-127, 127, (k, n), dtype=np.int8)
        a = rng.integers(0, 255, (m, k), dtype=np.uint8)
        op, a_type, y_type = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
    else:
        w = rng.standard_normal((k, n), dtype=np.float32)
        a = rng.standard_normal((m, k), dtype=np.float32)
        op, a_type, y_type = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "W"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    best = 0.0
    for t in sorted({1, threads}):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = t
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        sess.run(None, {"A": a})
        reps = 100
        start = time.perf_counter()
        for _ in range(reps):
            sess.run(None, {"A": a})
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--thread-sweep", action="store_true",
                    help="also run sentence-transformers and the ONNX rows with 1 thread")
    ap.add_argument("--semkit-torch", action="store_true",
                    help="also run semkit's torch backend (sentence-transformers + token counts)")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from semkit.models.local import DEFAULT_PRECISION, load_local, resolve
    from semkit.models.tokenize_local import LocalTokenizer

    torch.set_num_threads(args.threads)
    texts = real_sentences(args.n)
    folder = resolve("all-MiniLM-L6-v2").folder
    tokens = LocalTokenizer.from_folder(folder, 256).tokenize(texts)
    mean_tokens = float(tokens.lengths.mean())

    st = SentenceTransformer(str(folder), device="cpu")
    def st_encode(threads: int) -> object:
        torch.set_num_threads(threads)  # global in torch: set before every timed call
        return st.encode(texts, batch_size=args.batch_size, show_progress_bar=False)

    contenders: dict[str, Callable[[], object]] = {
        "sentence-transformers torch": lambda: st_encode(args.threads),
    }
    if args.thread_sweep and args.threads != 1:
        contenders["sentence-transformers torch, 1 thread"] = lambda: st_encode(1)
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
    if args.semkit_torch:
        semkit_torch = load_local("all-MiniLM-L6-v2", backend="torch", batch_size=args.batch_size)
        contenders["semkit torch (sentence-transformers + counts)"] = \
            lambda: (torch.set_num_threads(args.threads), semkit_torch.embed(texts))

    for fn in contenders.values():  # warm-up: first-call allocations, lazy init
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            gc.collect()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)

    peak = {"fp32": gemm_peak(False, args.threads), "int8": gemm_peak(True, args.threads)}
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
        ceiling = peak["int8" if "int8" in name else "fp32"]
        print(f"{name:48s} {rate:8.0f} {rate / base:6.2f} {gflops:8.1f} {100 * gflops / ceiling:8.0f}%")
    print(f"\nFLOP ceiling: {fpt / 1e6:.1f} MFLOP/token x {mean_tokens:.1f} tokens = "
          f"{per_sentence / 1e6:.0f} MFLOP/sentence. onnxruntime GEMM peak now: fp32 "
          f"{peak['fp32']:.0f} GFLOP/s -> at most {peak['fp32'] * 1e9 / per_sentence:.0f} sentences/s; "
          f"int8 {peak['int8']:.0f} GOP/s -> at most {peak['int8'] * 1e9 / per_sentence:.0f} sentences/s")
    print(f"default precision constant: {DEFAULT_PRECISION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
