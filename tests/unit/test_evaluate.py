"""Evaluation: trec_eval metrics checked by hand, BEIR/STS/classification loaders, and the
side-by-side evaluations on small real files (hash embedder, real embedded store)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from semkit.apps import _evaluate as ev
from semkit.errors import InvalidInput
from tests.support.hash_embedder import HashEmbedder


def test_retrieval_metrics_match_hand_computation() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d5": 1}, "q3": {"d9": 0}}
    run = {"q1": ["d1", "d3", "d2"], "q2": ["d4", "d5"]}
    m = ev.retrieval_metrics(qrels, run)
    # q1: relevant at ranks 1 and 3. DCG = 1 + 1/log2(4); IDCG = 1 + 1/log2(3).
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = 1 / math.log2(3)  # one relevant, at rank 2
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert m["map@10"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    assert m["recall@10"] == pytest.approx(1.0)
    # q3 has no relevant document: not scored at all (2 queries, not 3).


def test_a_query_with_no_results_counts_zero_and_order_is_ours() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    m = ev.retrieval_metrics(qrels, {"q1": ["d1"]})
    assert m["ndcg@10"] == pytest.approx(0.5) and m["recall@100"] == pytest.approx(0.5)
    # Ranked lists keep their order even where trec_eval would break score ties by doc id.
    tied = ev.retrieval_metrics({"q": {"a": 1}}, {"q": {"a": 1.0, "b": 1.0}})
    ranked = ev.retrieval_metrics({"q": {"a": 1}}, {"q": ["b", "a"]})
    assert ranked["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert tied["ndcg@10"] in (pytest.approx(1.0), pytest.approx(1 / math.log2(3)))
    with pytest.raises(InvalidInput, match="no relevant"):
        ev.retrieval_metrics({"q": {"a": 0}}, {"q": ["a"]})


def test_ranked_metrics_takes_top10_and_top100_from_separate_searches() -> None:
    asked: list[int] = []

    def rank(query: str, n: int, depth: int) -> list[str]:
        asked.append(depth)
        return [f"x{i}" for i in range(depth - 1)] + ["rel"]  # the relevant doc comes last

    m = ev.ranked_metrics({"q": {"rel": 1}}, rank, {"q": "text"})
    assert sorted(asked) == [10, 100]
    assert m["recall@10"] == pytest.approx(1.0) and m["recall@100"] == pytest.approx(1.0)
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(11))


def _beir(tmp_path: Path) -> tuple[Path, Path, Path]:
    docs = [
        {"_id": "pz", "title": "Pizza", "text": "a hot oven and a thin crust"},
        {"_id": "nn", "title": "Neural networks", "text": "trained with backpropagation and gradients"},
        {"_id": "cat", "title": "", "text": "the cat sat on the mat"},
        {"_id": "sql", "title": "Databases", "text": "indexes make slow queries fast"},
    ]
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"_id": "1", "text": "pizza oven crust"}, {"_id": "2", "text": "backpropagation gradients"},
        {"_id": "3", "text": "slow queries indexes"}, {"_id": "9", "text": "unjudged"},
    ]) + "\n", encoding="utf-8")
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n1\tpz\t1\n2\tnn\t1\n3\tsql\t1\n", encoding="utf-8")
    return corpus, queries, qrels


def test_load_beir_joins_title_and_text(tmp_path: Path) -> None:
    data = ev.load_beir(*_beir(tmp_path))
    assert data.doc_texts[0] == "Pizza a hot oven and a thin crust"
    assert data.doc_texts[2] == "the cat sat on the mat"  # no title, no leading space
    assert set(data.queries) == {"1", "2", "3"}  # unjudged query 9 left out


def test_loaders_report_the_bad_line(tmp_path: Path) -> None:
    corpus, queries, qrels = _beir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="appears twice"):
        ev.load_beir(bad, queries, qrels)
    broken = tmp_path / "broken.tsv"
    broken.write_text("query-id\tcorpus-id\tscore\n1\tpz\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"broken\.tsv:2"):
        ev.read_qrels(broken)
    orphan = tmp_path / "orphan.tsv"
    orphan.write_text("77\tpz\t1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="no text in the queries file"):
        ev.load_beir(corpus, queries, orphan)
    trec = tmp_path / "trec.txt"
    trec.write_text("1 0 pz 1\n2 0 nn 2\n", encoding="utf-8")
    assert ev.read_qrels(trec) == {"1": {"pz": 1}, "2": {"nn": 2}}


def test_evaluate_retrieval_gives_one_row_per_mode(tmp_path: Path) -> None:
    data = ev.load_beir(*_beir(tmp_path))
    rows = ev.evaluate_retrieval(data, [HashEmbedder(64)], ["vector", "keyword", "hybrid"],
                                 work_dir=tmp_path)
    assert [(r.model, r.mode) for r in rows] == [
        ("test:hash@64", "vector"), ("-", "keyword"), ("test:hash@64", "hybrid")]
    keyword = rows[1].metrics
    assert keyword["ndcg@10"] == pytest.approx(1.0)  # each query's words are only in its document
    for r in rows:
        assert r.queries == 3 and set(r.metrics) == {"ndcg@10", "recall@10", "recall@100", "map@10"}
        assert all(0.0 <= v <= 1.0 for v in r.metrics.values())
    two = ev.evaluate_retrieval(data, [HashEmbedder(64), HashEmbedder(32)], ["keyword", "vector"],
                                work_dir=tmp_path)
    assert [(r.model, r.mode) for r in two] == [
        ("-", "keyword"), ("test:hash@64", "vector"), ("test:hash@32", "vector")]
    with pytest.raises(InvalidInput, match="modes"):
        ev.evaluate_retrieval(data, [HashEmbedder(8)], ["fuzzy"])  # type: ignore[list-item]


def test_spearman_with_ties() -> None:
    # Ranks of a: 1, 2.5, 2.5, 4; of b: 1, 2, 3, 4. Pearson of those ranks:
    a, b = [1, 2, 2, 3], [10, 20, 30, 40]
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    assert ev.spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]))


def test_load_pairs_by_name_and_by_position(tmp_path: Path) -> None:
    named = tmp_path / "pairs.csv"
    named.write_text('s1,s2,gold\n"a cat, sitting",a cat,4.5\nx,y,0\nq,r,2\n', encoding="utf-8")
    pairs = ev.load_pairs(named, ["s1", "s2", "gold"])
    assert pairs.first[0] == "a cat, sitting" and list(pairs.scores) == [4.5, 0.0, 2.0]
    stsb = tmp_path / "sts-test.csv"  # STS Benchmark: tabs, no header, no quoting, extra fields
    stsb.write_text("g\tf\t2012\t1\t5.0\tA man.\tA \"man\".\tsrc\textra\n"
                    "g\tf\t2012\t2\t1.0\tA dog.\tA cat.\n"
                    "g\tf\t2012\t3\t0.5\tSun.\tRain.\n", encoding="utf-8")
    pairs = ev.load_pairs(stsb, ["5", "6", "4"])
    assert pairs.second[0] == 'A "man".' and list(pairs.scores) == [5.0, 1.0, 0.5]
    with pytest.raises(InvalidInput, match="no column named 'score'"):
        ev.load_pairs(named, ["s1", "s2", "score"])


def test_evaluate_sts_ranks_by_cosine(tmp_path: Path) -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank today".split()  # noqa: SIM905
    first, second, gold = [], [], []
    for shared in range(0, 13, 2):  # more shared words, higher gold score
        first.append(" ".join(base))
        second.append(" ".join(base[:shared] + [f"w{shared}{i}" for i in range(13 - shared)]))
        gold.append(float(shared))
    rows = ev.evaluate_sts(ev.Pairs(first, second, np.asarray(gold)), [HashEmbedder(256)])
    assert rows[0].model == "test:hash@256" and rows[0].pairs == 7
    assert rows[0].spearman > 80


def test_evaluate_classification_full_and_few_shot(tmp_path: Path) -> None:
    words = {"sport": "match goal team score", "food": "pizza pasta oven cheese", "tech": "code bug server deploy"}
    train = ev.Labelled([f"{w} {i}" for lab, w in words.items() for i in range(6)],
                        [lab for lab in words for _ in range(6)])
    test = ev.Labelled([w for w in words.values()], list(words))
    full = ev.evaluate_classification(train, test, [HashEmbedder(128)])
    assert full[0].accuracy == 100.0 and full[0].train_examples == 18
    few = ev.evaluate_classification(train, test, [HashEmbedder(128)], method="knn", per_label=2, experiments=3)
    assert few[0].train_examples == 6 and few[0].experiments == 3 and few[0].method == "knn"
    with pytest.raises(InvalidInput, match="per_label"):
        ev.evaluate_classification(train, test, [HashEmbedder(8)], experiments=2)


def test_load_labelled_requires_its_columns(tmp_path: Path) -> None:
    f = tmp_path / "train.csv"
    f.write_text("text,category\nhello,greet\nbye,farewell\n", encoding="utf-8")
    assert ev.load_labelled(f, label_column="category").labels == ["greet", "farewell"]
    with pytest.raises(InvalidInput, match="--label-column"):
        ev.load_labelled(f)
