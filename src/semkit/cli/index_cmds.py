"""``semkit index``: ingest files and folders into a collection, incrementally."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ..redaction import redact_uri
from ..terminal import LineProgress, TerminalBar
from . import output
from .commands import Group, argument
from .options import collection_option, db_option

if TYPE_CHECKING:
    from ..ingest import Engine, IndexReport


def _mixed_collection(database: Any, name: str, clip_model: Any) -> Any:
    """The collection that holds texts and images together: both need the CLIP model."""
    from ..errors import ModelMismatch

    try:
        return database.collection(name, model=clip_model)
    except ModelMismatch:
        recorded = database.store.get_collection(name).embedder
        raise ModelMismatch(
            f"collection {name!r} holds texts embedded with {recorded}; texts and images share one "
            f"collection only when both are embedded with the CLIP model ({clip_model.id}). Keep the "
            "images apart (--image-collection images), or index into a new collection "
            f"(--collection {name}-clip --image-collection {name}-clip)") from None


@contextmanager
def _file_progress(enabled: bool, detail: bool = False) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar of files on stderr, drawn only on a terminal; its total is known only
    after the folders are walked, so the first report sets it. ``detail``: the plain lines also
    carry the engine's current state (the Ray engine's nodes and resent batches)."""
    if not enabled:
        yield lambda done, total, current: None
        return
    if not output.stderr_is_terminal():
        # A log or CI reads lines: one per tenth of the files instead of a redrawn bar.
        lines = LineProgress(0, "indexing")

        def update_lines(done: int, total: int, current: str) -> None:
            if detail:
                lines.description = f"indexing [{current}]" if current else "indexing"
            lines.update(done, total)

        yield update_lines
        return
    bar = TerminalBar(0, "indexing")

    def update(done: int, total: int, current: str) -> None:
        bar.update(done, total, current[-60:])

    try:
        yield update
    finally:
        bar.close()


