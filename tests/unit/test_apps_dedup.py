"""Duplicates: exact-text normalisation, near-duplicates from the kNN graph, anti-chaining."""

from __future__ import annotations

import csv
import json
import tracemalloc

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.errors import InvalidInput

D = 32


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _background(n: int, seed: int = 0) -> np.ndarray:
    """Random directions in 32-d: pairwise cosine ~N(0, 0.18), far below any threshold."""
    return _unit(np.random.default_rng(seed).normal(size=(n, D)))


def _chain() -> np.ndarray:
    """A~B (0.94) and B~C (0.94) but A≁C (0.77): connected components would merge all three."""
    e1, e2 = np.eye(D)[0], np.eye(D)[1]
    angle = np.deg2rad(20)
    return _unit(np.stack([e1, np.cos(angle) * e1 + np.sin(angle) * e2,
                           np.cos(2 * angle) * e1 + np.sin(2 * angle) * e2]))


def _chain_source(**extra):
    x = np.vstack([_chain(), _background(40)])
    ids = ["A", "B", "C"] + [f"bg{i}" for i in range(40)]
    return apps.from_matrix(x, ids, **extra)


def test_normalised_text_finds_exact_duplicates_whatever_their_vectors() -> None:
    assert apps.normalize_text("  Hello,   WORLD!! ") == apps.normalize_text("hello world")
    assert apps.normalize_text("Straße") == apps.normalize_text("STRASSE")
    assert apps.normalize_text("hello worlds") != apps.normalize_text("hello world")
    texts = ["Hello, World!", "hello world", "HELLO   world.", "hello worlds"] + [f"t{i}" for i in range(20)]
    x = _background(len(texts), seed=1)  # the vectors say nothing: only the texts match
    report = apps.duplicates(apps.from_matrix(x, texts=texts), threshold=0.95, k=5, keep="first")
    assert len(report.groups) == 1
    group = report.groups[0]
    assert group.keeper == "0"
    assert {m.id for m in group.members} == {"1", "2"}
    assert all(m.exact and m.score == 1.0 for m in group.members)
    assert report.exact_duplicates == 2


def test_chain_is_not_merged_by_keeper_linkage() -> None:
    report = apps.duplicates(_chain_source(), threshold=0.9, k=5, keep="first")
    assert [g.ids for g in report.groups] == [["A", "B"]]  # C is not a near-copy of kept A
    assert report.near_pairs == 2  # the graph saw both links of the chain
    assert report.groups[0].members[0].score == pytest.approx(np.cos(np.deg2rad(20)), abs=1e-5)
    assert [(p.a, p.b, p.exact) for p in report.groups[0].pairs] == [("A", "B", False)]  # B~C left out


def test_central_keeper_takes_both_ends_only_when_each_is_close_to_it() -> None:
    report = apps.duplicates(_chain_source(), threshold=0.9, k=5, keep="central")
    assert len(report.groups) == 1 and report.groups[0].keeper == "B"
    assert sorted(report.groups[0].ids) == ["A", "B", "C"]
    strict = apps.duplicates(_chain_source(), threshold=0.9, k=5, keep="central", linkage="complete")
    # complete linkage: A and C (0.77) may not share a group
    assert [sorted(g.ids) for g in strict.groups] in (
        [["A", "B"]], [["B", "C"]],
    )


def test_groups_can_be_larger_than_k() -> None:
    rng = np.random.default_rng(2)
    base = _unit(rng.normal(size=D))
    copies = _unit(base + 0.01 * rng.normal(size=(30, D)))
    x = np.vstack([copies, _background(50, seed=3)])
    report = apps.duplicates(x, threshold=0.95, k=5)
    assert len(report.groups) == 1
    assert sorted(report.groups[0].ids, key=int) == [str(i) for i in range(30)]
    assert len(report.removable()) == 29


def test_keep_longest_and_callable() -> None:
    e = np.eye(D)[0]
    x = np.vstack([e, e, e, _background(10, seed=4)])
    texts = ["short", "the longest text of all", "medium text"] + [f"x{i}" for i in range(10)]
    meta = [{"date": "2021"}, {"date": "2019"}, {"date": "2020"}] + [{}] * 10
    src = apps.from_matrix(x, texts=texts, metadata=meta)
    assert apps.duplicates(src, threshold=0.99, k=3).groups[0].keeper == "1"
    oldest_last = apps.duplicates(src, threshold=0.99, k=3, keep=lambda it: it.metadata.get("date", "9999"))
    assert oldest_last.groups[0].keeper == "1"
    newest = apps.duplicates(src, threshold=0.99, k=3, keep=lambda it: -int(it.metadata.get("date", "0")))
    assert newest.groups[0].keeper == "0"


def test_json_and_csv_writers_round_trip(tmp_path) -> None:
    report = apps.duplicates(_chain_source(texts=["a, text", "b text", "c text"] + ["x"] * 40),
                             threshold=0.9, k=5, keep="first")
    data = json.loads(report.write_json(tmp_path / "out" / "dups.json").read_text(encoding="utf-8"))
    assert data["threshold"] == 0.9
    assert [len(g["members"]) for g in data["groups"]] == [39, 1]  # largest group first
    assert data["groups"][1]["keeper"] == "A" and data["groups"][1]["members"][0]["id"] == "B"
    written = report.write_csv(tmp_path / "dups.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(written.splitlines()))
    assert [(r["role"], r["id"]) for r in rows if r["keeper"] == "A"] == [("keep", "A"), ("remove", "B")]
    # the 40 background items share the text "x": one exact group
    assert any(g["keeper"].startswith("bg") and len(g["members"]) == 39 for g in data["groups"])


def test_works_over_a_collection() -> None:
    db = semkit.connect("memory://")
    col = db.collection("c", model=None, dimensions=D)
    x = np.vstack([_chain(), _background(20)])
    col.upsert(ids=[f"r{i}" for i in range(len(x))], vectors=x, texts=[f"text {i}" for i in range(len(x))])
    report = apps.duplicates(col, threshold=0.9, k=4, keep="first")
    assert [g.ids for g in report.groups] == [["r0", "r1"]]


def test_bad_input_is_a_clear_error() -> None:
    src = _chain_source()
    with pytest.raises(InvalidInput, match="threshold"):
        apps.duplicates(src, threshold=1.5)
    with pytest.raises(InvalidInput, match="k must be a positive"):
        apps.duplicates(src, k=0)
    with pytest.raises(InvalidInput, match="keep"):
        apps.duplicates(src, keep="newest")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="no items"):
        apps.duplicates(np.zeros((0, D), dtype=np.float32))
    db = semkit.connect("memory://")
    with pytest.raises(InvalidInput, match="empty"):
        apps.duplicates(db.collection("empty", model=None, dimensions=D))


def test_memory_stays_far_below_an_n_by_n_matrix() -> None:
    n = 20_000  # an n×n float32 similarity matrix would be 1.6 GB
    x = _background(n, seed=5)
    x[1] = x[0]
    tracemalloc.start()
    try:
        report = apps.duplicates(x, threshold=0.99, k=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [g.ids for g in report.groups] == [["0", "1"]]
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MB"
