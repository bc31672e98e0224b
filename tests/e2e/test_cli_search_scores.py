"""semkit search: scores in [0, 1], the --min-score cut-off (default and off), and a text query
on a collection of your own vectors. Real subprocess, real bundled model."""

from __future__ import annotations

import json

import pytest

from semkit.cli.search_cmds import DEFAULT_MIN_SCORE
from tests.e2e.test_cli import run

DOCS = [
    {"id": "perf", "text": "Speeding up a slow website: enable HTTP caching and compress images."},
    {"id": "cdn", "text": "A content delivery network serves files from servers near your visitors."},
    {"id": "plants", "text": "Water houseplants when the soil is dry, not on a fixed schedule."},
    {"id": "kyoto", "text": "In Kyoto the buses are slow at rush hour; walk or take the subway."},
    {"id": "pizza", "text": "Neapolitan pizza needs a very hot oven."},
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("cli-scores")
    src = root / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n", encoding="utf-8")
    path = str(root / "kb")
    run("upsert", str(src), "--db", path)
    own = root / "own.jsonl"
    own.write_text("\n".join(json.dumps(r) for r in [
        {"id": "v1", "text": "slow website", "vector": [1, 0, 0]}, {"id": "v2", "text": "pizza", "vector": [0, 1, 0]},
    ]) + "\n", encoding="utf-8")
    run("upsert", str(own), "--db", path, "--collection", "own", "--vector-field", "vector")
    return path


def search(db: str, *args: str) -> list[dict]:
    return json.loads(run("search", "how to fix slow website", "--db", db, "-k", "5", "--json", *args).stdout)


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_default_cut_off_hides_noise_and_min_score_0_shows_everything(db: str, mode: str) -> None:
    everything = search(db, "--mode", mode, "--min-score", "0")
    scores = [h["score"] for h in everything]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert everything[0]["id"] == "perf"
    shown = search(db, "--mode", mode)  # the default cut-off
    assert [h["id"] for h in shown] == [h["id"] for h in everything if h["score"] >= DEFAULT_MIN_SCORE]
    if mode != "keyword":  # every record is in the vector list; the pizza oven is noise
        assert "pizza" in {h["id"] for h in everything} and "pizza" not in {h["id"] for h in shown}


def test_min_score_is_honoured_and_checked(db: str) -> None:
    everything = search(db, "--min-score", "0")
    cut = (everything[0]["score"] + everything[1]["score"]) / 2
    assert [h["id"] for h in search(db, "--min-score", f"{cut:.6f}")] == ["perf"]
    table = run("search", "how to fix slow website", "--db", db, "--min-score", "1").stdout
    assert "no results scoring 1.0 or more (--min-score 0 shows every hit)" in table
    bad = run("search", "x", "--db", db, "--min-score", "1.5", check=False)
    assert bad.returncode == 2 and "--min-score" in bad.stderr


def test_text_search_on_own_vectors_is_an_error_not_no_results(db: str) -> None:
    proc = run("search", "slow website", "--db", db, "--collection", "own", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "pass vector=" in proc.stderr and "No results" not in proc.stdout
    keyword = json.loads(run("search", "slow website", "--db", db, "--collection", "own", "--mode", "keyword",
                             "--json").stdout)
    assert keyword[0]["id"] == "v1"


def test_table_explains_the_score(db: str) -> None:
    out = run("search", "slow website", "--db", db, "-k", "2").stdout
    assert "fused relevance in [0, 1]" in out


def test_unknown_fusion_is_refused(db: str) -> None:
    bad = run("search", "x", "--db", db, "--fusion", "max", check=False)
    assert bad.returncode != 0 and "fusion must be one of convex, rrf" in bad.stderr
    rrf = json.loads(run("search", "slow website", "--db", db, "--fusion", "rrf", "--json").stdout)
    assert rrf[0]["mode"] == "hybrid" and all(0 <= h["score"] <= 1 for h in rrf)
