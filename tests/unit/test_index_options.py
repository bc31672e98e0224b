"""``IndexOptions``: one frozen value for every indexing knob, checked when it is made, and the one
place ``index_paths``' keywords become options. Also the ingest package's layout rule: its
modules use each other's public names only (the Ray engine included)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from semkit.errors import InvalidInput
from semkit.ingest import IndexOptions
from semkit.ingest.manifest import settings_key
from semkit.ingest.options import ENGINES
from semkit.ingest.sources import DEFAULT_MAX_FILE_BYTES

INGEST = Path(__file__).resolve().parents[2] / "src" / "semkit" / "ingest"


def test_defaults_are_the_documented_ones() -> None:
    options = IndexOptions()
    assert (options.chunk_tokens, options.overlap, options.text_field) == (None, None, None)
    assert (options.include, options.exclude) == ((), ())
    assert options.max_file_bytes == DEFAULT_MAX_FILE_BYTES and options.remove_missing and options.batch_size == 64
    assert (options.address, options.workers) == (None, None)
    assert ENGINES == ("local", "ray")


def test_options_are_a_hashable_picklable_value() -> None:
    options = IndexOptions(chunk_tokens=120, overlap=10, include=["*.md", "*.txt"], exclude="drafts/*")
    assert options.include == ("*.md", "*.txt"), "lists are kept as tuples: the value cannot change under a run"
    assert options.exclude == ("drafts/*",), "a lone pattern is one pattern, not one per character"
    assert options == IndexOptions(chunk_tokens=120, overlap=10, include=("*.md", "*.txt"), exclude=("drafts/*",))
    assert hash(options) == hash(IndexOptions(chunk_tokens=120, overlap=10, include=("*.md", "*.txt"),
                                              exclude=("drafts/*",)))
    assert pickle.loads(pickle.dumps(options)) == options  # Ray ships it to its read tasks
    with pytest.raises(AttributeError):
        options.overlap = 5  # type: ignore[misc]


@pytest.mark.parametrize(("values", "message"), [
    ({"chunk_tokens": 0}, "chunk_tokens must be a positive integer"),
    ({"chunk_tokens": True}, "chunk_tokens must be a positive integer"),
    ({"overlap": -1}, "overlap must be a non-negative integer"),
    ({"chunk_tokens": 100, "overlap": 80}, "more than half of chunk_tokens=100"),
    ({"max_file_bytes": 0}, "max_file_bytes must be a positive integer"),
    ({"batch_size": 1.5}, "batch_size must be a positive integer"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"include": [1]}, "include must be glob patterns"),
])
def test_bad_values_fail_when_the_options_are_made(values: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        IndexOptions(**values)


def test_keywords_override_the_options_given() -> None:
    base = IndexOptions(chunk_tokens=120, overlap=10, batch_size=8)
    assert IndexOptions.of(base, {}) is base
    assert IndexOptions.of(None, None) == IndexOptions()
    assert IndexOptions.of(base, {"overlap": 0}) == IndexOptions(chunk_tokens=120, overlap=0, batch_size=8)
    with pytest.raises(InvalidInput, match="more than half"):
        IndexOptions.of(base, {"overlap": 70})  # the merged value is checked too
    with pytest.raises(TypeError, match=r"unknown indexing option.*chunk_size.*the options are chunk_tokens"):
        IndexOptions.of(base, {"chunk_size": 100})


def test_engine_choice_is_checked_against_the_options() -> None:
    IndexOptions().check_engine("local")
    IndexOptions(workers=2, address="auto").check_engine("ray")
    with pytest.raises(InvalidInput, match="engine must be one of 'local', 'ray', got 'spark'"):
        IndexOptions().check_engine("spark")
    with pytest.raises(InvalidInput, match="address and workers apply to the Ray engine"):
        IndexOptions(workers=2).check_engine("local")


def test_settings_key_depends_only_on_what_changes_the_chunks() -> None:
    assert settings_key(IndexOptions()) == "v1:auto/auto/auto"
    assert settings_key(IndexOptions(chunk_tokens=100, overlap=0, text_field="body")) == "v1:100/0/body"
    assert settings_key(IndexOptions(batch_size=8, include=["*.md"], workers=3)) == settings_key(IndexOptions())


def test_ingest_modules_use_only_each_others_public_names() -> None:
    private: list[str] = []
    for path in sorted(INGEST.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private += [f"{path.name}: from {'.' * node.level}{node.module or ''} import {alias.name}"
                            for alias in node.names if alias.name.startswith("_")]
    assert private == []
