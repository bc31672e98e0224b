"""CLI commands about models: embed, similarity, models, cost, cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import InvalidInput
from ..types import Kind
from . import output
from .commands import Group, argument
from .inputs import gather_texts
from .options import json_option

model_option = click.option(
    "--model", "-m", default="local", help="Model spec: local, local:/path, openai:NAME, cohere:NAME, http:NAME")


def _load(model: str, cache: bool, dimensions: int | None, base_url: str | None) -> Any:
    import semkit

    options: dict[str, Any] = {}
    if dimensions:
        options["dimensions"] = dimensions
    if base_url:
        options["base_url"] = base_url
    return semkit.model(model, cache=cache, **options)


def embed_batched(embedder: Any, texts: list[str], kind: Kind, batch_size: int = 2048,
                  show_progress: bool = True) -> tuple[np.ndarray, int, int]:
    """Embed in slices so a progress bar can move; returns (vectors, truncated, cached)."""
    parts, truncated, cached = [], 0, 0
    with output.progress_bar(len(texts), "embedding", show_progress and len(texts) > batch_size) as advance:
        for start in range(0, len(texts), batch_size):
            result = embedder.embed_result(texts[start:start + batch_size], kind)
            parts.append(result.vectors)
            truncated += result.truncated
            cached += result.cached
            advance(len(result.vectors))
    return np.concatenate(parts), truncated, cached


def write_vectors(path: Path, texts: list[str], vectors: np.ndarray, model_id: str) -> None:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, vectors)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        dims = vectors.shape[1]
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        table = pa.table({
            "text": pa.array(texts, type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dims),
        }).replace_schema_metadata({"semkit.model": model_id})
        pq.write_table(table, path)
    elif suffix in (".jsonl", ".json"):
        with path.open("w", encoding="utf-8") as fh:
            for text, vec in zip(texts, vectors, strict=True):
                fh.write(json.dumps({"text": text, "embedding": vec.tolist()}, ensure_ascii=False) + "\n")
    else:
        raise InvalidInput(f"unknown output format {path.suffix!r}: use .npy, .parquet or .jsonl")


def register(app: Group) -> None:
    cache_app = app.subgroup("cache", help="The persistent embedding cache (never pay twice).")

    @app.command()
    @argument("texts", nargs=-1, help="Texts to embed ('-' or none: read stdin)")
    @click.option("--file", "-f", help="Embed each non-blank line of this file")
    @model_option
    @click.option("--kind", default="document", help="document or query")
    @click.option("--out", "-o", type=click.Path(path_type=Path), help="Write .npy, .parquet or .jsonl")
    @click.option("--dimensions", type=int, help="Output dimensions (Matryoshka / API truncation)")
    @click.option("--base-url", help="Provider base URL (http:/openai:)")
    @click.option("--batch-size", type=click.IntRange(min=1), default=2048,
        help="Texts per call to the model (the progress bar moves per call). Local models "
             "sort each call's texts by length: smaller calls pad more and run slower")
    @click.option("--no-cache", is_flag=True, help="Bypass the embedding cache")
    @json_option
    def embed(
        texts: list[str] | None, file: str | None, model: str, kind: str, out: Path | None, dimensions: int | None,
        base_url: str | None, batch_size: int, no_cache: bool, as_json: bool
    ) -> None:
        """Embed texts; print JSON lines (--json), a summary, or write a file (--out)."""
        items = gather_texts(texts, file)
        embedder = _load(model, not no_cache, dimensions, base_url)
        vectors, truncated, cached = embed_batched(
            embedder, items, kind, batch_size  # type: ignore[arg-type]
        )
        if out is not None:
            write_vectors(out, items, vectors, embedder.id)
        summary = {"model": embedder.id, "count": len(items), "dimensions": int(vectors.shape[1]),
                   "truncated": truncated, "cached": cached, "cost": embedder.meter.as_dict(),
                   "out": str(out) if out else None}
        if as_json:
            if out is None:
                for text, vec in zip(items, vectors, strict=True):
                    output.emit_json({"text": text, "embedding": vec.tolist()})
            else:
                output.emit_json(summary)
            return
        if out is None:
            rows = [(t if len(t) <= 60 else t[:57] + "...", f"{np.linalg.norm(v):.4f}",
                     " ".join(f"{x:+.4f}" for x in v[:4]) + " ...") for t, v in zip(items, vectors, strict=True)]
            output.table(f"{embedder.id}: {len(items)} x {vectors.shape[1]}", ["text", "norm", "first values"], rows)
        else:
            output.echo(f"wrote {len(items)} x {vectors.shape[1]} vectors to {out} ({embedder.id})")
        if truncated:
            output.note(f"{truncated} text(s) were longer than the model's context and were truncated", "yellow")
        if cached:
            output.note(f"{cached} of {len(items)} served from the cache")

    @app.command()
    @argument("a", help="First text")
    @argument("b", help="Second text")
    @model_option
    @json_option
    def similarity(a: str, b: str, model: str, as_json: bool) -> None:
        """Cosine similarity of two texts."""
        embedder = _load(model, True, None, None)
        va, vb = embedder.embed([a, b])
        score = float(np.dot(va, vb) / (np.linalg.norm(va) * np.linalg.norm(vb)))
        if as_json:
            output.emit_json({"a": a, "b": b, "model": embedder.id, "cosine": score})
        else:
            output.echo(f"{score:.4f}")

    @app.command()
    @click.option("--provider", help="Only this provider")
    @click.option("--language", "-l", help="Only models trained for this language (ISO 639-1 code: es, de, zh...)")
    @json_option
    def models(provider: str | None, language: str | None, as_json: bool) -> None:
        """The model catalogue, and which models work offline right now."""
        from ..models import availability, catalog, languages

        code = languages.check_code(language) if language is not None else None
        entries = [m for m in catalog.MODELS if provider in (None, m.provider)
                   and (code is None or m.covers_language(code))]
        rows: list[dict[str, Any]] = []
        for m in entries:
            usable, why = availability.status(m)
            rows.append({
                "spec": m.spec, "dimensions": m.dimensions,
                "truncations": list(m.matryoshka_dimensions), "any_dimensions": m.any_dimensions,
                "max_tokens": m.max_tokens, "price_per_million": m.price_per_million,
                "languages": _languages_json(m.languages),
                "license": m.license, "local": m.local, "usable_now": usable, "how": why,
                "query_prefix": m.query_prefix, "document_prefix": m.document_prefix,
                "quality": [{"task": s.task, "metric": s.metric, "value": s.value, "source": s.source}
                            for s in m.quality],
            })
        if as_json:
            output.emit_json(rows)
            return
        title = "semkit models (quality: MTEB, x100)"
        if code is not None:
            title += f", trained for {languages.LANGUAGE_NAMES[code]} ({code})"
        output.table(
            title,
            ["model", "dims", "ctx", "$/1M", "languages", "STSb", "SciFact", "B77", "usable now"],
            [(r["spec"], _dims(r), r["max_tokens"], f"{r['price_per_million']:.2f}", _languages_cell(r["languages"]),
              _q(r, "STSBenchmark"), _q(r, "SciFact"), _q(r, "Banking77Classification"),
              ("yes, " if r["usable_now"] else "no, ") + r["how"]) for r in rows],
            justify_right=("dims", "ctx", "$/1M", "STSb", "SciFact", "B77"),
        )
        if any(not r["usable_now"] and r["local"] for r in rows):
            output.echo(
                "Local models that are not downloaded: on a machine with internet, "
                "`huggingface-cli download ORG/NAME --local-dir ./models/NAME`, then use "
                "`--model local:./models/NAME`. Nothing is downloaded at run time."
            )

    @app.command()
    @argument("paths", nargs=-1, help="Files or folders ('-' = stdin)")
    @click.option("--model", "-m", multiple=True, help="Model spec; repeat to compare")
    @click.option("--dimensions", "--dims", type=int, help="Store vectors at these dimensions")
    @click.option("--vectors", help="Plan for this many vectors instead of reading files (10M, 250k, 1e6)")
    @click.option("--backend", multiple=True, help="Only this backend: embedded, pgvector, qdrant-local; repeatable")
    @click.option("--dtype", multiple=True, help="Only this dtype: float32, float16, int8, binary; repeatable")
    @click.option("--text-bytes", type=float, help="Mean bytes of text per record (default: the corpus's, else ~110)")
    @click.option("--price-per-gb-month", type=float, help="Storage $ per GB-month")
    @click.option("--chunk-tokens", type=int, help="Estimate one vector per chunk of this many tokens")
    @json_option
    def cost(
        paths: list[str] | None, model: list[str] | None, dimensions: int | None, vectors: str | None,
        backend: list[str] | None, dtype: list[str] | None, text_bytes: float | None, price_per_gb_month: float | None,
        chunk_tokens: int | None, as_json: bool
    ) -> None:
        """Tokens, embedding $ and storage per model, before spending anything; with --vectors,
        disk, RAM and $/month per backend and dtype for a planned collection size."""
        from .. import capacity
        from .. import cost as cost_mod

        if vectors is not None:
            if paths:
                raise InvalidInput("pass either files/folders to read, or --vectors N to plan a size, not both")
            if chunk_tokens is not None:
                raise InvalidInput("--chunk-tokens needs files to read; with --vectors the count is given")
            count = parse_count(vectors)
            dims = dimensions or _catalog_dims(model)
            rows = capacity.estimate_all(count, dims, backends=backend, dtypes=dtype, text_bytes=text_bytes,
                                         price_per_gb_month=price_per_gb_month)
            if as_json:
                output.emit_json({"vectors": count, "dimensions": dims, "capacity": [r.as_dict() for r in rows],
                                  "measurements": capacity.provenance()})
                return
            _capacity_table(f"{count:,} vectors x {dims} dims", rows, with_model=False)
            return
        if not paths:
            raise InvalidInput("nothing to estimate: pass files or folders ('-' for stdin), or --vectors N "
                               "--dims D to plan a collection size")
        specs = model or [
            "local", "openai:text-embedding-3-small", "openai:text-embedding-3-large", "cohere:embed-v4.0"
        ]
        kwargs: dict[str, Any] = {"chunk_tokens": chunk_tokens}
        if price_per_gb_month is not None:
            kwargs["price_per_gb_month"] = price_per_gb_month
        if dimensions is not None:
            kwargs["dimensions"] = {s: dimensions for s in specs}
        report = cost_mod.estimate(paths, specs, **kwargs)
        # Each vector stores its text (or chunk): the corpus's bytes per vector price the full-text indexes.
        plans = [(r, capacity.estimate_all(
            r.vectors, r.dimensions, backends=backend, dtypes=dtype or ["float32"],
            text_bytes=text_bytes if text_bytes is not None else report.text_bytes / r.vectors if r.vectors else None,
            price_per_gb_month=report.price_per_gb_month)) for r in report.models]
        for warning in report.warnings:
            output.note(f"warning: {warning}", "yellow")
        if as_json:
            out = report.as_dict()
            out["capacity"] = [{"model": r.model, **e.as_dict()} for r, rows in plans for e in rows]
            out["measurements"] = capacity.provenance()
            output.emit_json(out)
            return
        output.table(
            f"cost of embedding {report.files} file(s), {report.text_bytes:,} bytes of text",
            ["model", "tokens", "embed $", "vectors", "dims", "float32", "float16", "int8", "binary",
             "$/month f32"],
            [(r.model, f"{r.tokens:,}" + (" ~" if r.estimated else ""), f"{r.embedding_dollars:.4f}", f"{r.vectors:,}",
              r.dimensions, _bytes(r.storage_bytes["float32"]), _bytes(r.storage_bytes["float16"]),
              _bytes(r.storage_bytes["int8"]), _bytes(r.storage_bytes["binary"]),
              f"{r.storage_dollars_per_month['float32']:.4f}") for r in report.models],
            justify_right=("tokens", "embed $", "vectors", "dims", "float32", "float16", "int8", "binary",
                           "$/month f32"),
        )
        if any(r.estimated for r in report.models):
            output.note("~ = estimated token count (no tokenizer for that model is available offline)")
        output.echo("The columns above are raw vector bytes; measured on-disk size per backend "
                            "(ids, texts, metadata, indexes included):")
        _capacity_table(None, [(r.model, e) for r, rows in plans for e in rows], with_model=True)

    @cache_app.command("stats")
    @json_option
    def cache_stats(as_json: bool) -> None:
        """Where the cache is, how big, and what it holds per model."""
        from ..models.cache import EmbeddingCache

        stats = EmbeddingCache.open().stats()
        if as_json:
            output.emit_json(stats)
            return
        output.echo(f"cache: {stats.path}\nentries: {stats.entries:,}\nsize: {_bytes(stats.bytes)}")
        if stats.per_fingerprint:
            output.table(None, ["model fingerprint", "entries"], sorted(stats.per_fingerprint.items()),
                         justify_right=("entries",))

    @cache_app.command("clear")
    @click.option("--model", help="Only entries of this fingerprint (see `cache stats`)")
    @json_option
    def cache_clear(model: str | None, as_json: bool) -> None:
        """Delete cached vectors (all, or one model's)."""
        from ..models.cache import EmbeddingCache

        removed = EmbeddingCache.open().clear(model)
        if as_json:
            output.emit_json({"removed": removed})
        else:
            output.echo(f"removed {removed:,} cached vector(s)")


def parse_count(text: str) -> int:
    """``10M``, ``2.5k``, ``1B``, ``1e6``, ``10_000`` or ``10,000`` as an integer."""
    raw = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}.get(raw[-1:].lower(), 1)
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number)
    except ValueError:
        raise InvalidInput(f"cannot read {text!r} as a vector count; write e.g. 10M, 250k, 1e6 or 10000") from None
    if not value >= 0 or value * scale > 10**15:
        raise InvalidInput(f"the vector count must be between 0 and 10^15, got {text!r}")
    return round(value * scale)


