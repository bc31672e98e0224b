"""Property-based fuzzing of the published OpenAPI schema with schemathesis: whatever the
generated input, the server never answers 5xx (a real server, real model, real store)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from semkit.server.limits import Limits
from tests.support.server import RunningServer, serve

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("fuzz") / "kb"
    # Small limits keep generated batches cheap; the rate limit is off so fuzzing is not throttled.
    limits = Limits(max_body_bytes=256_000, max_embedding_inputs=64, max_upsert_records=64, max_k=50)
    with serve(str(db), limits=limits) as running:
        yield running


@pytest.fixture(scope="module")
def auth(fuzz_server: RunningServer) -> dict[str, str]:
    key, _ = fuzz_server.state.keys.create(name="fuzz")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=fuzz_server.url, headers=headers, timeout=120) as c:
        c.post("/v1/collections", json={"name": "docs"})
        records = [{"id": f"d{i}", "text": f"document {i} about {w}", "metadata": {"n": i, "w": w}}
                   for i, w in enumerate(["cats", "dogs", "rain", "stocks", "bread", "stars", "rivers", "songs"])]
        assert c.post("/v1/collections/docs/upsert", json={"records": records}).status_code == 200
    return headers


def test_no_server_errors_on_generated_input(fuzz_server: RunningServer, auth: dict[str, str]) -> None:
    # schemathesis' own pytest plugin does not load under this pytest, so each operation's
    # strategy is driven with hypothesis directly; failures are collected across operations.
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(base_url=fuzz_server.url, headers=auth, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # one operation's failure must not hide the others'
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
