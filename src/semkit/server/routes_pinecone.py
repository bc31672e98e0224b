"""Pinecone-compatible routes: every collection is also a Pinecone index host.

    from pinecone import Pinecone
    index = Pinecone(api_key="sk-semkit-...").Index(host="http://127.0.0.1:8000/pinecone/docs")
    index.upsert(vectors=[{"id": "a", "values": [...], "metadata": {"genre": "news"}}])
    index.query(vector=[...], top_k=5, filter={"genre": {"$eq": "news"}}, include_metadata=True)

The host ``/pinecone/<collection>`` serves the data-plane routes the official SDK calls
(``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/fetch``, ``POST /vectors/delete``,
``POST /vectors/update``, ``POST|GET /describe_index_stats``) with its camelCase bodies and its
response shapes. The key goes in Pinecone's ``Api-Key`` header (``Authorization: Bearer`` works
too), with the same scopes as everywhere.

- The index is the collection: it must exist (create it with ``POST /v1/collections``,
  ``semkit upsert`` or ``semkit import``), as a Pinecone index is created before it is written to.
- Namespaces are collections: the default namespace (``""`` or ``"__default__"``) is the
  collection itself, namespace ``ns`` (letters, digits, ``_ . - @``) is the collection
  ``<collection>::ns``, created with the
  index's spec (model, dimensions, metric) on its first upsert, as Pinecone creates namespaces.
  A query or fetch in a namespace that does not exist answers empty, as Pinecone does. A key
  may use a namespace when it may use that collection (``semkit keys create --collections
  docs,docs::tenant-a``), so a tenant's key can be confined to its namespace.
- Filters are semkit's filter language, which has Pinecone's operators (``$eq $ne $gt $gte $lt
  $lte $in $nin $exists $and $or``); anything else is a 400 naming the operators it knows.
- Records: ``pinecone_layout`` (``metadata["text"]`` is the record's text too; scores as
  Pinecone gives them, the squared distance for ``euclidean``).
- Errors in Pinecone's data-plane shape ``{"code", "message", "details"}``, 400 for invalid
  arguments, so the SDK raises its own classes (``UnauthorizedError``, ``NotFoundError``...).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from .. import errors
from ..collection import Collection, Hit
from ..store.pinecone_layout import (
    TEXT_FIELD,
    check_dense,
    pinecone_metadata,
    pinecone_metric,
    pinecone_score,
    text_of,
)
from .auth import Principal
from .dependencies import Caller, authorize, state_of
from .pinecone_schemas import DeleteBody, QueryBody, StatsBody, UpdateBody, UpsertBody
from .responses import ApiError
from .state import ServerState

PREFIX = "/pinecone"
NAMESPACE_SEPARATOR = "::"
"""Namespace ``ns`` of index ``docs`` is the collection ``docs::ns``."""
DEFAULT_NAMESPACES = ("", "__default__")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.@-]+")
_MAX_NAME = 200
"""The longest collection name the REST routes address."""
_BATCH = 1_000

_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 429: 8, 500: 13, 501: 12, 502: 14, 503: 14}
"""HTTP status -> the gRPC status code Pinecone puts in its error bodies (2: unknown)."""


class PineconeRoute(APIRoute):
    """A route whose errors answer in Pinecone's shape.

    The app's own error handlers still decide the status, message and headers (one mapping,
    with redaction and logging, for every route); this re-shapes their body and answers 400
    where semkit answers 422, as Pinecone answers every invalid argument.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return await _pinecone_error(request, exc)

        return route


async def _pinecone_error(request: Request, exc: Exception) -> Response:
    handlers = request.app.exception_handlers
    handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
    if handler is None:
        raise exc
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    message = json.loads(answer.body)["error"]["message"]
    status = 400 if answer.status_code == 422 else answer.status_code
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return JSONResponse({"code": _GRPC_CODES.get(status, 2), "message": message, "details": []},
                        status_code=status, headers=headers)


router = APIRouter(prefix=PREFIX + "/{index}", tags=["pinecone"], route_class=PineconeRoute)

IndexPath = Annotated[str, Path(min_length=1, max_length=200, description="The collection this index host serves",
                                examples=["docs"])]


def _addressed(request: Request, principal: Principal, index: str, namespace: str, *,
               write: bool) -> tuple[ServerState, str]:
    """The server state and the collection a request addresses, once the key may use it."""
    name = collection_name(index, namespace)
    authorize(principal, name, write=write)
    return state_of(request), name


def collection_name(index: str, namespace: str) -> str:
    """The collection that holds namespace ``namespace`` of index ``index``."""
    if namespace in DEFAULT_NAMESPACES:
        return index
    if not _NAMESPACE.fullmatch(namespace):
        raise errors.InvalidInput(f"namespace {namespace[:80]!r} is not a valid name here: use letters, digits, "
                                  "'_', '.', '-' and '@' (it names the collection <index>::<namespace>)")
    name = f"{index}{NAMESPACE_SEPARATOR}{namespace}"
    if len(name) > _MAX_NAME:
        raise errors.InvalidInput(f"index and namespace names together are too long ({len(name)} characters "
                                  f"with the '::'; at most {_MAX_NAME}): use a shorter namespace")
    return name


