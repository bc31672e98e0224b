"""Bytes on disk (and in RAM) per vector, per backend, dims and dtype: measured, not guessed.

For each backend (embedded = SQLite WAL + FAISS HNSW file; pgvector = PostgreSQL 18 + pgvector
HNSW on a throwaway local server; qdrant-local = qdrant-client's local mode) x dims x the dtypes
that backend stores, N random unit vectors are upserted with a short text and a small
realistic metadata dict (the reference record below), the store is closed (SQLite checkpoints
its WAL, the HNSW file is written), and its size is measured:

- embedded: the folder (``store.sqlite`` + ``index/*.ann``), split into SQLite and index file;
- pgvector: ``pg_relation_size`` of the heap (+ TOAST), the HNSW index and the other indexes
  (primary key, GIN on metadata, GIN on the full-text column);
- qdrant-local: the folder (a SQLite file of pickled points; *not* what a Qdrant server stores).

Two sizes per configuration check that the cost per vector is linear (the fixed part is
subtracted: per-vector bytes = (size(N2) - size(N1)) / (N2 - N1)). Two extra runs per backend
with a longer text and a larger metadata dict measure what each extra byte of text or metadata
costs (full-text indexes and JSON indexes multiply it).

RAM: for embedded and qdrant-local, a fresh process opens the store and runs one query (which
loads everything the store keeps in memory) and the growth of its resident set is recorded.
For pgvector the RAM figure is derived, not measured: the HNSW index should fit in
shared_buffers / the OS page cache for the latencies in the README.

Writes ``src/semkit/data/capacity.json`` (``--write``) with the machine, date, versions and
command; ``semkit.capacity`` reads it. Stores are built under /dev/shm (tmpfs) so fsyncs are
free; the bytes are the same as on a disk. Run::

    python benchmarks/storage_overhead.py --write
    python benchmarks/storage_overhead.py --dims 384 --sizes 5000,10000 --backends embedded

Against Chroma on real data (``--vs-chroma N``): N real MiniLM vectors with their sentences and a
small metadata dict (``benchmarks/_vectors.py``) go into semkit's embedded store (HNSW built)
and into Chroma's default ``PersistentClient``; then the folder sizes, and the cold open to
first answer: a fresh process, after imports, opens the store and answers one query (median
of 5 processes per engine, interleaved; the files are in the page cache for both)::

    python benchmarks/storage_overhead.py --vs-chroma 30000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "semkit" / "data" / "capacity.json"
DTYPES_BY_BACKEND = {
    "embedded": ("float32", "float16", "int8", "binary"),
    "pgvector": ("float32", "float16", "binary"),
    "qdrant-local": ("float32",),
}
RAW_BYTES = {"float32": 4.0, "float16": 2.0, "int8": 1.0, "binary": 1 / 8}
SOURCES = ("arxiv.org", "github.com", "docs.python.org", "en.wikipedia.org", "example.com")
SYLLABLES = ("ka", "ri", "to", "ne", "mu", "sa", "lo", "vi", "de", "pa", "ti", "ro", "ma", "ke", "shu",
             "an", "el", "or", "is", "un", "be", "co", "di", "fa", "ga", "ha", "jo", "lu", "mi", "no",
             "pe", "qui", "ra", "se", "tu", "va", "we", "xo", "ya", "ze")


def _vocabulary(size: int = 20_000) -> tuple[list[str], np.ndarray]:
    """Pseudo-words with Zipf frequencies (p ~ 1/rank), like a real text's vocabulary: the
    full-text indexes grow with the number of distinct words, so a tiny vocabulary would flatter them."""
    rng = np.random.default_rng(1234)
    words = ["".join(rng.choice(SYLLABLES, int(k))) for k in rng.integers(1, 5, size)]
    p = 1.0 / np.arange(1, size + 1)
    return words, np.cumsum(p / p.sum())


VOCAB, VOCAB_CDF = _vocabulary()


def unit_vectors(n: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def records(n: int, start: int, text_words: int, meta_extra: int) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The reference record: an id, a ~100-byte sentence and a ~90-byte metadata dict.

    ``text_words`` and ``meta_extra`` (bytes of an extra string field) grow them for the
    payload runs.
    """
    ids, texts, metas = [], [], []
    rng = np.random.default_rng(start)
    ranks = np.searchsorted(VOCAB_CDF, rng.random((n, text_words))).tolist()
    for row, i in enumerate(range(start, start + n)):
        ids.append(f"doc-{i:08d}")
        texts.append(" ".join(VOCAB[r] for r in ranks[row]).capitalize() + f" ({i}).")
        meta: dict[str, Any] = {"source": f"https://{SOURCES[i % 5]}/p/{i}", "page": i % 300,
                                "year": 2000 + i % 25, "lang": "en"}
        if meta_extra:  # incompressible (PostgreSQL compresses large values; real notes are not "xxxx")
            meta["note"] = rng.bytes(meta_extra // 2).hex()
        metas.append(meta)
    return ids, texts, metas


def payload_bytes(texts: list[str], metas: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean UTF-8 bytes of text and of metadata JSON per record."""
    t = sum(len(s.encode()) for s in texts) / len(texts)
    m = sum(len(json.dumps(x, separators=(",", ":")).encode()) for x in metas) / len(metas)
    return t, m


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Measure:
    backend: str
    dims: int
    dtype: str
    n: int
    text_bytes: float
    metadata_bytes: float
    total: int
    parts: dict[str, int] = field(default_factory=dict)
    rss: int | None = None
    build_s: float = 0.0


# --- embedded ---------------------------------------------------------------------------------


def measure_embedded(root: Path, dims: int, dtype: str, n: int, text_words: int, meta_extra: int,
                     with_rss: bool) -> Measure:
    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore

    path = root / f"emb-{uuid.uuid4().hex[:8]}"
    store = EmbeddedStore(path, durable=False)
    store.create_collection(CollectionSpec("c", dims, dtype=dtype))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    tb = mb = 0.0
    for s in range(0, n, 10_000):
        m = min(10_000, n - s)
        ids, texts, metas = records(m, s, text_words, meta_extra)
        a, b = payload_bytes(texts, metas)
        tb += a * m
        mb += b * m
        store.upsert("c", ids, unit_vectors(m, dims, seed=s), texts, metas)
    store.build_index("c")
    build = time.perf_counter() - t0
    store.close()
    index = folder_bytes(path / "index")
    total = folder_bytes(path)
    rss = _child_rss("embedded", path, dims) if with_rss else None
    shutil.rmtree(path, ignore_errors=True)
    return Measure("embedded", dims, dtype, n, tb / n, mb / n, total,
                   {"sqlite": total - index, "hnsw_file": index}, rss, build)


# --- qdrant local -----------------------------------------------------------------------------


def measure_qdrant_local(root: Path, dims: int, dtype: str, n: int, text_words: int, meta_extra: int,
                         with_rss: bool) -> Measure:
    from semkit.store.base import CollectionSpec
    from semkit.store.qdrant import QdrantStore

    path = root / f"qdr-{uuid.uuid4().hex[:8]}"
    store = QdrantStore(str(path), local=True, batch_size=1000)
    store.create_collection(CollectionSpec("c", dims))
    t0 = time.perf_counter()
    tb = mb = 0.0
    for s in range(0, n, 5_000):
        m = min(5_000, n - s)
        ids, texts, metas = records(m, s, text_words, meta_extra)
        a, b = payload_bytes(texts, metas)
        tb += a * m
        mb += b * m
        store.upsert("c", ids, unit_vectors(m, dims, seed=s), texts, metas)
    build = time.perf_counter() - t0
    store.close()
    total = folder_bytes(path)
    rss = _child_rss("qdrant-local", path, dims) if with_rss else None
    shutil.rmtree(path, ignore_errors=True)
    return Measure("qdrant-local", dims, dtype, n, tb / n, mb / n, total, {"folder": total}, rss, build)


_RSS_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np

    def rss():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    backend, path, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if backend == "embedded":
        from semkit.store.embedded import EmbeddedStore as S
        open_store = lambda: S(path, exact_threshold=0)
    else:
        from semkit.store.qdrant import QdrantStore as S
        open_store = lambda: S(path, local=True)
    import faiss  # imported by the embedded store's first query; count it in the baseline
    q = np.ones((1, dims), dtype=np.float32) / dims ** 0.5
    before = rss()
    store = open_store()
    store.query("c", q, 10)
    print(json.dumps({"before": before, "after": rss()}))
""")


def _child_rss(backend: str, path: Path, dims: int) -> int:
    """Resident-set growth of a fresh process that opens the store and answers one query."""
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, backend, str(path), str(dims)],
                         capture_output=True, text=True, check=True, timeout=1800,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return int(data["after"] - data["before"])