def register(app: Group) -> None:
    import semkit

    @app.command()
    @argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path),
        help="Files and folders (folders are walked recursively)")
    @db_option
    @collection_option
    @click.option("--model", "-m", help="Model for a new collection (default: local); an existing one keeps its own")
    @click.option("--chunk-tokens", type=int,
        help="Chunk size in the model's tokens (default: a bit under its context, at most 512)")
    @click.option("--overlap", type=int, help="Tokens shared by neighbouring chunks (default: 15%)")
    @click.option("--text-field", help="CSV/JSONL column to index (default: text, content, body...)")
    @click.option("--include", multiple=True, help="Only files matching this glob (repeatable), e.g. '*.md'")
    @click.option("--exclude", multiple=True,
        help="Skip files and folders matching this glob (repeatable), e.g. 'drafts/*'")
    @click.option("--max-file-mb", type=click.FloatRange(min=0.001), default=100.0,
        help="Skip (and report) files larger than this")
    @click.option("--keep-missing/--no-keep-missing", default=False,
        help="Keep the chunks of files deleted from an indexed folder")
    @click.option("--strict/--no-strict", default=False, help="Exit with status 1 if any file failed")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON report")
    @click.option("--clip",
        help="Also index images (.jpg .png .webp .gif) with this CLIP model "
             "('clip' = $SEMKIT_CLIP_MODEL, or 'clip:/path')")
    @click.option("--image-collection", default="images", help="Collection for the images (with --clip)")
    @click.option("--engine", default="local",
        help="'local' (this process) or 'ray' (read, chunk and embed on a Ray cluster's workers; "
             "pip install 'semkit[ray]'; -v logs each batch's node)")
    @click.option("--address",
        help="With --engine ray: the cluster (HEAD:6379, ray://HEAD:10001, 'auto'); default: start a local Ray")
    @click.option("--workers", type=click.IntRange(min=1),
        help="With --engine ray: embedding actors, each loading the model once")
    def index(
        paths: list[Path], db: str, collection: str, model: str | None, chunk_tokens: int | None, overlap: int | None,
        text_field: str | None, include: list[str] | None, exclude: list[str] | None, max_file_mb: float,
        keep_missing: bool, strict: bool, as_json: bool, clip: str | None, image_collection: str, engine: str,
        address: str | None, workers: int | None
    ) -> None:
        """Index documents (.txt .md .html .pdf .docx .csv .jsonl) for semantic search.

        Re-running is incremental: unchanged files are skipped without embedding, changed files
        replace their chunks, deleted files lose theirs. Unreadable files are reported, not fatal.
        """
        from ..errors import InvalidInput
        from ..ingest import IndexOptions, IndexReport, discover, index_paths

        # Checked here, before the store is opened or a folder walked.
        options = IndexOptions(
            chunk_tokens=chunk_tokens, overlap=overlap, text_field=text_field, include=include or (),
            exclude=exclude or (), max_file_bytes=int(max_file_mb * 1024 * 1024), remove_missing=not keep_missing,
            address=address, workers=workers,
        )
        options.check_engine(engine)

        mixed = clip is not None and image_collection == collection
        if mixed and model is not None:
            raise InvalidInput("with --image-collection equal to --collection, texts and images share the "
                               "--clip model; leave --model out")
        with semkit.connect(db) as database:
            clip_model = semkit.model(clip) if clip is not None else None  # texts cached, images pass through
            if mixed:
                col = _mixed_collection(database, collection, clip_model)
            elif clip is not None and collection not in database.collections() and not discover(
                    [str(p) for p in paths], include=options.include, exclude=options.exclude).files:
                col = None  # only images here: no empty text collection
            else:
                col = database.collection(collection, model=model) if model else database.collection(collection)
            with _file_progress(not as_json and col is not None, detail=engine == "ray") as progress:
                if col is None:
                    report = IndexReport(collection)
                else:
                    report = index_paths(col, [str(p) for p in paths], options, engine=cast("Engine", engine),
                                         progress=progress)
            total = len(col) if col is not None else 0
            images = None
            if clip_model is not None:
                from ..ingest.images import index_images

                image_col = database.collection(image_collection, model=clip_model)
                images = index_images(image_col, [str(p) for p in paths], model=clip_model,
                                      remove_missing=not keep_missing)
                image_total = len(image_col)
        if as_json:
            extra = {} if images is None else {"images": {**images.as_dict(), "count": image_total}}
            output.emit_json({**report.as_dict(), "count": total, **extra})
        else:
            if col is not None:
                _print_report(report, total, db)
            if images is not None:
                output.table(f"semkit index --clip -> {image_collection}", ["", "count"], [
                    ("images seen", images.seen), ("indexed (new or changed)", len(images.indexed)),
                    ("unchanged (skipped)", images.unchanged), ("removed (file gone)", len(images.removed)),
                    ("failed", len(images.failed)),
                    (f"images in '{image_collection}'", f"{image_total:,}")], justify_right=("count",))
                if images.failed:
                    output.table("image problems", ["file", "reason"], images.failed)
        if strict and (report.failed or (images is not None and images.failed)):
            raise click.exceptions.Exit(1)


def _print_report(report: IndexReport, total: int, db: str) -> None:
    rows: list[tuple[str, int | str]] = [
        ("files seen", report.seen),
        ("indexed (new or changed)", len(report.indexed)),
        ("unchanged (skipped)", report.unchanged),
        ("removed (file deleted)", len(report.removed)),
        ("failed", len(report.failed)),
        ("chunks written", report.chunks_written),
        ("chunks embedded", report.embedded),
        ("  of which from the embedding cache", report.cached),
        ("chunks deleted", report.chunks_deleted),
    ]
    if report.reused:
        rows.append(("chunk vectors reused", report.reused))
    if report.ignored:
        rows.append(("files ignored (type or --include/--exclude)", report.ignored))
    for node, work in report.nodes.items():  # the Ray engine: where the work ran
        rows.append((f"node {node}", f"{work['batches']} batches, {work['chunks']} chunks, "
                                     f"{work['workers']} worker(s), {work['model_loads']} model load(s)"))
    if report.nodes:
        rows.append(("batches resent (worker lost)", report.batches_resent))
    rows.append((f"chunks in '{report.collection}'", f"{total:,}"))
    rows.append(("seconds", f"{report.seconds:.1f}"))
    output.table(f"semkit index -> {redact_uri(db)}", ["", "count"], rows, justify_right=("count",))
    problems = [("failed", p.source, p.reason) for p in report.failed]
    problems += [("warning", p.source, p.reason) for p in report.warnings]
    if problems:
        output.table("problems", ["", "file", "reason"], problems)
