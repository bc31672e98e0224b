"""The server's garbage-collector settings (server/heap.py) and its start-up warm-up: run in a
child process, since the collector's thresholds and frozen objects belong to the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from semkit.server.heap import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD

_CHILD = """
import asyncio, gc, json, sys
from semkit.server import create_app
from semkit.server import routes_openai

before = gc.get_threshold()
app = create_app(sys.argv[1], auth=False, settle_heap=sys.argv[2] == "1")

async def main():
    async with app.router.lifespan_context(app):
        print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                          "counters": sorted(routes_openai._COUNTERS)}))

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
    # The served model's token counter is found at start-up, off the event loop, not by the
    # first request (loading its tokenizer held the loop 60-90 ms).
    assert settled["counters"] == ["local"]


def test_an_app_embedded_elsewhere_keeps_the_collector_as_it_was(tmp_path: Path) -> None:
    plain = _started(tmp_path, False)
    assert plain["after"] == plain["before"] and plain["frozen"] == 0
