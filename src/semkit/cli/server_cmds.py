"""CLI: ``semkit serve`` and ``semkit keys create|list|revoke``."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_DB
from ..errors import ConfigError, MissingDependency
from ..redaction import redact_uri
from . import output
from .options import DbOpt, JsonOpt

if TYPE_CHECKING:
    from ..server.auth import KeyStore

KeysOpt = Annotated[Path | None, typer.Option(
    "--keys", help="Key file (default: keys.json in an embedded db folder, else under the cache dir)",
    envvar="SEMKIT_KEYS")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_served_model_names(pairs: list[str]) -> dict[str, str]:
    """``--served-model-name ALIAS=MODEL`` values as alias -> model."""
    aliases: dict[str, str] = {}
    for pair in pairs:
        alias, sep, target = pair.partition("=")
        if not sep or not alias.strip() or not target.strip():
            raise ConfigError(f"--served-model-name takes ALIAS=MODEL (e.g. text-embedding-3-small=local), "
                              f"got {pair!r}")
        aliases[alias.strip()] = target.strip()
    return aliases


def _key_store(db: str, keys: Path | None) -> KeyStore:
    from ..server.auth import KeyStore, default_keys_path

    return KeyStore(keys or default_keys_path(db))


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="API keys for `semkit serve`: shown once, stored as a hash.",
                           no_args_is_help=True)
    app.add_typer(keys_app, name="keys")

    @app.command()
    def serve(
        db: DbOpt = DEFAULT_DB,
        host: Annotated[str, typer.Option(help="Address to bind (loopback by default)",
                                          envvar="SEMKIT_HOST")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, envvar="SEMKIT_PORT")] = 8000,
        keys: KeysOpt = None,
        no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys (loopback only)")] = False,
        model: Annotated[list[str] | None, typer.Option(
            "--model", "-m", help="Model to serve on /v1/embeddings and for new collections (repeatable)")] = None,
        served_model_name: Annotated[list[str] | None, typer.Option(
            "--served-model-name", metavar="ALIAS=MODEL",
            help="Also answer to ALIAS for MODEL, e.g. text-embedding-3-small=local for clients that only "
                 "accept OpenAI names (repeatable)")] = None,
        rate_limit: Annotated[float, typer.Option(help="Requests per second per key (0 = unlimited)")] = 0.0,
        burst: Annotated[int, typer.Option(help="Rate-limit burst (0 = twice the rate)")] = 0,
        max_body_mb: Annotated[float, typer.Option(help="Largest request body, MB")] = 16.0,
        cors_origin: Annotated[list[str] | None, typer.Option(
            "--cors-origin", help="Allow this browser origin (repeatable; CORS is off by default)")] = None,
        index_root: Annotated[list[Path] | None, typer.Option(
            "--index-root", help="Let clients index files under this folder (repeatable; off by default)")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Don't use the embedding cache")] = False,
        model_workers: Annotated[int, typer.Option(min=1, help="Model calls running at once")] = 2,
        model_threads: Annotated[int, typer.Option(
            min=0, help="Threads per local model call (0 = one each when --model-workers is 2 or more, "
            "else the model's default; SEMKIT_LOCAL_THREADS wins)")] = 0,
        queue: Annotated[list[str] | None, typer.Option(
            "--queue", metavar="CLASS=N",
            help="Bound of a route class's queue, beyond which requests get 503 + Retry-After: "
            "embeddings (texts, default 256), search (requests, 64), writes (32), jobs (16); repeatable. "
            "A class set here keeps its bound; the others adapt (--queue-target)")] = None,
        queue_target: Annotated[float, typer.Option(
            "--queue-target", min=0.0, metavar="SECONDS",
            help="Adaptive queue bounds: each class admits about SECONDS x its measured throughput "
            "(0 = fixed bounds)")] = 0.5,
        rerank: Annotated[str | None, typer.Option(
            "--rerank", metavar="windows|FOLDER",
            help="Load a reranker once for searches with rerank: true (and the UI's Rerank box): 'windows' = "
            "each collection's own model on the hits' sentences, or a local cross-encoder FOLDER")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    ) -> None:
        """Run the HTTP server: REST API, OpenAI-compatible /v1/embeddings, web UI at /ui/."""
        try:
            import uvicorn

            from ..server import create_app
            from ..server.limits import Limits
        except ImportError as exc:
            raise MissingDependency(exc.name or "fastapi", "server", "semkit serve") from None
        if no_auth and not is_loopback(host):
            raise ConfigError(f"--no-auth is only allowed on a loopback address, not {host!r}; "
                              "create a key with `semkit keys create` instead")
        limits = Limits(max_body_bytes=int(max_body_mb * 1024 * 1024), rate_limit=rate_limit, burst=burst,
                        model_concurrency=model_workers, model_threads=model_threads,
                        queue_target_seconds=queue_target).with_queue_bounds(queue or ())
        application = create_app(db, auth=not no_auth, keys_path=keys, limits=limits,
                                 models=model or ["local"], cache=not no_cache, cors_origins=cors_origin or (),
                                 index_roots=index_root or (),
                                 served_model_names=parse_served_model_names(served_model_name or []),
                                 rerank=rerank)
        if not no_auth:
            store = application.state.semkit.keys
            if not store.active():
                output.stderr.print(f"[yellow]no API keys in {store.path}: every request will get 401. "
                                    "Create one with `semkit keys create`.[/yellow]")
        output.stderr.print(f"semkit serving {redact_uri(db)} on http://{host}:{port} (UI: http://{host}:{port}/ui/)")
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=log_level == "debug")

    @keys_app.command("create")
    def keys_create(
        db: DbOpt = DEFAULT_DB,
        keys: KeysOpt = None,
        name: Annotated[str, typer.Option(help="A label for the key")] = "",
        collections: Annotated[str | None, typer.Option(help="Comma-separated collections (default: all)")] = None,
        read_only: Annotated[bool, typer.Option("--read-only", help="May read and search, never write")] = False,
        rate_limit: Annotated[float | None, typer.Option(help="Requests per second for this key")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a key and print it once (only its hash is stored)."""
        store = _key_store(db, keys)
        cols = collections.split(",") if collections is not None else None
        key, record = store.create(name=name, collections=cols, read_only=read_only,
                                   rate_limit=rate_limit)
        if as_json:
            output.emit_json({"key": key, **record.public()})
            return
        output.stdout.print(key, markup=False, highlight=False)
        scope = ", ".join(record.collections) if record.collections is not None else "all collections"
        output.stderr.print(f"key {record.id} ({scope}{', read-only' if read_only else ''}) stored as a hash in "
                            f"{store.path}; this is the only time the key is shown")

    @keys_app.command("list")
    def keys_list(db: DbOpt = DEFAULT_DB, keys: KeysOpt = None, as_json: JsonOpt = False) -> None:
        """List keys (ids and scopes; the keys themselves are not stored)."""
        records = [k.public() for k in _key_store(db, keys).all()]
        if as_json:
            output.emit_json(records)
            return
        if not records:
            output.stdout.print("no keys")
        for k in records:
            scope = ",".join(k["collections"]) if k["collections"] is not None else "*"
            flags = " read-only" if k["read_only"] else ""
            state = f" REVOKED {k['revoked']}" if k["revoked"] else ""
            output.stdout.print(f"{k['id']}  {k['name'] or '-'}  collections={scope}{flags}  "
                                f"created {k['created']}{state}", markup=False, highlight=False)

    @keys_app.command("revoke")
    def keys_revoke(
        key_id: Annotated[str, typer.Argument(help="The key's id (from `semkit keys list`) or the key")],
        db: DbOpt = DEFAULT_DB, keys: KeysOpt = None,
    ) -> None:
        """Revoke a key; a running server refuses it from its next request."""
        record = _key_store(db, keys).revoke(key_id)
        output.stderr.print(f"revoked {record.id}")
