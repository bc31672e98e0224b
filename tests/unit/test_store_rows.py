"""``store.base.prepare_rows``: the one validation every backend's writes go through."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from semkit.errors import DimensionMismatch, InvalidInput
from semkit.store.base import (
    MAX_METADATA_DEPTH,
    CollectionSpec,
    check_spec,
    metadata_json,
    prepare_metadata_update,
    prepare_rows,
)


def test_cosine_rows_are_unit_length_and_defaults_filled() -> None:
    rows = prepare_rows(CollectionSpec("c", 2), ["a", "b"], [[3, 4], [0, 0]])
    assert rows.ids == ["a", "b"] and len(rows) == 2
    assert np.allclose(rows.vectors, [[0.6, 0.8], [0, 0]]) and rows.vectors.dtype == np.float32
    assert rows.texts == [None, None] and rows.metadata == ["{}", "{}"]
    raw = prepare_rows(CollectionSpec("d", 2, metric="dot"), ["a"], [[3, 4]])
    assert np.allclose(raw.vectors, [[3, 4]])


def test_no_ids_and_no_vectors_is_an_empty_write() -> None:
    for empty in ([], np.zeros((0, 3), np.float32), np.zeros(0)):
        rows = prepare_rows(CollectionSpec("c", 3), [], empty, [], [])
        assert len(rows) == 0 and rows.vectors.shape == (0, 3)


def test_vectors_are_checked_before_the_rows() -> None:
    with pytest.raises(DimensionMismatch):
        prepare_rows(CollectionSpec("c", 3), ["a", "a"], [[1, 2]])


def test_plain_python_values_come_out() -> None:
    meta = {"n": np.int32(4), "x": np.float64(0.25), "ok": np.bool_(False), "t": ("a", 1)}
    rows = prepare_rows(CollectionSpec("c", 1), [np.str_("id")], [[1]], [np.str_("txt")], [meta])
    assert type(rows.ids[0]) is str and type(rows.texts[0]) is str
    assert rows.metadata_dicts() == [{"n": 4, "x": 0.25, "ok": False, "t": ["a", 1]}]
    assert json.loads(rows.metadata[0]) == rows.metadata_dicts()[0]


def test_metadata_keeps_non_ascii_text_readable() -> None:
    assert metadata_json({"city": "Zürich", "emoji": "🙂"}, "a") == '{"city": "Zürich", "emoji": "🙂"}'


@pytest.mark.parametrize("meta, message", [
    ({"a": {"b": [1, float("nan")]}}, r"metadata.a.b\[1\] is nan"),
    ({2: "x"}, "the key 2 in metadata is not a string"),
    ({"s": {1, 2}}, "metadata.s is a set, not a JSON value"),
    ({"big": -(10**5000)}, "metadata.big is an integer of about 5001 digits"),
    ("text", "is a str; pass a dict"),
], ids=["nan", "int-key", "set", "huge-int", "not-a-dict"])
def test_metadata_problems_say_where(meta: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        metadata_json(meta, "rid")


def test_metadata_depth_limit() -> None:
    value: Any = 1
    for _ in range(MAX_METADATA_DEPTH):
        value = [value]
    metadata_json({"v": value[0]}, "ok")  # exactly the limit
    with pytest.raises(InvalidInput, match=f"more than {MAX_METADATA_DEPTH}"):
        metadata_json({"v": value}, "deep")


def test_the_backend_hook_sees_every_string() -> None:
    seen: list[tuple[str, str]] = []
    prepare_rows(CollectionSpec("c", 1), ["id1"], [[1]], ["some text"], [{"key": ["value", 3]}],
                 check_string=lambda value, where: seen.append((value, where)))
    assert [value for value, _ in seen] == ["id1", "some text", "key", "value"]
    assert seen[0][1] == "the id at position 0" and seen[1][1] == "the text for id 'id1'"
    assert seen[3][1] == "metadata for id 'id1' (metadata.key[0])"


def test_the_hook_refuses_before_anything_is_returned() -> None:
    def no_x(value: str, where: str) -> None:
        if "x" in value:
            raise InvalidInput(f"{where} holds an x")

    with pytest.raises(InvalidInput, match=r"metadata for id 'a' \(a key in metadata.m\) holds an x"):
        prepare_rows(CollectionSpec("c", 1), ["a"], [[1]], None, [{"m": {"x": 1}}], check_string=no_x)


def test_metadata_updates_are_checked_like_upserts() -> None:
    assert prepare_metadata_update(["a", "b"], [{"v": 1}, {}]) == (["a", "b"], ['{"v": 1}', "{}"])
    with pytest.raises(InvalidInput, match="2 ids but 1 metadata dicts"):
        prepare_metadata_update(["a", "b"], [{}])
    with pytest.raises(InvalidInput, match="appears more than once"):
        prepare_metadata_update(["a", "a"], [{}, {}])


def test_spec_checks() -> None:
    check_spec(CollectionSpec("ok", 3, dtype="int8"))
    for bad, message in [(CollectionSpec("", 3), "non-empty name"), (CollectionSpec("c", True), "dimensions"),
                         (CollectionSpec("c", 3, metric="cos"), "unknown metric"),  # type: ignore[arg-type]
                         (CollectionSpec("c", 3, dtype="f64"), "unknown dtype")]:  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=message):
            check_spec(bad)
