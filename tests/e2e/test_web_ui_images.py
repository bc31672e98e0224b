"""The web UI on an image collection, in real Chromium: text → image search shows a grid of
thumbnails, choosing or dropping an image file searches by it (image → image), and the
duplicates page shows a resized copy beside its original as pictures. Real photos from
scikit-image, indexed with a tiny randomly initialised CLIP built in this session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("skimage")

from tests.e2e.test_web_ui import _shot, browser  # noqa: F401 - the browser fixture, shared
from tests.support.server import RunningServer, serve
from tests.support.tiny_clip import photo_collection, save_photos

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> Iterator[RunningServer]:
    from PIL import Image

    # A resized PNG copy of the cat: the near-duplicate the duplicates page must show.
    small = photos["chelsea"].with_name("chelsea-small.png")
    Image.open(photos["chelsea"]).resize((226, 150)).save(small)
    db_path, clip_dir = photo_collection(tmp_path_factory.mktemp("ui-images"), {**photos, "chelsea-small": small})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEMKIT_CLIP_MODEL", str(clip_dir))
        import semkit
        from semkit.ingest.images import index_images

        with semkit.connect(db_path) as db:  # texts and images in one CLIP collection
            mixed = db.collection("mixed", model=f"clip:{clip_dir}")
            mixed.upsert(["note-cats", "note-coffee"], texts=["a note about cats", "a note about coffee"],
                         metadata=[{"title": "Cats"}, {"title": "Coffee"}])
            index_images(mixed, [photos["chelsea"], photos["coffee"]])
        with serve(str(db_path), auth=False) as running:
            yield running


@pytest.fixture
def page(browser: Any, server: RunningServer) -> Iterator[Any]:  # noqa: F811 - pytest injects the fixture
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    context.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(server.url)
                                         or route.request.url.startswith("data:")
                                         else (outside.append(route.request.url), route.abort())))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{server.url}/ui/")
    pg.wait_for_function("document.querySelector('#collection').options.length > 0")
    pg.select_option("#collection", "photos")
    yield pg
    context.close()
    assert not outside, f"the UI tried to reach other hosts: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def _thumbnails_loaded(page: Any) -> list[int]:
    """Natural widths of the result thumbnails (0 = the image did not decode)."""
    page.wait_for_function("[...document.querySelectorAll('#results img.thumb')].every(i => i.complete)")
    return page.eval_on_selector_all("#results img.thumb", "imgs => imgs.map(i => i.naturalWidth)")


def test_text_search_on_photos_shows_thumbnails(page: Any, tmp_path: Path) -> None:
    page.fill("#query", "a photo of a cat")
    page.select_option("#mode", "vector")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li img.thumb")
    widths = _thumbnails_loaded(page)
    assert len(widths) == 5 and all(w > 0 for w in widths)
    assert page.locator("#results.grid").count() == 1  # only images: a grid, not rows
    meta = page.locator("#results li .meta").first.inner_text()
    assert "thumbnail" not in meta and "base64" not in meta  # the blob is shown as a picture, not text
    assert "sha256" not in meta and " × " in meta  # size and format in words, not the stored JSON
    _shot(page, tmp_path, "images-text-search")


def test_choosing_an_image_file_searches_by_it(page: Any, photos: dict[str, Path], tmp_path: Path) -> None:
    page.set_input_files("#image-query", str(photos["rocket"]))
    page.wait_for_selector("#results li img.thumb")
    page.wait_for_function("document.querySelector('#status').textContent.includes('by image')")
    first = page.locator("#results li").first
    assert Path(first.get_attribute("data-id")).name == "rocket.jpg"
    assert page.locator("#image-preview").is_visible()
    assert all(w > 0 for w in _thumbnails_loaded(page))
    _shot(page, tmp_path, "images-by-image")
    first.click()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.eval_on_selector("#detail-image", "i => i.naturalWidth") > 0
    assert "base64" not in page.inner_text("#detail-meta")


def test_an_unreadable_file_is_reported_in_the_page(page: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    page.set_input_files("#image-query", str(bad))
    page.wait_for_selector("#status.error")
    assert "422" in page.inner_text("#status") and "image" in page.inner_text("#status")


def test_dropping_an_image_file_searches_by_it(page: Any, photos: dict[str, Path]) -> None:
    data = list(photos["coffee"].read_bytes())
    page.evaluate("""async (bytes) => {
        const file = new File([new Uint8Array(bytes)], "coffee.jpg", { type: "image/jpeg" });
        const dt = new DataTransfer();
        dt.items.add(file);
        const zone = document.querySelector("#page-search");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", data)
    page.wait_for_function("document.querySelector('#status').textContent.includes('by image')")
    assert Path(page.locator("#results li").first.get_attribute("data-id")).name == "coffee.jpg"
    assert all(w > 0 for w in _thumbnails_loaded(page))


def test_duplicates_page_shows_a_resized_copy_beside_its_original(page: Any, tmp_path: Path) -> None:
    page.click("nav a[data-page=duplicates]")
    # The tiny random CLIP puts all photos close together (~0.95); only the copy is this close.
    page.fill("#threshold", "0.995")
    page.click("#dedup-form button[type=submit]")
    page.wait_for_selector("#groups .group")
    assert page.locator("#groups .group").count() == 1
    names = sorted(Path(t).name for t in page.eval_on_selector_all(
        "#groups .group tr td:nth-child(2)", "cells => cells.map(c => c.textContent)"))
    assert names == ["chelsea-small.png", "chelsea.jpg"]
    assert Path(page.inner_text("#groups tr.keeper td:nth-child(2)")).name == "chelsea.jpg"  # the larger copy
    page.wait_for_function("[...document.querySelectorAll('#groups img.thumb-small')].every(i => i.complete)")
    widths = page.eval_on_selector_all("#groups img.thumb-small", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 0 for w in widths)
    _shot(page, tmp_path, "images-duplicates")


def test_a_mixed_collection_shows_rows_with_texts_and_thumbnails(page: Any, tmp_path: Path) -> None:
    page.select_option("#collection", "mixed")
    page.fill("#query", "a note about cats")
    page.select_option("#mode", "vector")
    page.click("#search-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#results li').length === 4")
    assert page.locator("#results.grid").count() == 0  # texts among the hits: rows, not a grid
    assert page.locator("#results li").first.get_attribute("data-id") == "note-cats"  # the same text
    assert page.locator("#results li .snippet").count() == 2
    assert all(w > 0 for w in _thumbnails_loaded(page)) and len(_thumbnails_loaded(page)) == 2
    _shot(page, tmp_path, "images-mixed")
