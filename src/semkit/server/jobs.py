"""Background jobs: long work (large upserts, clustering, duplicate search...) that a client
starts, then polls for progress and result.

Jobs run one at a time on their own thread (the machine's cores are what they share; two
jobs at once would each take twice as long). Waiting jobs are taken round-robin by owner, so
one key's 500 queued jobs delay another key's job by at most one job, not 500; and a key may
have at most ``max_per_owner`` jobs queued or running (``TooManyJobs``, 429). A job's
function gets a ``Progress`` it may update (``done``/``total``; upserts report rows, apps
that have no progress report stay indeterminate) and may check ``cancelled`` between steps.
Jobs live in memory: the last ``keep`` finished jobs are kept, and a restart forgets them (their effects on the database
stay, since every write goes through the library).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidInput, SemkitError

log = logging.getLogger(__name__)

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCancelled(SemkitError):
    """The job was cancelled by its owner."""


class TooManyJobs(SemkitError):
    """The caller already has as many jobs queued or running as one key may."""

    retryable = True


@dataclass
class Progress:
    done: int = 0
    total: int | None = None
    cancelled: bool = False

    def update(self, done: int, total: int | None = None) -> None:
        if self.cancelled:
            raise JobCancelled("the job was cancelled")
        self.done = done
        if total is not None:
            self.total = total


@dataclass
class Job:
    id: str
    kind: str
    owner: str
    collection: str | None
    state: State = "queued"
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def as_dict(self, *, with_result: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "collection": self.collection, "state": self.state,
            "progress": {"done": self.progress.done, "total": self.progress.total,
                         "fraction": (self.progress.done / self.progress.total
                                      if self.progress.total else None)},
            "error": self.error, "created": self.created, "started": self.started,
            "finished": self.finished,
        }
        if with_result:
            out["result"] = self.result
        return out


Work = Callable[[Progress], Any]

DEFAULT_MAX_PER_OWNER = 16


class JobManager:
    def __init__(self, *, keep: int = 200, max_per_owner: int = DEFAULT_MAX_PER_OWNER,
                 on_change: Callable[[dict[str, int]], None] | None = None,
                 describe_error: Callable[[BaseException], dict[str, Any]] | None = None) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Waiting work by owner; owners are served in turn (the first key of the dict is next).
        self._waiting: OrderedDict[str, deque[tuple[Job, Work]]] = OrderedDict()
        self._closed = False
        self._keep = keep
        self.max_per_owner = max_per_owner
        self._on_change = on_change
        self._describe = describe_error or (lambda exc: {"message": str(exc), "type": type(exc).__name__})
        self._worker = threading.Thread(target=self._serve, name="semkit-job", daemon=True)
        self._worker.start()

    def submit(self, kind: str, owner: str, collection: str | None, fn: Work) -> Job:
        job = Job(id=uuid.uuid4().hex[:16], kind=kind, owner=owner, collection=collection)
        with self._lock:
            if self._closed:
                raise InvalidInput("the server is shutting down; no new jobs")
            active = sum(1 for j in self._jobs.values() if j.owner == owner and j.finished is None)
            if active >= self.max_per_owner:
                raise TooManyJobs(f"this key has {active} jobs queued or running, the most one key may have; "
                                  "wait for some to finish (GET /v1/jobs) or cancel them")
            self._jobs[job.id] = job
            self._prune()
            self._waiting.setdefault(owner, deque()).append((job, fn))
            self._wake.notify()
        self._changed()
        return job

    def get(self, job_id: str, owner: str | None) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise InvalidInput(f"no job {job_id!r}; GET /v1/jobs lists yours")
        return job

    def list(self, owner: str | None) -> list[Job]:
        with self._lock:
            return [j for j in reversed(self._jobs.values()) if owner is None or j.owner == owner]

    def cancel(self, job_id: str, owner: str | None) -> Job:
        job = self.get(job_id, owner)
        job.progress.cancelled = True
        if job.state == "queued":
            job.state = "cancelled"
            job.finished = time.time()
            self._changed()
        return job

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.progress.cancelled = True
            self._waiting.clear()
            self._wake.notify_all()
        self._worker.join(timeout=60)

    def _next(self) -> tuple[Job, Work] | None:
        """The next job to run, round-robin by owner; None once closed."""
        with self._lock:
            while not self._waiting and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            owner, queue = next(iter(self._waiting.items()))
            item = queue.popleft()
            del self._waiting[owner]
            if queue:
                self._waiting[owner] = queue  # back of the line
            return item

    def _serve(self) -> None:
        while (item := self._next()) is not None:
            self._run(*item)

    def _run(self, job: Job, fn: Work) -> None:
        if job.progress.cancelled:
            return
        job.state = "running"
        job.started = time.time()
        self._changed()
        try:
            job.result = fn(job.progress)
            job.state = "succeeded"
        except JobCancelled:
            job.state = "cancelled"
        except BaseException as exc:  # recorded on the job for its owner to read
            if not isinstance(exc, SemkitError):
                log.exception("job %s (%s) failed", job.id, job.kind)
            job.error = self._describe(exc)
            job.state = "failed"
        finally:
            job.finished = time.time()
            self._changed()

    def _prune(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished is not None]
        for job_id in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]

    def _changed(self) -> None:
        if self._on_change is None:
            return
        counts: dict[str, int] = {s: 0 for s in ("queued", "running", "succeeded", "failed", "cancelled")}
        with self._lock:
            for j in self._jobs.values():
                counts[j.state] += 1
        self._on_change(counts)
