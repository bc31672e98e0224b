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
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations (minus deallocations) of container objects between first-generation collections."""

MIDDLE_THRESHOLD = 20
"""First-generation collections between second-generation ones."""

OLD_THRESHOLD = 10
"""Second-generation collections between full ones (CPython also waits until the objects
that survived since the last full collection are 25% of those it kept)."""


def settle_heap() -> None:
    """Collect once, freeze what survives, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
