"""The ``VectorStore`` contract: small and backend-neutral.

A store keeps named collections of records (id, vector, optional text, metadata JSON) and
answers k-nearest-neighbour queries. It knows nothing about models: the ``Collection`` layer
(``semkit.collection``) embeds texts and hands the store finished vectors. Every backend passes
the same contract test suite (``tests/contract``), with ``MemoryStore`` as the reference.

Scores are "higher is better" for every metric: cosine similarity, dot product, and *negated*
Euclidean distance for L2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInput
from ..types import METRICS, STORAGE_DTYPES, Matrix, Metric, StorageDtype
from ..vectors import as_matrix, normalize
from .filters import LARGEST_INT, Node, digits, valid_unicode


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection is: its name and the fingerprint of the vectors it holds.

    ``embedder`` is the embedder id (``local:all-MiniLM-L6-v2@384``) or ``None`` for a
    bring-your-own-vectors collection. Secrets never go here.
    """

    name: str
    dimensions: int
    metric: Metric = "cosine"
    embedder: str | None = None
    dtype: StorageDtype = "float32"
    normalized: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "dimensions": self.dimensions,
            "metric": self.metric,
            "dtype": self.dtype,
            "normalized": self.normalized,
        }

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.fingerprint(), "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CollectionSpec:
        return cls(
            name=data["name"], dimensions=int(data["dimensions"]), metric=data["metric"],
            embedder=data.get("embedder"), dtype=data.get("dtype", "float32"),
            normalized=bool(data.get("normalized", True)), options=dict(data.get("options") or {}),
        )


@dataclass
class Record:
    id: str
    vector: np.ndarray | None = None
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbors:
    """k-NN answer for one query: ids and scores, best first."""

    ids: list[str]
    scores: np.ndarray


