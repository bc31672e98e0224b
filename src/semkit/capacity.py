"""Capacity planning: disk, memory and $/month for N vectors on each backend, from measurements.

The numbers come from ``semkit/data/capacity.json``, written by
``benchmarks/storage_overhead.py``: for each backend (``embedded``, ``pgvector``,
``qdrant-local``) x dims x dtype it stored a reference record (id, ~110-byte text, ~75-byte
metadata JSON) at two collection sizes and measured the bytes on disk per vector, its parts
(SQLite vs HNSW file; heap, TOAST, HNSW index, other indexes) and, for the two in-process
backends, the resident memory of a process that opened the store and answered a query. Nothing
here is a rule of thumb: dims between measured points are interpolated linearly (per-vector
cost is not affine in dims, because rows spill into overflow or TOAST pages, so only the two
nearest measurements are used), outside the measured range extrapolated from the two nearest,
and the result says so.

What each backend stores for a dtype (the data file measures exactly this):

- embedded: SQLite always keeps the float32 vector (the source of truth, used to rescore);
  the index holds what the dtype says (``store.ann_index``): an HNSW graph over float32, float16
  or int8 scalar-quantiser codes, or inverted lists of one sign bit per dimension for binary
  (``IndexBinaryIVF``: no graph);
- pgvector: ``float32`` is ``vector(n)``, ``float16`` is ``halfvec(n)``; above 2,000 dims
  ``float32`` is stored as ``halfvec`` too (pgvector indexes ``vector`` up to 2,000 dims);
  ``binary`` keeps the full vector and indexes ``binary_quantize(embedding)::bit(n)`` with
  IVFFlat (``store.pg_quantized``; the data file's ``hnsw_index`` part is that index);
  pgvector has no int8 type, so ``int8`` is not offered;
- qdrant-local (qdrant-client's local mode, for development and tests): float32 only, pickled
  points in SQLite. A Qdrant server stores vectors and its HNSW graph differently; nothing here
  measures a server.

Quality: a quantised index answers with candidates rescored in float32; the recall@10 that
costs is measured on real MiniLM vectors by ``benchmarks/compression.py`` (its data file,
``semkit/data/compression.json``) and reported with the estimate (``recall_at_10``).

Memory: embedded holds the float32 matrix for exact search plus the HNSW graph (measured RSS);
qdrant-local holds every point as Python objects (measured RSS); for pgvector the figure is
derived, not measured: the HNSW index's size, which should fit in shared_buffers plus the OS
page cache for index scans to stay in memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from .errors import InvalidInput, StoreError
from .store import registry
from .types import STORAGE_DTYPES, StorageDtype
from .vectors import bytes_per_vector

Backend = Literal["embedded", "pgvector", "qdrant-local"]
BACKENDS: tuple[Backend, ...] = ("embedded", "pgvector", "qdrant-local")
DTYPES: tuple[StorageDtype, ...] = STORAGE_DTYPES
SUPPORTED: dict[str, tuple[StorageDtype, ...]] = {name: registry.capabilities(name).dtypes for name in BACKENDS}
"""The dtypes each measured backend accepts (the store registry's capabilities)."""
PG_MAX_VECTOR_INDEX_DIMS = 2000
PG_MAX_HALFVEC_INDEX_DIMS = 4000


@dataclass(frozen=True)
class CapacityEstimate:
    """Disk and memory for ``vectors`` records of ``dimensions`` on one backend and dtype."""

    backend: str
    dtype: str
    vectors: int
    dimensions: int
    disk_bytes: int
    """Bytes on disk: vectors, ids, texts, metadata and every index, as measured."""
    bytes_per_vector: float
    raw_vector_bytes: float
    """dims x bytes of the dtype: what the vectors alone would take."""
    overhead_factor: float
    """``bytes_per_vector / raw_vector_bytes``."""
    ram_bytes: int | None
    ram_basis: str
    """``measured RSS`` or how the figure was derived."""
    dollars_per_month: float
    price_per_gb_month: float
    parts: dict[str, int]
    """Disk bytes by part (e.g. ``sqlite``/``hnsw_file``, ``heap``/``toast``/``hnsw_index``)."""
    stored_as: str
    """What the backend actually keeps for this dtype (e.g. ``halfvec`` for 3,072-dim float32)."""
    basis: str
    """``measured`` at these dims, ``interpolated`` or ``extrapolated`` from measured dims."""
    notes: tuple[str, ...] = ()
    recall_at_10: float | None = None
    """Measured recall@10 of a default query on this backend and dtype (quantised candidates
    rescored in float32), on real MiniLM vectors at the dims ``compression.json`` names;
    ``None`` where not measured."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class _Point:
    dims: int
    bytes_per_vector: float
    parts: dict[str, float]
    rss: float | None


@lru_cache(maxsize=1)
def measurements() -> dict[str, Any]:
    """The measured data file (``semkit/data/capacity.json``) as a dict."""
    try:
        text = resources.files("semkit").joinpath("data", "capacity.json").read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        raise StoreError(
            f"semkit's capacity data file is missing ({exc}); reinstall semkit, or regenerate it with "
            "`python benchmarks/storage_overhead.py --write`"
        ) from None
    return json.loads(text)


def _points(backend: str, dtype: str) -> list[_Point]:
    rows = [r for r in measurements()["rows"] if r["backend"] == backend and r["dtype"] == dtype]
    return sorted((_Point(int(r["dims"]), float(r["bytes_per_vector"]), dict(r["parts_per_vector"]),
                          r.get("rss_per_vector")) for r in rows), key=lambda p: p.dims)


def _at(points: list[_Point], dims: int, value: Any) -> tuple[float, str]:
    """``value(point)`` at ``dims``: exact, or linear between / beyond the two nearest points."""
    exact = [p for p in points if p.dims == dims]
    if exact:
        return float(value(exact[0])), "measured"
    if len(points) == 1:
        p = points[0]  # one measurement: scale the whole per-vector cost with dims
        return float(value(p)) * dims / p.dims, "extrapolated"
    below = [p for p in points if p.dims < dims]
    above = [p for p in points if p.dims > dims]
    if below and above:
        a, b, basis = below[-1], above[0], "interpolated"
    elif above:
        a, b, basis = points[0], points[1], "extrapolated"
    else:
        a, b, basis = points[-2], points[-1], "extrapolated"
    va, vb = float(value(a)), float(value(b))
    return va + (vb - va) * (dims - a.dims) / (b.dims - a.dims), basis


def estimate(vectors: int, dimensions: int, *, backend: str, dtype: str = "float32",
             text_bytes: float | None = None, metadata_bytes: float | None = None,
             price_per_gb_month: float | None = None) -> CapacityEstimate:
    """Disk, memory and $/month for ``vectors`` records of ``dimensions`` on ``backend``.

    ``text_bytes`` / ``metadata_bytes``: mean UTF-8 bytes of the text and metadata JSON per
    record, when known; otherwise the measured reference record's (~110 and ~75 bytes). The
    difference is priced with the measured cost of each extra byte (full-text and JSON
    indexes multiply it). ``price_per_gb_month`` in USD per 10^9 bytes per month.
    """
    from .cost import DEFAULT_PRICE_PER_GB_MONTH

    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise InvalidInput(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if dtype not in SUPPORTED[backend]:
        raise InvalidInput(f"the {backend} backend does not store {dtype} vectors; it stores "
                           f"{', '.join(SUPPORTED[backend])}")
    if not isinstance(vectors, int) or vectors < 0:
        raise InvalidInput(f"vectors must be a non-negative integer, got {vectors!r}")
    if not isinstance(dimensions, int) or dimensions < 1:
        raise InvalidInput(f"dimensions must be a positive integer, got {dimensions!r}")
    price = DEFAULT_PRICE_PER_GB_MONTH if price_per_gb_month is None else float(price_per_gb_month)
    if price < 0 or not math.isfinite(price):
        raise InvalidInput(f"price_per_gb_month must be a non-negative number, got {price_per_gb_month!r}")
    for label, value in (("text_bytes", text_bytes), ("metadata_bytes", metadata_bytes)):
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise InvalidInput(f"{label} must be a non-negative number of bytes, got {value!r}")

    data = measurements()
    notes: list[str] = []
    measured_dtype: str = dtype
    stored_as: str = dtype
    points = _points(backend, dtype)
    if backend == "embedded":
        stored_as = {"float32": "SQLite f32 + HNSW f32", "float16": "SQLite f32 + HNSW f16 (SQ)",
                     "int8": "SQLite f32 + HNSW int8 (SQ8)", "binary": "SQLite f32 + binary IVF (sign bits)"}[dtype]
    elif backend == "pgvector":
        halfvec = dtype == "float16" or dimensions > PG_MAX_VECTOR_INDEX_DIMS
        stored_as = f"halfvec({dimensions})" if halfvec else f"vector({dimensions})"
        if dtype == "binary":
            stored_as += f" + bit({dimensions}) IVFFlat index"
        if halfvec and dtype == "float32":
            measured_dtype = "float16"
            notes.append(f"pgvector indexes vector only up to {PG_MAX_VECTOR_INDEX_DIMS} dims: float32 above "
                         "that is stored as halfvec")
        points = _points(backend, measured_dtype)
        if measured_dtype == "float32":  # the float32 rows measured above 2,000 dims are halfvec
            points = [p for p in points if p.dims <= PG_MAX_VECTOR_INDEX_DIMS]
        if dimensions > PG_MAX_HALFVEC_INDEX_DIMS:
            notes.append(f"above {PG_MAX_HALFVEC_INDEX_DIMS} dims pgvector has no HNSW index (exact scans); "
                         "the estimate still counts one, so it is high")
    else:
        stored_as = "f32, pickled in SQLite"
        notes.append("qdrant-client local mode (development and tests): a Qdrant server stores "
                     "vectors differently and is not measured here")
    if not points:
        raise StoreError(f"the capacity data file has no measurement for {backend} {measured_dtype}; "
                         "regenerate it with `python benchmarks/storage_overhead.py --write`")

    per_vector, basis = _at(points, dimensions, lambda p: p.bytes_per_vector)
    factors = data["payload_factors"].get(backend, {})
    ref = data["reference_record"]
    if text_bytes is not None:
        per_vector += factors.get("per_text_byte", 1.0) * (text_bytes - ref["text_bytes"])
    if metadata_bytes is not None:
        per_vector += factors.get("per_metadata_byte", 1.0) * (metadata_bytes - ref["metadata_bytes"])
    raw = float(bytes_per_vector(dimensions, dtype))
    per_vector = max(per_vector, raw)
    part_names = points[0].parts.keys()
    parts = {name: round(vectors * _at(points, dimensions, lambda p, k=name: p.parts.get(k, 0.0))[0])
             for name in part_names}

    if backend == "pgvector":
        hnsw = _at(points, dimensions, lambda p: p.parts.get("hnsw_index", 0.0))[0]
        ram: int | None = round(vectors * hnsw)
        kind = "bit IVFFlat" if dtype == "binary" else "HNSW"
        ram_basis = f"derived: the {kind} index size, to keep in shared_buffers + page cache"
    elif all(p.rss is not None for p in points):
        ram = round(vectors * max(_at(points, dimensions, lambda p: p.rss)[0], 0.0))
        ram_basis = "measured RSS of a process that opened the store and queried it"
    else:
        ram, ram_basis = None, "not measured"
    disk = round(vectors * per_vector)
    if basis != "measured":
        measured = ", ".join(str(p.dims) for p in points)
        notes.append(f"{dimensions} dims {basis} from the dims measured ({measured})")
    quality = measured_quality(backend, dtype)
    if quality is not None and dtype != "float32":
        rescored = (f"after rescoring {quality['rescore_factor']}x candidates in float32"
                    if quality["rescore_factor"] > 1 else "(distances computed on the stored type)")
        notes.append(f"{dtype}: recall@10 {quality['recall_at_10']:.3f} {rescored}, index "
                     f"{quality['index_ratio_to_float32']:.2f}x float32's, measured on {quality['n']:,} MiniLM "
                     f"vectors at {quality['dims']} dims (benchmarks/compression.py)")
    return CapacityEstimate(
        backend=backend, dtype=dtype, vectors=vectors, dimensions=dimensions, disk_bytes=disk,
        bytes_per_vector=round(per_vector, 1), raw_vector_bytes=raw,
        overhead_factor=round(per_vector / raw, 2), ram_bytes=ram, ram_basis=ram_basis,
        dollars_per_month=disk / 1e9 * price, price_per_gb_month=price, parts=parts,
        stored_as=stored_as, basis=basis, notes=tuple(notes),
        recall_at_10=None if quality is None else float(quality["recall_at_10"]),
    )


@lru_cache(maxsize=1)
def compression_measurements() -> dict[str, Any] | None:
    """``semkit/data/compression.json`` (``benchmarks/compression.py --write``), if present."""
    try:
        text = resources.files("semkit").joinpath("data", "compression.json").read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError):
        return None
    return json.loads(text)


def measured_quality(backend: str, dtype: str) -> dict[str, Any] | None:
    """The measured row (recall@10, rescoring factor, index size ratio) for a backend and dtype."""
    data = compression_measurements()
    if data is None:
        return None
    return next((r for r in data["rows"] if r["backend"] == backend and r["dtype"] == dtype), None)


def estimate_all(vectors: int, dimensions: int, *, backends: tuple[str, ...] | list[str] | None = None,
                 dtypes: tuple[str, ...] | list[str] | None = None, text_bytes: float | None = None,
                 metadata_bytes: float | None = None,
                 price_per_gb_month: float | None = None) -> list[CapacityEstimate]:
    """``estimate`` for every backend x dtype it stores (optionally only some of them)."""
    chosen_backends = list(backends) if backends else list(BACKENDS)
    for b in chosen_backends:
        if b not in BACKENDS:
            raise InvalidInput(f"unknown backend {b!r}; use one of {', '.join(BACKENDS)}")
    for d in dtypes or ():
        if d not in DTYPES:
            raise InvalidInput(f"unknown dtype {d!r}; use one of {', '.join(DTYPES)}")
    out = [estimate(vectors, dimensions, backend=b, dtype=d, text_bytes=text_bytes,
                    metadata_bytes=metadata_bytes, price_per_gb_month=price_per_gb_month)
           for b in chosen_backends for d in SUPPORTED[b] if not dtypes or d in dtypes]
    if not out:
        raise InvalidInput(f"none of the backends {chosen_backends} stores the dtypes {list(dtypes or [])}; "
                           f"they store: " + "; ".join(f"{b}: {', '.join(SUPPORTED[b])}" for b in chosen_backends))
    return out


def provenance() -> dict[str, Any]:
    """Where the measurements come from: command, date, machine, versions."""
    data = measurements()
    return {k: data.get(k) for k in ("command", "date", "machine", "versions", "reference_record")}


__all__ = ["BACKENDS", "SUPPORTED", "CapacityEstimate", "compression_measurements", "estimate", "estimate_all",
           "measured_quality", "measurements", "provenance"]
