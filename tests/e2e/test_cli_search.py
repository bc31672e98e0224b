"""search / context / eval from the command line: real subprocess, real model, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

DOCS = [
    {"id": "perf", "text": "Speeding up a slow website: enable HTTP caching and compress images.",
     "title": "Web performance", "path": "docs/perf.md", "chunk": 0, "chunks": 2},
    {"id": "cdn", "text": "A content delivery network serves files from servers near your visitors.",
     "title": "CDNs", "path": "docs/cdn.md"},
    {"id": "err", "text": "Error XJ-9000 means the licence file is missing.", "title": "Errors"},
    {"id": "pizza", "text": "Neapolitan pizza needs a very hot oven.", "title": "Pizza"},
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("cli-search")
    src = root / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n", encoding="utf-8")
    path = str(root / "kb")
    run("upsert", str(src), "--db", path)
    return path


def test_search_modes_as_json(db: str) -> None:
    hybrid = json.loads(run("search", "how to fix slow website", "--db", db, "-k", "2", "--json").stdout)
    assert hybrid[0]["id"] == "perf" and hybrid[0]["mode"] == "hybrid"
    assert {"id", "score", "text", "metadata", "snippet", "highlights", "ranks"} <= set(hybrid[0])
    assert [hybrid[0]["snippet"][a:b] for a, b in hybrid[0]["highlights"]] == ["slow", "website"]
    keyword = json.loads(run("search", "XJ-9000", "--db", db, "--mode", "keyword", "--json").stdout)
    assert [h["id"] for h in keyword] == ["err"] and keyword[0]["ranks"] == {"keyword": 1}
    vector = json.loads(run("search", "my pages load slowly", "--db", db, "--mode", "vector",
                            "-k", "1", "--exact", "--json").stdout)
    assert vector[0]["id"] == "perf" and vector[0]["mode"] == "vector"
    diverse = json.loads(run("search", "slow website", "--db", db, "--mmr", "0.5", "--json").stdout)
    assert diverse[0]["id"] == "perf"


def test_search_table_shows_title_path_and_highlighted_snippet(db: str) -> None:
    out = run("search", "slow website", "--db", db, "-k", "2").stdout
    assert "Web performance" in out and "docs/perf.md" in out
    assert "**slow** **website**" in out  # not a terminal: highlights as markers
    assert "fused relevance" in out


def test_search_rejects_a_bad_mode_and_mmr(db: str) -> None:
    bad = run("search", "x", "--db", db, "--mode", "fuzzy", check=False)
    assert bad.returncode == 2 and "--mode" in bad.stderr and "Traceback" not in bad.stderr
    assert run("search", "x", "--db", db, "--mmr", "2", check=False).returncode == 2


def test_context_text_and_json(db: str) -> None:
    proc = run("context", "How do I make my website faster?", "--db", db, "--budget", "60")
    assert proc.stdout.startswith("[1] ") and "docs/perf.md, chunk 1/2" in proc.stdout
    assert "tokens" in proc.stderr
    data = json.loads(run("context", "website speed", "--db", db, "--budget", "500", "--json").stdout)
    assert data["used_tokens"] <= 500 and data["passages"][0]["citation"]
    assert data["text"].startswith("[1] ")


def test_eval_retrieval_sts_classify(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]})
                                for d in DOCS), encoding="utf-8")
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "licence error XJ-9000"}\n'
                       '{"_id": "q2", "text": "hot oven for pizza"}\n', encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\terr\t1\nq2\tpizza\t1\n", encoding="utf-8")
    rows = json.loads(run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries),
                          "--qrels", str(qrels), "--json").stdout)
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("local:all-MiniLM-L6-v2@384", "vector"), ("-", "keyword"), ("local:all-MiniLM-L6-v2@384", "hybrid")]
    assert all(r["metrics"]["ndcg@10"] == pytest.approx(1.0) for r in rows)
    table = run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries),
                "--qrels", str(qrels), "--mode", "keyword").stdout
    assert "nDCG@10" in table and "100.00" in table
    rrf_rows = json.loads(run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries),
                              "--qrels", str(qrels), "--mode", "hybrid", "--fusion", "rrf", "--json").stdout)
    assert [r["mode"] for r in rrf_rows] == ["hybrid"] and rrf_rows[0]["metrics"]["ndcg@10"] == pytest.approx(1.0)
    bad = run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels),
              "--fusion", "max", check=False)
    assert bad.returncode == 2 and "convex or rrf" in bad.stderr

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a\tb\tgold\nA man plays a guitar.\tA man is playing guitar.\t5\n"
                     "A cat sleeps.\tA kitten is sleeping.\t4\nA dog runs.\tThe stock market fell.\t0\n"
                     "A woman cooks.\tSomeone is making food.\t3.5\n", encoding="utf-8")
    sts = json.loads(run("eval", "sts", str(pairs), "--columns", "a,b,gold", "--json").stdout)
    assert sts[0]["pairs"] == 4 and sts[0]["spearman"] > 50

    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(
        f"{t},{lab}\n" for lab, ts in {"food": ["pizza is tasty", "I cooked pasta", "fresh bread"],
                                       "pets": ["my dog barks", "the cat purrs", "a hamster wheel"]}.items()
        for t in ts), encoding="utf-8")
    test = tmp_path / "test.csv"
    test.write_text("text,label\nsoup for dinner,food\na puppy at home,pets\n", encoding="utf-8")
    clf = json.loads(run("eval", "classify", "--train", str(train), "--test", str(test), "--json").stdout)
    assert clf[0]["accuracy"] == 100.0 and clf[0]["test_examples"] == 2
    missing = run("eval", "classify", "--train", str(train), "--test", str(test),
                  "--label-column", "category", check=False)
    assert missing.returncode == 2 and "category" in missing.stderr
