"""The capacity estimator against its measured data file, and against a fresh measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semkit import capacity
from semkit.errors import InvalidInput

DATA = capacity.measurements()


def test_the_data_file_says_how_it_was_produced() -> None:
    prov = capacity.provenance()
    assert prov["command"].startswith("python benchmarks/storage_overhead.py")
    assert prov["date"] and prov["machine"]
    assert {"faiss-cpu", "qdrant-client", "postgresql", "pgvector", "sqlite"} <= set(prov["versions"])
    assert prov["reference_record"]["text_bytes"] > 0 and prov["reference_record"]["metadata_bytes"] > 0


def test_every_backend_and_dtype_it_stores_is_measured() -> None:
    measured = {(r["backend"], r["dtype"]) for r in DATA["rows"]}
    for backend, dtypes in capacity.SUPPORTED.items():
        for dtype in dtypes:
            assert (backend, dtype) in measured, (backend, dtype)
    for row in DATA["rows"]:
        assert len(row["sizes"]) >= 2, "two sizes per configuration, to check the cost is linear"
        per_size = row["bytes_per_vector_at_each_size"]
        assert max(per_size) / min(per_size) < 1.1, row  # total/n barely moves between sizes


@pytest.mark.parametrize("row", DATA["rows"], ids=lambda r: f"{r['backend']}-{r['dims']}-{r['dtype']}")
def test_estimates_at_measured_dims_are_the_measurements(row: dict) -> None:
    if row["backend"] == "pgvector" and row["dtype"] == "float32" and row["dims"] > 2000:
        pytest.skip("float32 above 2,000 dims is halfvec: estimated from the float16 rows (next test)")
    e = capacity.estimate(1_000_000, row["dims"], backend=row["backend"], dtype=row["dtype"],
                          price_per_gb_month=0.5)
    assert e.basis == "measured"
    assert e.bytes_per_vector == pytest.approx(row["bytes_per_vector"], abs=0.1)
    assert e.disk_bytes == pytest.approx(1_000_000 * row["bytes_per_vector"], rel=1e-6)
    assert e.dollars_per_month == pytest.approx(e.disk_bytes / 1e9 * 0.5)
    assert e.overhead_factor == pytest.approx(row["bytes_per_vector"] / e.raw_vector_bytes, abs=0.01)
    assert e.disk_bytes >= 1_000_000 * e.raw_vector_bytes  # never less than the vectors themselves
    if row["backend"] == "pgvector":
        assert e.ram_basis.startswith("derived") and e.ram_bytes == pytest.approx(
            1_000_000 * row["parts_per_vector"]["hnsw_index"], rel=1e-6)
    else:
        assert e.ram_basis.startswith("measured") and e.ram_bytes == pytest.approx(
            1_000_000 * row["rss_per_vector"], rel=1e-6)


def test_pgvector_float32_above_2000_dims_is_halfvec() -> None:
    f32 = capacity.estimate(1000, 3072, backend="pgvector", dtype="float32")
    f16 = capacity.estimate(1000, 3072, backend="pgvector", dtype="float16")
    assert f32.stored_as == "halfvec(3072)" and f32.disk_bytes == f16.disk_bytes
    assert any("halfvec" in n for n in f32.notes)
    assert capacity.estimate(1000, 1536, backend="pgvector").stored_as == "vector(1536)"


def test_dims_between_measurements_are_interpolated() -> None:
    dims = sorted({r["dims"] for r in DATA["rows"] if r["backend"] == "embedded" and r["dtype"] == "float32"})
    lo, hi = dims[0], dims[1]
    mid = (lo + hi) // 2
    a, b, m = (capacity.estimate(1000, d, backend="embedded") for d in (lo, hi, mid))
    assert m.basis == "interpolated" and a.disk_bytes < m.disk_bytes < b.disk_bytes
    beyond = capacity.estimate(1000, dims[-1] * 2, backend="embedded")
    assert beyond.basis == "extrapolated" and beyond.disk_bytes > b.disk_bytes
    assert any("extrapolated" in n for n in beyond.notes)


def test_more_text_and_metadata_cost_what_was_measured_per_byte() -> None:
    ref = DATA["reference_record"]
    base = capacity.estimate(1000, 384, backend="pgvector", text_bytes=ref["text_bytes"],
                             metadata_bytes=ref["metadata_bytes"])
    assert base.disk_bytes == capacity.estimate(1000, 384, backend="pgvector").disk_bytes
    longer = capacity.estimate(1000, 384, backend="pgvector", text_bytes=ref["text_bytes"] + 1000,
                               metadata_bytes=ref["metadata_bytes"])
    factor = DATA["payload_factors"]["pgvector"]["per_text_byte"]
    assert factor > 1  # the text, its tsvector and the GIN index over it
    assert longer.disk_bytes - base.disk_bytes == pytest.approx(1000 * 1000 * factor, rel=1e-3)


def test_estimate_all_filters_and_rejects_what_a_backend_does_not_store() -> None:
    rows = capacity.estimate_all(10**6, 768)
    assert {(r.backend, r.dtype) for r in rows} == {
        (b, d) for b, ds in capacity.SUPPORTED.items() for d in ds}
    only = capacity.estimate_all(10**6, 768, backends=["pgvector"], dtypes=["float16", "int8"])
    assert [(r.backend, r.dtype) for r in only] == [("pgvector", "float16")]
    with pytest.raises(InvalidInput, match="does not store int8"):
        capacity.estimate(10, 384, backend="pgvector", dtype="int8")
    with pytest.raises(InvalidInput, match="unknown backend"):
        capacity.estimate(10, 384, backend="milvus")
    with pytest.raises(InvalidInput, match="stores the dtypes"):
        capacity.estimate_all(10, 384, backends=["qdrant-local"], dtypes=["int8"])
    with pytest.raises(InvalidInput):
        capacity.estimate(-1, 384, backend="embedded")
    with pytest.raises(InvalidInput):
        capacity.estimate(10, 384, backend="embedded", price_per_gb_month=-1)


def test_the_estimate_matches_a_fresh_embedded_store(tmp_path: Path) -> None:
    """Build a real 5k-vector embedded collection and compare its folder with the estimate."""
    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore

    n, dims = 5000, 384
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n, dims), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(k))) for k in rng.integers(2, 10, 3000)]
    texts = [" ".join(rng.choice(vocab, 25)) for _ in range(n)]  # longer than the reference record
    metas = [{"source": f"https://example.org/doc/{i}", "page": i % 50, "tags": ["a", "b"][: i % 3]}
             for i in range(n)]
    text_bytes = sum(len(t.encode()) for t in texts) / n
    meta_bytes = sum(len(json.dumps(m, separators=(",", ":")).encode()) for m in metas) / n

    store = EmbeddedStore(tmp_path / "kb", durable=False)
    store.create_collection(CollectionSpec("docs", dims))
    store.upsert("docs", [f"doc-{i}" for i in range(n)], vecs, texts, metas)
    store.build_index("docs")
    store.close()
    real = sum(p.stat().st_size for p in (tmp_path / "kb").rglob("*") if p.is_file())

    e = capacity.estimate(n, dims, backend="embedded", text_bytes=text_bytes, metadata_bytes=meta_bytes)
    assert e.disk_bytes == pytest.approx(real, rel=0.15), (e.disk_bytes, real)
    index = sum(p.stat().st_size for p in (tmp_path / "kb" / "index").iterdir())
    assert e.parts["hnsw_file"] == pytest.approx(index, rel=0.15)