@router.post("/vectors/upsert", summary="Pinecone: insert or overwrite vectors")
async def upsert(index: IndexPath, body: UpsertBody, request: Request, principal: Caller) -> Any:
    state, name = _addressed(request, principal, index, body.namespace, write=True)
    state.limits.check_upsert_records(len(body.vectors))
    for vector in body.vectors:
        check_dense(vector.id, vector.sparse_values)

    def work() -> dict[str, Any]:
        col = _namespace(state, index, name, create=True)
        assert col is not None
        for vector in body.vectors:
            if len(vector.values) != col.dimensions:
                raise errors.DimensionMismatch(col.dimensions, len(vector.values), f"vector {vector.id!r}")
        # An upsert overwrites the whole record, as in Pinecone: metadata and text included.
        col.upsert(ids=[v.id for v in body.vectors], texts=[text_of(v.metadata) for v in body.vectors],
                   vectors=np.asarray([v.values for v in body.vectors], dtype=np.float32),
                   metadata=[v.metadata or {} for v in body.vectors])
        return {"upsertedCount": len(body.vectors)}

    return await state.run(work)


@router.post("/query", summary="Pinecone: the nearest vectors to a vector or to a stored vector's id")
async def query(index: IndexPath, body: QueryBody, request: Request, principal: Caller) -> Any:
    state, name = _addressed(request, principal, index, body.namespace, write=False)
    state.limits.check_k(body.top_k)
    if body.sparse_vector:
        raise errors.InvalidInput("sparse query vectors are not supported: semkit stores dense vectors; "
                                  "query with vector= (or use semkit's hybrid search at /v1/collections)")
    if (body.vector is None) == (body.id is None):
        raise errors.InvalidInput("give exactly one of vector and id")

    def work() -> dict[str, Any]:
        col = _namespace(state, index, name, create=False)
        vector: Any = body.vector
        if col is not None and body.id is not None:
            found = col.get([body.id], include_vectors=True)
            vector = found[0].vector if found else None
        hits: list[Hit] = []
        if col is not None and vector is not None:
            hits = col.search(np.asarray(vector, dtype=np.float32), k=body.top_k, where=body.filter,
                              include_vectors=body.include_values)
        matches = []
        for hit in hits:
            match: dict[str, Any] = {"id": hit.id, "score": pinecone_score(hit.score, col.metric),  # type: ignore[union-attr]
                                     "values": hit.vector.tolist() if body.include_values and hit.vector is not None
                                     else []}
            if body.include_metadata:
                match["metadata"] = pinecone_metadata(hit.text, hit.metadata)
            matches.append(match)
        return {"matches": matches, "namespace": body.namespace, "usage": {"readUnits": 1}}

    return await state.run(work)


