"""Loaders for the shared evaluation data (``../shared/data``, never copied into the repo).

Parsing follows ``EVAL_NOTES.md`` so the numbers can be compared with MTEB's published ones:
STSBenchmark test is split on tabs with no csv quoting (fields 5-7: score, sentence1,
sentence2; some lines carry extra source fields after them), and MTEB's SICK-R "test" is all
9,927 SemEval-2014 pairs (train + trial + test_annotated).

``SEMKIT_DATA_DIR`` points the loaders at another copy of the data folder (the tests read the
same variable).
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STSB_TEST_PAIRS = 1379
SICK_R_PAIRS = 9927


def data_location() -> Path:
    """Where the shared data should be (``SEMKIT_DATA_DIR``, else ``../shared/data`` beside the
    checkout), present or not: the tests decide themselves what a missing folder means."""
    env = os.environ.get("SEMKIT_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def data_dir() -> Path:
    path = data_location()
    if not path.is_dir():
        raise FileNotFoundError(
            f"evaluation data not found at {path}; set SEMKIT_DATA_DIR to the shared data folder"
        )
    return path


def write_scifact_markdown(corpus_gz: Path, root: Path, count: int) -> Path:
    """The first ``count`` SciFact abstracts of ``corpus_gz`` (``scifact/corpus.jsonl.gz``) as
    one ``<id>.md`` file each under a new folder ``root`` (about two chunks a file)."""
    root.mkdir(parents=True)
    with gzip.open(corpus_gz, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n == count:
                break
            doc = json.loads(line)
            (root / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    return root


@dataclass(frozen=True)
class StsPairs:
    """Sentence pairs with gold similarity scores."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def load_stsb(split: str = "test") -> StsPairs:
    """STSBenchmark (``split`` = train, dev or test); test has 1,379 pairs."""
    path = data_dir() / "stsbenchmark" / f"sts-{split}.csv"
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        scores.append(float(fields[4]))
        s1.append(fields[5])
        s2.append(fields[6])
    pairs = StsPairs(f"STSBenchmark-{split}", s1, s2, np.asarray(scores, dtype=np.float64))
    if split == "test" and len(pairs) != STSB_TEST_PAIRS:
        raise ValueError(f"{path}: expected {STSB_TEST_PAIRS} pairs, read {len(pairs)}")
    return pairs


def load_sick_r() -> StsPairs:
    """SICK-R as MTEB scores it: all 9,927 pairs, relatedness 1-5."""
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for part in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        lines = (data_dir() / "sick" / part).read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        ia, ib, ir = (header.index(c) for c in ("sentence_A", "sentence_B", "relatedness_score"))
        for line in lines[1:]:
            if not line.strip():
                continue
            fields = line.split("\t")
            s1.append(fields[ia])
            s2.append(fields[ib])
            scores.append(float(fields[ir]))
    pairs = StsPairs("SICK-R", s1, s2, np.asarray(scores, dtype=np.float64))
    if len(pairs) != SICK_R_PAIRS:
        raise ValueError(f"SICK: expected {SICK_R_PAIRS} pairs, read {len(pairs)}")
    return pairs


def real_sentences(n: int = 2000) -> list[str]:
    """``n`` distinct real sentences, in a fixed order: STSb test first, then SICK.

    Deterministic, so every benchmark and test that asks for the same ``n`` gets the same list.
    """
    seen: dict[str, None] = {}
    for pairs in (load_stsb("test"), load_sick_r()):
        for a, b in zip(pairs.sentences1, pairs.sentences2, strict=True):
            for s in (a, b):
                if s.strip():
                    seen.setdefault(s, None)
                if len(seen) >= n:
                    return list(seen)
    if len(seen) < n:
        raise ValueError(f"only {len(seen)} distinct sentences available, asked for {n}")
    return list(seen)
