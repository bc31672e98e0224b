"""CLI commands that read a collection for answers: search, context (RAG retrieval)."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InvalidInput
from ..models.base import supports_images
from . import output
from .commands import Group, argument
from .options import collection_option, db_option, json_option, parse_where, where_option

mode_option = click.option("--mode", default="hybrid", help="hybrid (score fusion, default) | vector | keyword")
DEFAULT_MIN_SCORE = 0.15
"""The CLI's cut-off for text queries, hiding obvious noise. Chosen on the small sets of
benchmarks/relevance_small.py (hybrid, top 10): it keeps 94-100% of the relevant hits and hides
70-94% of the others; 0.2 hid more noise but also 13% of relevant examples/docs chunks. With the
bundled model an unrelated text's cosine is under 0.15. The library's default is 0 (keep all);
image and --model queries and CLIP collections keep all too: CLIP's cosines for good matches are
only about 0.2-0.35."""


def register(app: Group) -> None:
    import semkit

    @app.command()
    @argument("query", required=False, help="What to look for")
    @db_option
    @collection_option
    @click.option("-k", "--k", type=click.IntRange(min=1), default=10, help="How many results")
    @mode_option
    @click.option("--image", help="Search by this image (needs a CLIP model, see --model)")
    @click.option("--model",
        help="Embed the query with this model instead of the collection's "
             "(e.g. 'clip' = $SEMKIT_CLIP_MODEL, 'clip:/path'); --image defaults to 'clip'")
    @click.option("--mmr", type=click.FloatRange(min=0.0, max=1.0),
        help="Diversity: MMR λ in [0, 1] (1 = relevance only)")
    @where_option
    @click.option("--exact/--no-exact", default=False, help="Exact search instead of the approximate index")
    @click.option("--candidates", type=click.IntRange(min=1),
        help="Depth of each list before fusion/MMR (default max(50, 5k))")
    @click.option("--min-score", type=click.FloatRange(min=0.0, max=1.0),
        help=f"Hide hits scoring below this (scores are in [0, 1]; default {DEFAULT_MIN_SCORE} for a text "
             "query, 0 for --image/--model and CLIP collections; --min-score 0 shows everything)")
    @click.option("--fusion", default="convex", help="hybrid: convex (score-aware, default) | rrf (reciprocal rank)")
    @click.option("--rerank", metavar="windows|FOLDER",
        help="Re-score the best max(k, 20) hits: 'windows' = the collection's own model on each hit's "
             "sentences (no extra model), or a local cross-encoder FOLDER (a Hugging Face "
             "sequence-classification folder, e.g. a sentence-transformers CrossEncoder; run through ONNX, "
             "exported once with torch)")
    @json_option
    def search(
        query: str | None, db: str, collection: str, k: int, mode: str, image: str | None, model: str | None,
        mmr: float | None, where: str | None, exact: bool, candidates: int | None, min_score: float | None, fusion: str,
        rerank: str | None, as_json: bool
    ) -> None:
        """Search a collection by meaning, by keywords (BM25), or both (hybrid); scores in [0, 1]."""
        from ..apps import language_warning
        from ..apps import search as run_search

        if (query is None) == (image is None):
            raise InvalidInput("give a query text or --image PATH (one of them)")
        if rerank is not None and image is not None:
            raise InvalidInput("--rerank needs a query text (a reranker reads text); drop --image or --rerank")
        reranker = None
        if rerank is not None:
            from ..models.rerank import load_reranker

            reranker = load_reranker(rerank)  # before opening the store: a bad folder fails fast
        vector = None
        with semkit.connect(db) as database:
            col = database.collection(collection, create=False)
            if image is not None or model is not None:
                from pathlib import Path

                embedder: Any = semkit.model(model) if model is not None else _image_model(col)
                if image is not None:
                    if not supports_images(embedder):
                        raise InvalidInput(f"--image needs a model that embeds images (clip:...), "
                                           f"not {embedder.id}")
                    vector = embedder.embed_images([Path(image)]).vectors[0]
                    query, mode = vector, "vector"
                else:
                    vector = embedder.embed([query], kind="query")[0]
            if min_score is None:
                min_score = _default_min_score(col, image is not None or model is not None)
            hits = run_search(col, query, k=k, mode=_mode(mode), where=parse_where(where), mmr=mmr,
                              candidates=candidates, exact=exact, vector=vector, min_score=min_score,
                              fusion=fusion, rerank=reranker)  # type: ignore[arg-type]  # checked there
        warning = language_warning(col, query) if isinstance(query, str) and mode != "keyword" else None
        if warning:
            output.note(f"warning: {warning}", "yellow")
        if as_json:
            output.emit_json([h.as_dict() for h in hits])
            return
        if not hits:
            cut = f" scoring {min_score} or more (--min-score 0 shows every hit)" if min_score else ""
            output.echo(f"no results{cut}")
            return
        shown = f"image {image}" if image is not None else repr(query)
        how = hits[0].mode + ("" if mmr is None else f", mmr {mmr}") + (", reranked" if reranker else "")
        _print_hits(f"{collection}: {shown} ({how})", hits, reranked=_score_meaning(reranker))

    @app.command()
    @argument("question", help="The question the context is for")
    @db_option
    @collection_option
    @click.option("--budget", type=click.IntRange(min=1), default=2000, help="Token budget of the context")
    @where_option
    @mode_option
    @click.option("--mmr", type=click.FloatRange(min=0.0, max=1.0), default=0.7,
        help="MMR λ (1 = relevance only, lower = more variety)")
    @click.option("--max-passages", type=click.IntRange(min=1), default=20, help="At most this many passages")
    @click.option("--tokenizer", default="cl100k_base", help="Tokenizer counting the budget (cl100k_base, estimate)")
    @json_option
    def context(
        question: str, db: str, collection: str, budget: int, where: str | None, mode: str, mmr: float,
        max_passages: int, tokenizer: str, as_json: bool
    ) -> None:
        """Best passages for a question, with citations, packed into a token budget (for an LLM prompt)."""
        from ..apps import context as build

        with semkit.connect(db) as database:
            col = database.collection(collection, create=False)
            ctx = build(col, question, budget, where=parse_where(where), mode=_mode(mode), mmr=mmr,
                        max_passages=max_passages, tokenizer=tokenizer)
        if as_json:
            output.emit_json(ctx.as_dict())
            return
        # Plain text on stdout, so `semkit context ... > prompt.txt` is exactly the context.
        click.echo(ctx.text if ctx.passages else "")
        approx = "" if ctx.exact_count else "~"
        output.note(
            f"{len(ctx.passages)} passage(s), {approx}{ctx.used_tokens}/{ctx.budget_tokens} tokens "
            f"({ctx.tokenizer}); {ctx.duplicates} duplicate(s) dropped, {ctx.skipped} did not fit")


def _mode(mode: str) -> Any:
    from ..apps import MODES

    if mode not in MODES:
        raise InvalidInput(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _default_min_score(col: Any, other_model: bool) -> float:
    """DEFAULT_MIN_SCORE for a text query embedded by the collection's own text model; 0 (keep
    all) for an image or --model query and for a collection made with an image model (CLIP),
    whose cosines live lower, or with no model (your own vectors)."""
    if other_model or col.spec.embedder is None:
        return 0.0
    return 0.0 if supports_images(col.model) else DEFAULT_MIN_SCORE


def _image_model(col: Any) -> Any:
    """The model that embeds an --image query for ``col``: its own when it records one (a CLIP
    collection), else ``clip`` ($SEMKIT_CLIP_MODEL) for a collection of your own vectors."""
    import semkit

    if col.spec.embedder is None:
        return semkit.model("clip")
    own = col.model
    if not supports_images(own):
        raise InvalidInput(f"collection {col.name!r} was embedded with {own.id}, which cannot embed images; "
                           "search by image needs a collection made with a CLIP model "
                           "(semkit index DIR --clip clip --image-collection NAME)")
    return own


def _score_meaning(reranker: Any) -> str | None:
    """What a reranked hit's score is, for the table's footnote (None: not reranked)."""
    from ..models.rerank import SentenceWindows

    if reranker is None:
        return None
    if isinstance(reranker, SentenceWindows):
        w = reranker.fused_weight
        return f"{w:g} x fused relevance + {1 - w:g} x best sentence's cosine, in [0, 1]"
    return "cross-encoder relevance in [0, 1]"


def _print_hits(title: str, hits: list[Any], reranked: str | None = None) -> None:
    colors = output.stdout_colors()
    fused = hits[0].mode == "hybrid" or reranked is not None
    rows = []
    for h in hits:
        label = [output.style(output.printable(h.id), "bold")]
        label += [output.style(output.printable(extra), "dim" if extra == h.path else None)
                  for extra in (h.title, h.path) if extra and extra != h.id]
        score = f"{h.score:.3f}"
        if fused:
            score += "\n" + " ".join(f"{name[0]}{r}" for name, r in sorted(h.ranks.items(), reverse=True))
        if h.snippet is None:
            body = output.printable(h.text or "")
        elif colors:
            body = h.snippet.ansi()
        else:
            body = h.snippet.marked()  # no colours in a pipe: mark matches as **word**
        rows.append((str(h.rank), score, "\n".join(label), body))
    output.table(title, ["#", "score", "id / title", "snippet"], rows, justify_right=("#", "score"), show_lines=True)
    if reranked:
        output.echo(f"score = {reranked}; f2 = rank 2 before reranking, "
                    "v3 k1 = rank 3 by vector, 1 by keyword", "dim")
    elif fused:
        output.echo("score = fused relevance in [0, 1]; v3 k1 = rank 3 by vector, 1 by keyword", "dim")