@router.get("/vectors/fetch", summary="Pinecone: vectors by id")
async def fetch(index: IndexPath, request: Request, principal: Caller,
                ids: Annotated[list[str], Query(min_length=1, description="Ids to fetch (repeat the parameter)")],
                namespace: Annotated[str, Query(max_length=512)] = "") -> Any:
    state, name = _addressed(request, principal, index, namespace, write=False)
    state.limits.check_ids(len(ids))

    def work() -> dict[str, Any]:
        col = _namespace(state, index, name, create=False)
        records = col.get(ids, include_vectors=True) if col is not None else []
        vectors = {r.id: {"id": r.id, "values": r.vector.tolist() if r.vector is not None else [],
                          "metadata": pinecone_metadata(r.text, r.metadata)} for r in records}
        return {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    return await state.run(work)


@router.post("/vectors/delete", summary="Pinecone: delete by ids, by filter, or the whole namespace")
async def delete(index: IndexPath, body: DeleteBody, request: Request, principal: Caller) -> Any:
    state, name = _addressed(request, principal, index, body.namespace, write=True)
    if body.delete_all and (body.ids or body.filter):
        raise errors.InvalidInput("deleteAll deletes the whole namespace: send it without ids or filter")
    if not body.delete_all and not body.ids and not body.filter:
        raise errors.InvalidInput("give ids, a filter, or deleteAll: true")
    if body.ids:
        state.limits.check_ids(len(body.ids))

    def work() -> dict[str, Any]:
        col = _namespace(state, index, name, create=False)
        if col is None:
            return {}
        if not body.delete_all:
            col.delete(ids=body.ids or None, where=body.filter or None)
        elif name != index:
            state.db.drop(name)  # an emptied namespace is gone, as in Pinecone
            state.forget(name)
        else:
            _delete_every_record(col)  # the default namespace is the index: it stays
        return {}

    return await state.run(work)


@router.post("/vectors/update", summary="Pinecone: change one vector's values or metadata, or the metadata of "
                                        "every vector a filter matches")
async def update(index: IndexPath, body: UpdateBody, request: Request, principal: Caller) -> Any:
    state, name = _addressed(request, principal, index, body.namespace, write=True)
    if (body.id is None) == (body.filter is None):
        raise errors.InvalidInput("give exactly one of id (one vector) and filter (every vector it matches)")
    check_dense(body.id or "", body.sparse_values)
    if body.id is None and body.values is not None:
        raise errors.InvalidInput("values update one vector: send them with id, not with a filter")
    if body.values is None and body.set_metadata is None:
        raise errors.InvalidInput("nothing to update: give values and/or setMetadata")

    def work() -> dict[str, Any]:
        col = _namespace(state, index, name, create=False)
        if body.id is not None:
            if col is None or not col.get([body.id]):
                raise ApiError(404, f"no vector {body.id!r} in namespace {body.namespace!r} of {index!r}; "
                                    "upsert it first", "record_not_found")
            _update(col, [body.id], body.values, body.set_metadata or {})
            return {"matchedRecords": 1}
        if col is None:
            return {"matchedRecords": 0}
        matched = [r.id for batch in col.scan(_BATCH, where=body.filter) for r in batch]
        if not body.dry_run:
            for start in range(0, len(matched), _BATCH):
                _update(col, matched[start:start + _BATCH], None, body.set_metadata or {})
        return {"matchedRecords": len(matched)}

    return await state.run(work)


@router.post("/describe_index_stats", summary="Pinecone: vectors per namespace, dimension and metric")
async def describe_index_stats(index: IndexPath, request: Request, principal: Caller,
                               body: StatsBody | None = None) -> Any:
    return await _stats(index, request, principal, body.filter if body is not None else None)


@router.get("/describe_index_stats", summary="Pinecone: vectors per namespace (the older GET form)")
async def describe_index_stats_get(index: IndexPath, request: Request, principal: Caller) -> Any:
    return await _stats(index, request, principal, None)


async def _stats(index: str, request: Request, principal: Principal, where: dict[str, Any] | None) -> Any:
    state = state_of(request)
    authorize(principal, index, write=False)

    def work() -> dict[str, Any]:
        base = _index(state, index)
        prefix = index + NAMESPACE_SEPARATOR
        namespaces: dict[str, dict[str, int]] = {}
        for name in [index, *(n for n in state.db.collections() if n.startswith(prefix))]:
            if not principal.may_use(name):
                continue
            count = state.collection(name).count(where)
            if count:  # Pinecone lists the namespaces that hold vectors
                namespaces[name[len(prefix):] if name != index else ""] = {"vectorCount": count}
        return {"namespaces": namespaces, "dimension": base.dimensions, "indexFullness": 0.0,
                "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
                "metric": pinecone_metric(base.metric), "vectorType": "dense"}

    return await state.run(work)


# --- the collections behind an index host -------------------------------------------------------


def _index(state: ServerState, index: str) -> Collection:
    try:
        return state.collection(index)
    except errors.CollectionNotFound:
        raise errors.CollectionNotFound(
            f"no index {index!r}: the host {PREFIX}/{index} serves the collection {index!r}, which does not "
            "exist; create it first: POST /v1/collections {\"name\": ..., \"model\": null, \"dimensions\": ..., "
            "\"metric\": ...} (or a model instead of dimensions), semkit upsert or semkit import") from None


def _namespace(state: ServerState, index: str, name: str, *, create: bool) -> Collection | None:
    """The collection of a namespace; a missing one is created with the index's spec
    (``create``) or is ``None``. A missing index is a 404 either way."""
    base = _index(state, index)
    if name == index:
        return base
    if name in state.db:
        return state.collection(name)
    if not create:
        return None
    spec = base.spec
    model = base.model if spec.embedder is not None else None
    state.db.collection(name, model=model, metric=spec.metric, dtype=spec.dtype,
                        dimensions=None if model is not None else spec.dimensions)
    state.forget(name)
    return state.collection(name)


def _update(col: Collection, ids: list[str], values: list[float] | None, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into the metadata of ``ids`` (and set one vector's ``values``). The
    stored vectors are written back with them, so a changed ``text`` field never re-embeds."""
    records = col.get(ids, include_vectors=True)
    if not records:
        return
    metadata = [{**r.metadata, **changes} for r in records]
    vectors = np.stack([np.asarray(values if values is not None else r.vector, dtype=np.float32) for r in records])
    if vectors.shape[1] != col.dimensions:
        raise errors.DimensionMismatch(col.dimensions, vectors.shape[1], f"vector {ids[0]!r}")
    texts = [text_of(m) if TEXT_FIELD in changes else r.text for r, m in zip(records, metadata, strict=True)]
    col.upsert(ids=[r.id for r in records], texts=texts, vectors=vectors, metadata=metadata)


def _delete_every_record(col: Collection) -> None:
    # A fresh scan each round: deleting while paging through one scan could skip records.
    while True:
        batch = next(iter(col.scan(_BATCH)), [])
        if not batch:
            return
        col.delete(ids=[r.id for r in batch])
