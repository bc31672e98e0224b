"""What one server holds for its routes (``app.state.semkit``): the database, the model pool
(each model loaded once, behind its micro-batcher), the key store, limits, metrics and
background jobs, and the open collections with their pooled models.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .. import errors
from ..collection import Collection, split_embedder_id
from ..database import connect
from ..models import catalog, registry
from .admission import Admission
from .auth import KeyStore, default_keys_path
from .jobs import Job, JobManager, Progress
from .limits import Limits, RateLimiter
from .metrics import Metrics
from .models import BatchedEmbedder, ModelPool
from .responses import describe_error

log = logging.getLogger("semkit.server")
T = TypeVar("T")

MAX_OPEN_COLLECTIONS = 256
"""Collections kept open between requests (a bounded cache, least recently used dropped first;
a dropped one re-opens on its next request). The model pool holds one entry per served model
and the job table ``JobManager(keep=200)`` finished jobs, so the server's memory stays flat
after warm-up whatever the clients do."""


class ServerState:
    def __init__(self, db_uri: str, *, auth: bool, keys_path: str | Path | None, limits: Limits,
                 models: Sequence[str], cache: bool, cache_dir: str | None,
                 index_roots: Sequence[str | Path] = (), aliases: Mapping[str, str] | None = None) -> None:
        self.db_uri = db_uri
        self.db = connect(db_uri)
        self.auth = auth
        self.keys = KeyStore(Path(keys_path) if keys_path else default_keys_path(db_uri))
        self.limits = limits
        self.metrics = Metrics()
        self.rate = RateLimiter(limits.rate_limit, limits.burst)
        self.admission = Admission(limits.queue_bounds(), self.metrics.registry,
                                   target_s=limits.queue_targets(), fixed=limits.fixed_queues)
        """The bounded queue of each route class (503 beyond it); see ``server/admission.py``."""
        self.pool = ModelPool(cache=cache, cache_dir=cache_dir, workers=limits.model_concurrency,
                              threads=limits.model_threads or (1 if limits.model_concurrency >= 2 else 0),
                              max_batch_texts=limits.max_batch_texts, metrics=self.metrics,
                              nice=limits.model_nice)
        self.served = tuple(models)
        self.aliases: dict[str, str] = {}
        """Extra model names (``--served-model-name ALIAS=MODEL``) -> the served spec each stands for."""
        for alias, target in (aliases or {}).items():
            self.add_alias(alias, target)
        self.index_roots = tuple(Path(r).resolve() for r in index_roots)
        self.jobs = JobManager(on_change=self._job_gauge, describe_error=describe_error)
        self.store_threads = limits.store_threads(db_uri)
        self.limiter = anyio.CapacityLimiter(self.store_threads)
        self.model_limiter = anyio.CapacityLimiter(limits.model_concurrency)
        """Model work done outside the text queue (image queries): as many at once as model calls."""
        self.reranker: Any = None
        """The reranker ``semkit serve --rerank`` loaded once (``rerank: true`` in a search uses it)."""
        self._collections: OrderedDict[str, Collection] = OrderedDict()
        """Open collections, least recently used first, at most ``MAX_OPEN_COLLECTIONS``."""
        self._open_lock = threading.Lock()

    # --- calling the library off the event loop ----------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking library code in a worker thread (at most ``store_threads`` at once)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run_model(self, fn: Callable[..., T], *args: Any) -> T:
        """Run model code (an image query's embedding) in a worker thread bounded by
        ``model_concurrency``, never holding one of the store threads ``run`` uses."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.model_limiter)

    async def start_job(self, kind: str, owner: str, collection: str, work: Callable[[Progress], Any]) -> Job:
        """Queue ``work`` on ``collection`` as a background job; a missing collection fails
        the request now rather than the job later."""
        await self.run(self.collection, collection)
        return self.jobs.submit(kind, owner, collection, work)

    # --- models ---------------------------------------------------------------------------------

    def served_spec(self, name: str) -> str:
        """The served model spec ``name`` designates (its spec, id, bare name or alias)."""
        for alias, spec in self.aliases.items():
            if alias.lower() == name.strip().lower():
                return spec
        wanted = split_embedder_id(name.strip())[0].lower()
        for spec in self.served:
            candidates = {spec.lower()}
            try:
                scheme, model_name = registry.parse_spec(spec)
            except errors.SemkitError:
                continue
            candidates |= {f"{scheme}:{model_name}".lower(), model_name.lower()}
            info = catalog.find(scheme, model_name)
            if info is not None:
                candidates |= {a.lower() for a in info.aliases}
                if info.hub_id:
                    candidates |= {info.hub_id.lower(), f"{scheme}:{info.hub_id}".lower()}
            if wanted in candidates:
                return spec
        raise errors.ModelNotAvailable(
            f"the model {name!r} is not served here; this server serves: {', '.join([*self.served, *self.aliases])} "
            "(GET /v1/models lists them)"
        )

    def add_alias(self, alias: str, target: str) -> None:
        """Serve the model ``target`` names under the extra name ``alias`` too (an OpenAI name for
        clients that accept no other); a ``target`` not served yet is served from now on."""
        alias, target = alias.strip(), target.strip()
        if not alias or not target:
            raise errors.ConfigError(f"--served-model-name needs ALIAS=MODEL, got {alias!r}={target!r}")
        if self.serves(alias):
            raise errors.ConfigError(f"--served-model-name {alias}: that name already designates the served "
                                     f"model {self.served_spec(alias)!r}; pick another alias")
        if not self.serves(target):
            self.served = (*self.served, target)
        self.aliases[alias] = self.served_spec(target)

    def serves(self, name: str) -> bool:
        try:
            self.served_spec(name)
        except errors.ModelNotAvailable:
            return False
        return True

    def model(self, name: str) -> BatchedEmbedder:
        return self.pool.for_spec(self.served_spec(name))

    # --- collections ----------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        """The open collection ``name``, with its model from the pool (re-opened when its spec
        changed, e.g. after a drop and re-create or a re-embed)."""
        spec = self.db.store.get_collection(name)
        if spec is None:
            raise errors.CollectionNotFound(
                f"no collection named {name!r}; GET /v1/collections lists them, "
                "POST /v1/collections creates one"
            )
        with self._open_lock:
            cached = self._collections.get(name)
            if cached is not None and cached.spec == spec:
                self._collections.move_to_end(name)
                return cached
        model: Any = None
        if spec.embedder is not None:
            try:
                model = self.pool.for_id(spec.embedder)
            except errors.SemkitError as exc:
                # Vector search, get and delete work without the model; embedding will say why.
                log.warning("collection %r: model %s not loaded: %s", name, spec.embedder, exc)
        col = self.db.collection(name, model=model, create=False) if model is not None else \
            self.db.collection(name, create=False)
        with self._open_lock:
            self._collections[name] = col
            self._collections.move_to_end(name)
            while len(self._collections) > MAX_OPEN_COLLECTIONS:
                self._collections.popitem(last=False)  # re-opened on its next use
        return col

    def open_collection(self, name: str) -> Collection | None:
        """The collection ``name`` as last opened by ``collection``, without asking the store
        whether it still exists or changed (None if not open): a hint for the event loop, which
        must not wait on the store; ``collection`` is the checked answer."""
        with self._open_lock:
            return self._collections.get(name)

    def forget(self, name: str) -> None:
        with self._open_lock:
            self._collections.pop(name, None)

    def _job_gauge(self, counts: dict[str, int]) -> None:
        for state, n in counts.items():
            self.metrics.jobs.labels(state).set(n)

    def close(self) -> None:
        self.jobs.close()
        self.pool.close()
        self.db.close()
