"""The server process's garbage collector: start-up objects frozen, young collections rarer.

CPython's cyclic collector stops every thread while it runs (it holds the GIL), and a full
collection walks every tracked object. Under load that was the server's longest pause: with
256 clients, requests live ~0.6 s, long enough to outlive the young generations (a first-
generation collection every ~1.5 ms at the default threshold of 700 allocations), so their
objects piled into the oldest generation and a full collection ran every ~1.6 s, taking
42-73 ms each on the event loop's thread or another. Every 503 that arrived meanwhile waited
it out: the p99 of a refusal was 105-145 ms at the client against ~2 ms inside the server.

So once the server has started (models loaded, routes built):

- everything alive is moved out of the collector's sight (``gc.freeze``): modules, classes,
  the FastAPI app and the model's Python objects are never garbage, and were ~75,000 of the
  objects every full collection walked;
- the first generation is collected after ``YOUNG_THRESHOLD`` allocations rather than 700,
  so a request's objects are freed by reference counting, as nearly all are, before any
  collection sees them, and few reach the oldest generation.

Measured on the same overload (256 clients, 15 s, 2 vCPUs), before and after: full
collections 12 of 52-62 ms each -> 2 of 20-27 ms; first-generation ones 1,432 -> 145;
``/healthz`` p99 51-61 -> 14-19 ms; the server's time from a refused request's headers to
its task starting, p99 83-103 -> 41-64 ms (the rest was the start's burst and a tokenizer
loaded by the first request, now at start-up).

Cyclic garbage still goes, later: at most ``YOUNG_THRESHOLD`` new container objects (a few
MB) wait for a collection. Only ``semkit serve`` does this (``create_app(settle_heap=True)``):
an application embedding the app keeps its own collector settings.

Freed memory goes back to the system (``HeapTrimmer``). glibc's allocator keeps what a
thread frees for that thread's arena to reuse; only the top of an arena is ever returned by
itself. A 10-minute soak (searches, embeddings, upserts that overwrite 2,000 ids, so the
collection stops growing) showed the server's resident set rising 8% over its last 5 minutes
while the heap in use stayed flat: every growth of the store's in-memory vector matrix
allocates the new array before the old one is freed (14 MB at 4,000 vectors; compaction did
too until it moved rows in place), and the dynamic mmap threshold had placed them inside the
arenas.
``malloc_trim(0)`` handed back 10-14 MB each time, in 0.3-6 ms. So the server reads its
anonymous resident set every ``TRIM_CHECK_S`` and trims once it has grown by
``TRIM_GROWTH_BYTES`` since the last trim: nothing is done while memory is steady, and memory
that is really in use (a growing collection) moves the mark up instead of trimming again.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 50_000
"""Allocations (minus deallocations) of container objects between first-generation collections."""

MIDDLE_THRESHOLD = 20
"""First-generation collections between second-generation ones."""

OLD_THRESHOLD = 10
"""Second-generation collections between full ones (CPython also waits until the objects
that survived since the last full collection are 25% of those it kept)."""


def settle_heap() -> int:
    """Collect once, freeze what survives, and raise the young generation's threshold; returns
    how many objects were frozen. It is counted here, once: ``gc.get_freeze_count`` walks the
    whole frozen list (75,000-85,000 objects spread over a server's heap: ~5 ms in a profile), so
    ``/healthz`` reports this figure instead of holding the event loop to count again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    return gc.get_freeze_count()


TRIM_CHECK_S = 5.0
"""How often the server reads its anonymous resident set (``/proc/self/status``, ~20 µs)."""

TRIM_GROWTH_BYTES = 4 << 20
"""Growth of the anonymous resident set since the last trim that makes the server trim again."""


def anonymous_rss() -> int | None:
    """This process's anonymous resident memory in bytes (``RssAnon``), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _load_malloc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def trim_all_arenas() -> None:
        # ctypes releases the GIL around the call: only threads allocating in the arena being
        # trimmed wait for it.
        trim(0)

    return trim_all_arenas


malloc_trim = _load_malloc_trim()


@dataclass
class HeapTrimmer:
    """Returns the allocator's free memory to the system after the resident set grew.

    ``rss`` and ``trim`` are injectable so the policy can be tested without a real heap.
    """

    growth_bytes: int = TRIM_GROWTH_BYTES
    check_every: float = TRIM_CHECK_S
    rss: Callable[[], int | None] = anonymous_rss
    trim: Callable[[], None] | None = field(default_factory=lambda: malloc_trim)
    mark: int | None = None
    """The anonymous resident set after the last trim (or at start)."""
    trims: int = 0
    released_bytes: int = 0
    trim_seconds: float = 0.0

    available: bool = field(init=False)
    """Whether this platform can trim (glibc and ``/proc``), found once: ``/healthz`` reports it."""

    def __post_init__(self) -> None:
        self.available = self.trim is not None and self.rss() is not None

    def due(self) -> bool:
        now = self.rss()
        if now is None:
            return False
        if self.mark is None or now < self.mark:
            self.mark = now  # freed by itself: the mark follows it down
            return False
        return now - self.mark >= self.growth_bytes

    def trim_now(self) -> int:
        """Trim once; the bytes the resident set shrank by. The mark moves to what is left."""
        assert self.trim is not None
        before = self.rss() or 0
        t0 = time.perf_counter()
        self.trim()
        took = time.perf_counter() - t0
        after = self.rss() or 0
        self.mark = after
        self.trims += 1
        self.trim_seconds += took
        released = max(0, before - after)
        self.released_bytes += released
        log.debug("heap trim released %.1f MB in %.1f ms", released / 2**20, took * 1000)
        return released

    async def run(self) -> None:
        """Check every ``check_every`` seconds until cancelled; trim in a worker thread."""
        if not self.available:
            return
        self.due()  # the start-up mark
        while True:
            await asyncio.sleep(self.check_every)
            if self.due():
                await asyncio.to_thread(self.trim_now)

    def snapshot(self) -> dict[str, float | int | bool]:
        """``/healthz``'s ``heap``: whether trimming runs, trims so far, MB they gave back and
        milliseconds they took, all told."""
        return {"trim": self.available, "trims": self.trims,
                "released_mb": round(self.released_bytes / 2**20, 1),
                "trim_ms": round(self.trim_seconds * 1000, 1)}
