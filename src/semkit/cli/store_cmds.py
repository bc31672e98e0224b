"""CLI commands about collections: upsert, collections, export, import, drop (search: search_cmds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_DB
from ..errors import InvalidInput, SemkitError
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
                            dimensions=dims if dims and not model else None,
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
        file: Annotated[Path, typer.Argument(
            help="A file written by `semkit export`; with --from chroma a Chroma folder, with --from pinecone "
                 "a .jsonl/.parquet dump of {id, values, metadata}")],
        db: DbOpt = DEFAULT_DB,
        collection: Annotated[str | None, typer.Option(
            "--collection", "-c",
            help="Target collection (default: docs; for Chroma, each collection's own name)")] = None,
        source: Annotated[str, typer.Option("--from", help="semkit | chroma | pinecone")] = "semkit",
        only: Annotated[list[str] | None, typer.Option(
            "--only", help="Chroma: import this collection only (repeatable; default: all)")] = None,
        model: Annotated[str | None, typer.Option(
            "--model", "-m", help="Chroma / Pinecone: the model that made the vectors, so text queries work "
                                  "(local = all-MiniLM-L6-v2, Chroma's default); checked against their length")] = None,
        metric: Annotated[str, typer.Option(
            help="Pinecone: the index's metric, cosine | dotproduct | euclidean")] = "cosine",
        as_json: JsonOpt = False,
    ) -> None:
        """Load records without re-embedding: a semkit export, a Chroma folder, or a Pinecone dump."""
        if source == "semkit":
            with semkit.connect(db) as database:
                n = database.import_collection(collection or "docs", file)
            if as_json:
                output.emit_json({"collection": collection or "docs", "imported": n})
            else:
                output.stdout.print(f"imported {n:,} record(s) into '{collection or 'docs'}'")
            return
        from ..importers import import_chroma, import_pinecone
        from ..store.chroma_reader import list_collections

        with semkit.connect(db) as database:
            if source == "chroma":
                total = sum(c.count for c in list_collections(file) if only is None or c.name in only)
                with output.progress_bar(total, f"importing {file}", not as_json) as advance:
                    reports = import_chroma(database, file, collections=only, into=collection, model=model,
                                            progress=advance)
            elif source == "pinecone":
                reports = [import_pinecone(database, file, collection or "docs", model=model, metric=metric)]
            else:
                raise InvalidInput(f"--from {source!r}: use semkit (a `semkit export` file), chroma or pinecone")
        if as_json:
            output.emit_json([r.as_dict() for r in reports])
            return
        for r in reports:
            output.stdout.print(f"imported {r.imported:,} record(s) from {r.source} into '{r.collection}' "
                                f"({r.dimensions}d {r.metric}, {r.model or 'own vectors'})")
            if r.hint:
                output.stdout.print(f"  {r.hint}")

    @app.command()
    def attach(
        name: Annotated[str, typer.Argument(help="Collection name to serve the table as")],
        table: Annotated[str, typer.Option(help="The table, as SQL names it: documents, myschema.documents")],
        id_column: Annotated[str, typer.Option("--id", help="Its id column (integer, uuid or text; unique)")],
        text_column: Annotated[str, typer.Option("--text", help="Its text column")],
        vector_column: Annotated[str, typer.Option("--vector", help="Its vector(n) / halfvec(n) column")],
        model: Annotated[str, typer.Option("--model", "-m", help="The model that made its vectors, or 'none'")],
        db: DbOpt = DEFAULT_DB,
        metadata: Annotated[str | None, typer.Option(help="A jsonb column holding metadata")] = None,
        column: Annotated[list[str] | None, typer.Option(
            "--column", help="Another column shown as a metadata field, filterable (repeatable)")] = None,
        fts: Annotated[str | None, typer.Option(help="A tsvector column for keyword search")] = None,
        metric: Annotated[str | None, typer.Option(
            help="cosine | dot | l2 (default: the vector index's, else cosine)")] = None,
        create_fts_index: Annotated[bool, typer.Option(
            "--create-fts-index", help="Add the keyword-search expression index to the table")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Serve an existing PostgreSQL table as a collection, in place: nothing is copied or changed."""
        with semkit.connect(db) as database:
            col = database.attach(
                name, table=table, id=id_column, text=text_column, vector=vector_column,
                model=None if model.lower() == "none" else model, metadata=metadata, columns=column or (),
                fts=fts, metric=metric, create_fts_index=create_fts_index,  # type: ignore[arg-type]
            )
            info = col.info()
            attachment = database.store.attachment(name)  # type: ignore[attr-defined]
        if as_json:
            output.emit_json({**info, "table": attachment.display})
            return
        output.stdout.print(f"attached {attachment.display} as '{name}': {info['count']:,} row(s), "
                            f"{info.get('embedder') or '(own vectors)'}, {info['dimensions']}d {info['metric']}")
        if fts is None and not create_fts_index:
            from ..store.pg_attached import fts_index_sql

            output.stdout.print("keyword search computes to_tsvector per query; to index it, run once:\n  "
                                f"{fts_index_sql(attachment)};\n(or attach again with --create-fts-index)")

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