# --- pgvector ---------------------------------------------------------------------------------


class PgBench:
    def __init__(self, root: Path) -> None:
        sys.path.insert(0, str(REPO))
        import psycopg
        from tests.support.pgserver import start_postgres

        from semkit.store.pgvector import PgVectorStore

        # maintenance_work_mem: an HNSW build that spills to disk is ~10x slower; 50k x 3072 halfvec
        # needs ~0.4 GB. The server's sizes do not depend on it.
        self.server = start_postgres(settings={"maintenance_work_mem": "2GB"})
        self.store = PgVectorStore(self.server.dsn)
        self.conn = psycopg.connect(self.server.dsn, autocommit=True)
        row = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        self.pgvector = row[0] if row else "?"
        self.postgres = self.conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]

    def measure(self, dims: int, dtype: str, n: int, text_words: int, meta_extra: int) -> Measure:
        from semkit.store.base import CollectionSpec

        name = f"c{uuid.uuid4().hex[:8]}"
        self.store.create_collection(CollectionSpec(name, dims, dtype=dtype))  # type: ignore[arg-type]
        ids, texts, metas = records(n, 0, text_words, meta_extra)
        tb, mb = payload_bytes(texts, metas)
        vecs = np.concatenate([unit_vectors(min(10_000, n - s), dims, seed=s) for s in range(0, n, 10_000)])
        t0 = time.perf_counter()
        self.store.upsert(name, ids, vecs, texts, metas)  # one call: COPY, then one HNSW build
        build = time.perf_counter() - t0
        table = self.store._info(name).table
        self.conn.execute(f'VACUUM ANALYZE "{table}"')  # visibility map + free space map, as in production
        row = self.conn.execute(
            "SELECT pg_table_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid), "
            "(SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i "
            "   JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
            "   WHERE i.indrelid = c.oid AND am.amname IN ('hnsw', 'ivfflat')), "
            "(SELECT coalesce(pg_total_relation_size(c.reltoastrelid), 0)) "
            "FROM pg_class c WHERE c.relname = %s", (table,),
        ).fetchone()
        assert row is not None
        heap_incl_toast, indexes, total, hnsw, toast = (int(x) for x in row)
        self.store.drop_collection(name)
        return Measure("pgvector", dims, dtype, n, tb, mb, total,
                       {"heap": heap_incl_toast - toast, "toast": toast, "hnsw_index": hnsw,
                        "other_indexes": indexes - hnsw}, None, build)

    def close(self) -> None:
        self.conn.close()
        self.store.close()
        self.server.stop()


