"""Local embedding throughput: semkit's default path, as users call it, vs sentence-transformers.

    python benchmarks/embed_throughput.py [--rounds N] [--n 2000] [--batch-size 32] [--threads 2]
        [--datasets stsb,scifact] [--thread-sweep] [--semkit-torch]

The headline row is ``semkit.model("local")`` exactly as a user gets it: the default backend and
precision, WITH its embedding cache on and EMPTY (a fresh cache folder every round, so every
text is a miss and the cache's lookups and writes are paid). It is compared with
sentence-transformers' ``encode`` (torch, same threads, batch 32) on the same texts: ~2,000 STSb
sentences (STSb test, then SICK) and ~2,000 SciFact sentences (longer: ~39 tokens on average).
Also measured: the default without the cache, ONNX fp32 and int8 explicitly, and FastEmbed on
the very same fp32 ONNX file (when ``import fastembed`` works: it is loaded offline from a folder
holding that model.onnx and the tokenizer files, through ``specific_model_path``).

All contenders run in this one process, interleaved round by round; the tables report medians
and the ratio to sentence-transformers. Absolute numbers and ratios against torch move with
machine load (torch collapses under contention, inflating ratios): run it on a quiet machine and
read the load average printed with the table. The FLOP ceiling uses the real token count of the
texts and onnxruntime's own GEMM peak (fp32 MatMul, u8s8 MatMulInteger) measured in this run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _vectors imports _data as a sibling

import numpy as np
from benchmarks._data import real_sentences
from benchmarks._vectors import _scifact_abstracts


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


def scifact_sentences(n: int) -> list[str]:
    """``n`` distinct SciFact sentences (over 20 characters), in a fixed shuffled order."""
    seen = dict.fromkeys(s for _, sentences in _scifact_abstracts() for s in sentences if len(s) > 20)
    texts = list(seen)
    random.Random(0).shuffle(texts)
    return texts[:n]


def fastembed_folder(model_folder: Path, onnx_file: Path, workdir: Path) -> Path:
    """A folder FastEmbed loads offline: semkit's fp32 ONNX export plus the tokenizer files."""
    folder = workdir / "fastembed-minilm"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_file, folder / "model.onnx")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        if (model_folder / name).is_file():
            shutil.copy(model_folder / name, folder / name)
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--datasets", default="stsb,scifact")
    ap.add_argument("--thread-sweep", action="store_true",
                    help="also run sentence-transformers and the ONNX rows with 1 thread")
    ap.add_argument("--semkit-torch", action="store_true",
                    help="also run semkit's torch backend (sentence-transformers + token counts)")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from semkit.models.build import with_cache
    from semkit.models.local import DEFAULT_PRECISION, load_local, resolve
    from semkit.models.onnx_export import load_or_export
    from semkit.models.tokenize_local import LocalTokenizer

    torch.set_num_threads(args.threads)
    loaders = {"stsb": real_sentences, "scifact": scifact_sentences}
    datasets = {name: loaders[name](args.n) for name in args.datasets.split(",") if name}
    folder = resolve("all-MiniLM-L6-v2").folder
    tokenizer = LocalTokenizer.from_folder(folder, 256)
    workdir = Path(tempfile.mkdtemp(prefix="embed-throughput-"))

    st = SentenceTransformer(str(folder), device="cpu")

    def st_encode(texts: list[str], threads: int) -> object:
        torch.set_num_threads(threads)  # global in torch: set before every timed call
        return st.encode(texts, batch_size=args.batch_size, show_progress_bar=False)

    default = load_local("all-MiniLM-L6-v2", batch_size=args.batch_size, threads=args.threads)
    rounds_done = [0]

    def default_with_empty_cache(texts: list[str]) -> object:
        # What semkit.model("local") returns (the model behind the cache), with a new cache
        # folder per call: every text is a miss, as on a first run. The model is loaded once,
        # outside the timing, as it is for a user who embeds more than once.
        rounds_done[0] += 1
        return with_cache(default, workdir / f"cache-{rounds_done[0]}").embed(texts)

    label = f"{default.backend} {default.precision}"
    contenders: dict[str, Callable[[list[str]], object]] = {
        "sentence-transformers torch": lambda t: st_encode(t, args.threads),
        f"semkit default ({label}), cache on, empty": default_with_empty_cache,
        f"semkit default ({label}), cache=False": default.embed,
    }
    if args.thread_sweep and args.threads != 1:
        contenders["sentence-transformers torch, 1 thread"] = lambda t: st_encode(t, 1)
    rows = [("onnx", "fp32", args.threads), ("onnx", "int8", args.threads)]
    if args.thread_sweep:
        rows += [("onnx", "fp32", 1), ("onnx", "int8", 1)]
    for backend, precision, threads in rows:
        m = load_local("all-MiniLM-L6-v2", backend=backend, precision=precision,
                       batch_size=args.batch_size, threads=threads)
        contenders[f"semkit onnx {precision}, {threads} thread{'s' * (threads > 1)}, no cache"] = m.embed
    if args.semkit_torch:
        semkit_torch = load_local("all-MiniLM-L6-v2", backend="torch", batch_size=args.batch_size)
        contenders["semkit torch (sentence-transformers + counts)"] = \
            lambda t: (torch.set_num_threads(args.threads), semkit_torch.embed(t))
    fastembed_note = ("FastEmbed: not measured (`import fastembed` failed; it pins huggingface-hub<2, which "
                      "transformers here exceeds: `pip install --no-deps fastembed loguru mmh3 py-rust-stemmers`)")
    try:
        from fastembed import TextEmbedding

        fe_folder = fastembed_folder(folder, load_or_export(folder, "fp32"), workdir)
        fe = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=str(fe_folder),
                           threads=args.threads)
        contenders["FastEmbed (same fp32 ONNX file)"] = \
            lambda t: list(fe.embed(t, batch_size=args.batch_size))
        contenders["FastEmbed, texts pre-sorted by length"] = \
            lambda t: list(fe.embed(sorted(t, key=len), batch_size=args.batch_size))
        import fastembed

        fastembed_note = f"FastEmbed {fastembed.__version__} on semkit's fp32 export ({fe_folder})"
    except ImportError:
        pass

    peak = {"fp32": gemm_peak(False, args.threads), "int8": gemm_peak(True, args.threads)}
    config = json.loads((folder / "config.json").read_text())
    loads: list[float] = []
    for name, texts in datasets.items():
        mean_tokens = float(tokenizer.tokenize(texts).lengths.mean())
        for fn in contenders.values():  # warm-up: first-call allocations, lazy init
            fn(texts[:256])
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for contender, fn in contenders.items():
                gc.collect()
                t = time.perf_counter()
                fn(texts)
                times[contender].append(time.perf_counter() - t)
            loads.append(os.getloadavg()[0])
        fpt = flops_per_token(config, mean_tokens)
        per_sentence = fpt * mean_tokens
        base = len(texts) / statistics.median(times["sentence-transformers torch"])
        print(f"\n{name}: {len(texts)} real sentences, mean {mean_tokens:.1f} tokens (unpadded), batch "
              f"{args.batch_size}, {args.threads} threads, {args.rounds} interleaved rounds; "
              f"load average during the rounds {min(loads):.2f}-{max(loads):.2f}")
        print(f"{'contender':56s} {'sent/s':>8s} {'x ST':>6s} {'GFLOP/s':>8s} {'% ceiling':>9s}")
        for contender, ts in times.items():
            rate = len(texts) / statistics.median(ts)
            gflops = rate * per_sentence / 1e9
            ceiling = peak["int8" if "int8" in contender else "fp32"]
            print(f"{contender:56s} {rate:8.0f} {rate / base:6.2f} {gflops:8.1f} {100 * gflops / ceiling:8.0f}%")
        loads.clear()
    print(f"\nonnxruntime GEMM peak now: fp32 {peak['fp32']:.0f} GFLOP/s, int8 {peak['int8']:.0f} GOP/s. "
          f"Default precision on this CPU: {DEFAULT_PRECISION}. {fastembed_note}.")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
