"""``QdrantStore``: a ``VectorStore`` on Qdrant, through the official ``qdrant-client``.

Two modes share every code path: a Qdrant server (``qdrant://host:6333``, api key from
``$QDRANT_API_KEY``) and qdrant-client's local mode (``qdrant+local://./path``, pure Python,
what the contract suite runs on here).

Layout in Qdrant:

- one Qdrant collection per semkit collection, same name; the ``CollectionSpec`` JSON (the
  fingerprint) lives in the Qdrant collection's ``metadata``;
- Qdrant point ids must be unsigned ints or UUIDs, so each semkit id becomes a deterministic
  UUIDv5; the payload keeps the original id in ``_id``, the text in ``_text`` and the user's
  metadata under ``meta`` (so user fields can never collide with ours).

Filters: the AST compiles to a Qdrant payload filter that selects a *superset* of the matching
records (Qdrant's matching differs from ``filters.matches`` on booleans vs numbers, string
ordering, null vs missing and arrays), and every answer is then post-filtered in Python with
``filters.matches``, so results are exactly the reference's. Filtered queries over-fetch and
widen until k post-filtered matches are found or the candidates run out.

Payload indexes: on a server, the first filtered read on a field creates a payload index for
it (keyword, bool or float, from the first condition seen; Qdrant keeps one index per field),
so filters stay fast as collections grow. Local mode ignores payload indexes, so none are made.

Keyword search is the plain Python BM25 of ``store/keyword.py`` over the stored texts (the
scoring ``MemoryStore`` uses): correct but O(collection) per query; fine for small collections,
slow for big ones.

Vectors are stored as float32 (``dtype="float32"`` only; ``quantization="int8"`` is Qdrant's own
compression of its index, not a semkit dtype).

Not atomic on Qdrant (documented, not hidden): an upsert larger than ``batch_size`` lands batch
by batch (every row is validated before the first batch is sent), and ``rename_collection``
copies the points into the new name and then deletes the old one.

Using a Qdrant cluster, step by step:

1. ``pip install 'semkit[qdrant]'`` (qdrant-client).
2. Start Qdrant (one node: ``docker run -p 6333:6333 qdrant/qdrant``; a cluster: every node
   with ``QDRANT__CLUSTER__ENABLED=true``, the first with ``--uri http://node1:6335``, the others
   with ``--bootstrap http://node1:6335``). Set ``QDRANT__SERVICE__API_KEY`` on the nodes.
3. ``export QDRANT_API_KEY=...`` where semkit runs (the key is read from the environment, never
   from the URI, and never logged).
4. ``db = semkit.connect("qdrant://node1:6333", shard_number=6, replication_factor=2)`` (add
   ``https=True`` behind TLS; ``on_disk=True`` keeps vectors on disk, ``quantization="int8"``
   adds scalar quantisation). These are defaults for new collections; a collection's
   ``CollectionSpec.options`` entries of the same names override them.
5. Use it like any semkit database; move existing data with ``export`` and
   ``import_collection`` (vectors are copied, nothing is re-embedded).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from ..errors import CollectionExists, CollectionNotFound, ConfigError, InvalidInput, MissingDependency, StoreError
from ..types import Matrix
from ..vectors import as_matrix
from . import base
from .base import CollectionSpec, Neighbors, Record
from .filters import And, Exists, Node, Or, matches
from .keyword import bm25_top_k

_NAMESPACE = uuid.UUID("6f1d8c53-4a57-5d1e-9a0b-5e6d6b697421")  # fixed: ids map the same forever
_SPEC_KEY = "semkit_spec"
_FORBIDDEN = set('<>:"/\\|?*\0')
_DISTANCE = {"cosine": "Cosine", "dot": "Dot", "l2": "Euclid"}
T = TypeVar("T")


def point_id(record_id: str) -> str:
    """The Qdrant point id (a UUIDv5 string) of a semkit record id."""
    return str(uuid.uuid5(_NAMESPACE, record_id))


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError:
        raise MissingDependency("qdrant-client", "qdrant", "the Qdrant store") from None
    return models


class QdrantStore:
    """``VectorStore`` on a Qdrant server (``url``) or qdrant-client's local mode (``local=True``).

    ``url_or_path``: ``http(s)://host:6333``, ``qdrant://host:6333`` (plain HTTP) or, with
    ``local=True``, a folder (``":memory:"`` for a throwaway store). Collection options
    (``shard_number``, ``replication_factor``, ``on_disk``, ``quantization="int8"``) are defaults
    for new collections; a ``CollectionSpec.options`` entry of the same name overrides them.
    """

    def __init__(
        self,
        url_or_path: str,
        *,
        local: bool = False,
        api_key_env: str = "QDRANT_API_KEY",
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool = False,
        quantization: str | None = None,
        batch_size: int = 256,
        retries: int = 3,
        timeout: float = 30.0,
        https: bool | None = None,
    ) -> None:
        _models()
        from qdrant_client import QdrantClient

        base.check_batch_size(batch_size)
        if quantization not in (None, "int8"):
            raise InvalidInput(f"quantization must be None or 'int8' (scalar), got {quantization!r}")
        self._defaults: dict[str, Any] = {
            "shard_number": shard_number, "replication_factor": replication_factor,
            "on_disk": on_disk, "quantization": quantization,
        }
        self._batch_size = batch_size
        self._retries = max(0, retries)
        self._local = local
        self._indexed: set[tuple[str, str]] = set()
        self._search_specs: dict[str, CollectionSpec] = {}
        # Local mode is not thread-safe; the server client is, but one lock keeps both simple.
        self._lock = threading.RLock()
        if local:
            target = os.fspath(url_or_path)
            self._where = f"qdrant local {target}"
            try:
                if target == ":memory:":
                    self._client = QdrantClient(location=":memory:")
                else:
                    os.makedirs(target, exist_ok=True)
                    self._client = QdrantClient(path=target)
            except Exception as exc:
                raise StoreError(
                    f"cannot open Qdrant local store at {target!r}: {exc}; another process may hold it "
                    "(local mode allows one client per folder), or use a Qdrant server"
                ) from None
        else:
            url = _http_url(url_or_path, https)
            self._where = f"qdrant {url}"
            api_key = os.environ.get(api_key_env) or None
            # The client's version probe is a blocking request at construction that only warns when
            # the server is down; the first real call reports an unreachable server as StoreError.
            self._client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout),
                                        check_compatibility=False)

    # --- collections --------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> None:
        _check_spec(spec)
        with self._lock:
            if self._exists(spec.name):
                raise CollectionExists(
                    f"collection {spec.name!r} already exists; open it, or drop it first to recreate it"
                )
            self._forget_indexes(spec.name)
            self._create(spec)

    def get_collection(self, name: str) -> CollectionSpec | None:
        with self._lock:
            if not isinstance(name, str) or not name or not self._exists(name):
                return None
            return self._spec(name)

    def list_collections(self) -> list[CollectionSpec]:
        with self._lock:
            names = [c.name for c in self._call("list collections", self._client.get_collections).collections]
            specs = [self._spec(n) for n in sorted(names)]
            return [s for s in specs if s is not None]

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._require(name)
            self._call("drop collection", self._client.delete_collection, name)
            self._forget_indexes(name)

    def rename_collection(self, old: str, new: str) -> None:
        """Copy ``old``'s points into ``new`` (replacing it), then delete ``old``.

        Not atomic on Qdrant: a crash midway can leave both collections, or ``new`` partly
        filled; re-running the rename finishes it since ``old`` is deleted last.
        """
        with self._lock:
            spec = self._require(old)
            if old == new:
                return
            if self._exists(new):
                self._call("drop collection", self._client.delete_collection, new)
            renamed = CollectionSpec.from_json({**spec.to_json(), "name": new})
            self._create(renamed)
            offset = None
            while True:
                points, offset = self._call(
                    "scroll", self._client.scroll, old, limit=self._batch_size, offset=offset,
                    with_payload=True, with_vectors=True,
                )
                if points:
                    models = _models()
                    batch = [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
                    self._retry("upsert", partial(self._client.upsert, new, points=batch, wait=True))
                if offset is None:
                    break
            self._call("drop collection", self._client.delete_collection, old)
            self._forget_indexes(old)
            self._forget_indexes(new)

    # --- writes -------------------------------------------------------------------------

    def upsert(self, name: str, ids: Sequence[str], vectors: Matrix, texts: Sequence[str | None] | None = None,
               metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        models = _models()
        with self._lock:
            rows = base.prepare_rows(self._require(name), ids, vectors, texts, metadata)
            points = [
                models.PointStruct(id=point_id(i), vector=vector.tolist(),
                                   payload={"_id": i, "_text": text, "meta": meta})
                for i, vector, text, meta in zip(rows.ids, rows.vectors, rows.texts, rows.metadata_dicts(), strict=True)
            ]
            for start in range(0, len(points), self._batch_size):
                batch = points[start:start + self._batch_size]
                self._retry("upsert", partial(self._client.upsert, name, points=batch, wait=True))

    def update_metadata(
        self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]
    ) -> int:
        ids, texts = base.prepare_metadata_update(ids, metadata)
        with self._lock:
            self._require(name)
            existing = {r.id for r in self.get(name, ids)}
            found = 0
            for i, text in zip(ids, texts, strict=True):
                if i in existing:
                    payload = {"meta": json.loads(text)}
                    # set_payload replaces the top-level "meta" key whole, which is what we want.
                    self._retry("set payload", partial(self._client.set_payload, name, payload=payload,
                                                       points=[point_id(i)], wait=True))
                    found += 1
            return found

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        base.check_delete(ids, where)
        models = _models()
        with self._lock:
            self._require(name)
            if ids is not None:
                doomed = [r.id for r in self.get(name, list(dict.fromkeys(ids))) if matches(where, r.metadata)]
            else:
                doomed = [r.id for batch in self.scan(name, include_vectors=False, where=where) for r in batch]
            for start in range(0, len(doomed), self._batch_size):
                chunk = [point_id(i) for i in doomed[start:start + self._batch_size]]
                self._retry("delete", partial(self._client.delete, name,
                                             points_selector=models.PointIdsList(points=chunk), wait=True))
            return len(doomed)

    # --- reads --------------------------------------------------------------------------

    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        with self._lock:
            self._require(name)
            wanted = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
            found: dict[str, Record] = {}
            for start in range(0, len(wanted), self._batch_size):
                chunk = [point_id(i) for i in wanted[start:start + self._batch_size]]
                points = self._call("retrieve", self._client.retrieve, name, ids=chunk,
                                    with_payload=True, with_vectors=include_vectors)
                for p in points:
                    record = _record(p, include_vectors)
                    found[record.id] = record
            # A fresh copy per row asked: the same id asked twice must not share one dict.
            return [copy.deepcopy(found[i]) for i in ids if i in found]

    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        return {r.id: r.text for r in self.get(name, ids)}

    def count(self, name: str, where: Node | None = None) -> int:
        with self._lock:
            self._require(name)
            if where is None:
                return int(self._call("count", self._client.count, name, exact=True).count)
            return sum(len(b) for b in self.scan(name, include_vectors=False, where=where))

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        base.check_batch_size(batch_size)
        with self._lock:
            self._require(name)
        prefilter = compile_filter(where)
        with self._lock:
            self._index_fields(name, prefilter)
        offset = None
        while True:
            with self._lock:
                points, offset = self._call(
                    "scroll", self._client.scroll, name, scroll_filter=prefilter, limit=batch_size,
                    offset=offset, with_payload=True, with_vectors=include_vectors,
                )
            batch = [r for r in (_record(p, include_vectors) for p in points) if matches(where, r.metadata)]
            if batch:
                yield batch
            if offset is None:
                return

    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        answers = self._search(name, vectors, k, where, exact, ef, False)
        return [
            Neighbors([(p.payload or {})["_id"] for p in hits], scores) for hits, scores in answers
        ]

    def query_records(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
    ) -> list[base.ScoredRecords]:
        """``query`` with the hits' records: Qdrant returns the payload with the points, so one
        request per query, no second fetch."""
        answers = self._search(name, vectors, k, where, exact, ef, include_vectors)
        return [
            [(_record(p, include_vectors), s) for p, s in zip(hits, scores.tolist(), strict=True)]
            for hits, scores in answers
        ]

    def _search(self, name: str, vectors: Matrix, k: int, where: Node | None, exact: bool, ef: int | None,
                with_vectors: bool) -> list[tuple[list[Any], np.ndarray]]:
        models = _models()
        base.check_k(k)
        with self._lock:
            # The spec is remembered between searches: asking Qdrant for it (collection_exists +
            # get_collection) would cost two requests more than the query itself.
            spec = self._search_specs.get(name)
            if spec is None:
                spec = self._search_specs[name] = self._require(name)
            queries = as_matrix(vectors, spec.dimensions)
            prefilter = compile_filter(where)
            self._index_fields(name, prefilter)
            # Local mode is always exact and warns about search params; the server honours them.
            params = None if self._local else models.SearchParams(exact=exact, hnsw_ef=ef)
            try:
                return [self._query_one(name, spec, q, k, where, prefilter, params, with_vectors) for q in queries]
            except StoreError:
                # Dropped or recreated by another process? Then say so (CollectionNotFound).
                self._search_specs.pop(name, None)
                self._require(name)
                raise

    def _query_one(self, name: str, spec: CollectionSpec, q: np.ndarray, k: int, where: Node | None,
                   prefilter: Any, params: Any, with_vectors: bool) -> tuple[list[Any], np.ndarray]:
        # Post-filtering may drop candidates Qdrant returned: widen the fetch until k survive
        # or Qdrant has no more candidates (fewer points than asked for).
        limit = k if where is None else max(4 * k, 64)
        while True:
            points = self._call(
                "query", self._client.query_points, name, query=q.tolist(), query_filter=prefilter,
                limit=limit, search_params=params, with_payload=True, with_vectors=with_vectors,
            ).points
            hits = [p for p in points if where is None or matches(where, (p.payload or {}).get("meta") or {})]
            if len(hits) >= k or len(points) < limit:
                break
            limit *= 4
        hits = hits[:k]
        scores = np.array([p.score for p in hits], dtype=np.float32)
        if spec.metric == "l2":
            scores = -scores  # Qdrant answers Euclidean distance; semkit scores are higher-is-better
        return hits, scores

    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        """Okapi BM25 in Python over the stored texts (``store/keyword.py``): a full scan per
        query, so meant for small collections."""
        base.check_k(k)
        docs = (
            (r.id, r.text)
            for batch in self.scan(name, batch_size=self._batch_size * 4, include_vectors=False, where=where)
            for r in batch if r.text is not None
        )
        return bm25_top_k(text, docs, k)

    def close(self) -> None:
        # Closing twice or a dead connection: nothing is left to release.
        with self._lock, contextlib.suppress(Exception):
            self._client.close()

    # --- helpers ------------------------------------------------------------------------

    def _create(self, spec: CollectionSpec) -> None:
        models = _models()
        opts = {key: spec.options.get(key, default) for key, default in self._defaults.items()}
        quantization = None
        if opts["quantization"] == "int8":
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
        elif opts["quantization"] is not None:
            raise InvalidInput(f"quantization must be None or 'int8', got {opts['quantization']!r}")
        self._call(
            "create collection", self._client.create_collection, spec.name,
            vectors_config=models.VectorParams(
                size=spec.dimensions, distance=getattr(models.Distance, _DISTANCE[spec.metric].upper()),
                on_disk=bool(opts["on_disk"]) or None,
            ),
            shard_number=opts["shard_number"], replication_factor=opts["replication_factor"],
            quantization_config=quantization, metadata={_SPEC_KEY: spec.to_json()},
        )

    def _index_fields(self, name: str, prefilter: Any) -> None:
        if self._local or prefilter is None:
            return  # local mode has no payload indexes (it says so with a warning)
        for key, schema in _indexable(prefilter):
            if (name, key) in self._indexed:
                continue
            self._call("create payload index", self._client.create_payload_index, name, key,
                       field_schema=schema, wait=True)
            self._indexed.add((name, key))

    def _forget_indexes(self, name: str) -> None:
        self._indexed = {(n, key) for n, key in self._indexed if n != name}
        self._search_specs.pop(name, None)

    def _exists(self, name: str) -> bool:
        return bool(self._call("check collection", self._client.collection_exists, name))

    def _spec(self, name: str) -> CollectionSpec | None:
        info = self._call("read collection", self._client.get_collection, name)
        data = (getattr(info.config, "metadata", None) or {}).get(_SPEC_KEY)
        if data is None:
            return None  # a Qdrant collection semkit did not create: not ours to show
        return CollectionSpec.from_json({**data, "name": name})

    def _require(self, name: str) -> CollectionSpec:
        spec = self.get_collection(name)
        if spec is None:
            existing = [c.name for c in self.list_collections()]
            raise CollectionNotFound(f"no collection named {name!r}; existing: {existing or 'none'}")
        return spec

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (InvalidInput, StoreError):
            raise
        except Exception as exc:
            raise _translate(exc, what, self._where) from None

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self._retries + 1):
            try:
                return self._call(what, fn)
            except StoreError as exc:
                if not exc.retryable or attempt == self._retries:
                    raise
                time.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")

    def __repr__(self) -> str:
        return f"<QdrantStore {self._where}>"


# --- filters ----------------------------------------------------------------------------


def compile_filter(node: Node | None) -> Any:
    """A Qdrant ``Filter`` selecting a superset of what ``filters.matches`` accepts (or None).

    Only conditions whose Qdrant meaning is at least as wide as the reference's compile; the
    rest ($ne, $nin, $exists, string ordering) compile to "no restriction", and the caller
    post-filters with ``filters.matches``.
    """
    if node is None:
        return None
    condition = _superset(node)
    if condition is None:
        return None
    models = _models()
    return condition if isinstance(condition, models.Filter) else models.Filter(must=[condition])


def _superset(node: Node) -> Any:
    models = _models()
    if isinstance(node, And):
        parts = [c for c in (_superset(n) for n in node.clauses) if c is not None]
        return models.Filter(must=parts) if parts else None
    if isinstance(node, Or):
        parts = [_superset(n) for n in node.clauses]
        return None if any(p is None for p in parts) else models.Filter(should=parts)
    if isinstance(node, Exists):
        return None  # Qdrant's "is empty" lumps null and [] with missing; the reference doesn't
    key = "meta." + ".".join(node.path)
    if node.op == "$eq":
        return _equals(key, node.value)
    if node.op == "$in":
        parts = [_equals(key, v) for v in node.value]
        return None if any(p is None for p in parts) else models.Filter(should=parts)
    if node.op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            return None  # Qdrant has no string ordering
        return models.FieldCondition(key=key, range=models.Range(**{node.op[1:]: float(node.value)}))
    return None  # $ne / $nin match missing fields: no Qdrant condition is a safe superset


def _indexable(node: Any) -> list[tuple[str, Any]]:
    """(field key, payload schema) for every field condition in a compiled filter."""
    models = _models()
    if isinstance(node, models.Filter):
        return [kv for part in (node.must or []) + (node.should or []) for kv in _indexable(part)]
    if isinstance(node, models.FieldCondition):
        if node.range is not None:
            return [(node.key, models.PayloadSchemaType.FLOAT)]
        value = getattr(node.match, "value", None)
        kind = models.PayloadSchemaType.BOOL if isinstance(value, bool) else models.PayloadSchemaType.KEYWORD
        return [(node.key, kind)]
    return []


def _equals(key: str, value: Any) -> Any:
    models = _models()
    if value is None:
        return models.IsNullCondition(is_null=models.PayloadField(key=key))
    if isinstance(value, (bool, str)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # A range, not MatchValue: 3 must also find 3.0, which Qdrant's integer match does not.
    return models.FieldCondition(key=key, range=models.Range(gte=float(value), lte=float(value)))


# --- conversions --------------------------------------------------------------------------


def _record(point: Any, include_vector: bool) -> Record:
    payload = point.payload or {}
    vector = None
    if include_vector and point.vector is not None:
        vector = np.asarray(point.vector, dtype=np.float32)
    return Record(id=payload["_id"], vector=vector, text=payload.get("_text"), metadata=payload.get("meta") or {})


def _http_url(target: str, https: bool | None) -> str:
    parts = urlsplit(target if "://" in target else f"qdrant://{target}")
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return target.rstrip("/")
    if scheme != "qdrant":
        raise InvalidInput(f"expected qdrant://host:6333 or http(s)://host:6333, got {target!r}")
    if not parts.hostname:
        raise InvalidInput(f"no host in {target!r}; use qdrant://host:6333")
    port = parts.port or 6333
    return f"{'https' if https else 'http'}://{parts.hostname}:{port}"


def _translate(exc: Exception, what: str, where: str) -> StoreError:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    retryable = name in (
        "ResponseHandlingException", "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout",
        "PoolTimeout", "RemoteProtocolError", "TimeoutException",
    ) or "503" in text or "429" in text
    hint = "check that the Qdrant server is up and reachable" if retryable else "see the Qdrant message above"
    error = StoreError(f"{where}: {what} failed ({name}: {text}); {hint}")
    error.retryable = retryable
    return error


def _check_spec(spec: CollectionSpec) -> None:
    base.check_spec(spec)
    bad = sorted(set(spec.name) & _FORBIDDEN)
    if bad or len(spec.name) > 255:
        raise InvalidInput(
            f"Qdrant cannot hold the collection name {spec.name!r} (at most 255 characters, none of "
            f"{''.join(sorted(_FORBIDDEN - {chr(0)}))}); pick another name"
        )
    if spec.dtype != "float32":
        raise ConfigError(
            f"the Qdrant store keeps float32 vectors, not {spec.dtype!r}; create the collection with "
            "dtype='float32' (quantization='int8' compresses Qdrant's index), or use the embedded store "
            "for quantised vectors"
        )


