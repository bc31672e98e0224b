"""Local Matryoshka truncation: which models may be truncated, and what a truncated model returns."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from semkit.errors import InvalidInput
from semkit.models import catalog
from semkit.models.cache import CachedEmbedder, EmbeddingCache
from semkit.models.local import load_local
from semkit.models.matryoshka import MEASURED_LOSS, Truncated, check_truncation, truncate
from tests.support.hash_embedder import HashEmbedder

MINILM = catalog.find("local", "all-MiniLM-L6-v2")
NOMIC = catalog.find("local", "nomic-embed-text-v1.5")


def test_a_model_not_trained_for_it_is_refused_with_the_measured_loss() -> None:
    assert MINILM is not None
    with pytest.raises(InvalidInput, match="not trained for Matryoshka") as err:
        check_truncation(MINILM, MINILM.name, 384, 128, declared=None)
    message = str(err.value)
    assert f"{MEASURED_LOSS['all-MiniLM-L6-v2'][128]:.2f} truncated to 128" in message
    assert "matryoshka=True" in message and "nomic-embed-text-v1.5" in message


def test_load_local_refuses_before_loading_the_model() -> None:
    with pytest.raises(InvalidInput, match="not trained for Matryoshka"):
        load_local("all-MiniLM-L6-v2", dimensions=128)
    with pytest.raises(InvalidInput, match="from 1 to 384"):
        load_local("all-MiniLM-L6-v2", dimensions=500)


def test_trained_sizes_are_accepted_and_others_listed() -> None:
    assert NOMIC is not None
    assert check_truncation(NOMIC, NOMIC.name, 768, 256, declared=None) == 256
    with pytest.raises(InvalidInput, match="64, 128, 256, 512, 768"):
        check_truncation(NOMIC, NOMIC.name, 768, 300, declared=None)


def test_a_folder_outside_the_catalogue_must_be_declared() -> None:
    with pytest.raises(InvalidInput, match="pass matryoshka=True"):
        check_truncation(None, "my-model", 384, 128, declared=None)
    assert check_truncation(None, "my-model", 384, 100, declared=True) == 100


def test_forcing_a_model_not_trained_for_it_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert MINILM is not None
    with caplog.at_level(logging.WARNING, logger="semkit.models.matryoshka"):
        assert check_truncation(MINILM, MINILM.name, 384, 128, declared=True) == 128
    assert "was not trained for 128 dimensions" in caplog.text


def test_truncated_vectors_are_the_renormalised_prefix(tmp_path: Path) -> None:
    inner = HashEmbedder(64)
    model = Truncated(inner, 16)
    texts = ["pizza with cheese", "a quiet river", "pizza again"]
    full = inner.embed(texts)
    got = model.embed(texts)
    np.testing.assert_allclose(got, full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True),
                               rtol=1e-6)
    assert (model.id, model.dimensions) == ("test:hash@16", 16)
    assert model.fingerprint != inner.fingerprint
    streamed = np.concatenate([r.vectors for _, r in model.embed_stream(texts)])
    np.testing.assert_array_equal(streamed, got)
    # behind the cache, under its own fingerprint
    cached = CachedEmbedder(model, EmbeddingCache.open(tmp_path))
    np.testing.assert_array_equal(cached.embed(texts), got)
    assert cached.embed_result(texts).cached == 3
    assert set(cached.cache.stats().per_fingerprint) == {model.fingerprint}


def test_truncate_keeps_unit_length() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 32)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(truncate(vectors, 8), axis=1), 1.0, rtol=1e-6)