# --- fitting and output -----------------------------------------------------------------------


def per_vector(a: Measure, b: Measure) -> tuple[float, int]:
    """Marginal bytes per vector between two sizes, and the fixed part that remains."""
    slope = (b.total - a.total) / (b.n - a.n)
    return slope, round(a.total - slope * a.n)


def summarise(measures: list[Measure]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int, str], list[Measure]] = {}
    for m in measures:
        groups.setdefault((m.backend, m.dims, m.dtype), []).append(m)
    rows = []
    order = {d: i for i, d in enumerate(RAW_BYTES)}
    for (backend, dims, dtype), ms in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        ms.sort(key=lambda m: m.n)
        small, big = ms[0], ms[-1]
        slope, fixed = per_vector(small, big) if len(ms) > 1 else (big.total / big.n, 0)
        raw = dims * RAW_BYTES[dtype]
        rows.append({
            "backend": backend, "dims": dims, "dtype": dtype, "sizes": [m.n for m in ms],
            "bytes_per_vector": round(slope, 1), "fixed_bytes": fixed,
            "bytes_per_vector_at_each_size": [round(m.total / m.n, 1) for m in ms],
            "raw_vector_bytes": raw, "overhead_factor": round(slope / raw, 3),
            "parts_per_vector": {k: round(v / big.n, 1) for k, v in big.parts.items()},
            "rss_per_vector": round(big.rss / big.n, 1) if big.rss is not None else None,
            "text_bytes": round(big.text_bytes, 1), "metadata_bytes": round(big.metadata_bytes, 1),
            "build_s": [round(m.build_s, 1) for m in ms],
        })
    return rows


