"""The REST API on a real uvicorn server (127.0.0.1, free port) with the real bundled model."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from semkit.server.limits import Limits
from tests.support.server import RunningServer, secret_of, serve, wait_for_job

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "a", "text": "Neural networks learn by gradient descent.", "metadata": {"year": 2019, "topic": "ml"}},
    {"id": "b", "text": "Simmer the tomato sauce with garlic and basil.", "metadata": {"year": 2021, "topic": "food"}},
    {"id": "c", "text": "Transformers rely on self-attention over tokens.", "metadata": {"year": 2022, "topic": "ml"}},
    {"id": "d", "text": "Knead the bread dough and let it rise.", "metadata": {"year": 2020, "topic": "food"}},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("api") / "kb"
    limits = Limits(max_body_bytes=200_000, max_embedding_inputs=50, max_upsert_records=20, max_k=100)
    with serve(str(db), limits=limits) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    key, _ = server.state.keys.create(name="admin")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
        assert c.post("/v1/collections", json={"name": "faq"}).status_code == 201
        r = c.post("/v1/collections/docs/upsert", json={"records": DOCS})
        assert r.status_code == 200, r.text
        assert r.json() == {"count": 4, "embedded": 4, "unchanged": 0}
        yield c


def client(server: RunningServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


# --- auth -------------------------------------------------------------------------------------

def test_health_and_ui_need_no_key_everything_else_does(server: RunningServer, admin: httpx.Client) -> None:
    anon = client(server, None)
    assert anon.get("/healthz").json()["status"] == "ok"
    assert anon.get("/ui/").status_code == 200 and "<title>semkit</title>" in anon.get("/ui/").text
    assert anon.get("/ui/app.js").status_code == 200
    for method, path, body in [("GET", "/v1/collections", None),
                               ("POST", "/v1/collections/docs/search", {"query": "x"}),
                               ("POST", "/v1/embeddings", {"input": "x", "model": "local"}),
                               ("GET", "/metrics", None)]:
        r = anon.request(method, path, json=body)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "semkit keys create" in error(r)["message"]
    bad = client(server, "sk-semkit-000000000000-notarealsecret")
    r = bad.get("/v1/collections")
    assert r.status_code == 401 and error(r)["code"] == "invalid_api_key"
    assert "notarealsecret" not in r.text


def test_scoped_and_read_only_keys(server: RunningServer, admin: httpx.Client) -> None:
    key, _ = server.state.keys.create(collections=["faq"], read_only=True)
    c = client(server, key)
    assert [x["name"] for x in c.get("/v1/collections").json()] == ["faq"]  # docs is not listed
    r = c.post("/v1/collections/docs/search", json={"query": "bread"})
    assert r.status_code == 403 and "may not use collection 'docs'" in error(r)["message"]
    assert c.post("/v1/collections/faq/search", json={"query": "bread"}).status_code == 200
    r = c.post("/v1/collections/faq/upsert", json={"records": [{"id": "x", "text": "hello"}]})
    assert r.status_code == 403 and error(r)["code"] == "read_only_key"
    assert c.delete("/v1/collections/faq").status_code == 403
    assert c.post("/v1/collections", json={"name": "faq2"}).status_code == 403
    # read-only keys may still embed (nothing is written)
    assert c.post("/v1/embeddings", json={"input": "hello", "model": "local"}).status_code == 200


def test_revoked_key_is_refused_at_once(server: RunningServer, admin: httpx.Client) -> None:
    key, record = server.state.keys.create()
    c = client(server, key)
    assert c.get("/v1/collections").status_code == 200
    server.state.keys.revoke(record.id)
    assert c.get("/v1/collections").status_code == 401


def test_key_file_holds_only_hashes(server: RunningServer, admin: httpx.Client) -> None:
    key, _ = server.state.keys.create()
    raw = Path(server.state.keys.path).read_text()
    secret = secret_of(key)
    assert len(secret) >= 40 and key not in raw and secret not in raw
    assert Path(server.state.keys.path).stat().st_mode & 0o077 == 0


def test_rate_limit_answers_429_with_retry_after(server: RunningServer, admin: httpx.Client) -> None:
    key, _ = server.state.keys.create(rate_limit=0.2)  # bucket of 1, refilled after 5 s: robust to a slow machine
    c = client(server, key)
    codes = [c.get("/v1/collections") for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert error(limited[0])["type"] == "rate_limit_error"


# --- collections --------------------------------------------------------------------------------

def test_collection_lifecycle_and_records(admin: httpx.Client) -> None:
    r = admin.post("/v1/collections", json={"name": "tmp", "model": None, "dimensions": 3, "metric": "dot"})
    assert r.status_code == 201 and r.json()["embedder"] is None and r.json()["metric"] == "dot"
    assert admin.post("/v1/collections", json={"name": "tmp"}).status_code == 409
    recs = [{"id": "v1", "vector": [1, 0, 0], "text": "x"}, {"id": "v2", "vector": [0, 1, 0]}]
    assert admin.post("/v1/collections/tmp/upsert", json={"records": recs}).status_code == 200
    hits = admin.post("/v1/collections/tmp/search", json={"vector": [1, 0.1, 0], "k": 1}).json()["hits"]
    assert hits[0]["id"] == "v1"
    got = admin.post("/v1/collections/tmp/get", json={"ids": ["v2", "nope", "v1"], "include_vectors": True}).json()
    assert [g["id"] for g in got] == ["v2", "v1"] and got[1]["vector"] == [1.0, 0.0, 0.0]
    r = admin.post("/v1/collections/tmp/upsert", json={"records": [{"id": "v3", "vector": [1, 2]}]})
    assert r.status_code == 422 and error(r)["code"] == "dimension_mismatch"
    assert "expected vectors of 3" in error(r)["message"]
    r = admin.post("/v1/collections/tmp/upsert", json={"records": [{"id": "v3", "text": "no vector"}]})
    assert r.status_code == 422 and "has no model" in error(r)["message"]
    assert admin.post("/v1/collections/tmp/delete", json={"ids": ["v1"]}).json() == {"deleted": 1}
    assert admin.get("/v1/collections/tmp").json()["count"] == 1
    assert admin.delete("/v1/collections/tmp").json() == {"dropped": "tmp"}
    r = admin.get("/v1/collections/tmp")
    assert r.status_code == 404 and error(r)["code"] == "collection_not_found"


def test_upsert_is_idempotent_and_keeps_unchanged_texts(admin: httpx.Client) -> None:
    r = admin.post("/v1/collections/docs/upsert", json={"records": DOCS[:2]})
    assert r.json() == {"count": 2, "embedded": 0, "unchanged": 2}
    assert admin.get("/v1/collections/docs/records/a").json()["metadata"] == DOCS[0]["metadata"]
    assert admin.get("/v1/collections/docs/records/zzz").status_code == 404


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_search_modes_filters_and_snippets(admin: httpx.Client, mode: str) -> None:
    r = admin.post("/v1/collections/docs/search", json={"query": "how do neural networks learn", "mode": mode, "k": 2})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["id"] == "a"
    assert hits[0]["text"] == DOCS[0]["text"]
    r = admin.post("/v1/collections/docs/search",
                   json={"query": "cooking", "mode": mode, "where": {"topic": "food", "year": {"$gte": 2021}}})
    assert {h["id"] for h in r.json()["hits"]} <= {"b"}


@pytest.mark.parametrize("body", [
    {"query": "bread and sauce", "mode": "hybrid", "k": 3},
    {"query": "bread and sauce", "mode": "hybrid", "k": 3, "diversity": 0.5},
    {"query": "attention", "mode": "keyword", "k": 2},
    {"query": "learning", "mode": "vector", "k": 2, "where": {"topic": "ml"}},
])
def test_search_answers_what_semkit_apps_search_gives(server: RunningServer, admin: httpx.Client,
                                                      body: dict[str, Any]) -> None:
    # One search path: the route is semkit.apps.search over the same collection, nothing else.
    from semkit import apps

    r = admin.post("/v1/collections/docs/search", json=body)
    assert r.status_code == 200, r.text
    diversity = body.get("diversity", 0.0)
    expected = apps.search(server.state.collection("docs"), body["query"], k=body["k"], mode=body["mode"],
                           where=body.get("where"), mmr=1.0 - diversity if diversity else None)
    got = r.json()
    assert got["mode"] == body["mode"]
    assert [(h["id"], h["snippet"]) for h in got["hits"]] == [(h.id, h.as_dict()["snippet"]) for h in expected]
    assert [h["score"] for h in got["hits"]] == pytest.approx([h.score for h in expected])


def test_search_with_diversity_returns_k_distinct(admin: httpx.Client) -> None:
    r = admin.post("/v1/collections/docs/search", json={"query": "food", "diversity": 0.5, "k": 3})
    ids = [h["id"] for h in r.json()["hits"]]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_validation_errors_are_422_with_clear_messages(admin: httpx.Client) -> None:
    r = admin.post("/v1/collections/docs/search", json={"query": "x", "where": {"year": {"$nope": 1}}})
    assert r.status_code == 422 and error(r)["code"] == "invalid_filter" and "$nope" in error(r)["message"]
    r = admin.post("/v1/collections/docs/search", json={"query": "x", "k": 0})
    assert r.status_code == 422 and "k:" in error(r)["message"] and error(r)["param"] == "k"
    r = admin.post("/v1/collections/docs/search", json={"query": "x", "k": 101})
    assert r.status_code == 422 and "limit of 100" in error(r)["message"]
    r = admin.post("/v1/collections/docs/search", json={})
    assert r.status_code == 422 and "query" in error(r)["message"]
    twice = [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]
    r = admin.post("/v1/collections/docs/upsert", json={"records": twice})
    assert r.status_code == 422 and "more than once" in error(r)["message"]
    r = admin.post("/v1/collections/docs/upsert", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    # nothing was lost to the bad requests
    assert admin.get("/v1/collections/docs").json()["count"] == 4


def test_limits_answer_413(admin: httpx.Client) -> None:
    big = "word " * 50_000  # 250 kB > the 200 kB body limit
    r = admin.post("/v1/embeddings", json={"input": big, "model": "local"})
    assert r.status_code == 413 and "limit" in error(r)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield b'{"model": "local", "input": "'
        for _ in range(100):
            yield b"word " * 1000
        yield b'"}'

    r = admin.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in error(r)["message"]
    r = admin.post("/v1/embeddings", json={"input": ["x"] * 51, "model": "local"})
    assert r.status_code == 400 and "limit is 50" in error(r)["message"]  # OpenAI's status for too many inputs
    r = admin.post("/v1/collections/docs/upsert", json={"records": [{"id": str(i), "text": "t"} for i in range(21)]})
    assert r.status_code == 413 and error(r)["code"] == "too_many_records"


def test_k_and_id_limits_hold_in_every_route(server: RunningServer, admin: httpx.Client) -> None:
    limits = server.state.limits
    over_k = limits.max_k + 1
    for path, body in [("search", {"query": "x", "k": over_k}),
                       ("recommend", {"liked": ["a"], "k": over_k}),
                       ("context", {"query": "x", "k": over_k})]:
        r = admin.post(f"/v1/collections/docs/{path}", json=body)
        assert r.status_code == 422 and f"limit of {limits.max_k}" in error(r)["message"], (path, r.text)
    many = [str(i) for i in range(limits.max_ids + 1)]
    for path, body in [("get", {"ids": many}), ("delete", {"ids": many}),
                       ("recommend", {"liked": many[:1], "disliked": many[1:]})]:
        r = admin.post(f"/v1/collections/docs/{path}", json=body)
        assert r.status_code == 413 and error(r)["code"] == "too_many_ids", (path, r.text)
        assert f"the limit is {limits.max_ids}" in error(r)["message"]
    assert admin.get("/v1/collections/docs").json()["count"] == 4  # the refused delete deleted nothing


# --- apps -----------------------------------------------------------------------------------------

def test_apps(admin: httpx.Client) -> None:
    rep = admin.post("/v1/collections/docs/dedup", json={"threshold": 0.99}).json()
    assert rep["items"] == 4 and rep["groups"] == []
    recs = admin.post("/v1/collections/docs/recommend", json={"liked": ["b"], "k": 1}).json()
    assert recs[0]["id"] == "d"  # the other cooking text
    by_text = admin.post("/v1/collections/docs/recommend", json={"liked_texts": ["a recipe for dinner"], "k": 2}).json()
    assert {r["id"] for r in by_text} == {"b", "d"}  # the cooking texts, from a liked text alone
    nothing = admin.post("/v1/collections/docs/recommend", json={"k": 2})
    assert nothing.status_code == 422, nothing.text
    clusters = admin.post("/v1/collections/docs/cluster", json={"k": 2}).json()
    groups = {frozenset(i["id"] for i in clusters["items"] if i["cluster"] == c["id"]) for c in clusters["clusters"]}
    assert groups == {frozenset("ac"), frozenset("bd")}
    assert all("text" in i for i in clusters["items"])
    preds = admin.post("/v1/collections/docs/classify", json={"labels": ["cooking", "machine learning"]}).json()
    assert {p["id"]: p["label"] for p in preds} == {"a": "machine learning", "b": "cooking", "c": "machine learning",
                                                    "d": "cooking"}
    few = admin.post("/v1/collections/docs/classify", json={
        "examples": {"food": ["pasta with tomatoes", "baking a cake"],
                     "ai": ["deep learning models", "training a classifier"]},
        "texts": ["roast the vegetables"]}).json()
    assert few[0]["label"] == "food"
    out = admin.post("/v1/collections/docs/outliers", json={"top": 2, "k": 2}).json()
    assert len(out) == 2 and out[0]["rank"] == 1
    ctx = admin.post("/v1/collections/docs/context",
                     json={"query": "how do transformers work", "max_tokens": 200}).json()
    assert ctx["passages"][0]["id"] == "c" and ctx["used_tokens"] <= 200
    cost = admin.post("/v1/collections/docs/cost", json={"models": ["local", "openai:text-embedding-3-small"]}).json()
    assert cost["texts"] == 4 and {m["model"] for m in cost["models"]} == {"local", "openai:text-embedding-3-small"}
    assert any(m["spec"] == "local:all-MiniLM-L6-v2" and m["served"] for m in admin.get("/v1/catalog").json()["models"])




def test_background_jobs_report_progress_and_results(server: RunningServer, admin: httpx.Client) -> None:
    records = [{"id": f"bg{i}", "text": f"background record number {i} about topic {i % 3}"} for i in range(20)]
    assert admin.post("/v1/collections", json={"name": "bg"}).status_code == 201
    r = admin.post("/v1/collections/bg/upsert", json={"records": records, "background": True})
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "succeeded")
    job = wait_for_job(admin, r.json()["id"])
    assert job["state"] == "succeeded" and job["result"]["count"] == 20
    assert job["progress"] == {"done": 20, "total": 20, "fraction": 1.0}
    r = admin.post("/v1/collections/bg/cluster", json={"k": 3, "background": True})
    job = wait_for_job(admin, r.json()["id"])
    assert job["state"] == "succeeded" and job["result"]["k"] == 3
    assert any(j["id"] == job["id"] for j in admin.get("/v1/jobs").json())
    r = admin.post("/v1/collections/bg/cluster", json={"k": 50, "background": True})
    job = wait_for_job(admin, r.json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == "invalid_input" and "k=50" in job["error"]["message"]
    # jobs are private to the key that started them
    other, _ = server.state.keys.create()
    assert client(server, other).get(f"/v1/jobs/{job['id']}").status_code == 404
    r = admin.post("/v1/collections/missing/cluster", json={"background": True})
    assert r.status_code == 404


# --- server behaviour -----------------------------------------------------------------------------

def test_metrics_count_requests_embeddings_and_cache_hits(admin: httpx.Client) -> None:
    def value(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    before = admin.get("/metrics").text
    text = f"a sentence only this test embeds {time.time()}"
    admin.post("/v1/embeddings", json={"input": [text], "model": "local"})
    admin.post("/v1/embeddings", json={"input": [text], "model": "local"})
    after = admin.get("/metrics").text
    assert value(after, "semkit_embeddings_computed_total") - value(before, "semkit_embeddings_computed_total") == 1
    assert value(after, "semkit_embedding_cache_hits_total") - value(before, "semkit_embedding_cache_hits_total") == 1
    assert 'semkit_http_requests_total{method="POST",route="/v1/embeddings",status="200"}' in after
    assert "semkit_http_request_duration_seconds_bucket" in after


def test_cors_is_off_by_default(server: RunningServer, admin: httpx.Client) -> None:
    r = admin.options("/v1/collections", headers={"Origin": "http://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    r = admin.get("/v1/collections", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_when_configured(tmp_path: Path) -> None:
    with serve(str(tmp_path / "kb"), auth=False, cors_origins=["http://app.example"], preload=False) as s:
        r = httpx.options(f"{s.url}/v1/collections", headers={"Origin": "http://app.example",
                                                                "Access-Control-Request-Method": "GET"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        r = httpx.get(f"{s.url}/v1/collections", headers={"Origin": "http://other.example"})
        assert "access-control-allow-origin" not in r.headers


def test_secrets_never_reach_logs_or_errors(server: RunningServer, admin: httpx.Client,
                                            caplog: pytest.LogCaptureFixture) -> None:
    key, _ = server.state.keys.create(collections=["faq"])
    c = client(server, key)
    with caplog.at_level(logging.DEBUG):
        responses = [c.post("/v1/collections/docs/search", json={"query": "x"}),
                     c.get("/v1/collections/nope"),
                     client(server, key + "x").get("/v1/collections"),
                     c.post("/v1/collections/faq/search", json={"query": "x", "where": {"$or": 3}})]
    secret = secret_of(key)
    for r in responses:
        assert r.status_code >= 400 and secret not in r.text
    assert secret not in caplog.text


def test_error_bodies_are_redacted_by_the_one_redaction_helper() -> None:
    from semkit import errors
    from semkit.server.responses import describe_error, error_response

    leaky = errors.StoreError("cannot reach host=db user=me password=hunter22 (postgresql://me:s3cret@db/kb)")
    assert "hunter22" not in describe_error(leaky)["message"] and "s3cret" not in describe_error(leaky)["message"]
    body = error_response(500, str(leaky), "store_error").body.decode()
    assert "hunter22" not in body and "s3cret" not in body
    # A hint about the header keeps its placeholder: only real credentials are hidden.
    hint = "missing API key: send 'Authorization: Bearer <key>'"
    assert hint in error_response(401, hint, "missing_api_key").body.decode()


def test_no_auth_server_and_unknown_routes(tmp_path: Path) -> None:
    with serve(str(tmp_path / "kb"), auth=False, preload=False) as s:
        c = httpx.Client(base_url=s.url, timeout=120)
        assert c.get("/v1/collections").json() == []
        r = c.get("/v1/nothing-here")
        assert r.status_code == 404 and error(r)["code"] == "not_found"
        r = c.post("/v1/collections", json={"name": "x", "model": "openai:text-embedding-3-small"})
        assert r.status_code == 404 and "not served here" in error(r)["message"]


def test_server_side_indexing_only_inside_index_roots(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "install.md").write_text("# Install\n\nRun pip install semkit to install the package.\n")
    (root / "notes.txt").write_text("Bread needs flour, water, salt and yeast.")
    (tmp_path / "secret.txt").write_text("do not index me")
    with serve(str(tmp_path / "kb"), auth=False, index_roots=[root]) as s:
        c = httpx.Client(base_url=s.url, timeout=120)
        assert c.post("/v1/collections", json={"name": "kb"}).status_code == 201
        r = c.post("/v1/collections/kb/index", json={"paths": [str(tmp_path / "secret.txt")]})
        assert r.status_code == 403 and error(r)["code"] == "path_not_allowed"
        r = c.post("/v1/collections/kb/index", json={"paths": [str(root / ".." / "secret.txt")]})
        assert r.status_code == 403
        r = c.post("/v1/collections/kb/index", json={"paths": [str(root)]})
        assert r.status_code == 202
        job = wait_for_job(c, r.json()["id"])
        assert job["state"] == "succeeded", job
        assert sorted(job["result"]["indexed"]) == ["guide/install.md", "notes.txt"]
        assert job["progress"]["done"] == job["progress"]["total"] == 2
        hits = c.post("/v1/collections/kb/search", json={"query": "how to install", "k": 1}).json()["hits"]
        assert "pip install semkit" in hits[0]["text"]
    with serve(str(tmp_path / "kb2"), auth=False, preload=False) as s:
        httpx.post(f"{s.url}/v1/collections", json={"name": "kb"})
        r = httpx.post(f"{s.url}/v1/collections/kb/index", json={"paths": [str(root)]})
        assert r.status_code == 403 and "--index-root" in error(r)["message"]
