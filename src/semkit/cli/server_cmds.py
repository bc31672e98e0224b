"""CLI: ``semkit serve`` and ``semkit keys create|list|revoke``."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError, MissingDependency
from ..redaction import redact_uri
from . import output
from .commands import Group, argument
from .options import db_option, json_option

if TYPE_CHECKING:
    from ..server.auth import KeyStore

keys_option = click.option(
    "--keys", type=click.Path(path_type=Path), envvar="SEMKIT_KEYS", show_envvar=True,
    help="Key file (default: keys.json in an embedded db folder, else under the cache dir)")


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


def register(app: Group) -> None:
    keys_app = app.subgroup("keys", help="API keys for `semkit serve`: shown once, stored as a hash.")

    @app.command()
    @db_option
    @click.option("--host", default="127.0.0.1", envvar="SEMKIT_HOST", show_envvar=True,
        help="Address to bind (loopback by default)")
    @click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, envvar="SEMKIT_PORT", show_envvar=True)
    @keys_option
    @click.option("--no-auth", is_flag=True, help="Serve without API keys (loopback only)")
    @click.option("--model", "-m", multiple=True,
        help="Model to serve on /v1/embeddings and for new collections (repeatable)")
    @click.option("--served-model-name", multiple=True, metavar="ALIAS=MODEL",
        help="Also answer to ALIAS for MODEL, e.g. text-embedding-3-small=local for clients that only "
             "accept OpenAI names (repeatable)")
    @click.option("--rate-limit", type=float, default=0.0, help="Requests per second per key (0 = unlimited)")
    @click.option("--burst", type=int, default=0, help="Rate-limit burst (0 = twice the rate)")
    @click.option("--max-body-mb", type=float, default=16.0, help="Largest request body, MB")
    @click.option("--cors-origin", multiple=True, help="Allow this browser origin (repeatable; CORS is off by default)")
    @click.option("--index-root", type=click.Path(path_type=Path), multiple=True,
        help="Let clients index files under this folder (repeatable; off by default)")
    @click.option("--no-cache", is_flag=True, help="Don't use the embedding cache")
    @click.option("--model-workers", type=click.IntRange(min=1), default=2, help="Model calls running at once")
    @click.option("--model-threads", type=click.IntRange(min=0), default=0,
        help="Threads per local model call (0 = one each when --model-workers is 2 or more, "
             "else the model's default; SEMKIT_LOCAL_THREADS wins)")
    @click.option("--model-nice", type=click.IntRange(min=0, max=19), default=10,
        help="Niceness the model worker threads add to their own (Linux), so the event loop answers "
             "refusals and /healthz first under load (0 = same priority)")
    @click.option("--store-threads", type=click.IntRange(min=0), default=0,
        help="Store calls (searches, writes) running at once (0 = one per core for a folder or "
             "memory:// store, four per core for a database server)")
    @click.option("--queue", multiple=True, metavar="CLASS=N",
        help="Bound of a route class's queue, beyond which requests get 503 + Retry-After: "
             "embeddings (texts, default 256), search (requests, 64), writes (32), jobs (16); repeatable. "
             "A class set here keeps its bound; the others adapt (--queue-target)")
    @click.option("--queue-target", multiple=True, metavar="[CLASS=]SECONDS",
        help="Adaptive queue bounds: each class admits about SECONDS x its measured throughput "
             "(default 0.5; SECONDS alone sets every class, CLASS=SECONDS one class, "
             "0 = fixed bounds); repeatable")
    @click.option("--rerank", metavar="windows|FOLDER",
        help="Load a reranker once for searches with rerank: true (and the UI's Rerank box): 'windows' = "
             "each collection's own model on the hits' sentences, or a local cross-encoder FOLDER")
    @click.option("--log-level", default="info", help="uvicorn log level")
    def serve(
        db: str, host: str, port: int, keys: Path | None, no_auth: bool, model: list[str] | None,
        served_model_name: list[str] | None, rate_limit: float, burst: int, max_body_mb: float,
        cors_origin: list[str] | None, index_root: list[Path] | None, no_cache: bool, model_workers: int,
        model_threads: int, model_nice: int, store_threads: int,
        queue: list[str] | None, queue_target: list[str] | None, rerank: str | None, log_level: str
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
                        model_concurrency=model_workers, model_threads=model_threads, model_nice=model_nice,
                        store_concurrency=store_threads,
                        ).with_queue_targets(queue_target or ()).with_queue_bounds(queue or ())
        application = create_app(db, auth=not no_auth, keys_path=keys, limits=limits,
                                 models=model or ["local"], cache=not no_cache, cors_origins=cors_origin or (),
                                 index_roots=index_root or (),
                                 served_model_names=parse_served_model_names(served_model_name or []),
                                 rerank=rerank, settle_heap=True)
        if not no_auth:
            store = application.state.semkit.keys
            if not store.active():
                output.note(f"no API keys in {store.path}: every request will get 401. "
                            "Create one with `semkit keys create`.", "yellow")
        output.note(f"semkit serving {redact_uri(db)} on http://{host}:{port} (UI: http://{host}:{port}/ui/)")
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=log_level == "debug")

    @keys_app.command("create")
    @db_option
    @keys_option
    @click.option("--name", default="", help="A label for the key")
    @click.option("--collections", help="Comma-separated collections (default: all)")
    @click.option("--read-only", is_flag=True, help="May read and search, never write")
    @click.option("--rate-limit", type=float, help="Requests per second for this key")
    @json_option
    def keys_create(
        db: str, keys: Path | None, name: str, collections: str | None, read_only: bool, rate_limit: float | None,
        as_json: bool
    ) -> None:
        """Create a key and print it once (only its hash is stored)."""
        store = _key_store(db, keys)
        cols = collections.split(",") if collections is not None else None
        key, record = store.create(name=name, collections=cols, read_only=read_only,
                                   rate_limit=rate_limit)
        if as_json:
            output.emit_json({"key": key, **record.public()})
            return
        output.echo(key)
        scope = ", ".join(record.collections) if record.collections is not None else "all collections"
        output.note(f"key {record.id} ({scope}{', read-only' if read_only else ''}) stored as a hash in "
                            f"{store.path}; this is the only time the key is shown")

    @keys_app.command("list")
    @db_option
    @keys_option
    @json_option
    def keys_list(db: str, keys: Path | None, as_json: bool) -> None:
        """List keys (ids and scopes; the keys themselves are not stored)."""
        records = [k.public() for k in _key_store(db, keys).all()]
        if as_json:
            output.emit_json(records)
            return
        if not records:
            output.echo("no keys")
        for k in records:
            scope = ",".join(k["collections"]) if k["collections"] is not None else "*"
            flags = " read-only" if k["read_only"] else ""
            state = f" REVOKED {k['revoked']}" if k["revoked"] else ""
            output.echo(f"{k['id']}  {k['name'] or '-'}  collections={scope}{flags}  "
                                f"created {k['created']}{state}")

    @keys_app.command("revoke")
    @argument("key_id", help="The key's id (from `semkit keys list`) or the key")
    @db_option
    @keys_option
    def keys_revoke(key_id: str, db: str, keys: Path | None) -> None:
        """Revoke a key; a running server refuses it from its next request."""
        record = _key_store(db, keys).revoke(key_id)
        output.note(f"revoked {record.id}")
