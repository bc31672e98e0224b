"""The apps over HTTP: dedup, recommend, cluster, classify, outliers, context (RAG), and the
model catalogue with a cost estimate for a collection.

Every route is a thin call to ``semkit.apps.*`` / ``semkit.cost``; slow ones (dedup, cluster,
classify, outliers) take ``"background": true`` and return a job to poll.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from .. import apps, errors
from ..cost import estimate as estimate_cost
from ..models import registry
from ..models.catalog import MODELS
from ..models.catalog import find as catalogue_entry
from .auth import Principal
from .dependencies import Caller, NamePath, accepted, authorize, state_of
from .jobs import Progress
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
    """Run an app on collection ``name`` for a reading key: now, or as a background job."""
    state = state_of(request)
    authorize(principal, name, write=False)
    if background:
        def job(progress: Progress) -> Any:
            return fn()

        return accepted(await state.start_job(kind, principal.id, name, job))
    return await state.run(fn)


@router.post("/collections/{name}/dedup", tags=["apps"], summary="Groups of near-duplicates with a keeper each")
async def dedup(name: NamePath, body: DedupRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        report = apps.duplicates(state.collection(name), threshold=body.threshold, k=body.k, keep=body.keep,
                            linkage=body.linkage)
        return plain(report.to_dict())

    return await _run_app(request, principal, name, "dedup", body.background, work)


@router.post("/collections/{name}/recommend", summary="Items like the liked ones, unlike the disliked")
async def recommend(name: NamePath, body: RecommendRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    state.limits.check_k(body.k)
    state.limits.check_ids(len(body.liked) + len(body.disliked))

    def work() -> Any:
        return plain(apps.recommend(state.collection(name), liked=body.liked, disliked=body.disliked, k=body.k,
                         diversity=body.diversity, where=body.where, liked_texts=body.liked_texts,
                         profile=body.profile))

    return await _run_app(request, principal, name, "recommend", False, work)


@router.post("/collections/{name}/cluster", summary="Clusters with keyword labels and 2-D map positions")
async def cluster(name: NamePath, body: ClusterRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        report = apps.cluster(state.collection(name), method=body.method, k=body.k,
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
    if body.examples is not None:
        state.limits.check_embedding_inputs(sum(len(texts) for texts in body.examples.values()))

    def work() -> Any:
        col = state.collection(name)
        items: Any = body.texts if body.texts is not None else col
        if body.labels is not None:
            model = col.model
            if model is None:
                raise errors.InvalidInput(f"collection {name!r} has no model to embed the labels with")
            preds = apps.zero_shot(items, body.labels, embedder=model, top=body.top)
        else:
            assert body.examples is not None
            clf = apps.train(body.examples, embedder=col.model)
            preds = clf.classify(items, top=body.top)
        return plain(preds)

    return await _run_app(request, principal, name, "classify", body.background, work)


@router.post("/collections/{name}/outliers", summary="The most outlying items")
async def outliers(name: NamePath, body: OutliersRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)

    def work() -> Any:
        return plain(apps.outliers(state.collection(name), k=body.k, method=body.method, top=body.top))

    return await _run_app(request, principal, name, "outliers", body.background, work)


@router.post("/collections/{name}/context", summary="RAG: the best passages for a question within a token budget")
async def context(name: NamePath, body: ContextRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    state.limits.check_k(body.k)

    def work() -> Any:
        ctx = apps.context(state.collection(name), body.query, body.max_tokens or 2000, where=body.where,
                           max_passages=body.k, min_score=body.min_score)
        return ctx.as_dict()

    return await _run_app(request, principal, name, "context", False, work)


@router.get("/catalog", tags=["models"], summary="The model catalogue (dimensions, context, price, quality)")
async def catalog(request: Request, principal: Caller) -> Any:
    state = state_of(request)
    return {"models": [{**plain(info), "spec": info.spec, "served": state.serves(info.spec)} for info in MODELS]}


@router.post("/collections/{name}/cost", tags=["models"],
             summary="What embedding this collection's texts would cost with each model, and its storage")
async def cost(name: NamePath, body: CostRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    for spec in body.models:
        _check_priceable(state, spec)

    def work() -> Any:
        col = state.collection(name)
        texts = (r.text for batch in col.scan(batch_size=2000) for r in batch if r.text)
        options: dict[str, Any] = {"texts": texts, "dimensions": body.dimensions, "chunk_tokens": body.chunk_tokens}
        if body.price_per_gb_month is not None:
            options["price_per_gb_month"] = body.price_per_gb_month
        report = estimate_cost(None, body.models, **options)
        return plain(report.as_dict())

    return await _run_app(request, principal, name, "cost", False, work)


def _check_priceable(state: Any, spec: str) -> None:
    """A client may price catalogue models and the models this server serves, never a model
    folder of its choosing: reading one would tell it which server paths exist."""
    try:
        scheme, model_name = registry.parse_spec(spec)
    except errors.SemkitError:
        raise errors.ModelNotAvailable(f"unknown model {spec!r}; GET /v1/catalog lists what can be priced") from None
    if catalogue_entry(scheme, model_name) is not None:
        return
    try:
        state.served_spec(spec)
    except errors.SemkitError:
        raise errors.ModelNotAvailable(
            f"{spec!r} is neither a catalogue model nor one this server serves; GET /v1/catalog lists what can "
            "be priced (local folders are priced with `semkit cost` on the machine that holds them)") from None


def _clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
