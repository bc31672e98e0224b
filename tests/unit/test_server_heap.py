"""The server's heap (server/heap.py): its garbage-collector settings and start-up warm-up, run in
a child process since the collector's thresholds and frozen objects belong to the whole process;
and the trimmer that gives freed memory back to the system."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semkit.server.heap import (
    MIDDLE_THRESHOLD,
    OLD_THRESHOLD,
    YOUNG_THRESHOLD,
    HeapTrimmer,
    anonymous_rss,
    malloc_trim,
)

_CHILD = """
import asyncio, gc, json, sys
import httpx
from semkit.server import create_app
from semkit.server import routes_openai

before = gc.get_threshold()
app = create_app(sys.argv[1], auth=False, settle_heap=sys.argv[2] == "1")

async def main():
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            health = (await client.get("/healthz")).json()
        print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                          "healthz_frozen": health["gc"]["frozen"], "counters": sorted(routes_openai._COUNTERS)}))

asyncio.run(main())
"""


def _started(tmp_path: Path, settle: bool) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / f"kb{int(settle)}"), "1" if settle else "0"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_settled_server_freezes_its_start_up_objects_and_collects_the_young_less_often(tmp_path: Path) -> None:
    settled = _started(tmp_path, True)
    assert settled["after"] == [YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD]
    assert settled["frozen"] > 10_000  # modules, the app, the loaded model's Python objects
    # /healthz reports the count taken when the heap was settled (counting again walks the whole
    # frozen list on the event loop, ~5 ms): frozen objects can still die, none are added.
    assert settled["healthz_frozen"] >= settled["frozen"] > 0.9 * settled["healthz_frozen"]
    # The served model's token counter is found at start-up, off the event loop, not by the
    # first request (loading its tokenizer held the loop 60-90 ms).
    assert settled["counters"] == ["local"]


def test_an_app_embedded_elsewhere_keeps_the_collector_as_it_was(tmp_path: Path) -> None:
    plain = _started(tmp_path, False)
    assert plain["after"] == plain["before"] and plain["frozen"] == 0 and plain["healthz_frozen"] == 0


# --- giving freed memory back (HeapTrimmer) ------------------------------------------------------

MB = 1 << 20


class _FakeHeap:
    """An anonymous resident set the test moves by hand; a trim gives back ``freeable`` bytes."""

    def __init__(self, rss: int) -> None:
        self.value, self.freeable, self.trims = rss, 0, 0

    def rss(self) -> int:
        return self.value

    def trim(self) -> None:
        self.trims += 1
        self.value -= self.freeable
        self.freeable = 0


def _trimmer(fake: _FakeHeap) -> HeapTrimmer:
    return HeapTrimmer(growth_bytes=4 * MB, rss=fake.rss, trim=fake.trim)


def test_the_trimmer_does_nothing_while_memory_is_steady() -> None:
    fake = _FakeHeap(200 * MB)
    trimmer = _trimmer(fake)
    assert not trimmer.due()  # the start-up mark
    fake.value += 3 * MB
    assert not trimmer.due()
    fake.value -= 10 * MB  # freed by itself: the mark follows it down
    assert not trimmer.due()
    fake.value += 5 * MB  # 5 MB above the lowered mark, not 2 above the start
    assert trimmer.due()


def test_a_trim_after_growth_gives_memory_back_and_counts_it() -> None:
    fake = _FakeHeap(200 * MB)
    trimmer = _trimmer(fake)
    trimmer.due()
    fake.value += 14 * MB
    fake.freeable = 12 * MB
    assert trimmer.due()
    assert trimmer.trim_now() == 12 * MB
    assert trimmer.snapshot()["trims"] == 1 and trimmer.snapshot()["released_mb"] == 12.0
    assert not trimmer.due()  # the mark is what was left: 202 MB


def test_memory_really_in_use_moves_the_mark_instead_of_trimming_again() -> None:
    fake = _FakeHeap(200 * MB)
    trimmer = _trimmer(fake)
    trimmer.due()
    fake.value += 30 * MB  # a growing collection: nothing to give back
    assert trimmer.due()
    assert trimmer.trim_now() == 0
    assert not trimmer.due() and fake.trims == 1


def test_the_trimmer_runs_as_a_task_and_stops_when_cancelled() -> None:
    fake = _FakeHeap(200 * MB)
    trimmer = HeapTrimmer(growth_bytes=4 * MB, check_every=0.01, rss=fake.rss, trim=fake.trim)

    async def main() -> None:
        task = asyncio.create_task(trimmer.run())
        await asyncio.sleep(0.05)
        fake.value += 8 * MB
        fake.freeable = 8 * MB
        for _ in range(200):
            if fake.trims:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert fake.trims == 1 and trimmer.released_bytes == 8 * MB


_FRAGMENTED = """
import json
from semkit.server.heap import HeapTrimmer, anonymous_rss
# 60 MB in 100 KB blocks (under glibc's mmap threshold: they live in the heap), all freed but
# the last, which pins the top of the heap so the allocator cannot return the rest by itself.
blocks = [bytearray(100_000) for _ in range(600)]
last = blocks[-1]
del blocks
trimmer = HeapTrimmer()
before = anonymous_rss()
released = trimmer.trim_now()
print(json.dumps({"available": trimmer.available, "before": before, "released": released, "last": len(last)}))
"""


@pytest.mark.skipif(malloc_trim is None or anonymous_rss() is None, reason="needs glibc's malloc_trim and /proc")
def test_a_real_trim_gives_freed_heap_memory_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["available"]
    assert got["released"] > 40 * MB, got