def _catalog_dims(models: list[str] | None) -> int:
    """The native dimensions of the one model given, for ``--vectors`` without ``--dims``."""
    from ..models import catalog
    from ..models.registry import parse_spec

    if not models or len(models) != 1:
        raise InvalidInput("with --vectors, pass --dims D (or one --model whose dimensions are known)")
    info = catalog.find(*parse_spec(models[0]))
    if info is None or not info.dimensions:
        raise InvalidInput(f"the dimensions of {models[0]!r} are unknown; pass --dims D")
    return info.dimensions


def _capacity_table(title: str | None, rows: list[Any], with_model: bool) -> None:
    from .. import capacity

    pairs = rows if with_model else [(None, e) for e in rows]
    columns = (["model"] if with_model else []) + ["backend", "dtype", "disk", "bytes/vector", "x raw",
                                                   "RAM", "$/month", "stored as"]
    body = [((model,) if with_model else ()) + (
        e.backend, e.dtype, _bytes(e.disk_bytes), f"{e.bytes_per_vector:,.0f}", f"{e.overhead_factor:.2f}",
        "-" if e.ram_bytes is None else _bytes(e.ram_bytes) + ("*" if e.ram_basis.startswith("derived") else ""),
        f"{e.dollars_per_month:,.2f}" if e.dollars_per_month >= 0.01 or not e.dollars_per_month
        else f"{e.dollars_per_month:.2g}", e.stored_as) for model, e in pairs]
    output.table(title, columns, body, justify_right=("disk", "bytes/vector", "x raw", "RAM", "$/month"))
    if not pairs:
        return
    price = pairs[0][1].price_per_gb_month
    prov = capacity.provenance()
    derived = any(e.ram_basis.startswith("derived") for _, e in pairs)
    output.echo(
        f"$/month at ${price:g} per GB-month (--price-per-gb-month). Measured {prov['date']} by "
        f"`{prov['command']}`. RAM: resident memory measured with the store open"
        + ("; * = derived: the HNSW index, to keep cached." if derived else ".")
    )
    seen: set[str] = set()
    for _, e in pairs:
        for note in e.notes:
            if note not in seen:
                seen.add(note)
                output.echo(f"note: {e.backend}: {note}")


def _dims(row: dict[str, Any]) -> str:
    if row["any_dimensions"]:
        return f"{row['dimensions']} (1-{row['dimensions']})"
    if row["truncations"]:
        return f"{row['dimensions']} ({','.join(map(str, row['truncations']))})"
    return str(row["dimensions"])


def _languages_json(codes: tuple[str, ...]) -> list[str] | str | None:
    """ISO 639-1 codes; ``"multilingual"`` for ~100+ languages with no published list; ``None``
    when unknown."""
    from ..models.catalog import MULTILINGUAL

    if not codes:
        return None
    return "multilingual" if codes == MULTILINGUAL else list(codes)


def _languages_cell(codes: list[str] | str | None) -> str:
    if codes is None:
        return "?"
    if isinstance(codes, str):
        return "~100"
    return ",".join(codes) if len(codes) <= 3 else f"{len(codes)}"


def _q(row: dict[str, Any], task: str) -> str:
    for s in row["quality"]:
        if s["task"] == task:
            return f"{s['value']:.2f}"
    return "-"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
