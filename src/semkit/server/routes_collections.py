"""Collections over HTTP: list, create, drop, upsert, get, delete, count, search.

Each route checks the caller's key, then calls the library (``Database`` / ``Collection`` /
``semkit.apps.search``) in a worker thread. Large upserts can run as background jobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import pathlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from .. import apps, errors
from .auth import Principal
from .dependencies import Caller, NamePath, accepted, authorize, state_of
from .encoding import json_bytes
from .jobs import Progress
from .models import BatchedEmbedder
from .responses import ApiError
from .schemas import (
    CollectionInfo,
    CountRequest,
    CreateCollection,
    DeleteRequest,
    GetRequest,
    IndexRequest,
    JobOut,
    RecordOut,
    SearchRequest,
    SearchResponse,
    UpsertRequest,
    UpsertResponse,
)
from .state import ServerState

router = APIRouter(prefix="/v1/collections", tags=["collections"])


def _info(state: ServerState, name: str) -> dict[str, Any]:
    info = state.collection(name).info()
    return {k: info.get(k) for k in ("name", "dimensions", "metric", "embedder", "dtype", "count")}


@router.get("", response_model=list[CollectionInfo], summary="Collections this key may use")
async def list_collections(request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> list[dict[str, Any]]:
        return [_info(state, n) for n in state.db.collections() if principal.may_use(n)]

    return await state.run(work)


@router.post("", response_model=CollectionInfo, status_code=201, summary="Create a collection",
             responses={409: {"description": "A collection of that name exists"}})
async def create_collection(body: CreateCollection, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, body.name, write=True)

    def work() -> dict[str, Any]:
        if body.name in state.db:
            raise ApiError(409, f"collection {body.name!r} exists already; DELETE it first to re-create it",
                           "collection_exists")
        model: Any = None
        if body.model is not None:
            model = state.model(body.model)
        elif body.dimensions is None:
            raise errors.InvalidInput("a collection without a model needs dimensions (the length of your vectors)")
        state.db.collection(body.name, model=model, metric=body.metric, dtype=body.dtype,
                            dimensions=body.dimensions)
        state.forget(body.name)
        return _info(state, body.name)

    return await state.run(work)


@router.get("/{name}", response_model=CollectionInfo, summary="A collection's spec and size")
async def get_collection(name: NamePath, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)
    return await state.run(_info, state, name)


@router.delete("/{name}", summary="Drop a collection and all its records")
async def drop_collection(name: NamePath, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=True)

    def work() -> dict[str, Any]:
        state.collection(name)  # 404 with the usual message when absent
        state.db.drop(name)
        state.forget(name)
        return {"dropped": name}

    return await state.run(work)


@router.post("/{name}/upsert", response_model=UpsertResponse | JobOut,
             summary="Insert or update records (texts are embedded; unchanged texts are not)")
async def upsert(name: NamePath, body: UpsertRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=True)
    state.limits.check_upsert_records(len(body.records))
    recs = body.records
    with_vec = [r.vector is not None for r in recs]
    if any(with_vec) and not all(with_vec):
        raise errors.InvalidInput("either every record in one upsert has a vector or none has; "
                                  "send records with vectors in a separate request")
    ids = [r.id for r in recs]
    texts = [r.text for r in recs] if any(r.text is not None for r in recs) else None
    vectors = [r.vector for r in recs] if all(with_vec) else None
    metadata = [r.metadata for r in recs] if any(r.metadata is not None for r in recs) else None

    def work(progress: Progress | None = None) -> dict[str, Any]:
        col = state.collection(name)
        if progress is not None:
            progress.update(0, len(ids))
        result = col.upsert(ids, texts=texts, vectors=vectors, metadata=metadata,
                            batch_size=256 if progress is not None else 1000,
                            progress=progress.update if progress is not None else None)
        return {"count": result.count, "embedded": result.embedded, "unchanged": result.unchanged}

    if body.background:
        return accepted(await state.start_job("upsert", principal.id, name, work))
    return await state.run(work)


@router.post("/{name}/index", response_model=JobOut, status_code=202,
             summary="Index files/folders on the server (inside its --index-root folders) as a background job")
async def index(name: NamePath, body: IndexRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=True)
    if not state.index_roots:
        raise ApiError(403, "server-side indexing is off; start the server with --index-root DIR to allow "
                            "indexing the files under DIR, or upsert the texts yourself", "indexing_disabled")
    paths = []
    for raw in body.paths:
        path = pathlib.Path(raw).resolve()
        if not any(path == root or root in path.parents for root in state.index_roots):
            raise ApiError(403, f"{raw!r} is outside the folders this server may index", "path_not_allowed")
        paths.append(path)

    def work(progress: Progress) -> Any:
        from ..ingest import index_paths

        report = index_paths(
            state.collection(name), paths, chunk_tokens=body.chunk_tokens, overlap=body.overlap,
            include=body.include, exclude=body.exclude, remove_missing=body.remove_missing,
            allowed_roots=state.index_roots,  # a symlink inside a root must not lead out of it
            progress=lambda done, total, _source: progress.update(done, total),
        )
        return report.as_dict()

    return accepted(await state.start_job("index", principal.id, name, work))


@router.post("/{name}/get", response_model=list[RecordOut], summary="Records by id, in the order asked")
async def get_records(name: NamePath, body: GetRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)
    state.limits.check_ids(len(body.ids))

    def work() -> list[dict[str, Any]]:
        return [_record(r) for r in state.collection(name).get(body.ids, include_vectors=body.include_vectors)]

    return await state.run(work)


# ``:path``: ids often hold slashes (``semkit index`` writes ``sub/file.md#0``, images their path).
@router.get("/{name}/records/{record_id:path}", response_model=RecordOut, summary="One record")
async def get_record(name: NamePath, record_id: Annotated[str, Path(min_length=1, max_length=1024)],
                     request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)

    def work() -> dict[str, Any]:
        found = state.collection(name).get([record_id])
        if not found:
            raise ApiError(404, f"no record {record_id!r} in {name!r}", "record_not_found")
        return _record(found[0])

    return await state.run(work)


@router.post("/{name}/delete", summary="Delete by ids, by filter, or both")
async def delete_records(name: NamePath, body: DeleteRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=True)
    if body.ids is not None:
        state.limits.check_ids(len(body.ids))

    def work() -> dict[str, Any]:
        return {"deleted": state.collection(name).delete(ids=body.ids, where=body.where)}

    return await state.run(work)


@router.post("/{name}/count", summary="How many records (match the filter)")
async def count(name: NamePath, body: CountRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)
    return {"count": await state.run(lambda: state.collection(name).count(body.where))}


@router.post("/{name}/search", response_model=SearchResponse,
             summary="Search by meaning (vector), words (keyword) or both (hybrid), with filters and MMR")
async def search(name: NamePath, body: SearchRequest, request: Request, principal: Caller) -> Any:
    state = _checked_search(name, body, body.image is not None, request, principal)
    image = _decode_image(body.image) if body.image is not None else None
    return await _run_search(state, name, body, image)


def _checked_search(name: str, body: SearchRequest, has_image: bool, request: Request,
                    principal: Principal) -> ServerState:
    state = state_of(request)
    authorize(principal, name, write=False)
    state.limits.check_k(body.k)
    if "mode" not in body.model_fields_set and body.query is None:
        body.mode = "vector"  # the default hybrid needs words; a vector or an image alone is searched by vector
    if body.query is None and body.vector is None and not has_image:
        raise errors.InvalidInput("give query (text), vector or image")
    if has_image and (body.query is not None or body.vector is not None):
        raise errors.InvalidInput("give either an image or a query/vector, not both")
    if has_image and body.mode != "vector":
        raise errors.InvalidInput(f"an image is searched by vector: use mode 'vector' ({body.mode!r} needs "
                                  "query text)")
    if body.rerank and state.reranker is None:
        raise errors.InvalidInput("this server has no reranker, so rerank must be false: start it with "
                                  "`semkit serve --rerank windows` (the collection's own model) or "
                                  "`semkit serve --rerank FOLDER` (a cross-encoder)")
    if body.rerank and body.query is None:
        raise errors.InvalidInput("rerank needs a text query (a reranker reads the query and each hit's text)")
    return state


async def _run_search(state: ServerState, name: str, body: SearchRequest, image: bytes | None) -> Any:
    """``semkit.apps.search`` in a worker; ``image``: the query image's bytes (embedded there too).

    A text query is embedded first, through the model's shared queue (merged with other
    requests' texts), and an image query by the model in a model thread: neither holds a store
    thread; only then does the index query take one."""
    wants_text_vector = body.query is not None and body.vector is None and body.mode != "keyword"
    # A text query needs the collection only for its model: the one opened last time is asked
    # without a store round trip (one thread hand-off less per search); the store is checked in
    # work() below, which re-embeds in the rare case that the collection changed model meanwhile.
    col = state.open_collection(name) if wants_text_vector and image is None else None
    if col is None:
        col = await state.run(state.collection, name)
    model = getattr(col, "model", None)
    embedded_with = None
    # The text query's embedding stays the model's array: the collection's search takes an array
    # as it is, where a list of floats (the request's vector) is converted and checked again.
    query_vector: Any = None
    if wants_text_vector and isinstance(model, BatchedEmbedder):
        embedded = await model.submit_async([body.query], "query")
        query_vector = embedded.vectors[0]
        embedded_with = model
    if image is not None:
        vector = await state.run_model(_image_vector, col, image, state.limits.max_image_pixels)
        body = body.model_copy(update={"vector": vector.tolist(), "image": None})

    def work() -> bytes:
        nonlocal col, query_vector
        if embedded_with is not None:
            col = state.collection(name)  # 404 if dropped meanwhile, as before
            if getattr(col, "model", None) is not embedded_with:  # re-created with another model
                query_vector = None
        if query_vector is None:
            query_vector = body.vector
        query: Any = body.query if body.query is not None else body.vector
        reranker = state.reranker if body.rerank else None
        if reranker is not None and callable(getattr(reranker, "for_collection", None)):
            reranker = reranker.for_collection(col)  # so the response names the model that scored
        hits = apps.search(
            col, query, k=body.k, mode=body.mode, where=body.where,
            mmr=(1.0 - body.diversity) if body.diversity > 0 else None, exact=body.exact,
            min_score=body.min_score, fusion=body.fusion,
            vector=query_vector if body.query is not None else None, include_vectors=body.include_vectors,
            rerank=reranker,
        )
        warning = apps.language_warning(col, body.query) if body.query and body.mode != "keyword" else None
        # Encoded here, in the worker thread, in SearchResponse's shape (see server/encoding.py).
        return json_bytes({"mode": hits[0].mode if hits else body.mode,
                           "hits": [_hit_json(h, body.include_vectors) for h in hits],
                           "warnings": [warning] if warning else [],
                           "reranker": reranker.id if reranker is not None else None})

    return Response(await state.run(work), media_type="application/json")


def _hit_json(hit: apps.SearchHit, include_vectors: bool) -> dict[str, Any]:
    """One hit as ``schemas.Hit`` has it."""
    return {"id": hit.id, "score": float(hit.score), "text": hit.text, "metadata": dict(hit.metadata),
            "snippet": hit.snippet.text if hit.snippet else None,
            "ranks": {name: int(rank) for name, rank in hit.ranks.items()},
            "scores": {name: float(score) for name, score in hit.scores.items()},
            "vector": hit.vector.tolist() if include_vectors and hit.vector is not None else None}


@router.post("/{name}/search/image", response_model=SearchResponse,
             summary="Search by an image sent as the raw request body (curl --data-binary @cat.jpg)",
             openapi_extra={"requestBody": {"required": True, "description": "The image file's bytes "
                            "(JPEG, PNG, WebP, GIF)", "content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}}}})
async def search_by_image_file(
        name: NamePath, request: Request, principal: Caller,
        k: Annotated[int, Query(ge=1, description="How many results")] = 10,
        where: Annotated[str | None, Query(description='Metadata filter as JSON, e.g. {"format": "PNG"}')] = None,
        exact: bool = False) -> Any:
    """The same search as ``POST /{name}/search`` with ``{"image": ...}``, without base64: the
    body is the file itself, whatever its Content-Type."""
    data = await request.body()
    if not data:
        raise errors.InvalidInput("the request body is empty; send the image file's bytes "
                                  "(curl --data-binary @cat.jpg)")
    try:
        parsed = json.loads(where) if where is not None else None
    except ValueError as exc:
        raise errors.InvalidFilter(f"where is not valid JSON: {exc}") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise errors.InvalidFilter('where must be a JSON object, e.g. {"format": "PNG"}')
    body = SearchRequest(query=None, image=None, mode="vector", fusion="convex", k=k, where=parsed, exact=exact)
    state = _checked_search(name, body, True, request, principal)
    return await _run_search(state, name, body, data)  # the bytes as sent: no base64 round trip


def _decode_image(data: str) -> bytes:
    if data.startswith("data:"):
        data = data.partition(",")[2]  # a data: URI as a browser's FileReader makes it
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidInput("image is not valid base64; send the file's bytes base64-encoded") from None


def _image_vector(col: Any, image: bytes, max_pixels: int) -> Any:
    from ..models.base import supports_images
    from ..models.images import UnreadableImage

    model = col.model
    if not supports_images(model):
        what = f"model {model.id}" if model is not None else "no model (it stores your own vectors)"
        raise errors.InvalidInput(f"collection {col.name!r} has {what}, which cannot embed images; "
                                  "search by image needs a collection made with a CLIP model (clip:...)")
    _check_pixels(image, max_pixels)
    try:
        return model.embed_images([image]).vectors[0]
    except UnreadableImage as exc:
        reason = exc.failures[0].reason if exc.failures else "unreadable"
        raise errors.InvalidInput(f"the image could not be read: {reason}; send the bytes of a JPEG, PNG, "
                                  "WebP or GIF file") from None


def _check_pixels(image: bytes, max_pixels: int) -> None:
    """413 before decoding when the header promises more pixels than the server allows (a few
    kilobytes of PNG can decode to gigabytes). Unreadable headers are left to the decoder's 422."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as img:
                width, height = img.size
    except Image.DecompressionBombError:  # over PIL's own hard limit, so over ours too
        size = "more pixels than PIL will decode"
    except (OSError, ValueError, SyntaxError):
        return
    else:
        if width * height <= max_pixels:
            return
        size = f"{width} x {height} pixels"
    raise ApiError(413, f"the image has {size}; this server searches images of at most {max_pixels:,} "
                        "pixels: send a smaller copy", "image_too_large")


def _record(r: Any) -> dict[str, Any]:
    return {"id": r.id, "text": r.text, "metadata": r.metadata,
            "vector": r.vector.tolist() if r.vector is not None else None}

