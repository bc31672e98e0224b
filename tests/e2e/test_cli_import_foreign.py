"""``semkit import --from chroma|pinecone`` as a user runs it: a subprocess, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.test_cli import run

chromadb = pytest.importorskip("chromadb", reason="chromadb is not installed (pip install 'semkit[chroma]')")


def test_import_from_chroma_and_from_a_pinecone_dump(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    notes = client.create_collection("notes", configuration={"hnsw": {"space": "ip"}}, embedding_function=None)
    notes.add(ids=["n1", "n2", "n3"], embeddings=rng.normal(size=(3, 8)),
              documents=["first note", "second note", None], metadatas=[{"k": 1}, None, {"k": 3}])
    db = str(tmp_path / "kb")

    chroma = json.loads(run("import", "--from", "chroma", str(tmp_path / "chroma"), "--db", db,
                            "-c", "my-notes", "--json").stdout)
    assert chroma == [{"source": "notes", "collection": "my-notes", "imported": 3, "dimensions": 8,
                       "metric": "dot", "model": None, "hint": None}]

    dump = tmp_path / "index.jsonl"
    dump.write_text("".join(json.dumps({"id": f"p{i}", "values": rng.normal(size=4).tolist(),
                                        "metadata": {"text": f"passage {i}"}}) + "\n" for i in range(5)))
    human = run("import", "--from", "pinecone", str(dump), "--db", db, "-c", "products", "--metric", "dotproduct")
    assert "imported 5 record(s)" in human.stdout and "'products'" in human.stdout and "--model" in human.stdout

    listed = {c["name"]: c for c in json.loads(run("collections", "--db", db, "--json").stdout)}
    assert (listed["my-notes"]["count"], listed["my-notes"]["metric"]) == (3, "dot")
    assert (listed["products"]["count"], listed["products"]["metric"]) == (5, "dot")

    wrong = run("import", "--from", "chroma", str(tmp_path / "nowhere"), "--db", db, check=False)
    assert wrong.returncode != 0 and "is not a Chroma folder" in wrong.stderr
