"""The apps over HTTP: dedup, recommend, cluster, classify, outliers, context (RAG), and the
model catalogue with a cost estimate for a collection.

Every route is a thin call to ``semkit.apps.*`` / ``semkit.cost``; slow ones (dedup, cluster,
classify, outliers) take ``"background": true`` and return a job to poll.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from .. import errors
from .app import ApiError, authorize, caller, state_of
from .auth import Principal
from .jobs import Progress
from .routes_collections import optional_app
from .schemas import (
    ClassifyRequest,
    ClusterRequest,
    ContextRequest,
    CostRequest,
    DedupRequest,
    OutliersRequest,
    RecommendRequest,
)

router = APIRouter(prefix="/v1", tags=["apps"])

Caller = Annotated[Principal, Depends(caller)]
NamePath = Annotated[str, Path(min_length=1, max_length=200, description="Collection name", examples=["docs"])]


def plain(value: Any) -> Any:
    """Dataclasses and NumPy values as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "vector"}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


async def _run_app(request: Request, principal: Principal, name: str, kind: str, background: bool,
                   fn: Callable[[], Any]) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)
    if background:
        await state.run(state.collection, name)  # a missing collection fails the request, not the job

        def job(progress: Progress) -> Any:
            return fn()

        return JSONResponse(state.jobs.submit(kind, principal.id, name, job).as_dict(), status_code=202)
    return await state.run(fn)


@router.post("/collections/{name}/dedup", tags=["apps"], summary="Groups of near-duplicates with a keeper each")
async def dedup(name: NamePath, body: DedupRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        from ..apps import duplicates

        report = duplicates(state.collection(name), threshold=body.threshold, k=body.k, keep=body.keep,
                            linkage=body.linkage)
        return plain(report.to_dict())

    return await _run_app(request, principal, name, "dedup", body.background, work)


@router.post("/collections/{name}/recommend", summary="Items like the liked ones, unlike the disliked")
async def recommend(name: NamePath, body: RecommendRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    if body.k > state.limits.max_k:
        raise errors.InvalidInput(f"k={body.k} is above the server's limit of {state.limits.max_k}")
    if len(body.liked) + len(body.disliked) > state.limits.max_ids:
        raise ApiError(413, f"more than {state.limits.max_ids} liked/disliked ids", "too_many_ids")

    def work() -> Any:
        from ..apps import recommend as rec

        return plain(rec(state.collection(name), liked=body.liked, disliked=body.disliked, k=body.k,
                         diversity=body.diversity, where=body.where))

    return await _run_app(request, principal, name, "recommend", False, work)


@router.post("/collections/{name}/cluster", summary="Clusters with keyword labels and 2-D map positions")
async def cluster(name: NamePath, body: ClusterRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        from ..apps import cluster as run_cluster

        report = run_cluster(state.collection(name), method=body.method, k=body.k,
                             min_cluster_size=body.min_cluster_size, projection=body.projection)
        out = plain(report.to_dict(items=body.items))
        if body.items and body.hover_chars:
            texts = report.texts or [None] * len(report.ids)
            for item, text in zip(out["items"], texts, strict=True):
                item["text"] = _clip(text, body.hover_chars)
        return out

    return await _run_app(request, principal, name, "cluster", body.background, work)


@router.post("/collections/{name}/classify",
             summary="Zero-shot (labels) or few-shot (examples) classification of the collection or given texts")
async def classify(name: NamePath, body: ClassifyRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    if (body.labels is None) == (body.examples is None):
        raise errors.InvalidInput("give labels (zero-shot) or examples (few-shot), one of the two")

    def work() -> Any:
        from .. import apps as cls

        col = state.collection(name)
        items: Any = body.texts if body.texts is not None else col
        if body.labels is not None:
            model = col.model
            if model is None:
                raise errors.InvalidInput(f"collection {name!r} has no model to embed the labels with")
            preds = cls.zero_shot(items, body.labels, embedder=model, top=body.top)
        else:
            assert body.examples is not None
            clf = cls.train(body.examples, embedder=col.model)
            preds = clf.classify(items, top=body.top)
        return plain(preds)

    return await _run_app(request, principal, name, "classify", body.background, work)


@router.post("/collections/{name}/outliers", summary="The most outlying items")
async def outliers(name: NamePath, body: OutliersRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        from ..apps import outliers as find

        return plain(find(state.collection(name), k=body.k, method=body.method, top=body.top))

    return await _run_app(request, principal, name, "outliers", body.background, work)


@router.post("/collections/{name}/context", summary="RAG: the best passages for a question within a token budget")
async def context(name: NamePath, body: ContextRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    app = optional_app("context")
    if app is None:
        raise ApiError(501, "context assembly needs semkit.apps.context, which this installation lacks",
                       "not_implemented")

    def work() -> Any:
        options: dict[str, Any] = {"where": body.where, "max_passages": body.k}
        ctx = app.context(state.collection(name), body.query, body.max_tokens or 2000, **options)
        return ctx.as_dict()

    return await _run_app(request, principal, name, "context", False, work)


@router.get("/catalog", tags=["models"], summary="The model catalogue (dimensions, context, price, quality)")
async def catalog(request: Request, principal: Caller) -> Any:
    from ..models import catalog as cat

    state = state_of(request)
    out = []
    for info in cat.MODELS:
        d = plain(info)
        d["spec"] = info.spec
        try:
            d["served"] = bool(state.served_spec(info.spec))
        except errors.SemkitError:
            d["served"] = False
        out.append(d)
    return {"models": out}


@router.post("/collections/{name}/cost", tags=["models"],
             summary="What embedding this collection's texts would cost with each model, and its storage")
async def cost(name: NamePath, body: CostRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    authorize(principal, name, write=False)

    def work() -> Any:
        from .. import cost as cost_mod

        col = state.collection(name)
        texts = (r.text for batch in col.scan(batch_size=2000) for r in batch if r.text)
        options: dict[str, Any] = {"texts": texts, "dimensions": body.dimensions, "chunk_tokens": body.chunk_tokens}
        if body.price_per_gb_month is not None:
            options["price_per_gb_month"] = body.price_per_gb_month
        report = cost_mod.estimate(None, body.models, **options)
        return plain(report.as_dict())

    return await state.run(work)


def _clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
