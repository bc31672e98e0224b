"""The server against a hostile client and a careless operator: symlinks out of --index-root,
DNS rebinding on a key-less server, probing server paths through /cost, a broken key file,
and request fields without limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import serve, wait_for_job


def _error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]




def test_a_symlink_inside_an_index_root_cannot_lead_out(tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    (root / "notes.txt").write_text("Bread needs flour, water, salt and yeast.", encoding="utf-8")
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("The vault combination is 31-41-59.", encoding="utf-8")
    (root / "innocent.txt").symlink_to(secret)
    with serve(str(tmp_path / "kb"), auth=False, index_roots=[root]) as s, \
            httpx.Client(base_url=s.url, timeout=120) as c:
        assert c.post("/v1/collections", json={"name": "kb"}).status_code == 201
        # Named directly, the link resolves outside: refused before any job starts.
        r = c.post("/v1/collections/kb/index", json={"paths": [str(root / "innocent.txt")]})
        assert r.status_code == 403
        # Reached by walking the root: skipped and reported, and its text never served.
        job = wait_for_job(c, c.post("/v1/collections/kb/index", json={"paths": [str(root)]}).json()["id"])
        assert job["state"] == "succeeded", job
        assert job["result"]["indexed"] == ["notes.txt"]
        failed = job["result"]["failed"]
        assert any("innocent.txt" in str(f) and "outside" in str(f) for f in failed), failed
        assert str(secret) not in str(job)
        hits = c.post("/v1/collections/kb/search", json={"query": "vault combination", "k": 5}).json()["hits"]
        assert all("31-41-59" not in (h["text"] or "") for h in hits)


def test_a_keyless_server_answers_only_loopback_host_names(tmp_path: Path) -> None:
    with serve(str(tmp_path / "kb"), auth=False, preload=False) as s:
        for host in ("attacker.example", "attacker.example:80", "192.168.1.10", "localhost.attacker.example"):
            r = httpx.post(f"{s.url}/v1/collections", json={"name": "x", "model": None, "dimensions": 4},
                           headers={"Host": host})
            assert r.status_code == 403 and _error(r)["code"] == "host_not_allowed", host
        assert httpx.get(f"{s.url}/v1/collections").json() == []  # nothing was created
        for host in ("localhost", "127.0.0.1", f"127.0.0.1:{s.url.rsplit(':', 1)[1]}", "[::1]:8000"):
            assert httpx.get(f"{s.url}/v1/collections", headers={"Host": host}).status_code == 200, host
    # With keys, the key is the protection: other host names (a reverse proxy's) are fine.
    with serve(str(tmp_path / "kb2"), preload=False) as s:
        key, _ = s.state.keys.create(name="k")
        r = httpx.get(f"{s.url}/v1/collections", headers={"Host": "semkit.example", "Authorization": f"Bearer {key}"})
        assert r.status_code == 200


def test_cost_cannot_probe_server_folders(tmp_path: Path) -> None:
    existing = tmp_path / "some-model-folder"
    existing.mkdir()
    (existing / "config.json").write_text("{}", encoding="utf-8")
    with serve(str(tmp_path / "kb"), preload=False) as s:
        reader, _ = s.state.keys.create(name="reader", read_only=True)
        admin, _ = s.state.keys.create(name="admin")
        with httpx.Client(base_url=s.url, timeout=120, headers={"Authorization": f"Bearer {admin}"}) as c:
            assert c.post("/v1/collections", json={"name": "docs", "model": None, "dimensions": 4}).status_code == 201
        answers = []
        with httpx.Client(base_url=s.url, timeout=120, headers={"Authorization": f"Bearer {reader}"}) as c:
            for folder in (existing, tmp_path / "no-such-folder"):
                r = c.post("/v1/collections/docs/cost", json={"models": [f"local:{folder}"]})
                answers.append((r.status_code, _error(r)["code"], _error(r)["message"].replace(str(folder), "F")))
            assert c.post("/v1/collections/docs/cost", json={"models": ["openai:text-embedding-3-small"]}
                          ).status_code == 200
        assert answers[0] == answers[1] and answers[0][0] == 404  # the same answer: nothing learned


def test_a_broken_key_file_is_the_operators_problem_not_the_callers(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    with serve(str(tmp_path / "kb"), keys_path=keys, preload=False) as s:
        key, _ = s.state.keys.create(name="k")
        assert httpx.get(f"{s.url}/v1/collections", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        keys.write_text("{ this is not json", encoding="utf-8")
        r = httpx.get(f"{s.url}/v1/collections", headers={"Authorization": "Bearer sk-whatever"})
        assert r.status_code == 503 and _error(r)["code"] == "key_file_unreadable"
        assert str(tmp_path) not in r.text and "keys.json" not in r.text


def test_request_fields_are_bounded(tmp_path: Path) -> None:
    with serve(str(tmp_path / "kb"), auth=False) as s, httpx.Client(base_url=s.url, timeout=120) as c:
        assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
        c.post("/v1/collections/docs/upsert", json={"records": [{"id": "a", "text": "bread and butter"}]})
        r = c.post("/v1/collections/docs/search", json={"query": "x" * 1_400_000})
        assert r.status_code == 422, r.text[:200]
        r = c.post("/v1/collections/docs/context", json={"query": "x" * 9000})
        assert r.status_code == 422
        r = c.post("/v1/collections/docs/classify", json={"labels": ["a", "b"], "texts": ["t"] * 5000})
        assert r.status_code == 422
        r = c.post("/v1/collections/docs/classify",
                   json={"examples": {"a": ["x"] * 1500, "b": ["y"] * 1500}, "texts": ["t"]})
        assert r.status_code == 413
        r = c.post("/v1/collections/docs/context", json={"query": "bread", "k": 10**6})
        assert r.status_code == 422


def test_the_reviewed_poison_inputs_are_4xx_and_poison_nothing(tmp_path: Path) -> None:
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"k": deep}
    with serve(str(tmp_path / "kb"), auth=False, preload=False) as s, httpx.Client(base_url=s.url, timeout=120) as c:
        assert c.post("/v1/collections", json={"name": "v", "model": None, "dimensions": 3}).status_code == 201
        ok = c.post("/v1/collections/v/upsert", json={"records": [{"id": "a", "vector": [1, 0, 0]}]})
        assert ok.status_code == 200
        bodies = [
            {"records": [{"id": "p", "vector": [0, 1, 0], "metadata": deep}]},
            {"records": [{"id": "p", "vector": [0, 1, 0], "metadata": {"n": 10**400}}]},
            {"records": [{"id": "p", "vector": [0, 1, 0], "metadata": {"s": "\ud800"}}]},
            {"records": [{"id": "\ud800", "vector": [0, 1, 0]}]},
        ]
        for body in bodies:
            raw = json.dumps(body).encode()  # lone surrogates travel as \\ud800 escapes
            r = c.post("/v1/collections/v/upsert", content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        for where in ({"n": 10**400}, {"s": "\ud800"}, {"$or": [{"n": i} for i in range(5000)]}):
            raw = json.dumps({"vector": [1, 0, 0], "where": where}).encode()
            r = c.post("/v1/collections/v/search", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (r.status_code, r.text[:200])
        r = c.post("/v1/collections/v/search", json={"vector": [1, 0, 0], "where": {"n": {"$in": list(range(3000))}}})
        assert r.status_code == 200
        # Nothing was half-written and every read path still answers.
        assert c.post("/v1/collections/v/count", json={}).json()["count"] == 1
        assert c.get("/v1/collections/v/records/a").status_code == 200
        assert c.post("/v1/collections/v/search", json={"vector": [1, 0, 0]}).status_code == 200
        assert c.post("/v1/collections/v/outliers", json={"k": 1}).status_code in (200, 422)
