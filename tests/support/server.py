"""A real uvicorn server on 127.0.0.1 and a free port, in a thread of the test process.

A thread (not a subprocess) so tests share the process's loaded model; the server is real all
the same: real sockets, real HTTP, the app built by ``semkit.server.create_app``.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.semkit


class _ThreadServer:
    def __init__(self, app: Any, port: int, log_level: str) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on",
                                access_log=False)
        self.server = uvicorn.Server(config)
        # Signal handlers can only be installed from the main thread; the test runner owns it.
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test server stopped while starting (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def serve(db_uri: str, *, log_level: str = "warning", **options: Any) -> Iterator[RunningServer]:
    """Run ``create_app(db_uri, **options)`` on a free loopback port for the ``with`` block.

    Unless ``cache_dir`` is given, the server gets a fresh embedding cache of its own (never the
    user's: a module-scoped server starts before the per-test cache fixture applies)."""
    from semkit.server import create_app

    with tempfile.TemporaryDirectory(prefix="semkit-server-cache-") as tmp:
        options.setdefault("cache_dir", tmp)
        app = create_app(db_uri, **options)
        port = free_port()
        server = _ThreadServer(app, port, log_level)
        server.start()
        try:
            yield RunningServer(f"http://127.0.0.1:{port}", app)
        finally:
            server.stop()


def secret_of(key: str) -> str:
    """The secret part of an API key, parsed as the server parses it."""
    from semkit.server.auth import split_key

    parts = split_key(key)
    assert parts is not None, f"not a semkit key: {key[:12]}…"
    return parts[1]


def wait_for_job(client: Any, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` until the job leaves queued/running; its final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout:g} s")


def wait_until_serving(proc: Any, url: str, timeout: float = 120.0) -> None:
    """Block until a ``semkit serve`` subprocess answers ``/healthz``; its stderr in the error if
    it exits or does not answer within ``timeout`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"semkit serve did not start:\n{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
