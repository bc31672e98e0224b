"""Compressed storage on the embedded store: a collection's ``dtype`` is the type its index
really holds (FAISS scalar-quantiser codes in HNSW for float16/int8, sign bits in inverted lists
for binary), the index file on disk is that index, and quantised candidates are rescored with
float32 so the scores callers see are exact. Recall and memory at scale are
``benchmarks/compression.py``; here the data is small and synthetic but clustered, plus one
recall check on real MiniLM vectors (the benchmarks' cache)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from semkit.store.ann_index import AnnIndex, binary_lists, rescore_candidates, sign_bits
from semkit.store.base import CollectionSpec
from semkit.store.embedded import EmbeddedStore
from semkit.store.filters import parse
from semkit.vectors import normalize
from tests.integration.test_embedded_store import _store_id

DIMS = 96
INDEX_CLASS = {"float32": faiss.IndexHNSWFlat, "float16": faiss.IndexHNSWSQ, "int8": faiss.IndexHNSWSQ,
               "binary": faiss.IndexBinaryIVF}
CODE_BYTES = {"float32": 4 * DIMS, "float16": 2 * DIMS, "int8": DIMS, "binary": DIMS // 8}


def clustered(n: int, seed: int = 0, dims: int = DIMS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 40, 1), dims))
    x = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.normal(size=(n, dims))
    return x.astype(np.float32)


def fill(store: EmbeddedStore, dtype: str, n: int = 2000, metric: str = "cosine") -> np.ndarray:
    store.create_collection(CollectionSpec("c", DIMS, metric=metric, dtype=dtype))  # type: ignore[arg-type]
    vecs = clustered(n)
    store.upsert("c", [f"r{i}" for i in range(n)], vecs, metadata=[{"g": i % 4} for i in range(n)])
    return vecs


def index_on_disk(path: Path, dtype: str) -> AnnIndex:
    (file,) = (path / "index").glob("c*.ann")
    tag = {"store_id": _store_id(path), "cid": int(file.stem[1:])}
    index, _, _ = AnnIndex.load(file, dims=DIMS, metric="cosine", dtype=dtype, tag=tag)  # type: ignore[arg-type]
    return index


@pytest.mark.parametrize("dtype", ["float16", "int8", "binary"])
def test_the_index_file_holds_the_asked_type(tmp_path: Path, dtype: str) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, dtype)
        store.build_index("c")
    index = index_on_disk(tmp_path, dtype)
    assert type(index.index) is INDEX_CLASS[dtype]
    assert index.code_bytes == CODE_BYTES[dtype]
    if dtype in ("float16", "int8"):
        qtype = faiss.ScalarQuantizer.QT_fp16 if dtype == "float16" else faiss.ScalarQuantizer.QT_8bit
        assert faiss.downcast_index(index.index.storage).sq.qtype == qtype
    if dtype == "binary":
        assert index.index.d == DIMS  # bits, one per dimension


def test_smaller_dtypes_make_smaller_indexes(tmp_path: Path) -> None:
    n = 2000
    vectors = normalize(clustered(n))
    memory = {}
    for dtype in ("float32", "float16", "int8", "binary"):
        index = AnnIndex(DIMS, "cosine", dtype)  # type: ignore[arg-type]
        index.add(vectors)
        assert type(index.index) is INDEX_CLASS[dtype] and index.code_bytes == CODE_BYTES[dtype]
        memory[dtype] = index.memory_bytes()
    # Each step saves at least the codes it drops (the graph, ~150 B/vector, is common to the
    # HNSW dtypes; binary has none, and saves more).
    assert memory["float32"] - memory["float16"] >= 0.95 * n * 2 * DIMS
    assert memory["float16"] - memory["int8"] >= 0.95 * n * DIMS
    assert memory["int8"] - memory["binary"] >= 0.95 * n * (DIMS - DIMS // 8)
    # The files of quantised collections hold their codes (float32 rows are SQLite's).
    files = {}
    for dtype in ("int8", "binary"):
        with EmbeddedStore(tmp_path / dtype, exact_threshold=0) as store:
            fill(store, dtype)
            store.build_index("c")
        files[dtype] = next((tmp_path / dtype / "index").glob("c*.ann")).stat().st_size
    assert files["int8"] - files["binary"] >= 0.95 * n * (DIMS - DIMS // 8)


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_binary_candidates_are_rescored_with_float32(tmp_path: Path, metric: str) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        vecs = fill(store, "binary", metric=metric)
        # Queries near stored vectors, as real queries are near their documents.
        queries = vecs[:40] + 0.3 * np.random.default_rng(7).normal(size=(40, DIMS)).astype(np.float32)
        approx = store.query("c", queries, 10)
        exact = store.query("c", queries, 10, exact=True)
    hits = sum(len(set(a.ids) & set(e.ids)) for a, e in zip(approx, exact, strict=True))
    assert hits / 400 >= 0.9
    for a, e in zip(approx, exact, strict=True):
        assert list(a.scores) == sorted(a.scores, reverse=True)
        for rid, score in zip(a.ids, a.scores, strict=True):
            if rid in e.ids:  # the float32 score, not a Hamming distance
                assert score == pytest.approx(e.scores[e.ids.index(rid)], rel=1e-5, abs=1e-5)


def test_binary_index_reopens_catches_up_and_respects_deletes_and_filters(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0, filter_exact_fraction=0.0) as store:
        vecs = fill(store, "binary")
        store.build_index("c")
    extra = clustered(50, seed=3)
    with EmbeddedStore(tmp_path, exact_threshold=0, filter_exact_fraction=0.0) as store:
        store.upsert("c", [f"new{i}" for i in range(50)], extra, metadata=[{"g": 9}] * 50)
        store.delete("c", [f"r{i}" for i in range(0, 2000, 2)])
        got = store.query("c", extra[:10], 5)
        assert [n.ids[0] for n in got] == [f"new{i}" for i in range(10)]
        hits = store.query("c", vecs[:20], 10)
        assert all(int(rid[1:]) % 2 == 1 for n in hits for rid in n.ids if rid.startswith("r"))
        filtered = store.query("c", vecs[:20], 10, where=parse({"g": 1}))
        assert all(len(n.ids) == 10 for n in filtered)
        assert all(int(rid[1:]) % 4 == 1 for n in filtered for rid in n.ids)
    assert type(index_on_disk(tmp_path, "binary").index) is faiss.IndexBinaryIVF


def test_binary_lists_are_trained_on_the_rows_and_retrained_as_they_grow() -> None:
    data = normalize(clustered(3000))
    index = AnnIndex(DIMS, "cosine", "binary")
    index.add(data[:200])
    assert index.index.is_trained and index.index.nlist == binary_lists(200) == 5
    index.add(data[200:300])  # an incremental add joins the lists it has
    assert index.index.nlist == 5 and index.ntotal == 300
    index.add(data[300:])  # 10x the rows: retrained with more lists, positions kept
    assert index.index.nlist == binary_lists(3000) == 55 and index.ntotal == 3000
    _, pos = index.search(data[::300], 1, 64, float_rows=data)
    assert pos[:, 0].tolist() == list(range(0, 3000, 300))


def test_an_older_binary_hnsw_file_is_rebuilt_as_inverted_lists(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        vecs = fill(store, "binary")
        store.build_index("c")
    # What earlier versions wrote for a binary collection: the same file around an IndexBinaryHNSW.
    (file,) = (tmp_path / "index").glob("c*.ann")
    tag = {"store_id": _store_id(tmp_path), "cid": int(file.stem[1:])}
    index, seq, rowids = AnnIndex.load(file, dims=DIMS, metric="cosine", dtype="binary", tag=tag)
    old = faiss.IndexBinaryHNSW(DIMS, 16)
    old.add(sign_bits(vecs, DIMS))
    index.index = old
    index.save(file, seq=seq, rowids=rowids, tag=tag)
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        got = store.query("c", vecs[:5], 3)
        assert [n.ids[0] for n in got] == [f"r{i}" for i in range(5)]
    assert "older binary index (IndexBinaryHNSW)" in caplog.text
    assert type(index_on_disk(tmp_path, "binary").index) is faiss.IndexBinaryIVF


def real_minilm(n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` real all-MiniLM-L6-v2 sentence vectors, ``n_queries`` held-out ones and their exact
    top-10, from the benchmarks' cache (``python benchmarks/_vectors.py --build`` makes it)."""
    cache = sorted((Path(__file__).resolve().parents[2] / ".bench-cache").glob("minilm-*.npy"))
    if not cache:
        pytest.skip("no real MiniLM vectors cached: run python benchmarks/_vectors.py --build")
    vecs = np.load(cache[0], mmap_mode="r")
    rows = np.random.default_rng(5).permutation(len(vecs))[: n + n_queries]
    corpus = np.ascontiguousarray(vecs[np.sort(rows[n_queries:])], dtype=np.float32)
    queries = np.ascontiguousarray(vecs[np.sort(rows[:n_queries])], dtype=np.float32)
    truth = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
    return corpus, queries, truth


