"""The analysis apps from the command line, on a small planted collection and the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

TOPICS = {
    "cooking": ["Bake bread with yeast, flour and water", "A pasta sauce with tomatoes and garlic"],
    "sport": ["The team won the football match", "A marathon runner trains every morning"],
    "tech": ["Python code runs on the web server", "Databases store rows in indexed tables"],
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("apps")
    rows = []
    for topic, sentences in TOPICS.items():
        for i, sentence in enumerate(sentences):
            rows.append({"id": f"{topic}{i}", "text": sentence, "topic": topic})
            rows.append({"id": f"{topic}{i}-copy", "text": sentence.upper() + "!", "topic": topic})
            rows.append({"id": f"{topic}{i}-near", "text": sentence + " today", "topic": topic})
    rows.append({"id": "odd", "text": "Quantum chromodynamics describes how quarks bind", "topic": "physics"})
    src = root / "items.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    path = str(root / "kb")
    run("upsert", str(src), "--db", path, "-c", "items")
    return path


def test_dedup_groups_planted_copies(db: str, tmp_path: Path) -> None:
    report = json.loads(run("dedup", "--db", db, "-c", "items", "--threshold", "0.85", "--json").stdout)
    groups = {frozenset([g["keeper"], *(m["id"] for m in g["members"])]) for g in report["groups"]}
    assert frozenset({"tech0", "tech0-copy", "tech0-near"}) in groups
    assert report["exact_duplicates"] >= 6
    out = tmp_path / "groups.csv"
    run("dedup", "--db", db, "-c", "items", "--threshold", "0.85", "--out", str(out))
    assert out.read_text().startswith("group,role,id,keeper")


def test_recommend_excludes_what_was_liked(db: str) -> None:
    recs = json.loads(run("recommend", "cooking0", "--db", db, "-c", "items", "-k", "2", "--json").stdout)
    ids = [r["id"] for r in recs]
    assert "cooking0" not in ids and set(ids) <= {"cooking0-copy", "cooking0-near"}


def test_outliers_finds_the_planted_one(db: str) -> None:
    found = json.loads(run("outliers", "--db", db, "-c", "items", "-k", "3", "--top", "1", "--json").stdout)
    assert found[0]["id"] == "odd"


def test_cluster_writes_a_map(db: str, tmp_path: Path) -> None:
    page = tmp_path / "map.html"
    report = json.loads(run("cluster", "--db", db, "-c", "items", "-k", "3", "--map", str(page), "--json").stdout)
    assert len(report["clusters"]) == 3
    html = page.read_text()
    assert "<svg" in html or "<canvas" in html
    assert "http://" not in html.split("xmlns")[0]


def test_classify_train_and_predict(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    lines = ["text,label"] + [f'"{s}",{topic}' for topic, ss in TOPICS.items() for s in ss]
    lines += ['"Grill the fish with lemon",cooking', '"The goalkeeper saved a penalty",sport',
              '"Deploy the service with containers",tech']
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model_dir = tmp_path / "clf"
    run("classify", "train", str(data), "--out", str(model_dir))
    preds = [json.loads(line) for line in run(
        "classify", "predict", "--classifier", str(model_dir), "--json",
        "Roast the chicken in the oven", "The striker scored twice", "Compile the program with gcc",
    ).stdout.splitlines()]
    assert [p["label"] for p in preds] == ["cooking", "sport", "tech"]


def test_classify_needs_two_labels() -> None:
    proc = run("classify", "zero-shot", "hello", "--labels", "only", check=False)
    assert proc.returncode == 2 and "at least two labels" in proc.stderr
