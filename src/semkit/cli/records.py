"""Reading user record files (.jsonl, .csv, .parquet) for ``semkit upsert``, in bounded batches."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput


@dataclass
class RecordBatch:
    ids: list[str] = field(default_factory=list)
    texts: list[str | None] | None = None
    vectors: list[list[float]] | None = None
    metadata: list[dict[str, Any]] = field(default_factory=list)


def content_id(text: str) -> str:
    """A stable id for records that bring none: re-upserting the same file is idempotent."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(
                        f"{path}:{lineno} is not valid JSON ({exc.msg}); fix or remove that line"
                    ) from None
                if not isinstance(row, dict):
                    raise InvalidInput(f"{path}:{lineno} is not a JSON object")
                yield row
    elif suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                yield {k: _csv_value(v) for k, v in row.items() if k is not None}
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            yield from batch.to_pylist()
    else:
        raise InvalidInput(f"unsupported file type {path.suffix!r}: use .jsonl, .csv or .parquet")


def _csv_value(value: str | None) -> Any:
    # CSV has no types; numbers become numbers so range filters ({"year": {"$gte": 2020}}) work.
    if value is None or value == "":
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_batches(path: Path, *, id_field: str = "id", text_field: str = "text",
                 vector_field: str | None = None, batch_size: int = 1000) -> Iterator[RecordBatch]:
    ids: list[str] = []
    texts: list[str | None] = []
    vectors: list[list[float] | None] = []
    metadata: list[dict[str, Any]] = []
    for n, row in enumerate(iter_rows(path), 1):
        text = row.pop(text_field, None)
        vector = row.pop(vector_field, None) if vector_field else None
        if text is None and vector is None:
            wanted = f"'{text_field}'" + (f" or '{vector_field}'" if vector_field else "")
            raise InvalidInput(f"{path} row {n} has no {wanted} field; pick the column with --text-field")
        text = None if text is None else str(text)
        raw_id = row.pop(id_field, None)
        ids.append(str(raw_id) if raw_id not in (None, "") else content_id(text or json.dumps(vector)))
        texts.append(text)
        vectors.append(None if vector is None else list(vector))
        metadata.append(row)
        if len(ids) >= batch_size:
            yield _batch(path, ids, texts, vectors, metadata)
            ids, texts, vectors, metadata = [], [], [], []
    if ids:
        yield _batch(path, ids, texts, vectors, metadata)


def _batch(path: Path, ids: list[str], texts: list[str | None], vectors: list[list[float] | None],
           metadata: list[dict[str, Any]]) -> RecordBatch:
    has_vectors = [v is not None for v in vectors]
    if any(has_vectors) and not all(has_vectors):
        raise InvalidInput(f"{path}: some rows have a vector and some don't; give every row one, or none")
    if not any(has_vectors) and any(t is None for t in texts):
        raise InvalidInput(f"{path}: some rows have no text; every row needs the text column")
    return RecordBatch(
        ids=ids,
        texts=None if all(t is None for t in texts) else texts,  # type: ignore[arg-type]
        vectors=[v for v in vectors if v is not None] if any(has_vectors) else None,
        metadata=metadata,
    )
