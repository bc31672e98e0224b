"""Export and import of records: Parquet, JSON Lines and CSV, streamed in batches.

Layouts (the same columns in every format):

- ``id`` (string), ``text`` (string or null), ``metadata`` (a JSON object; a JSON string
  column in Parquet and CSV), ``vector`` (float32; a fixed-size list in Parquet, a JSON list
  in JSON Lines and CSV).
- The collection's spec travels with the data: in Parquet as schema metadata under the key
  ``semkit`` and in JSON Lines as a first line ``{"semkit": {"format": 1, "spec": {...}}}``.
  CSV has nowhere to put it.
- When reading, ``text``, ``metadata`` and ``vector`` may be missing (a plain file of
  documents). In CSV, columns other than the four above become metadata fields (as strings).
- A Pinecone-style dump (``read_pinecone``) is the same reader with Pinecone's names: ``values``
  for the vector, no text column (the text is ``metadata["text"]``, see ``pinecone_layout``), and
  an empty ``sparse_values``.

Files are written to a temporary name next to the target, flushed to disk, then renamed over
it: a crash never leaves a half-written export under the real name. pyarrow is imported only
for Parquet.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InvalidInput, MissingDependency
from .base import CollectionSpec, Record
from .pinecone_layout import check_dense, text_of

FORMAT_VERSION = 1
META_KEY = b"semkit"
FORMATS = ("parquet", "jsonl", "csv")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``format`` if given, else from the file suffix."""
    if format is not None:
        if format not in FORMATS:
            raise InvalidInput(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
        return format
    found = _SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise InvalidInput(
            f"cannot tell the format of {os.fspath(path)!r} from its suffix; name it .parquet, "
            ".jsonl or .csv, or pass format="
        )
    return found


def write_records(
    path: str | os.PathLike[str], spec: CollectionSpec, batches: Iterable[list[Record]],
    format: str | None = None,
) -> int:
    """Write every record of ``batches`` to ``path``; returns how many were written."""
    fmt = detect_format(path, format)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            count = _write_parquet(tmp, spec, batches)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                writer = _write_jsonl if fmt == "jsonl" else _write_csv
                count = writer(fh, spec, batches)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return count


def read_spec(path: str | os.PathLike[str], format: str | None = None) -> CollectionSpec | None:
    """The spec recorded in an export, or ``None`` when the file records none."""
    fmt = detect_format(path, format)
    _check_exists(path)
    with _unreadable(path, fmt):
        return _read_spec(path, fmt)


def _read_spec(path: str | os.PathLike[str], fmt: str) -> CollectionSpec | None:
    if fmt == "parquet":
        pq = _pyarrow_parquet()
        meta = pq.read_schema(path).metadata or {}
        raw = meta.get(META_KEY)
        return _spec_from_header(json.loads(raw), path) if raw else None
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    first = _json_line(line, path, 1)
                    return _spec_from_header(first["semkit"], path) if _is_header(first) else None
        return None
    return None


def read_records(
    path: str | os.PathLike[str], batch_size: int = 1_000, format: str | None = None,
) -> Iterator[list[Record]]:
    """Records of an export (or any file of the same layout), ``batch_size`` at a time."""
    fmt = detect_format(path, format)
    _check_exists(path)
    with _unreadable(path, fmt):
        if fmt == "parquet":
            yield from _read_parquet(path, batch_size)
            return
        yield from _batched(_read_jsonl(path) if fmt == "jsonl" else _read_csv(path), batch_size)


def read_pinecone(
    path: str | os.PathLike[str], batch_size: int = 1_000, format: str | None = None,
) -> Iterator[list[Record]]:
    """Records of a Pinecone-style dump, ``batch_size`` at a time: one ``{"id", "values",
    "metadata"}`` object per JSON line, or a Parquet file with the columns ``id``, ``values``
    and ``metadata`` (a JSON string, as Pinecone's bulk import reads it). A non-empty
    ``sparse_values`` is refused (semkit stores dense vectors). A string ``metadata["text"]``
    also becomes the record's text (``pinecone_layout``)."""
    fmt = detect_format(path, format)
    if fmt == "csv":
        raise InvalidInput(f"{os.fspath(path)}: a Pinecone dump is JSON Lines ({{\"id\", \"values\", "
                           "\"metadata\"} per line) or Parquet, not CSV")
    _check_exists(path)
    with _unreadable(path, fmt):
        if fmt == "parquet":
            batches = _read_parquet(path, batch_size, vector_column="values", sparse_column="sparse_values")
        else:
            batches = _batched(_read_jsonl(path, vector_key="values", sparse_key="sparse_values"), batch_size)
        for batch in batches:
            for record in batch:
                record.text = record.text or text_of(record.metadata)
            yield batch


def _batched(rows: Iterable[Record], batch_size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in rows:
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _unreadable(path: str | os.PathLike[str], fmt: str) -> Iterator[None]:
    """Foreign read errors (not UTF-8, broken CSV, not Parquet) as one clear ``InvalidInput``."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
                           f"is it really a .{fmt} export?") from None
    except csv.Error as exc:
        raise InvalidInput(f"{path} is not valid CSV ({exc})") from None
    except RecursionError:
        raise InvalidInput(f"{path} holds JSON nested too deeply to read") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow") or (fmt == "parquet" and isinstance(exc, OSError)):
            raise InvalidInput(f"{path} is not a readable Parquet file ({exc})") from None
        raise


# --- Parquet ------------------------------------------------------------------------------


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingDependency("pyarrow", "store", "Parquet export and import") from None
    return pyarrow


def _pyarrow_parquet() -> Any:
    _pyarrow()
    import pyarrow.parquet as pq

    return pq


def _write_parquet(path: Path, spec: CollectionSpec, batches: Iterable[list[Record]]) -> int:
    pa = _pyarrow()
    pq = _pyarrow_parquet()
    header = json.dumps({"format": FORMAT_VERSION, "spec": spec.to_json()})
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("metadata", pa.string()),
            ("vector", pa.list_(pa.float32(), spec.dimensions)),
        ],
        metadata={META_KEY: header.encode()},
    )
    count = 0
    with open(path, "wb") as fh:
        with pq.ParquetWriter(fh, schema) as writer:
            for batch in batches:
                if not batch:
                    continue
                vectors = _stack(batch, spec.dimensions)
                columns = [
                    pa.array([r.id for r in batch], pa.string()),
                    pa.array([r.text for r in batch], pa.string()),
                    pa.array([json.dumps(r.metadata, ensure_ascii=False) for r in batch], pa.string()),
                    pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), spec.dimensions),
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                count += len(batch)
        fh.flush()
        os.fsync(fh.fileno())
    return count


def _read_parquet(path: str | os.PathLike[str], batch_size: int, *, vector_column: str = "vector",
                  sparse_column: str | None = None) -> Iterator[list[Record]]:
    pa = _pyarrow()
    pq = _pyarrow_parquet()
    source = pq.ParquetFile(path)
    names = set(source.schema_arrow.names)
    if "id" not in names:
        raise InvalidInput(f"{os.fspath(path)} has no 'id' column; columns: {sorted(names)}")
    wanted = [c for c in ("id", "text", "metadata", vector_column, sparse_column) if c in names]
    for rb in source.iter_batches(batch_size=batch_size, columns=wanted):
        n = rb.num_rows
        ids = rb.column("id").to_pylist()
        if sparse_column in names:
            for rid, sparse in zip(ids, rb.column(sparse_column).to_pylist(), strict=True):
                check_dense(str(rid), sparse)
        texts = rb.column("text").to_pylist() if "text" in names else [None] * n
        metas = rb.column("metadata").to_pylist() if "metadata" in names else [None] * n
        vectors: list[np.ndarray | None] = [None] * n
        if vector_column in names:
            col = rb.column(vector_column)
            if pa.types.is_fixed_size_list(col.type) and col.null_count == 0:
                flat = col.flatten().to_numpy(zero_copy_only=False)
                vectors = list(np.asarray(flat, dtype=np.float32).reshape(n, col.type.list_size))
            else:
                vectors = [None if v is None else np.asarray(v, dtype=np.float32) for v in col.to_pylist()]
        yield [
            _record(ids[i], texts[i], metas[i], vectors[i], path, i)
            for i in range(n)
        ]


# --- JSON Lines ---------------------------------------------------------------------------


def _write_jsonl(fh: IO[str], spec: CollectionSpec, batches: Iterable[list[Record]]) -> int:
    fh.write(json.dumps({"semkit": {"format": FORMAT_VERSION, "spec": spec.to_json()}}) + "\n")
    count = 0
    for batch in batches:
        for r in batch:
            row = {
                "id": r.id, "text": r.text, "metadata": r.metadata,
                "vector": None if r.vector is None else np.asarray(r.vector, np.float32).tolist(),
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += len(batch)
    return count


def _read_jsonl(path: str | os.PathLike[str], *, vector_key: str = "vector",
                sparse_key: str | None = None) -> Iterator[Record]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = _json_line(line, path, n)
            if n == 1 and _is_header(row):
                continue
            if not isinstance(row, dict):
                raise InvalidInput(f"{os.fspath(path)} line {n}: expected a JSON object per line")
            if sparse_key is not None:
                check_dense(str(row.get("id")), row.get(sparse_key))
            vector = row.get(vector_key)
            yield _record(
                row.get("id"), row.get("text"), row.get("metadata"),
                None if vector is None else np.asarray(vector, dtype=np.float32), path, n,
            )


# --- CSV ----------------------------------------------------------------------------------

_CSV_COLUMNS = ("id", "text", "metadata", "vector")


def _write_csv(fh: IO[str], spec: CollectionSpec, batches: Iterable[list[Record]]) -> int:
    writer = csv.writer(fh)
    writer.writerow(_CSV_COLUMNS)
    count = 0
    for batch in batches:
        for r in batch:
            vector = "" if r.vector is None else json.dumps(np.asarray(r.vector, np.float32).tolist())
            writer.writerow([r.id, r.text or "", json.dumps(r.metadata, ensure_ascii=False), vector])
        count += len(batch)
    return count


def _read_csv(path: str | os.PathLike[str]) -> Iterator[Record]:
    # One vector of 3,072 floats is ~60 kB of text, near the csv module's default field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise InvalidInput(f"{os.fspath(path)} needs a header row with an 'id' column")
        extra = [c for c in reader.fieldnames if c not in _CSV_COLUMNS]
        for n, row in enumerate(reader, start=2):
            meta_text = row.get("metadata") or ""
            try:
                meta = json.loads(meta_text) if meta_text else {}
                vector_text = row.get("vector") or ""
                vector = np.asarray(json.loads(vector_text), dtype=np.float32) if vector_text else None
            except (json.JSONDecodeError, ValueError) as exc:
                raise InvalidInput(
                    f"{os.fspath(path)} line {n}: metadata must be a JSON object and vector a JSON "
                    f"list of numbers ({exc})"
                ) from None
            if isinstance(meta, dict):
                meta.update({c: row[c] for c in extra if row.get(c) not in (None, "")})
            yield _record(row.get("id"), row.get("text") or None, meta, vector, path, n)


# --- shared -------------------------------------------------------------------------------


def _record(rid: Any, text: Any, meta: Any, vector: np.ndarray | None,
            path: str | os.PathLike[str], where: int) -> Record:
    place = f"{os.fspath(path)} (row {where})"
    if not isinstance(rid, str) or not rid:
        raise InvalidInput(f"{place}: id must be a non-empty string, got {rid!r}")
    if text is not None and not isinstance(text, str):
        raise InvalidInput(f"{place}: text must be a string or null, got {type(text).__name__}")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta else {}
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{place}: metadata is not valid JSON ({exc})") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise InvalidInput(f"{place}: metadata must be a JSON object, got {type(meta).__name__}")
    if vector is not None and vector.ndim != 1:
        raise InvalidInput(f"{place}: vector must be a flat list of numbers")
    return Record(id=rid, vector=vector, text=text, metadata=meta)


def _stack(batch: list[Record], dimensions: int) -> np.ndarray:
    missing = [r.id for r in batch if r.vector is None]
    if missing:
        raise InvalidInput(f"record {missing[0]!r} has no vector; export scans with include_vectors=True")
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in batch])
    if vectors.shape[1] != dimensions:
        raise InvalidInput(f"record vectors have {vectors.shape[1]} dimensions, the spec says {dimensions}")
    return vectors


def _is_header(row: Any) -> bool:
    return isinstance(row, dict) and "semkit" in row and "id" not in row


def _spec_from_header(header: Any, path: str | os.PathLike[str]) -> CollectionSpec:
    try:
        if int(header.get("format", 0)) > FORMAT_VERSION:
            raise InvalidInput(
                f"{os.fspath(path)} was written by a newer semkit (format {header['format']}); upgrade semkit"
            )
        return CollectionSpec.from_json(header["spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{os.fspath(path)} has a malformed semkit header ({exc!r})") from None


def _json_line(line: str, path: str | os.PathLike[str], n: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{os.fspath(path)} line {n} is not valid JSON ({exc})") from None


def _check_exists(path: str | os.PathLike[str]) -> None:
    if not Path(path).is_file():
        raise InvalidInput(f"no such file: {os.fspath(path)}")
