"""Batches by padded-token budget: the split itself, and vectors bit-identical whatever the
budget or row cap, on the real bundled MiniLM and real sentences."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks._data import real_sentences

from semkit.errors import InvalidInput
from semkit.models.local import budget_batches, load_local


def test_batches_hold_as_many_rows_as_the_budget_allows() -> None:
    lengths = np.array([100, 60, 50, 20, 20, 20, 20, 10, 10, 3])
    spans = budget_batches(lengths, 120, max_rows=4)
    assert spans == [(0, 1), (1, 3), (3, 7), (7, 10)]  # 100x1, 60x2, 20x4 (row cap), 10x3
    assert budget_batches(lengths, 50, max_rows=256)[0] == (0, 1)  # a text over the budget goes alone
    assert budget_batches(np.array([], dtype=np.int64), 64, 8) == []
    covered = [i for start, stop in budget_batches(lengths, 64, 3) for i in range(start, stop)]
    assert covered == list(range(len(lengths)))


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_vectors_do_not_depend_on_the_budget(precision: str) -> None:
    texts = real_sentences(120)
    texts = [*texts, " ".join(texts[:30]), "ok"]  # one long text (cut at the context), one tiny
    reference = load_local("all-MiniLM-L6-v2", precision=precision, token_budget=1, batch_size=1).embed(texts)
    for budget, rows in ((256, 256), (1024, 256), (8192, 256), (100_000, 7)):
        model = load_local("all-MiniLM-L6-v2", precision=precision, token_budget=budget, batch_size=rows)
        assert np.array_equal(model.embed(texts), reference), (budget, rows)


def test_token_budget_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="token_budget"):
        load_local("all-MiniLM-L6-v2", token_budget=0)
