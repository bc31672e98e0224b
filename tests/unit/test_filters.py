"""The filter language: parsing (with errors that name the offending part) and the reference
semantics of ``matches`` that every backend is held to."""

from __future__ import annotations

from typing import Any

import pytest

from semkit.errors import InvalidFilter
from semkit.store.filters import And, Compare, Exists, Or, matches, parse

META: dict[str, Any] = {
    "year": 2021, "price": 9.5, "tag": "Gamma", "flag": True, "none": None,
    "author": {"name": "ada", "age": 36}, "tags": ["a", "b"], "zero": 0,
}


def m(spec: Any, meta: dict[str, Any] = META) -> bool:
    return matches(parse(spec), meta)


# --- parsing ------------------------------------------------------------------------------


def test_parse_shapes() -> None:
    assert parse(None) is None and parse({}) is None and parse("{}") is None
    assert parse({"year": 2021}) == Compare(("year",), "$eq", 2021)
    assert parse('{"author.name": {"$in": ["ada", "bob"]}}') == Compare(("author", "name"), "$in", ("ada", "bob"))
    assert parse({"a": {"$exists": False}}) == Exists(("a",), False)
    assert parse({"a": 1, "b": 2}) == And((Compare(("a",), "$eq", 1), Compare(("b",), "$eq", 2)))
    assert parse({"a": {"$gt": 1, "$lt": 5}}) == And((Compare(("a",), "$gt", 1), Compare(("a",), "$lt", 5)))
    assert parse({"$or": [{"a": 1}, {"b": None}]}) == Or((Compare(("a",), "$eq", 1), Compare(("b",), "$eq", None)))
    node = parse({"year": 1})
    assert parse(node) is node  # an already parsed filter passes through


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("[1, 2]", "must be an object"),
        ("{not json", "not valid JSON"),
        (42, "must be an object"),
        ({"$or": []}, "$or needs a non-empty list"),
        ({"$and": {"a": 1}}, "$and needs a non-empty list"),
        ({"$or": [{}]}, "empty object"),
        ({"$not": {"a": 1}}, "unknown operator '$not'"),
        ({"year": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"year": {}}, "empty operator object"),
        ({"year": {"$in": []}}, "$in takes a non-empty list"),
        ({"year": {"$nin": 3}}, "$nin takes a non-empty list"),
        ({"year": {"$in": [[1]]}}, "takes a string, number"),
        ({"year": {"$gt": None}}, "needs a number or a string"),
        ({"year": {"$lte": True}}, "needs a number or a string"),
        ({"year": {"$eq": float("nan")}}, "nan"),
        ({"year": {"$gt": float("inf")}}, "finite"),
        ({"year": [2020]}, "takes a string, number"),
        ({"a": {"$exists": 1}}, "$exists takes true or false"),
        ({"bad field": 1}, "field name 'bad field'"),
        ({"a..b": 1}, "not valid"),
        ({"$or": [{"a": 1}, 3]}, "$or[1]"),
    ],
)
def test_malformed_filters_name_the_problem(spec: Any, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse(spec)
    assert fragment in str(info.value)


# --- semantics ----------------------------------------------------------------------------


def test_equality_and_types() -> None:
    assert m({"year": 2021}) and m({"year": 2021.0})
    assert not m({"year": "2021"})
    assert m({"flag": True}) and not m({"flag": 1})
    assert not m({"zero": False}) and m({"zero": 0})
    assert m({"none": None}) and not m({"missing": None})
    assert not m({"tags": "a"})  # lists never equal a scalar
    assert m({"author.name": "ada"}) and not m({"author.name": "ADA"})


def test_ne_and_nin_match_missing_fields() -> None:
    assert m({"missing": {"$ne": 1}}) and m({"missing": {"$nin": [1]}})
    assert not m({"year": {"$ne": 2021}}) and m({"year": {"$ne": "2021"}})
    assert not m({"none": {"$ne": None}}) and m({"year": {"$ne": None}})
    assert m({"tags": {"$ne": "a"}})
    assert not m({"year": {"$nin": [2020, 2021]}})


def test_in() -> None:
    assert m({"tag": {"$in": ["x", "Gamma"]}}) and not m({"tag": {"$in": ["gamma"]}})
    assert m({"none": {"$in": [None, 1]}}) and not m({"missing": {"$in": [None]}})
    assert not m({"flag": {"$in": [1]}})


def test_ordering_compares_like_with_like() -> None:
    assert m({"year": {"$gt": 2020}}) and m({"year": {"$gte": 2021}}) and not m({"year": {"$gt": 2021}})
    assert m({"price": {"$lt": 10}}) and m({"price": {"$lte": 9.5}})
    assert not m({"year": {"$gt": "2000"}})  # number vs string never matches
    assert not m({"flag": {"$gt": 0}})  # booleans are not numbers
    assert not m({"none": {"$lt": 1}}) and not m({"missing": {"$gt": 0}})
    assert m({"tag": {"$lt": "a"}})  # code-point order: upper case sorts first
    assert m({"tag": {"$gte": "G", "$lt": "H"}})


def test_exists() -> None:
    assert m({"none": {"$exists": True}}) and not m({"none": {"$exists": False}})
    assert m({"missing": {"$exists": False}}) and m({"author.age": {"$exists": True}})
    assert m({"author.city": {"$exists": False}})
    assert not m({"year.sub": {"$exists": True}})  # a path through a scalar is missing


def test_logic() -> None:
    assert m({"$or": [{"year": 1999}, {"tag": "Gamma"}]})
    assert not m({"$and": [{"year": 2021}, {"tag": "x"}]})
    assert m({"year": 2021, "flag": True}) and not m({"year": 2021, "flag": False})
    assert m({"$and": [{"$or": [{"a": 1}, {"author.age": {"$gte": 30}}]}, {"price": {"$lt": 10}}]})
    assert matches(None, META)
