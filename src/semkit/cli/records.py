"""Reading user record files (.jsonl, .csv, .parquet) for ``semkit upsert``, in bounded batches.

A file is checked whole before anything is written (``check_file``): a bad row, a duplicate id
or a vector of the wrong length anywhere in it fails the import with nothing written. CSV has
no types, so its cells stay the text they are (``007`` stays ``"007"``); a metadata column is
converted only when the user names its type (``--type year=int``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import InvalidInput

ColumnType = Literal["str", "int", "float", "bool", "json"]
COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class RecordFormat:
    """Which columns of a record file are the id, the text and the vector, and how to type CSV
    metadata columns (every other CSV cell stays a string)."""

    id_field: str = "id"
    text_field: str = "text"
    vector_field: str | None = None
    column_types: Mapping[str, ColumnType] = field(default_factory=dict)


@dataclass
class RecordBatch:
    ids: list[str] = field(default_factory=list)
    texts: list[str | None] | None = None
    vectors: list[list[float]] | None = None
    metadata: list[dict[str, Any]] = field(default_factory=list)
    first_row: int = 1


@dataclass(frozen=True)
class FileSummary:
    """What ``check_file`` found: the number of records and the vector length (if vectors)."""

    records: int
    vector_dimensions: int | None


def parse_column_types(specs: list[str] | None) -> dict[str, ColumnType]:
    """``["year=int", "price=float"]`` → ``{"year": "int", "price": "float"}``."""
    types: dict[str, ColumnType] = {}
    for spec in specs or []:
        column, sep, kind = spec.partition("=")
        if not sep or not column.strip() or kind.strip() not in COLUMN_TYPES:
            raise InvalidInput(
                f"--type {spec!r}: write COLUMN=TYPE with TYPE one of {', '.join(COLUMN_TYPES)}, e.g. --type year=int"
            )
        types[column.strip()] = kind.strip()  # type: ignore[assignment]
    return types


def content_id(text: str) -> str:
    """A stable id for records that bring none: re-upserting the same file is idempotent."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def iter_rows(path: Path, column_types: Mapping[str, ColumnType] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) for every record of ``path``; rows are numbered from 1 (CSV: data rows)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if column_types and suffix != ".csv":
        raise InvalidInput(f"--type applies to CSV files only; {path.suffix} values already carry their types")
    try:
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(path)
        elif suffix == ".csv":
            yield from _csv_rows(path, column_types or {})
        elif suffix == ".parquet":
            yield from _parquet_rows(path)
        else:
            raise InvalidInput(f"unsupported file type {path.suffix!r}: use .jsonl, .csv or .parquet")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8 and try again"
        ) from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                raise InvalidInput(f"{path}:{lineno} is not valid JSON ({why}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise InvalidInput(f"{path}:{lineno} is not a JSON object")
            yield lineno, row


def _csv_rows(path: Path, column_types: Mapping[str, ColumnType]) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames or []
            unknown = sorted(set(column_types) - set(header))
            if unknown:
                raise InvalidInput(f"--type names column(s) {', '.join(unknown)} that {path} does not have; "
                                   f"its columns are {', '.join(header)}")
            for n, row in enumerate(reader, 1):
                if None in row:
                    raise InvalidInput(f"{path} row {n} has more cells than the header has columns")
                typed: dict[str, Any] = {}
                for column, cell in row.items():
                    kind = column_types.get(column, "str")
                    if kind == "str":
                        typed[column] = "" if cell is None else cell
                    elif cell not in (None, ""):  # an empty typed cell means "no value"
                        typed[column] = _typed(cell, kind, f"{path} row {n}, column {column!r}")
                yield n, typed
        except csv.Error as exc:
            raise InvalidInput(f"{path} line {reader.line_num} is not valid CSV ({exc})") from None


def _typed(cell: str, kind: ColumnType, where: str) -> Any:
    text = cell.strip()
    if kind == "int" and _INT.fullmatch(text):
        return int(text)
    if kind == "float" and _FLOAT.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise InvalidInput(f"{where}: {cell!r} is too large for a float; metadata must be finite numbers")
    if kind == "bool" and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    if kind == "json":
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass
    raise InvalidInput(f"{where}: {cell!r} is not a valid {kind}; fix the cell, or leave it empty for no value")


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path} is not a readable Parquet file ({exc})") from None


