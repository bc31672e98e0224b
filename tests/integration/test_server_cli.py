"""``semkit keys`` and ``semkit serve`` as a user runs them: real subprocesses, a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semkit.server.heap import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD, malloc_trim
from tests.support.server import free_port, secret_of, wait_until_serving

pytestmark = pytest.mark.slow


def semkit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "semkit", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        raise AssertionError(f"semkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    out = semkit("keys", "create", "--db", str(db), "--collections", "docs,faq", "--read-only", "--name", "ci")
    key = out.stdout.strip()
    assert key.startswith("sk-semkit-") and len(key) > 40
    assert "only time the key is shown" in out.stderr and key not in out.stderr
    stored = (db / "keys.json").read_text()
    secret = secret_of(key)
    assert len(secret) >= 40 and key not in stored and secret not in stored
    listed = json.loads(semkit("keys", "list", "--db", str(db), "--json").stdout)
    assert len(listed) == 1 and listed[0]["collections"] == ["docs", "faq"] and listed[0]["read_only"] is True
    assert "hash" not in listed[0] and key not in json.dumps(listed)
    semkit("keys", "revoke", listed[0]["id"], "--db", str(db))
    assert json.loads(semkit("keys", "list", "--db", str(db), "--json").stdout)[0]["revoked"]
    bad = semkit("keys", "revoke", "nope", "--db", str(db), check=False)
    assert bad.returncode != 0 and "semkit keys list" in bad.stderr


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    proc = semkit("serve", "--db", str(tmp_path / "kb"), "--host", "0.0.0.0", "--no-auth", check=False)
    assert proc.returncode != 0 and "only allowed on a loopback address" in proc.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    db = tmp_path / "kb"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--db", str(db), "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        yield url, db, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_binds_loopback_and_honours_keys_created_while_running(
        served: tuple[str, Path, subprocess.Popen[str]]) -> None:
    url, db, proc = served
    assert httpx.get(f"{url}/v1/collections").status_code == 401
    key = semkit("keys", "create", "--db", str(db)).stdout.strip()
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
    assert c.post("/v1/collections/docs/upsert",
                  json={"records": [{"id": "1", "text": "hello world"}]}).json()["count"] == 1
    assert c.post("/v1/collections/docs/search", json={"query": "greetings"}).json()["hits"][0]["id"] == "1"
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert "127.0.0.1" in err and key not in err


def test_serve_model_threads_reach_the_models_of_the_server(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--db", str(tmp_path / "kb"), "--port", str(port),
                             "--no-auth", "--log-level", "warning", "--model-workers", "2", "--model-threads", "3",
                             "--model-nice", "7", "--store-threads", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "SEMKIT_LOCAL_THREADS"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        # Healthz answers once the served model is loaded, with the settings it was built with.
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        assert health["model"] == {"workers": 2, "threads": 3} and health["store"] == {"threads": 3}
        # The start-up objects are frozen out of the collector's walks and young collections are
        # rarer (server/heap.py): tens of thousands of objects (modules, app, model) frozen.
        assert health["gc"]["thresholds"] == [YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD]
        assert health["gc"]["frozen"] > 10_000, health["gc"]
        # And it watches its resident set to give freed heap memory back (glibc's malloc_trim).
        assert health["heap"]["trim"] is (malloc_trim is not None), health["heap"]
        # --model-nice: the threads that ran a model call lowered their own priority by that much.
        httpx.post(f"{url}/v1/embeddings", json={"model": "local", "input": ["a", "b"]}, timeout=60).raise_for_status()
        nices = [int(Path(t, "stat").read_text().rsplit(")", 1)[1].split()[16])
                 for t in Path(f"/proc/{proc.pid}/task").iterdir()]
        assert 7 in nices and 0 in nices, nices  # model workers at 7, the event loop at 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
