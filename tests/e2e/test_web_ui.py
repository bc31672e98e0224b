"""The web UI in a real browser: Playwright driving Debian's Chromium against a real server.

Chromium comes from the system (``apt-get install -y chromium``), never from ``playwright
install`` (nothing is downloaded at run time). Without /usr/bin/chromium the tests skip, unless
``SEMKIT_REQUIRE_BROWSER`` is set (CI sets it), in which case they fail. Screenshots go to
the test's output folder (``tmp_path``) and, when ``SEMKIT_SCREENSHOTS`` names a folder, there too;
the screenshots of indexed results also go to ``SEMKIT_TEST_ARTIFACTS`` when it names a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

if not Path(CHROMIUM).exists():
    if os.environ.get("SEMKIT_REQUIRE_BROWSER"):
        pytest.fail(f"SEMKIT_REQUIRE_BROWSER is set but {CHROMIUM} is missing: apt-get install -y chromium",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); "
                "set SEMKIT_REQUIRE_BROWSER=1 to make this a failure", allow_module_level=True)

pytestmark = pytest.mark.slow

DOCS = [
    ("ml-1", "Neural networks learn by adjusting their weights with gradient descent.", "Neural networks"),
    ("ml-2", "Backpropagation computes the gradient of the loss for every weight in the network.", "Backprop"),
    ("ml-3", "Transformers use self-attention to relate every token to every other token.", "Transformers"),
    ("food-1", "Simmer the tomato sauce slowly with garlic, basil and olive oil.", "Tomato sauce"),
    ("food-2", "Knead the bread dough for ten minutes, then let it rise for an hour.", "Bread"),
    ("food-3", "Fresh pasta needs only flour, eggs and a little patience.", "Pasta"),
    ("space-1", "The telescope photographed a distant galaxy full of young stars.", "Galaxy"),
    ("space-2", "Astronauts aboard the station repaired a solar panel during a spacewalk.", "Spacewalk"),
    ("space-3", "Mars rovers drill into rocks looking for signs of ancient water.", "Mars"),
]

ML_1_URL = "https://example.org/notes/neural-networks"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("ui-db") / "kb"
    with serve(str(db), keys_path=str(db.parent / "keys.json")) as running:
        yield running


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    created, _ = server.state.keys.create(name="ui-test")
    headers = {"Authorization": f"Bearer {created}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        assert client.post("/v1/collections", json={"name": "docs"}).status_code == 201
        records = [{"id": i, "text": t, "metadata": {"title": title, **({"url": ML_1_URL} if i == "ml-1" else {})}}
                   for i, t, title in DOCS]
        assert client.post("/v1/collections/docs/upsert", json={"records": records}).status_code == 200
    return created


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: RunningServer, key: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    # The UI must work offline: any request that leaves this server is recorded and fails the test.
    context.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(server.url)
                                         else (outside.append(route.request.url), route.abort())))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{server.url}/ui/")
    pg.fill("#api-key", key)
    pg.click("#save-key")
    pg.wait_for_function("document.querySelector('#collection').options.length > 0")
    yield pg
    context.close()
    assert not outside, f"the UI tried to reach other hosts: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    keep = os.environ.get("SEMKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_search_shows_the_expected_result_with_highlights_and_opens_it(page: Any, tmp_path: Path) -> None:
    page.fill("#query", "how do neural networks learn")
    page.select_option("#mode", "hybrid")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li")
    first = page.locator("#results li").first
    assert first.get_attribute("data-id") == "ml-1"
    assert "Neural networks" in first.inner_text()
    assert page.locator("#results li mark").count() > 0  # the query's words are highlighted
    link = first.locator("a.hit-source")  # a record with an http(s) url links to it
    assert link.get_attribute("href") == ML_1_URL and link.get_attribute("rel") == "noopener noreferrer"
    others = page.locator("#results li:not([data-id='ml-1'])")  # no url, no source: the id is the label
    assert others.count() > 0
    for n in range(others.count()):
        assert others.nth(n).locator(".hit-source").inner_text() == others.nth(n).get_attribute("data-id")
    _shot(page, tmp_path, "search")
    first.click()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.inner_text("#detail-id") == "ml-1"
    assert "gradient descent" in page.inner_text("#detail-text")
    _shot(page, tmp_path, "search-detail")


def test_search_modes_and_a_bad_filter(page: Any) -> None:
    page.fill("#query", "bread dough")
    page.select_option("#mode", "keyword")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li[data-id='food-2']")
    page.fill("#where", "{not json")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#status.error")
    assert "not valid JSON" in page.inner_text("#status")


def test_map_draws_every_point_with_labels_and_opens_a_point(page: Any, tmp_path: Path) -> None:
    page.click("nav a[data-page=map]")
    page.fill("#cluster-k", "3")
    page.click("#map-form button[type=submit]")
    page.wait_for_function("document.querySelector('#map').dataset.points !== undefined", timeout=120_000)
    assert page.eval_on_selector("#map", "c => c.dataset.points") == str(len(DOCS))
    assert page.locator("#legend li").count() == 3
    # Pixels were actually painted: some non-transparent pixels on the canvas.
    painted = page.evaluate("""() => {
        const c = document.querySelector('#map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 200
    # Hover over a point shows its text; clicking opens it.
    point = page.evaluate("""() => { const m = state.map, c = document.querySelector('#map');
        const it = m.rep.items[0]; const [x, y] = toScreen(m, it.x, it.y, c);
        const r = c.getBoundingClientRect();
        return {id: it.id, x: r.left + x * r.width / c.width, y: r.top + y * r.height / c.height}; }""")
    page.mouse.move(point["x"], point["y"])
    page.wait_for_selector("#tooltip:not([hidden])")
    assert point["id"] in page.inner_text("#tooltip")
    _shot(page, tmp_path, "map")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#detail:not([hidden])")
    assert page.inner_text("#detail-id") == point["id"]
    # Zoom with the wheel changes the view.
    page.mouse.move(point["x"], point["y"])
    page.mouse.wheel(0, -300)
    assert page.evaluate("state.map.zoom") > 1


def test_duplicates_page_shows_groups_with_scores_and_keeper(page: Any, server: RunningServer, key: str,
                                                            tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        dup = {"id": "ml-1-copy", "text": "Neural networks learn by adjusting their weights using gradient descent."}
        assert client.post("/v1/collections/docs/upsert", json={"records": [dup]}).status_code == 200
    try:
        page.click("nav a[data-page=duplicates]")
        page.fill("#threshold", "0.9")
        page.click("#dedup-form button[type=submit]")
        page.wait_for_selector(".group")
        group = page.locator(".group").first.inner_text()
        assert "ml-1" in group and "ml-1-copy" in group
        assert "KEEP" in group.upper()
        assert "pairs: " in group and "0.9" in group
        _shot(page, tmp_path, "duplicates")
    finally:
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            client.post("/v1/collections/docs/delete", json={"ids": ["ml-1-copy"]})


def test_models_and_cost_page(page: Any, tmp_path: Path) -> None:
    page.click("nav a[data-page=models]")
    page.wait_for_selector("#cost-table tbody tr")
    catalogue = page.inner_text("#catalog")
    assert "local:all-MiniLM-L6-v2" in catalogue and "openai:text-embedding-3-small" in catalogue
    cost = page.inner_text("#cost-table")
    assert "openai:text-embedding-3-small" in cost
    assert f"{len(DOCS)} texts" in page.inner_text("#cost-summary")
    _shot(page, tmp_path, "models")


# --- result rows of an indexed folder ------------------------------------------------------------

EXAMPLE_DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
HEX_HASH = re.compile(r"\b[0-9a-f]{64}\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def indexed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped sample documents under a nested folder, indexed as `semkit index` does it."""
    base = tmp_path_factory.mktemp("ui-indexed")
    root = base / "handbook"
    shutil.copytree(EXAMPLE_DOCS, root / "guides")
    import semkit
    from semkit.ingest.pipeline import index_paths

    with semkit.connect(str(base / "kb")) as db:
        report = index_paths(db.collection("docs", model="local"), [root])
        assert not report.failed, report.failed
    return root


@pytest.fixture(scope="module")
def docs_server(indexed_folder: Path) -> Iterator[RunningServer]:
    with serve(str(indexed_folder.parent / "kb"), auth=False) as running:
        yield running


@pytest.fixture
def docs_page(browser: Any, docs_server: RunningServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []
    context.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(docs_server.url)
                                         else (outside.append(route.request.url), route.abort())))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{docs_server.url}/ui/")
    pg.wait_for_function("document.querySelector('#collection').options.length > 0")
    yield pg
    context.close()
    assert not outside, f"the UI tried to reach other hosts: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def _keep_artifact(path: Path) -> None:
    keep = os.environ.get("SEMKIT_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_indexed_results_show_title_section_source_and_no_paths_or_hashes(
        docs_page: Any, indexed_folder: Path, tmp_path: Path) -> None:
    page = docs_page
    page.fill("#query", "how to fix slow website")
    page.select_option("#mode", "hybrid")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li")
    rows = page.locator("#results li")
    assert rows.count() >= 3
    # No cut-off typed: the CLI's default for a text model hides the noise, and says so.
    assert page.get_attribute("#min-score", "placeholder") == "auto: 0.15"
    assert "scoring 0.15 or more" in page.inner_text("#status")
    # The stored metadata does hold the absolute path and a SHA-256: the rows must not show them.
    first_raw = page.eval_on_selector("#results li .raw-json", "p => JSON.parse(p.textContent)")
    assert first_raw["path"].startswith(str(indexed_folder)) and HEX_HASH.fullmatch(first_raw["file_hash"])
    for n in range(rows.count()):
        visible = rows.nth(n).inner_text()
        assert str(indexed_folder) not in visible and str(indexed_folder.parent) not in visible, visible
        assert not HEX_HASH.search(visible), visible
        for internal in ("file_hash", "mtime", "settings", "tokens", "v1:auto"):
            assert internal not in visible, (internal, visible)
        assert rows.nth(n).locator(".hit-title").inner_text().strip()
        assert rows.nth(n).locator(".hit-source").inner_text().startswith("guides/")  # relative to the folder
        assert 0.0 <= float(rows.nth(n).locator(".score").inner_text()) <= 1.0
    first = rows.first
    assert first.get_attribute("data-id").startswith("guides/web-performance.md#")
    assert first.locator(".hit-title").inner_text() == "Speeding up a slow website"
    assert first.locator(".hit-source").inner_text() == "guides/web-performance.md"
    assert first.locator(".hit-section").inner_text() == first_raw["section"] != ""
    assert "format: markdown" in first.locator(".meta").inner_text()
    assert first.locator("mark").count() > 0
    shot = tmp_path / "results.png"
    page.screenshot(path=str(shot), full_page=True)
    png = shot.read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000 and width >= 1000 and height >= 600
    _keep_artifact(shot)
    # "details" shows the full stored metadata, in the row, without opening the side panel.
    raw = first.locator(".raw-json")
    assert not raw.is_visible()
    first.locator("details.raw summary").click()
    assert raw.is_visible()
    shown = json.loads(raw.inner_text())
    assert shown["path"] == first_raw["path"] and shown["file_hash"] == first_raw["file_hash"]
    assert page.locator("#detail").is_hidden()
    details_shot = tmp_path / "results-details.png"
    page.screenshot(path=str(details_shot), full_page=True)
    _keep_artifact(details_shot)


def test_min_score_field_cuts_weak_hits(docs_page: Any) -> None:
    page = docs_page
    page.fill("#query", "how to fix slow website")
    page.select_option("#mode", "vector")
    page.fill("#min-score", "0")
    page.fill("#k", "20")
    page.click("#search-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#results li').length === 20")
    scores = [float(s) for s in page.locator("#results li .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and scores[-1] < 0.4 < scores[0]
    page.fill("#min-score", "0.4")
    page.click("#search-form button[type=submit]")
    page.wait_for_function("document.querySelector('#status').textContent.includes('scoring 0.4 or more')")
    kept = [float(s) for s in page.locator("#results li .score").all_inner_texts()]
    assert kept and len(kept) < 20 and min(kept) >= 0.4


def test_metadata_line_rules_on_user_records(docs_page: Any) -> None:
    """The rules of the metadata line on records not made by `semkit index`: a user's own fields
    show, absolute paths, hashes and internal keys do not, whatever their names."""
    view = docs_page.evaluate("""() => resultView({id: "/srv/photos/cat.jpg", metadata: {
        year: 2021, tags: ["pets", "cats"], author: "Ana", note: "/home/ana/private/cat.jpg",
        digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", _rev: 3,
        semkit_version: "1", sha256: "abc", nested: {a: 1}, headings: ["Pets", "Cats"]}})""")
    assert view["title"] == "cat.jpg" and view["source"] == "cat.jpg"  # the id is a path: its file name only
    assert view["section"] == "Pets > Cats"
    assert view["facts"] == [["year", "2021"], ["tags", "pets, cats"], ["author", "Ana"]]
    linked = docs_page.evaluate("""() => resultView({id: "a1", metadata: {
        title: "Caching", url: "https://example.org/cache", source: "C:\\\\Users\\\\ana\\\\cache.md"}})""")
    assert linked["title"] == "Caching" and linked["url"] == "https://example.org/cache"
    assert linked["source"] == "cache.md"


def test_rerank_box_is_hidden_without_a_server_reranker(page: Any) -> None:
    assert page.locator("#rerank-box").is_hidden()


@pytest.fixture(scope="module")
def rerank_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    import semkit

    db = tmp_path_factory.mktemp("ui-rerank") / "kb"
    with semkit.connect(str(db)) as database:
        database.collection("docs", model="local").upsert(
            ids=[i for i, _, _ in DOCS], texts=[t for _, t, _ in DOCS],
            metadata=[{"title": title} for _, _, title in DOCS])
    with serve(str(db), auth=False, rerank="windows") as running:
        yield running


def test_rerank_box_sends_rerank_and_shows_the_reranker(browser: Any, rerank_server: RunningServer,
                                                        tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{rerank_server.url}/ui/")
    pg.wait_for_function("document.querySelector('#collection').options.length > 0")
    assert pg.locator("#rerank-box").is_visible() and not pg.locator("#rerank").is_checked()
    pg.fill("#query", "how do neural networks learn")
    with pg.expect_request(lambda r: r.url.endswith("/search")) as plain:
        pg.click("#search-form button[type=submit]")
    assert "rerank" not in plain.value.post_data_json
    pg.wait_for_function("document.querySelector('#status').textContent.includes('result(s)')")
    assert "reranked" not in pg.inner_text("#status")
    pg.check("#rerank")
    with pg.expect_request(lambda r: r.url.endswith("/search")) as ticked:
        pg.click("#search-form button[type=submit]")
    assert ticked.value.post_data_json["rerank"] is True
    pg.wait_for_function("document.querySelector('#status').textContent.includes('reranked by sentence-windows')")
    assert pg.locator("#results li").first.get_attribute("data-id") == "ml-1"
    _shot(pg, tmp_path, "search-reranked")
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
