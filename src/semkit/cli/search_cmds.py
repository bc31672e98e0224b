"""CLI commands that read a collection for answers: search, context (RAG retrieval)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ..config import DEFAULT_DB
from ..errors import InvalidInput
from ..models.base import supports_images
from . import output
from .options import CollectionOpt, DbOpt, JsonOpt, parse_where

ModeOpt = Annotated[str, typer.Option("--mode", help="hybrid (score fusion, default) | vector | keyword")]
DEFAULT_MIN_SCORE = 0.15
"""The CLI's cut-off for text queries, hiding obvious noise. Chosen on the small sets of
benchmarks/relevance_small.py (hybrid, top 10): it keeps 94-100% of the relevant hits and hides
70-94% of the others; 0.2 hid more noise but also 13% of relevant examples/docs chunks. With the
bundled model an unrelated text's cosine is under 0.15. The library's default is 0 (keep all);
image and --model queries and CLIP collections keep all too: CLIP's cosines for good matches are
only about 0.2-0.35."""
WhereOpt = Annotated[str | None, typer.Option(help='Metadata filter as JSON: \'{"year": {"$gte": 2020}}\'')]


def register(app: typer.Typer) -> None:
    import semkit

    @app.command()
    def search(
        query: Annotated[str | None, typer.Argument(help="What to look for")] = None,
        db: DbOpt = DEFAULT_DB,
        collection: CollectionOpt = "docs",
        k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many results")] = 10,
        mode: ModeOpt = "hybrid",
        image: Annotated[str | None, typer.Option(
            "--image", help="Search by this image (needs a CLIP model, see --model)")] = None,
        model: Annotated[str | None, typer.Option(
            "--model", help="Embed the query with this model instead of the collection's "
            "(e.g. 'clip' = $SEMKIT_CLIP_MODEL, 'clip:/path'); --image defaults to 'clip'")] = None,
        mmr: Annotated[float | None, typer.Option(
            "--mmr", min=0.0, max=1.0, help="Diversity: MMR λ in [0, 1] (1 = relevance only)")] = None,
        where: WhereOpt = None,
        exact: Annotated[bool, typer.Option(help="Exact search instead of the approximate index")] = False,
        candidates: Annotated[int | None, typer.Option(
            min=1, help="Depth of each list before fusion/MMR (default max(50, 5k))")] = None,
        min_score: Annotated[float | None, typer.Option(
            "--min-score", min=0.0, max=1.0,
            help=f"Hide hits scoring below this (scores are in [0, 1]; default {DEFAULT_MIN_SCORE} for a text "
            "query, 0 for --image/--model and CLIP collections; --min-score 0 shows everything)")] = None,
        fusion: Annotated[str, typer.Option(
            "--fusion", help="hybrid: convex (score-aware, default) | rrf (reciprocal rank)")] = "convex",
        rerank: Annotated[str | None, typer.Option(
            "--rerank", metavar="windows|FOLDER",
            help="Re-score the best max(k, 20) hits: 'windows' = the collection's own model on each hit's "
            "sentences (no extra model), or a local cross-encoder FOLDER (a Hugging Face "
            "sequence-classification folder, e.g. a sentence-transformers CrossEncoder; run through ONNX, "
            "exported once with torch)")] = None,
        as_json: JsonOpt = False,
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
            output.stderr.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        if as_json:
            output.emit_json([h.as_dict() for h in hits])
            return
        if not hits:
            cut = f" scoring {min_score} or more (--min-score 0 shows every hit)" if min_score else ""
            output.stdout.print(f"no results{cut}", highlight=False)
            return
        shown = f"image {image}" if image is not None else repr(query)
        how = hits[0].mode + ("" if mmr is None else f", mmr {mmr}") + (", reranked" if reranker else "")
        _print_hits(f"{collection}: {shown} ({how})", hits, reranked=_score_meaning(reranker))

    @app.command()
    def context(
        question: Annotated[str, typer.Argument(help="The question the context is for")],
        db: DbOpt = DEFAULT_DB,
        collection: CollectionOpt = "docs",
        budget: Annotated[int, typer.Option("--budget", min=1, help="Token budget of the context")] = 2000,
        where: WhereOpt = None,
        mode: ModeOpt = "hybrid",
        mmr: Annotated[float, typer.Option(
            "--mmr", min=0.0, max=1.0, help="MMR λ (1 = relevance only, lower = more variety)")] = 0.7,
        max_passages: Annotated[int, typer.Option(min=1, help="At most this many passages")] = 20,
        tokenizer: Annotated[str, typer.Option(
            help="Tokenizer counting the budget (cl100k_base, estimate)")] = "cl100k_base",
        as_json: JsonOpt = False,
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
        typer.echo(ctx.text if ctx.passages else "")
        approx = "" if ctx.exact_count else "~"
        output.stderr.print(
            f"{len(ctx.passages)} passage(s), {approx}{ctx.used_tokens}/{ctx.budget_tokens} tokens "
            f"({ctx.tokenizer}); {ctx.duplicates} duplicate(s) dropped, {ctx.skipped} did not fit",
            highlight=False,
        )


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
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold", show_lines=True)
    for name, justify in (("#", "right"), ("score", "right"), ("id / title", "left"), ("snippet", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    fused = hits[0].mode == "hybrid" or reranked is not None
    for h in hits:
        label = Text(h.id, style="bold")
        for extra in (h.title, h.path):
            if extra and extra != h.id:
                label.append("\n" + extra, style="dim" if extra == h.path else "")
        score = f"{h.score:.3f}"
        if fused:
            score += "\n" + " ".join(f"{name[0]}{r}" for name, r in sorted(h.ranks.items(), reverse=True))
        if h.snippet is None:
            body = Text(h.text or "")
        elif output.stdout.is_terminal:
            body = h.snippet.rich()
        else:
            body = Text(h.snippet.marked())  # no colours in a pipe: mark matches as **word**
        table.add_row(str(h.rank), score, label, body)
    output.stdout.print(table)
    if reranked:
        output.stdout.print(f"score = {reranked}; f2 = rank 2 before reranking, "
                            "v3 k1 = rank 3 by vector, 1 by keyword", style="dim", highlight=False)
    elif fused:
        output.stdout.print("score = fused relevance in [0, 1]; v3 k1 = rank 3 by vector, 1 by keyword",
                            style="dim", highlight=False)
