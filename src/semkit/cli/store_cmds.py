"""CLI commands about collections: upsert, collections, export, import, drop (search: search_cmds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_DB
from ..errors import SemkitError
from ..redaction import redact_uri
from . import output
from .options import CollectionOpt, DbOpt, JsonOpt
from .records import RecordFormat, check_file, parse_column_types, read_batches


def register(app: typer.Typer) -> None:
    import semkit

    @app.command()
    def upsert(
        file: Annotated[Path, typer.Argument(help=".jsonl, .csv or .parquet with id/text/metadata columns")],
        db: DbOpt = DEFAULT_DB,
        collection: CollectionOpt = "docs",
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model for a new collection")] = None,
        id_field: Annotated[str, typer.Option(help="Column holding the record id")] = "id",
        text_field: Annotated[str, typer.Option(help="Column holding the text to embed")] = "text",
        vector_field: Annotated[str | None, typer.Option(help="Column holding precomputed vectors")] = None,
        column_type: Annotated[list[str] | None, typer.Option(
            "--type", help="CSV only: type a metadata column, COLUMN=int|float|bool|json (repeatable); "
                           "other CSV cells stay text exactly as written")] = None,
        batch_size: Annotated[int, typer.Option(min=1)] = 1000,
        as_json: JsonOpt = False,
    ) -> None:
        """Insert or update records from a file; unchanged texts are not re-embedded.

        The whole file is checked before anything is written; ids must be unique within it.
        """
        fmt = RecordFormat(id_field, text_field, vector_field, parse_column_types(column_type))
        summary = check_file(file, fmt)
        total = 0
        with semkit.connect(db) as database:
            col = None
            with output.progress_bar(summary.records, f"upserting into {collection}", not as_json) as advance:
                for batch in read_batches(file, fmt, batch_size=batch_size):
                    if col is None:
                        dims = summary.vector_dimensions
                        col = database.collection(
                            collection, model=model if model or dims else "local",
                            **({"dimensions": dims} if dims and not model else {}),
                        )
                    try:
                        col.upsert(ids=batch.ids, texts=batch.texts, vectors=batch.vectors, metadata=batch.metadata)
                    except SemkitError as exc:
                        if total:
                            exc.args = (f"{exc} — rows {batch.first_row} onwards of {file} were not written "
                                        f"({total:,} records before them were); fix the file and run the same "
                                        "command again: upserts by id are idempotent",)
                        raise
                    total += len(batch.ids)
                    advance(len(batch.ids))
            count = len(col) if col is not None else 0
        if as_json:
            output.emit_json({"collection": collection, "upserted": total, "count": count})
        else:
            output.stdout.print(f"upserted {total:,} record(s) into '{collection}' ({count:,} in total)")

    @app.command()
    def collections(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
        """List the collections in a store with their model and size."""
        with semkit.connect(db) as database:
            infos = [database.collection(name, create=False).info() for name in database.collections()]
        if as_json:
            output.emit_json(infos)
            return
        output.table(f"collections in {redact_uri(db)}", ["name", "count", "model", "dims", "metric"],
                     [(i["name"], i["count"], i.get("embedder") or "(own vectors)", i["dimensions"], i["metric"])
                      for i in infos], justify_right=("count", "dims"))

    @app.command("export")
    def export_(
        out: Annotated[Path, typer.Argument(help="Destination .parquet or .jsonl")],
        db: DbOpt = DEFAULT_DB,
        collection: CollectionOpt = "docs",
        as_json: JsonOpt = False,
    ) -> None:
        """Write a collection (ids, texts, metadata, vectors, model) to a file."""
        with semkit.connect(db) as database:
            n = database.collection(collection, create=False).export(out)
        if as_json:
            output.emit_json({"collection": collection, "exported": n, "path": str(out)})
        else:
            output.stdout.print(f"exported {n:,} record(s) from '{collection}' to {out}")

    @app.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="A file written by `semkit export`")],
        db: DbOpt = DEFAULT_DB,
        collection: CollectionOpt = "docs",
        as_json: JsonOpt = False,
    ) -> None:
        """Load an exported collection without re-embedding."""
        with semkit.connect(db) as database:
            n = database.import_collection(collection, file)
        if as_json:
            output.emit_json({"collection": collection, "imported": n})
        else:
            output.stdout.print(f"imported {n:,} record(s) into '{collection}'")

    @app.command()
    def drop(
        collection: Annotated[str, typer.Argument(help="Collection to delete")],
        db: DbOpt = DEFAULT_DB,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask for confirmation")] = False,
    ) -> None:
        """Delete a collection and everything in it."""
        if not yes:
            typer.confirm(f"Delete collection '{collection}' from {redact_uri(db)}?", abort=True)
        with semkit.connect(db) as database:
            database.drop(collection)
        output.stdout.print(f"dropped '{collection}'")

