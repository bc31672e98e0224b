"""Conventions a user expects of the CLI and the server, checked as a user meets them: real
subprocesses (``semkit --version``, ``semkit embed`` with stderr in a file, ``semkit serve``
configured by ``SEMKIT_HOST`` / ``SEMKIT_PORT`` / ``SEMKIT_KEYS``), a real server answering
``/docs`` from local assets, process metrics on ``/metrics`` and an OpenAI alias."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import semkit
from tests.support.server import free_port, wait_until_serving

pytestmark = pytest.mark.slow


def semkit_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "semkit", *args], capture_output=True, text=True, input=stdin,
                          timeout=300, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"semkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_version_is_the_package_version() -> None:
    assert semkit_cli("--version").stdout.strip() == f"semkit {semkit.__version__}"


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    texts = "\n".join(f"sentence number {i} about progress" for i in range(20))
    proc = semkit_cli("embed", "--batch-size", "4", "--no-cache", "--out", str(tmp_path / "v.npy"), stdin=texts)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("embedding:")]
    # Batches of 4 out of 20: a line at each fifth, never a bar's escape codes.
    assert [re.match(r"embedding: (\d+)/20 \((\d+)%\)", line).groups() for line in lines] == [  # type: ignore[union-attr]
        ("4", "20"), ("8", "40"), ("12", "60"), ("16", "80"), ("20", "100")]
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``semkit serve`` configured by environment variables only (plus an OpenAI alias)."""
    folder = tmp_path_factory.mktemp("conventions")
    port = free_port()
    env = {"SEMKIT_DB": str(folder / "kb"), "SEMKIT_HOST": "127.0.0.1", "SEMKIT_PORT": str(port),
           "SEMKIT_KEYS": str(folder / "elsewhere" / "keys.json")}
    key = semkit_cli("keys", "create", env=env).stdout.strip()
    assert (folder / "elsewhere" / "keys.json").exists() and not (folder / "kb" / "keys.json").exists()
    proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--log-level", "warning",
                             "--served-model-name", "text-embedding-3-small=local"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_reads_host_port_and_keys_from_the_environment(served: tuple[str, str]) -> None:
    url, key = served
    assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
    models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    by_id = {m["id"]: m for m in models["data"]}
    assert by_id["text-embedding-3-small"]["root"] == "local"
    assert by_id["local"]["dimensions"] == 384 and by_id["local"]["context_length"] == 256


def test_swagger_ui_is_served_offline_from_the_package(served: tuple[str, str]) -> None:
    from swagger_ui_bundle import swagger_ui_path

    url, _ = served
    page = httpx.get(f"{url}/docs", timeout=30)
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    # Every script and stylesheet the page loads is on this server, none on a CDN.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        served_bytes = httpx.get(f"{url}{asset}", timeout=30).content
        assert served_bytes == (Path(str(swagger_ui_path)) / asset.rsplit("/", 1)[1]).read_bytes()
    assert "/openapi.json" in page.text and httpx.get(f"{url}/openapi.json", timeout=30).status_code == 200


def test_metrics_include_the_process(served: tuple[str, str]) -> None:
    url, key = served
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("process_")}
    assert values["process_resident_memory_bytes"] > 50 * 1024 * 1024  # the model alone is more
    assert values["process_cpu_seconds_total"] > 0
    assert values["process_open_fds"] >= 3
