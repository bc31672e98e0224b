"""CLIP image embedding throughput (images/s) through ``semkit.model("clip:...")``.

    python benchmarks/clip_throughput.py [--n 128] [--rounds 3] [--threads 2]

The images are JPEG files on disk: the four scikit-image photos (cat, coffee, rocket, astronaut,
300x451 to 512x512) plus generated 256x256 gradients, repeated to ``--n`` files. Contenders run
interleaved round by round in this one process; the table reports medians and ratios to the
batch-32 path of the same model. "decode only" is PIL open + full decode + RGB, the floor every
contender pays. The tiny random CLIP (hidden 32, 32x32 input) measures semkit's plumbing; the
real model (``SEMKIT_CLIP_MODEL``, e.g. ViT-B/32 at 224x224) measures what a user gets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def make_images(folder: Path, n: int) -> list[Path]:
    import skimage.data
    from PIL import Image

    sources = [Image.fromarray(getattr(skimage.data, name)()) for name in
               ("chelsea", "coffee", "rocket", "astronaut")]
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    for shift in range(4):
        rgb = np.stack([np.add.outer(ramp, ramp * shift).astype(np.uint8)] * 3, -1)
        sources.append(Image.fromarray(rgb))
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.jpg"
        sources[i % len(sources)].save(path, quality=90)
        paths.append(path)
    return paths


def decode_only(paths: list[Path]) -> None:
    from semkit.models.clip import load_image

    for p in paths:
        load_image(p)


def run(contenders: dict[str, Callable[[], None]], n: int, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: n / statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from tests.support.tiny_clip import build_tiny_clip

    import semkit

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.n)
        tiny_dir = build_tiny_clip(Path(tmp) / "tiny-clip")
        models = {"tiny": tiny_dir}
        if os.environ.get("SEMKIT_CLIP_MODEL"):
            models["real"] = Path(os.environ["SEMKIT_CLIP_MODEL"])
        contenders: dict[str, Callable[[], None]] = {"decode only": lambda: decode_only(paths)}
        for label, folder in models.items():
            for bs in (32, 1):
                model = semkit.model(f"clip:{folder}", cache=False, batch_size=bs)
                model.embed_images(paths[:2])  # warm-up
                contenders[f"{label} ({model.id}) batch {bs}"] = (
                    lambda m=model: m.embed_images(paths))
        rates = run(contenders, args.n, args.rounds)

    print(f"{args.n} JPEG files, {args.rounds} interleaved rounds, torch threads {args.threads}")
    print(f"{'contender':58} {'images/s':>9} {'ratio':>7}")
    for name, rate in rates.items():
        base_name = name.rsplit(" batch", 1)[0] + " batch 32"
        base = rates.get(base_name, rate)
        print(f"{name:58} {rate:9.1f} {rate / base:7.2f}")


if __name__ == "__main__":
    main()
