"""CLI commands about collections: upsert, collections, export, import, drop (search: search_cmds)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInput, SemkitError
from ..redaction import redact_uri
from . import output
from .commands import Group, argument
from .options import collection_option, db_option, json_option
from .records import RecordFormat, check_file, parse_column_types, read_batches


def register(app: Group) -> None:
    import semkit

    @app.command()
    @argument("file", type=click.Path(path_type=Path), help=".jsonl, .csv or .parquet with id/text/metadata columns")
    @db_option
    @collection_option
    @click.option("--model", "-m", help="Model for a new collection")
    @click.option("--id-field", default="id", help="Column holding the record id")
    @click.option("--text-field", default="text", help="Column holding the text to embed")
    @click.option("--vector-field", help="Column holding precomputed vectors")
    @click.option("--type", "column_type", multiple=True,
        help="CSV only: type a metadata column, COLUMN=int|float|bool|json (repeatable); "
             "other CSV cells stay text exactly as written")
    @click.option("--batch-size", type=click.IntRange(min=1), default=1000)
    @json_option
    def upsert(
        file: Path, db: str, collection: str, model: str | None, id_field: str, text_field: str,
        vector_field: str | None, column_type: list[str] | None, batch_size: int, as_json: bool
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
            output.echo(f"upserted {total:,} record(s) into '{collection}' ({count:,} in total)")

    @app.command()
    @db_option
    @json_option
    def collections(db: str, as_json: bool) -> None:
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
    @argument("out", type=click.Path(path_type=Path), help="Destination .parquet or .jsonl")
    @db_option
    @collection_option
    @json_option
    def export_(out: Path, db: str, collection: str, as_json: bool) -> None:
        """Write a collection (ids, texts, metadata, vectors, model) to a file."""
        with semkit.connect(db) as database:
            n = database.collection(collection, create=False).export(out)
        if as_json:
            output.emit_json({"collection": collection, "exported": n, "path": str(out)})
        else:
            output.echo(f"exported {n:,} record(s) from '{collection}' to {out}")

    @app.command("import")
    @argument("file", type=click.Path(path_type=Path),
        help="A file written by `semkit export`; with --from chroma a Chroma folder, with --from pinecone "
             "a .jsonl/.parquet dump of {id, values, metadata}")
    @db_option
    @click.option("--collection", "-c",
        help="Target collection (default: docs; for Chroma, each collection's own name)")
    @click.option("--from", "source", default="semkit", help="semkit | chroma | pinecone")
    @click.option("--only", multiple=True, help="Chroma: import this collection only (repeatable; default: all)")
    @click.option("--model", "-m",
        help="Chroma / Pinecone: the model that made the vectors, so text queries work "
             "(local = all-MiniLM-L6-v2, Chroma's default); checked against their length")
    @click.option("--metric", default="cosine", help="Pinecone: the index's metric, cosine | dotproduct | euclidean")
    @json_option
    def import_(
        file: Path, db: str, collection: str | None, source: str, only: list[str] | None, model: str | None,
        metric: str, as_json: bool
    ) -> None:
        """Load records without re-embedding: a semkit export, a Chroma folder, or a Pinecone dump."""
        if source == "semkit":
            with semkit.connect(db) as database:
                n = database.import_collection(collection or "docs", file)
            if as_json:
                output.emit_json({"collection": collection or "docs", "imported": n})
            else:
                output.echo(f"imported {n:,} record(s) into '{collection or 'docs'}'")
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
            output.echo(f"imported {r.imported:,} record(s) from {r.source} into '{r.collection}' "
                                f"({r.dimensions}d {r.metric}, {r.model or 'own vectors'})")
            if r.hint:
                output.echo(f"  {r.hint}")

    @app.command()
    @argument("name", help="Collection name to serve the table as")
    @click.option("--table", required=True, help="The table, as SQL names it: documents, myschema.documents")
    @click.option("--id", "id_column", required=True, help="Its id column (integer, uuid or text; unique)")
    @click.option("--text", "text_column", required=True, help="Its text column")
    @click.option("--vector", "vector_column", required=True, help="Its vector(n) / halfvec(n) column")
    @click.option("--model", "-m", required=True, help="The model that made its vectors, or 'none'")
    @db_option
    @click.option("--metadata", help="A jsonb column holding metadata")
    @click.option("--column", multiple=True, help="Another column shown as a metadata field, filterable (repeatable)")
    @click.option("--fts", help="A tsvector column for keyword search")
    @click.option("--metric", help="cosine | dot | l2 (default: the vector index's, else cosine)")
    @click.option("--create-fts-index", is_flag=True, help="Add the keyword-search expression index to the table")
    @json_option
    def attach(
        name: str, table: str, id_column: str, text_column: str, vector_column: str, model: str, db: str,
        metadata: str | None, column: list[str] | None, fts: str | None, metric: str | None, create_fts_index: bool,
        as_json: bool
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
        output.echo(f"attached {attachment.display} as '{name}': {info['count']:,} row(s), "
                            f"{info.get('embedder') or '(own vectors)'}, {info['dimensions']}d {info['metric']}")
        if fts is None and not create_fts_index:
            from ..store.pg_attached import fts_index_sql

            output.echo("keyword search computes to_tsvector per query; to index it, run once:\n  "
                                f"{fts_index_sql(attachment)};\n(or attach again with --create-fts-index)")

    @app.command()
    @argument("collection", help="Collection to delete")
    @db_option
    @click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation")
    def drop(collection: str, db: str, yes: bool) -> None:
        """Delete a collection and everything in it."""
        if not yes:
            click.confirm(f"Delete collection '{collection}' from {redact_uri(db)}?", abort=True)
        with semkit.connect(db) as database:
            database.drop(collection)
        output.echo(f"dropped '{collection}'")