def payload_factors(base: dict[str, Measure], text: dict[str, Measure],
                    meta: dict[str, Measure]) -> dict[str, dict[str, float]]:
    out = {}
    for backend, b in base.items():
        t, m = text[backend], meta[backend]
        out[backend] = {
            "per_text_byte": round((t.total - b.total) / b.n / (t.text_bytes - b.text_bytes), 3),
            "per_metadata_byte": round((m.total - b.total) / b.n / (m.metadata_bytes - b.metadata_bytes), 3),
        }
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| backend | dims | dtype | bytes/vector | raw bytes | overhead x | GB per 1M | per-size bytes/vector "
          "| parts per vector | RSS/vector |")
    print("|---|---:|---|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in r["parts_per_vector"].items())
        sizes = " / ".join(f"{v:,.0f} @{n // 1000}k" for v, n in zip(r["bytes_per_vector_at_each_size"],
                                                                     r["sizes"], strict=True))
        rss = "-" if r["rss_per_vector"] is None else f"{r['rss_per_vector']:,.0f}"
        print(f"| {r['backend']} | {r['dims']} | {r['dtype']} | {r['bytes_per_vector']:,.0f} | "
              f"{r['raw_vector_bytes']:,.0f} | {r['overhead_factor']:.2f} | {r['bytes_per_vector'] / 1000:,.2f} | "
              f"{sizes} | {parts} | {rss} |")


def versions(pg: PgBench | None) -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("semkit", "faiss-cpu", "qdrant-client", "psycopg"):
        with contextlib.suppress(Exception):
            out[dist] = version(dist)
    out["sqlite"] = __import__("sqlite3").sqlite_version
    if pg is not None:
        out["postgresql"] = pg.postgres
        out["pgvector"] = pg.pgvector
    return out


_COLD_OPEN_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    engine, path, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
    q = np.ones((1, dims), dtype=np.float32) / dims ** 0.5
    if engine == "semkit":
        import faiss  # noqa: F401  (imports are not part of the open)
        from semkit.database import Database
        from semkit.store.embedded import EmbeddedStore
        t = time.perf_counter()
        col = Database(EmbeddedStore(path)).collection("bench", create=False)
        answer = [h.text for h in col.search(q[0], k=10)]
    else:
        import chromadb
        t = time.perf_counter()
        coll = chromadb.PersistentClient(path=path).get_collection("bench")
        answer = coll.query(query_embeddings=q, n_results=10, include=["documents"])["documents"][0]
    print(json.dumps({"seconds": time.perf_counter() - t, "hits": len(answer)}))
""")


def vs_chroma(n: int, root: Path) -> None:
    """Disk and cold open to first answer, semkit's embedded store vs Chroma, on real vectors."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import chromadb

    import _vectors
    from _machine import cpu_model
    from semkit.database import Database
    from semkit.store.embedded import EmbeddedStore

    texts, vecs = _vectors.build_all(verbose=False)
    n = min(n, len(texts))
    x = np.ascontiguousarray(vecs[:n], dtype=np.float32)
    ids = [f"s{i}" for i in range(n)]
    metas = [{"source": "bench", "n": i % 100} for i in range(n)]
    work = Path(tempfile.mkdtemp(prefix="semkit-vs-chroma-", dir=root))
    with EmbeddedStore(work / "semkit", durable=False) as store:
        col = Database(store).collection("bench", model=None, dimensions=x.shape[1])
        for s in range(0, n, 10_000):
            col.upsert(ids[s:s + 10_000], vectors=x[s:s + 10_000], texts=texts[s:s + 10_000],
                       metadata=metas[s:s + 10_000])
        store.build_index("bench")
    client = chromadb.PersistentClient(path=str(work / "chroma"))
    coll = client.get_or_create_collection("bench")
    for s in range(0, n, 5_000):
        coll.add(ids=ids[s:s + 5_000], embeddings=x[s:s + 5_000], documents=texts[s:s + 5_000],
                 metadatas=metas[s:s + 5_000])
    del coll, client
    time.sleep(2)  # let Chroma's background persistence finish before sizes are read
    sizes = {"semkit": folder_bytes(work / "semkit"), "chroma": folder_bytes(work / "chroma")}
    index_file = sum(f.stat().st_size for f in (work / "semkit" / "index").glob("*.ann"))
    times = cold_opens(work, x.shape[1], rounds=5)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# {n} real MiniLM vectors x {x.shape[1]} with sentences + metadata; {cpu_model()}, "
          f"{os.cpu_count()} CPUs; load {load}")
    print(f"- disk: semkit {sizes['semkit'] / 1e6:.1f} MB (SQLite {(sizes['semkit'] - index_file) / 1e6:.1f} + "
          f"HNSW graph file {index_file / 1e6:.1f}), Chroma {sizes['chroma'] / 1e6:.1f} MB: "
          f"{sizes['semkit'] / sizes['chroma']:.2f}x (target <= 1.2x); the previous layout also kept the "
          f"float32 vectors in the HNSW file: +{x.nbytes / 1e6:.1f} MB, "
          f"{(sizes['semkit'] + x.nbytes) / sizes['chroma']:.2f}x")
    semkit_s, chroma_s = statistics.median(times["semkit"]), statistics.median(times["chroma"])
    print(f"- cold open to first answer (median of {len(times['semkit'])} fresh processes each, interleaved): "
          f"semkit {semkit_s:.3f} s, Chroma {chroma_s:.3f} s: {semkit_s / chroma_s:.2f}x (target <= 1x); "
          f"each run: semkit {' '.join(f'{t:.3f}' for t in times['semkit'])}, "
          f"Chroma {' '.join(f'{t:.3f}' for t in times['chroma'])}")
    shutil.rmtree(work, ignore_errors=True)