def _record(path: Path, n: int, row: dict[str, Any], fmt: RecordFormat
            ) -> tuple[str, str | None, list[float] | None, dict[str, Any]]:
    text = row.pop(fmt.text_field, None)
    vector = row.pop(fmt.vector_field, None) if fmt.vector_field else None
    if text is None and vector is None:
        wanted = f"'{fmt.text_field}'" + (f" or '{fmt.vector_field}'" if fmt.vector_field else "")
        raise InvalidInput(f"{path} row {n} has no {wanted} field; pick the column with --text-field")
    if text is not None and not isinstance(text, str):
        text = json.dumps(text) if isinstance(text, (dict, list)) else str(text)
    if vector is not None:
        if isinstance(vector, str):
            try:
                vector = json.loads(vector)
            except json.JSONDecodeError:
                raise InvalidInput(f"{path} row {n}: the vector is not a JSON list of numbers") from None
        if not isinstance(vector, (list, tuple)) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
        ):
            raise InvalidInput(f"{path} row {n}: the vector must be a list of numbers")
        vector = [float(x) for x in vector]
    raw_id = row.pop(fmt.id_field, None)
    record_id = str(raw_id) if raw_id not in (None, "") else content_id(text or json.dumps(vector))
    return record_id, text, vector, row


def check_file(path: Path, fmt: RecordFormat) -> FileSummary:
    """Read the whole file once and fail on the first problem, before anything is written:
    unreadable rows, rows without text or vector, a mix of rows with and without vectors,
    vectors of different lengths, and ids that appear twice."""
    seen: dict[str, int] = {}
    dims: int | None = None
    with_vectors: bool | None = None
    records = 0
    for n, row in iter_rows(path, fmt.column_types):
        record_id, text, vector, _ = _record(path, n, row, fmt)
        if record_id in seen:
            raise InvalidInput(
                f"{path}: id {record_id!r} is on row {seen[record_id]} and again on row {n}; ids must be unique "
                "within a file (nothing was written)"
            )
        seen[record_id] = n
        has_vector = vector is not None
        if with_vectors is None:
            with_vectors = has_vector
        elif has_vector != with_vectors:
            raise InvalidInput(f"{path} row {n}: some rows have a vector and some don't; give every row one, or none")
        if vector is not None:
            if dims is None:
                dims = len(vector)
            elif len(vector) != dims:
                raise InvalidInput(f"{path} row {n}: vector of {len(vector)} numbers, but row 1's has {dims}")
        elif text is None:
            raise InvalidInput(f"{path} row {n} has no text; every row needs the text column")
        records += 1
    return FileSummary(records, dims)


def read_batches(path: Path, fmt: RecordFormat | None = None, *, batch_size: int = 1000) -> Iterator[RecordBatch]:
    """The file's records in batches of ``batch_size`` (run ``check_file`` first)."""
    fmt = fmt or RecordFormat()
    batch = RecordBatch(texts=[], vectors=[])
    for n, row in iter_rows(path, fmt.column_types):
        record_id, text, vector, metadata = _record(path, n, row, fmt)
        if not batch.ids:
            batch.first_row = n
        batch.ids.append(record_id)
        batch.texts.append(text)  # type: ignore[union-attr]
        if vector is not None:
            batch.vectors.append(vector)  # type: ignore[union-attr]
        batch.metadata.append(metadata)
        if len(batch.ids) >= batch_size:
            yield _finished(batch)
            batch = RecordBatch(texts=[], vectors=[])
    if batch.ids:
        yield _finished(batch)


def _finished(batch: RecordBatch) -> RecordBatch:
    if not batch.vectors:
        batch.vectors = None
    if batch.texts is not None and all(t is None for t in batch.texts):
        batch.texts = None
    return batch