@runtime_checkable
class VectorStore(Protocol):
    """Where vectors live. Methods take the collection name; ids are strings."""

    def create_collection(self, spec: CollectionSpec) -> None:
        """Create it; raise ``StoreError`` if a collection of that name exists."""

    def get_collection(self, name: str) -> CollectionSpec | None: ...

    def list_collections(self) -> list[CollectionSpec]: ...

    def drop_collection(self, name: str) -> None:
        """Remove it and all its records; ``CollectionNotFound`` if absent."""

    def rename_collection(self, old: str, new: str) -> None:
        """Atomically replace ``new`` (if it exists) with ``old``: the re-embed switch."""

    def upsert(self, name: str, ids: Sequence[str], vectors: Matrix, texts: Sequence[str | None] | None = None,
               metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Insert or replace whole records. Atomic per call: all rows land or none. Backends
        validate with ``prepare_rows``, so bad input fails alike everywhere."""

    def update_metadata(self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> int:
        """Replace the metadata of existing records; return how many existed."""

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        """Delete by ids, by filter, or both (intersection); return how many were removed."""

    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        """Records for the ids that exist, in the order asked."""

    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        """Stored text for each existing id (lets the collection skip unchanged texts)."""

    def count(self, name: str, where: Node | None = None) -> int: ...

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        """Every record, in batches, with bounded memory."""

    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        """Top-k per query row. With a filter, the result is the exact top-k among matches."""

    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        """BM25-style full-text search with the backend's own engine."""

    def close(self) -> None: ...


ScoredRecords = list[tuple[Record, float]]
"""One query's answer with each hit's record: ``(record, score)``, best first."""


@runtime_checkable
class RecordSearch(Protocol):
    """A store that answers a kNN query *with* the hits' records in one step (one lock, one
    fetch, one round trip), instead of ``query`` followed by ``get``."""

    def query_records(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
    ) -> list[ScoredRecords]: ...


def query_records(
    store: VectorStore, name: str, vectors: Matrix, k: int, where: Node | None = None,
    exact: bool = False, ef: int | None = None, include_vectors: bool = False,
) -> list[ScoredRecords]:
    """Top-k per query row with each hit's record; records deleted between the query and the
    fetch are left out. Uses the store's own ``query_records`` (``RecordSearch``) when it has one."""
    native = getattr(store, "query_records", None)  # isinstance on a Protocol costs ~10 us a call
    if native is not None:
        return native(name, vectors, k, where, exact, ef, include_vectors)  # type: ignore[no-any-return]
    answers = store.query(name, vectors, k, where=where, exact=exact, ef=ef)
    return attach_records(answers, lambda ids: store.get(name, ids, include_vectors=include_vectors))


def attach_records(answers: list[Neighbors], fetch: Callable[[list[str]], list[Record]]) -> list[ScoredRecords]:
    """Pair every answer's ids with their records, fetched once for all answers."""
    wanted = list(dict.fromkeys(i for answer in answers for i in answer.ids))
    records = {r.id: r for r in fetch(wanted)} if wanted else {}
    return [
        [(records[i], s) for i, s in zip(answer.ids, answer.scores.tolist(), strict=True) if i in records]
        for answer in answers
    ]


def check_spec(spec: CollectionSpec) -> None:
    """What every backend requires of a new collection (backends add their own limits)."""
    if not isinstance(spec.name, str) or not spec.name:
        raise InvalidInput("a collection needs a non-empty name")
    if isinstance(spec.dimensions, bool) or not isinstance(spec.dimensions, int) or spec.dimensions < 1:
        raise InvalidInput(f"dimensions must be a positive integer, got {spec.dimensions!r}")
    if spec.metric not in METRICS:
        raise InvalidInput(f"unknown metric {spec.metric!r}; use one of {', '.join(METRICS)}")
    if spec.dtype not in STORAGE_DTYPES:
        raise InvalidInput(f"unknown dtype {spec.dtype!r}; use one of {', '.join(STORAGE_DTYPES)}")


# --- arguments every backend checks alike ------------------------------------------------------


def check_k(k: Any) -> int:
    """The ``k`` of a query: a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")


def check_delete(ids: Sequence[str] | None, where: Node | None) -> None:
    """A delete names what to remove: ids, a filter, or both."""
    if ids is None and where is None:
        raise InvalidInput("delete needs ids=, where= or both; to remove every record drop the collection")


# --- rows: the validation every backend's writes share ----------------------------------------

MAX_METADATA_DEPTH = 100
"""Lists and dicts nest at most this deep in metadata (SQLite's JSON functions stop at 1,000,
and deeper data would only exhaust Python's stack while being checked)."""

StringCheck = Callable[[str, str], None]
"""A backend's own rule for the strings it stores, called as ``check(value, where)`` for every
id, text, metadata key and metadata string (``where`` names the place for the message); it
raises ``InvalidInput``. PostgreSQL's refusal of NUL characters is one."""


@dataclass(frozen=True)
class Rows:
    """One write's records, validated: what a backend stores, and all it needs to check."""

    ids: list[str]
    vectors: Matrix
    """Float32, one row per id; unit length in a cosine collection."""
    texts: list[str | None]
    metadata: list[str]
    """Each record's metadata as a JSON object text (``"{}"`` when none was given)."""

    def __len__(self) -> int:
        return len(self.ids)

    def metadata_dicts(self) -> list[dict[str, Any]]:
        """The metadata as fresh dicts, for backends that store objects rather than JSON text."""
        return [json.loads(m) for m in self.metadata]


def prepare_rows(
    spec: CollectionSpec, ids: Sequence[str], vectors: Any, texts: Sequence[str | None] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None, *, check_string: StringCheck | None = None,
) -> Rows:
    """Validate an upsert into ``spec``'s collection before anything is written: all rows land
    or none, and the same bad input fails with the same error on every backend.

    Checks, in order: the vectors (numeric, finite, ``spec.dimensions`` long); one vector, and
    one text and metadata dict when given, per id; ids non-empty, unique and valid Unicode;
    texts strings or ``None``; metadata JSON objects (``metadata_json``); then ``check_string``
    on every string. No ids and no vectors is an empty, valid write.
    """
    ids = list(ids)
    text_list = None if texts is None else list(texts)
    meta_list = None if metadata is None else list(metadata)
    if not ids and _no_vectors(vectors):
        matrix = np.zeros((0, spec.dimensions), dtype=np.float32)
    else:
        matrix = as_matrix(vectors, spec.dimensions)
    if len(matrix) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(matrix)} vectors; pass one vector per id")
    if text_list is not None and len(text_list) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(text_list)} texts; pass one text (or None) per id")
    if meta_list is not None and len(meta_list) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(meta_list)} metadata dicts; pass one per id")
    ids = check_ids(ids, check_string)
    stored_texts: list[str | None] = [None] * len(ids) if text_list is None else [
        _check_text(text, record_id, check_string) for record_id, text in zip(ids, text_list, strict=True)
    ]
    stored_metadata = ["{}"] * len(ids) if meta_list is None else [
        metadata_json(meta, record_id, check_string) for record_id, meta in zip(ids, meta_list, strict=True)
    ]
    if spec.metric == "cosine":
        matrix = normalize(matrix)
    return Rows(ids, matrix, stored_texts, stored_metadata)