def cold_opens(work: Path, dims: int, rounds: int) -> dict[str, list[float]]:
    """Seconds from after the imports to the first answer, per engine, in fresh processes that
    alternate between the engines (so both see the same machine load)."""
    times: dict[str, list[float]] = {"semkit": [], "chroma": []}
    for _ in range(rounds):
        for engine in ("semkit", "chroma"):
            out = subprocess.run([sys.executable, "-c", _COLD_OPEN_CHILD, engine, str(work / engine), str(dims)],
                                 capture_output=True, text=True, check=True, timeout=600,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            times[engine].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vs-chroma", type=int, metavar="N",
                        help="only disk and cold open vs Chroma on N real vectors")
    parser.add_argument("--backends", default="embedded,pgvector,qdrant-local")
    parser.add_argument("--dims", default="384,768,1536,3072")
    parser.add_argument("--sizes", default="10000,20000", help="two (or more) collection sizes per config")
    parser.add_argument("--dtypes", default="", help="limit to these dtypes (default: all a backend stores)")
    parser.add_argument("--payload-n", type=int, default=10_000, help="rows of the text/metadata payload runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the resident-memory measurement")
    parser.add_argument("--root", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                        help="where the stores are built (default /dev/shm)")
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    parser.add_argument("--raw", default=str(REPO / ".bench-cache" / "storage_overhead.raw.json"),
                        help="every raw measurement, rewritten after each one")
    parser.add_argument("--from-raw", action="store_true", help="summarise --raw again without measuring")
    parser.add_argument("--append", action="store_true",
                        help="keep the measurements already in --raw and add these (e.g. 3072 dims at other sizes)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    if args.vs_chroma:
        vs_chroma(args.vs_chroma, Path(args.root) if args.root else Path(tempfile.gettempdir()))
        return
    raw_path = Path(args.raw)
    if args.from_raw:
        saved = json.loads(raw_path.read_text())
        report([Measure(**m) for m in saved["measures"]], {k: [Measure(**m) for m in v]
                                                           for k, v in saved["payload"].items()},
               saved["versions"], saved["command"], saved["minutes"], args.write)
        return
    previous: dict[str, Any] = json.loads(raw_path.read_text()) if args.append else {}
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    backends = [b for b in args.backends.split(",") if b]
    dims_list = [int(x) for x in args.dims.split(",") if x]
    sizes = sorted(int(x) for x in args.sizes.split(",") if x)
    only = {d for d in args.dtypes.split(",") if d}
    root = Path(tempfile.mkdtemp(prefix="semkit-capacity-", dir=args.root))
    started = time.perf_counter()
    pg = PgBench(root) if "pgvector" in backends else None
    info = versions(pg)
    command = "python benchmarks/storage_overhead.py " + " ".join(a for a in sys.argv[1:] if a != "--write")
    if previous:
        command = f"{previous['command']} && {command}"
    measures: list[Measure] = [Measure(**m) for m in previous.get("measures", [])]
    payload: dict[str, list[Measure]] = {k: [Measure(**m) for m in v] for k, v in previous.get("payload", {}).items()}
    done = {(m.backend, m.dims, m.dtype, m.n) for m in measures}
    minutes_before = float(previous.get("minutes", 0.0))

    def save() -> None:
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        raw_path.write_text(json.dumps({
            "measures": [asdict(m) for m in measures],
            "payload": {k: [asdict(m) for m in v] for k, v in payload.items()},
            "versions": info, "command": command,
            "minutes": minutes_before + (time.perf_counter() - started) / 60,
        }))

    def run(backend: str, dims: int, dtype: str, n: int, words: int, extra: int, rss: bool) -> Measure:
        t = time.perf_counter()
        if backend == "embedded":
            m = measure_embedded(root, dims, dtype, n, words, extra, rss)
        elif backend == "qdrant-local":
            m = measure_qdrant_local(root, dims, dtype, n, words, extra, rss)
        else:
            assert pg is not None
            m = pg.measure(dims, dtype, n, words, extra)
        print(f"  {backend:<12} {dims:>5} {dtype:<8} n={n:>6,}: {m.total / n:8,.0f} B/vector "
              f"({time.perf_counter() - t:.0f}s)", file=sys.stderr, flush=True)
        return m

    try:
        # Payload runs first (cheap): the reference record, ~10x its text, ~1 KB more metadata.
        for backend in backends:
            if backend in payload:
                continue
            payload[backend] = [run(backend, 384, "float32", args.payload_n, words, extra, False)
                                for words, extra in ((16, 0), (160, 0), (16, 1000))]
            save()
        for dims in dims_list:
            for backend in backends:
                for dtype in DTYPES_BY_BACKEND[backend]:
                    if only and dtype not in only:
                        continue
                    for n in sizes:
                        if (backend, dims, dtype, n) in done:
                            continue
                        measures.append(run(backend, dims, dtype, n, 16, 0, not args.no_rss and n == sizes[-1]))
                        save()
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(root, ignore_errors=True)
    report(measures, payload, info, command, minutes_before + (time.perf_counter() - started) / 60, args.write)


def report(measures: list[Measure], payload: dict[str, list[Measure]], info: dict[str, str], command: str,
           minutes: float, write: bool) -> None:
    rows = summarise(measures)
    factors = payload_factors(*({k: v[i] for k, v in payload.items()} for i in range(3)))
    print(f"# bytes on disk per vector; {', '.join(f'{k} {v}' for k, v in info.items())}")
    print("# reference record: id 'doc-00000123', ~110-byte text, ~75-byte metadata JSON "
          "(source URL, page, year, lang); HNSW M=16 ef_construction=64 everywhere")
    print_table(rows)
    print("\n| backend | extra disk bytes per byte of text | per byte of metadata JSON |")
    print("|---|---:|---:|")
    for backend, f in factors.items():
        print(f"| {backend} | {f['per_text_byte']:.2f} | {f['per_metadata_byte']:.2f} |")
    lin = [abs(r["bytes_per_vector_at_each_size"][-1] - r["bytes_per_vector_at_each_size"][0])
           / r["bytes_per_vector_at_each_size"][-1] for r in rows if len(r["sizes"]) > 1]
    if lin:
        print(f"\nlinearity: bytes/vector (total / n) differs between sizes by median "
              f"{100 * statistics.median(lin):.1f}%, max {100 * max(lin):.1f}% (fixed costs amortised)")
    print(f"total time {minutes:.1f} min")
    ref = next(iter(payload.values()))[0] if payload else None
    data = {
        "about": "Measured bytes per vector on disk (and resident memory where measured) for each "
                 "backend, dims and dtype, with the reference record (id, short text, small metadata "
                 "dict). Produced by benchmarks/storage_overhead.py; read by semkit.capacity.",
        "command": command,
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()} {platform.release()}",
        "versions": info,
        "hnsw": {"m": 16, "ef_construction": 64},
        "reference_record": {"text_bytes": round(ref.text_bytes, 1) if ref else None,
                             "metadata_bytes": round(ref.metadata_bytes, 1) if ref else None},
        "payload_factors": factors,
        "rows": rows,
    }
    if write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
