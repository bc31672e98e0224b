"""Search by image and text over HTTP: a real server on 127.0.0.1, a collection of real photos
(scikit-image) indexed with a tiny randomly initialised CLIP built in this session."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("transformers")
pytest.importorskip("skimage")
from PIL import Image

import semkit
from tests.support.server import RunningServer, serve
from tests.support.tiny_clip import photo_collection, save_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> Iterator[RunningServer]:
    db_path, clip_dir = photo_collection(tmp_path_factory.mktemp("images"), photos)
    with pytest.MonkeyPatch.context() as env:
        # The collection records clip:tiny-clip; the server finds the folder again through this.
        env.setenv("SEMKIT_CLIP_MODEL", str(clip_dir))
        with semkit.connect(db_path) as db:
            db.collection("notes", model="local").upsert(["n1"], texts=["A note about cats."])
        with serve(str(db_path), keys_path=str(db_path.parent / "keys.json")) as running:
            yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    key, _ = server.state.keys.create(name="images", read_only=True)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        yield c


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_image_query_finds_the_same_photo_first_with_its_thumbnail(client: httpx.Client,
                                                                  photos: dict[str, Path]) -> None:
    for name, path in photos.items():
        r = client.post("/v1/collections/photos/search", json={"image": b64(path), "k": 4})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert Path(hits[0]["id"]).name == f"{name}.jpg"
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert hits[0]["metadata"]["thumbnail"].startswith("data:image/jpeg;base64,")
        assert len(hits) == 4


def test_a_resized_copy_sent_as_a_data_uri_still_finds_its_original(client: httpx.Client,
                                                                    photos: dict[str, Path]) -> None:
    buf = io.BytesIO()
    Image.open(photos["rocket"]).resize((120, 160)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = client.post("/v1/collections/photos/search", json={"image": uri, "k": 1, "mode": "vector"})
    assert r.status_code == 200, r.text
    assert Path(r.json()["hits"][0]["id"]).name == "rocket.jpg"


def test_text_query_on_an_image_collection_returns_images(client: httpx.Client) -> None:
    r = client.post("/v1/collections/photos/search", json={"query": "a photo of a cat", "mode": "vector", "k": 4})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert sorted(Path(h["id"]).name for h in hits) == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert all(h["metadata"]["thumbnail"].startswith("data:image/") for h in hits)


@pytest.mark.parametrize(("body", "message"), [
    ({"image": "not base64 at all!"}, "not valid base64"),
    ({"image": base64.b64encode(b"GIF89a but not really").decode()}, "not an image"),
    ({"image": base64.b64encode(b"x").decode(), "query": "cat"}, "not both"),
    ({"image": base64.b64encode(b"x").decode(), "mode": "hybrid"}, "searched by vector"),
])
def test_bad_image_requests_are_422_with_a_reason(client: httpx.Client, body: dict, message: str) -> None:
    r = client.post("/v1/collections/photos/search", json=body)
    assert r.status_code == 422, r.text
    assert message in r.text


def test_image_search_on_a_text_model_collection_says_a_clip_model_is_needed(
        client: httpx.Client, photos: dict[str, Path]) -> None:
    r = client.post("/v1/collections/notes/search", json={"image": b64(photos["chelsea"])})
    assert r.status_code == 422, r.text
    assert "CLIP model" in r.text and "local:all-MiniLM-L6-v2" in r.text


def test_a_record_whose_id_is_a_path_can_be_fetched(client: httpx.Client, photos: dict[str, Path]) -> None:
    from urllib.parse import quote

    record_id = str(photos["coffee"])  # an absolute path: slashes in the id
    r = client.get(f"/v1/collections/photos/records/{quote(record_id, safe='')}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == record_id
    assert client.get("/v1/collections/photos/records/no%2Fsuch%2Fid").status_code == 404