def prepare_metadata_update(
    ids: Sequence[str], metadata: Sequence[Mapping[str, Any]], *, check_string: StringCheck | None = None,
) -> tuple[list[str], list[str]]:
    """The ids and metadata JSON texts of an ``update_metadata`` call, checked like an upsert's."""
    ids, meta_list = list(ids), list(metadata)
    if len(meta_list) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(meta_list)} metadata dicts; pass one per id")
    ids = check_ids(ids, check_string)
    return ids, [metadata_json(meta, i, check_string) for i, meta in zip(ids, meta_list, strict=True)]


def check_ids(ids: Sequence[Any], check_string: StringCheck | None = None) -> list[str]:
    """Ids as plain ``str`` (NumPy and pandas string scalars confuse database drivers): each
    non-empty, valid Unicode and given once."""
    seen: set[str] = set()
    for position, record_id in enumerate(ids):
        if not isinstance(record_id, str) or not record_id:
            raise InvalidInput(f"ids must be non-empty strings; the id at position {position} is {record_id!r}")
        if not valid_unicode(record_id):
            raise InvalidInput(f"the id at position {position} is not valid Unicode (it holds a lone surrogate); "
                               "fix the text it was made from")
        if record_id in seen:
            raise InvalidInput(f"id {record_id!r} appears more than once in one write; keep one row per id")
        seen.add(record_id)
        if check_string is not None:
            check_string(record_id, f"the id at position {position}")
    return [str(i) for i in ids]


def metadata_json(meta: Any, record_id: str, check_string: StringCheck | None = None) -> str:
    """One record's metadata as a JSON object text, or ``InvalidInput`` saying what is wrong.

    Metadata is a dict with string keys whose values are JSON: strings, finite numbers,
    booleans, null, lists and dicts, nested at most ``MAX_METADATA_DEPTH`` deep (tuples count as
    lists, NumPy scalars as the numbers they hold).
    """
    where = f"metadata for id {record_id!r}"
    if not isinstance(meta, Mapping):
        raise InvalidInput(f"{where} is a {type(meta).__name__}; pass a dict")
    problem = _json_problem(meta, "metadata", 1, where, check_string)
    if problem:
        raise InvalidInput(f"{where}: {problem}; metadata must be JSON data (strings, finite numbers, booleans, "
                           "null, lists and dicts with string keys)")
    text = json.dumps(dict(meta), ensure_ascii=False, allow_nan=False, default=_plain_number)
    if not valid_unicode(text):
        raise InvalidInput(f"{where} is not valid Unicode (a string in it holds a lone surrogate); "
                           "fix the text it was made from")
    return text


def _check_text(text: Any, record_id: str, check_string: StringCheck | None) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"the text for id {record_id!r} is a {type(text).__name__}; pass a string or None")
    if not valid_unicode(text):
        raise InvalidInput(f"the text for id {record_id!r} is not valid Unicode (it holds a lone surrogate); "
                           "fix the text it was made from")
    if check_string is not None:
        check_string(text, f"the text for id {record_id!r}")
    return str(text)


def _json_problem(value: Any, path: str, depth: int, where: str, check_string: StringCheck | None) -> str | None:
    """What makes ``value`` (at ``path``) not JSON data, or None; calls ``check_string`` on strings."""
    if isinstance(value, str):
        if check_string is not None:
            check_string(value, f"{where} ({path})")
        return None
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        if abs(int(value)) <= LARGEST_INT:
            return None
        return f"{path} is an integer of about {digits(int(value))} digits; numbers must fit a double (about 1.8e308)"
    if isinstance(value, (float, np.floating)):
        return None if math.isfinite(value) else f"{path} is {value}, which JSON cannot hold"
    if not isinstance(value, (Mapping, list, tuple)):
        return f"{path} is a {type(value).__name__}, not a JSON value"
    if depth > MAX_METADATA_DEPTH:
        return f"{path} nests more than {MAX_METADATA_DEPTH} lists or dicts deep"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the key {key!r} in {path} is not a string"
            if check_string is not None:
                check_string(key, f"{where} (a key in {path})")
            problem = _json_problem(item, f"{path}.{key}", depth + 1, where, check_string)
            if problem:
                return problem
        return None
    for n, item in enumerate(value):
        problem = _json_problem(item, f"{path}[{n}]", depth + 1, where, check_string)
        if problem:
            return problem
    return None


def _plain_number(value: Any) -> Any:
    """``json.dumps`` fallback: NumPy scalars (pandas columns) are the plain values they hold,
    and any mapping (already checked by ``_json_problem``) is a dict."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _no_vectors(vectors: Any) -> bool:
    if isinstance(vectors, np.ndarray):
        return vectors.size == 0
    try:
        return len(vectors) == 0
    except TypeError:
        return False
