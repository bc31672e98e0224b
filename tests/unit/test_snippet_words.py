"""Snippets stem only the words that can match (``_highlight._hits``): the same hits as
stemming every word, on real text and on words whose lower-casing is unusual."""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest

from semkit.apps import _highlight as highlight
from semkit.apps._highlight import _WORD, _hits, snippet, stem
from tests.support.shared_data import DATA, have


def _every_word(flat: str, wanted: set[str]) -> list[tuple[int, int, str]]:
    """The replaced path: every word stemmed."""
    return [(m.start(), m.end(), key) for m in _WORD.finditer(flat) if (key := stem(m.group())) in wanted]


_ODD = ["İstanbul", "KİM", "Kelvin", "\u212aelvin", "ſtrong", "STRASSE", "straße", "ǅemal", "ﬁle", "file",
        "Axes", "axe", "flies", "fly", "x", "X1", "_under_score", "123abc", "éclair", "Éclair", "naïve",
        "ΣΊΣΥΦΟΣ", "σίσυφος", "İ", "i", "ies", "running", "RUNS", "runner"]


def test_odd_words_match_as_when_every_word_is_stemmed() -> None:
    text = " ".join(_ODD) + " " + " ".join(w.upper() for w in _ODD) + " " + " ".join(w.lower() for w in _ODD)
    for word in _ODD:
        for wanted in ({stem(word)}, {stem(word), stem("file")}, {stem(word.upper())}, {stem(word.lower())}):
            assert _hits(text, wanted) == _every_word(text, wanted), (word, wanted)


@pytest.mark.skipif(not have("scifact"), reason="shared SciFact data not available")
def test_real_text_matches_as_when_every_word_is_stemmed(monkeypatch: pytest.MonkeyPatch) -> None:
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts = [" ".join(json.loads(line)["text"].split()) for _, line in zip(range(300), fh, strict=False)]
    vocabulary = sorted({w for t in texts for w in _WORD.findall(t)})
    rng = random.Random(7)
    cases = []
    for text in texts:
        words = [rng.choice(vocabulary) for _ in range(4)] + [rng.choice(_WORD.findall(text) or ["a"])]
        wanted = {stem(w) for w in words}
        assert _hits(text, wanted) == _every_word(text, wanted)
        cases.append((text, words, snippet(text, words, 120)))
    monkeypatch.setattr(highlight, "_hits", _every_word)
    assert [(text, words, snippet(text, words, 120)) for text, words, _ in cases] == cases
    assert _hits("", {"a"}) == [] and _hits("some text", set()) == []


def test_a_snippet_marks_word_forms_of_the_query() -> None:
    shown = snippet("Flies fly; the FLY flies. Running runners run.", "fly running")
    marked = [shown.text[s:e] for s, e in shown.spans]
    assert marked == ["Flies", "fly", "FLY", "flies", "Running", "run"]  # "runners" stems to "runner"
    assert re.sub(r"\*\*", "", shown.marked()) == shown.text
