"""The web UI in a real browser: Playwright driving Debian's Chromium against a real server.

Chromium comes from the system (``apt-get install -y chromium``), never from ``playwright
install`` (nothing is downloaded at run time). Without /usr/bin/chromium the tests skip, unless
``SEMKIT_REQUIRE_BROWSER`` is set (CI sets it), in which case they fail. Screenshots go to
the test's output folder (``tmp_path``) and, when ``SEMKIT_SCREENSHOTS`` names a folder, there too.
"""

from __future__ import annotations

import os
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
        records = [{"id": i, "text": t, "metadata": {"title": title}} for i, t, title in DOCS]
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
