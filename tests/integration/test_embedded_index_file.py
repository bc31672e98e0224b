"""The float32 HNSW file keeps the graph only (SQLite holds the vectors, not kept twice on disk),
and a store whose file was written the old way (vectors inside) still opens and uses it."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from pathlib import Path

import faiss
import numpy as np
import pytest

from semkit.store.ann_index import MAGIC
from semkit.store.base import CollectionSpec
from semkit.store.embedded import EmbeddedStore

DIMS = 24
N = 600


def _vectors(n: int = N, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIMS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _build(path: Path) -> np.ndarray:
    x = _vectors()
    with EmbeddedStore(path, exact_threshold=0) as store:
        store.create_collection(CollectionSpec("c", DIMS))
        store.upsert("c", [f"r{i}" for i in range(N)], x)
        store.build_index("c")
    return x


def _read(file: Path) -> tuple[dict, bytes, bytes]:
    data = file.read_bytes()
    (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(data[start:start + hlen])
    body = data[start + hlen:]
    return header, body[:header["rowids_bytes"]], body[header["rowids_bytes"]:]


def test_the_float32_file_holds_the_graph_but_not_the_vectors(tmp_path: Path) -> None:
    x = _build(tmp_path)
    (file,) = (tmp_path / "index").glob("c*.ann")
    header, _, payload = _read(file)
    assert header["vectors"] == "outside"
    graph = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8), faiss.IO_FLAG_SKIP_STORAGE)
    flat = faiss.IndexFlatIP(DIMS)
    flat.add(x)
    flat.this.disown()
    graph.storage, graph.own_fields = flat, True
    assert len(faiss.serialize_index(graph)) - len(payload) >= N * DIMS * 4  # every vector left out
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        approx = store.query("c", x[:50], 5)
        exact = store.query("c", x[:50], 5, exact=True)
    assert [a.ids[0] for a in approx] == [f"r{i}" for i in range(50)]
    agree = np.mean([len(set(a.ids) & set(e.ids)) / 5 for a, e in zip(approx, exact, strict=True)])
    assert agree >= 0.95


def test_a_file_written_the_old_way_still_opens_without_a_rebuild(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    x = _build(tmp_path)
    (file,) = (tmp_path / "index").glob("c*.ann")
    header, rowids, _ = _read(file)
    # The previous format: the same header without "vectors", FAISS bytes with the vectors inside.
    old = faiss.IndexHNSWFlat(DIMS, 16, faiss.METRIC_INNER_PRODUCT)
    old.hnsw.efConstruction = 64
    old.add(x)  # positions follow pk order in a fresh store
    payload = faiss.serialize_index(old).tobytes()
    del header["vectors"]
    header.update(payload_bytes=len(payload), crc32=zlib.crc32(payload, zlib.crc32(rowids)))
    raw = json.dumps(header).encode()
    file.write_bytes(MAGIC + struct.pack("<Q", len(raw)) + raw + rowids + payload)

    with caplog.at_level(logging.WARNING, logger="semkit.store.embedded"), \
            EmbeddedStore(tmp_path, exact_threshold=0) as store:
        assert [a.ids[0] for a in store.query("c", x[:30], 3)] == [f"r{i}" for i in range(30)]
        store.upsert("c", ["new"], _vectors(1, seed=5))
        store.query("c", x[:1], 1)  # the graph takes the new row: the file is rewritten on close
    assert not [r for r in caplog.records if "rebuild" in r.getMessage()]
    assert _read(file)[0]["vectors"] == "outside"
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        assert store.query("c", _vectors(1, seed=5), 1)[0].ids == ["new"]


def test_rows_deleted_after_the_file_was_saved_are_never_returned(tmp_path: Path) -> None:
    x = _build(tmp_path)
    with EmbeddedStore(tmp_path, exact_threshold=0, index_save_every=10**9) as store:
        store.delete("c", [f"r{i}" for i in range(0, 40, 2)])
    # Reopen: the file predates the deletions; those positions come back as zero-vector tombstones.
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        found = store.query("c", x[:40], 5)
    returned = {i for a in found for i in a.ids}
    assert not returned & {f"r{i}" for i in range(0, 40, 2)}
    assert [a.ids[0] for a in found[1::2]] == [f"r{i}" for i in range(1, 40, 2)]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_a_reopened_graph_reads_the_stores_rows_and_stays_right_after_writes(tmp_path: Path, metric: str) -> None:
    x = _vectors()
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        store.create_collection(CollectionSpec("c", DIMS, metric=metric))
        store.upsert("c", [f"r{i}" for i in range(N)], x)
        store.build_index("c")
    new = _vectors(700, seed=7)
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        assert [a.ids[0] for a in reader.query("c", x[:40], 3)] == [f"r{i}" for i in range(40)]
        (live,) = reader._lives.values()
        storage = faiss.downcast_index(live.ann.index.storage)
        # One copy of the vectors in memory: the graph's storage is a view of the store's matrix.
        assert not storage.codes.is_owned
        assert int(storage.codes.c_ptr) == live.matrix.ctypes.data
        # Another connection's writes: the reader's matrix grows (a new array) and the graph takes
        # the new rows into storage of its own; no row may come back wrong or lost.
        writer.upsert("c", [f"n{i}" for i in range(len(new))], new)
        writer.delete("c", [f"r{i}" for i in range(0, 40, 2)])
        garbage = [np.full((N + len(new), DIMS), 7.0, dtype=np.float32) for _ in range(4)]  # reuse freed memory
        found = reader.query("c", np.vstack([x[:40], new]), 3)
        del garbage
        assert faiss.downcast_index(live.ann.index.storage).codes.is_owned
    returned = {i for a in found for i in a.ids}
    assert not returned & {f"r{i}" for i in range(0, 40, 2)}
    assert [a.ids[0] for a in found[1:40:2]] == [f"r{i}" for i in range(1, 40, 2)]
    assert [a.ids[0] for a in found[40:]] == [f"n{i}" for i in range(len(new))]
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        assert [a.ids[0] for a in store.query("c", new[:50], 1)] == [f"n{i}" for i in range(50)]