def test_binary_recall_on_real_vectors_after_rescoring(tmp_path: Path) -> None:
    corpus, queries, truth = real_minilm(10_000, 200)
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        store.create_collection(CollectionSpec("c", 384, dtype="binary"))
        store.upsert("c", [str(i) for i in range(len(corpus))], corpus)
        got = store.query("c", queries, 10)
        assert type(store._lives[next(iter(store._lives))].ann.index) is faiss.IndexBinaryIVF
    recall = np.mean([len({int(i) for i in n.ids} & set(t.tolist())) / 10 for n, t in zip(got, truth, strict=True)])
    assert recall >= 0.95


def test_sign_bits_pad_dimensions_to_whole_bytes() -> None:
    x = np.array([[1.0, -1.0, 0.0, 2.0, -3.0]], dtype=np.float32)
    assert sign_bits(x, 8).tolist() == [[0b01001]]
    index = AnnIndex(5, "cosine", "binary")
    data = normalize(clustered(300, dims=5))
    index.add(data)
    assert index.code_bytes == 1
    scores, pos = index.search(data[:3], 4, 32, float_rows=data)
    assert pos[:, 0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-6)


def test_rescoring_reads_rows_from_an_array_or_a_function() -> None:
    data = normalize(clustered(1500))
    index = AnnIndex(DIMS, "cosine", "int8")
    index.add(data)
    queries = data[:5] + 0.01
    from_array = index.search(queries, 10, 64, float_rows=data)
    asked: list[int] = []

    def rows(positions: np.ndarray) -> np.ndarray:
        asked.append(len(positions))
        return data[positions]

    from_function = index.search(queries, 10, 64, float_rows=rows)
    np.testing.assert_array_equal(from_array[1], from_function[1])
    assert sum(asked) == 5 * rescore_candidates("int8", 10)
    np.testing.assert_allclose(from_array[0], np.einsum("qd,qd->q", queries[:, None, :].repeat(10, 1).reshape(-1, DIMS),
                                                        data[from_array[1].ravel()]).reshape(5, 10), atol=1e-5)
