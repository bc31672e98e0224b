"""A query in a language the collection's model does not cover gets one clear warning, in the
library's log, on the CLI's stderr and in the server's answer; English queries get none."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

import semkit
from semkit import apps
from tests.e2e.test_cli import run
from tests.support.server import serve

QUERIES = {
    "es": "¿cómo puedo acelerar mi sitio web lento?",
    "de": "Wie kann ich meine langsame Webseite schneller machen?",
    "zh": "如何让我的网站加载得更快？",
}
ENGLISH = ("how to fix slow website", "kubernetes pod crashloop")


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lang") / "kb"
    with semkit.connect(path) as db:
        db.collection("docs", model="local").upsert(
            ids=["perf", "plants"],
            texts=["Speeding up a slow website: measure, cache, compress images.", "Water houseplants weekly."])
    return path


def test_library_warns_once_per_language_and_names_a_model_that_covers_it(
        kb: Path, caplog: pytest.LogCaptureFixture) -> None:
    with semkit.connect(kb) as db:
        col = db.collection("docs", create=False)
        for lang, query in QUERIES.items():
            warning = apps.language_warning(col, query)
            assert warning is not None and "English only" in warning and "multilingual" in warning, (lang, warning)
        for query in ENGLISH:
            assert apps.language_warning(col, query) is None
        with caplog.at_level(logging.WARNING, logger="semkit.apps._search"):
            apps.search(col, QUERIES["es"], k=1)
            apps.search(col, QUERIES["es"], k=1)
            apps.search(col, ENGLISH[0], k=1)
        logged = [r.getMessage() for r in caplog.records if "English only" in r.getMessage()]
        assert len(logged) == 1 and "Spanish" in logged[0]


def test_cli_prints_the_warning_on_stderr(kb: Path) -> None:
    spanish = run("search", QUERIES["es"], "--db", str(kb), "--min-score", "0")
    assert "warning" in spanish.stderr and "Spanish" in spanish.stderr
    english = run("search", ENGLISH[0], "--db", str(kb))
    assert "warning" not in english.stderr


def test_server_returns_the_warning_with_the_hits(kb: Path) -> None:
    with serve(str(kb), auth=False) as s:
        for lang, query in QUERIES.items():
            body = httpx.post(f"{s.url}/v1/collections/docs/search", json={"query": query}, timeout=60).json()
            assert len(body["warnings"]) == 1 and "English only" in body["warnings"][0], lang
        body = httpx.post(f"{s.url}/v1/collections/docs/search", json={"query": ENGLISH[0]}, timeout=60).json()
        assert body["warnings"] == []
