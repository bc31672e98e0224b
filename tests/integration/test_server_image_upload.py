"""Search by image over HTTP, the parts beyond the JSON body: the raw-bytes endpoint
(``curl --data-binary @cat.jpg``), the pixel limit checked before decoding, and a collection
created over HTTP with a served ``clip:`` model holding texts, searched by an image (image →
text). A real server on 127.0.0.1, a tiny random CLIP built in this session, scikit-image photos."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

pytest.importorskip("transformers")
pytest.importorskip("skimage")
from PIL import Image

import semkit
from semkit.server.limits import Limits
from tests.support.server import RunningServer, serve
from tests.support.tiny_clip import photo_collection, save_photos

MAX_PIXELS = 700 * 700
"""Above every test photo (the largest, rocket, is 640 x 427), below a 1000 x 1000 image."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> tuple[Path, Path]:
    return photo_collection(tmp_path_factory.mktemp("upload"), photos)


@pytest.fixture(scope="module")
def clip_dir(store: tuple[Path, Path]) -> Path:
    return store[1]


@pytest.fixture(scope="module")
def server(store: tuple[Path, Path]) -> Iterator[RunningServer]:
    db_path, clip_dir = store
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEMKIT_CLIP_MODEL", str(clip_dir))
        with serve(str(db_path), auth=False, models=["local", f"clip:{clip_dir}"],
                   limits=Limits(max_image_pixels=MAX_PIXELS)) as running:
            yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (no pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_raw_bytes_endpoint_finds_the_same_photo_first(client: httpx.Client, photos: dict[str, Path]) -> None:
    for name, path in photos.items():
        r = client.post("/v1/collections/photos/search/image?k=4", content=path.read_bytes(),
                        headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert r.json()["mode"] == "vector" and len(hits) == 4
        assert Path(hits[0]["id"]).name == f"{name}.jpg"
        assert hits[0]["metadata"]["thumbnail"].startswith("data:image/jpeg;base64,")


def test_raw_bytes_endpoint_applies_the_filter(client: httpx.Client, photos: dict[str, Path]) -> None:
    where = quote('{"width": {"$lt": 600}}')  # chelsea (451) and astronaut (512)
    r = client.post(f"/v1/collections/photos/search/image?k=4&where={where}", content=photos["rocket"].read_bytes())
    assert r.status_code == 200, r.text
    assert sorted(Path(h["id"]).name for h in r.json()["hits"]) == ["astronaut.jpg", "chelsea.jpg"]


@pytest.mark.parametrize(("query", "body", "status", "message"), [
    ("", b"", 422, "body is empty"),
    ("", b"GIF89a but not really", 422, "could not be read"),
    ("?where=%7B", b"x", 422, "not valid JSON"),
    ("?where=%5B1%5D", b"x", 422, "JSON object"),
    ("?k=0", b"x", 422, "k"),
])
def test_raw_bytes_endpoint_bad_requests_are_4xx_with_a_reason(client: httpx.Client, query: str, body: bytes,
                                                               status: int, message: str) -> None:
    r = client.post(f"/v1/collections/photos/search/image{query}", content=body)
    assert r.status_code == status, r.text
    assert message in r.text


@pytest.mark.parametrize("size", [1000, 30_000])  # over our limit; over PIL's own bomb limit too
def test_an_image_with_too_many_pixels_is_413_before_it_is_decoded(client: httpx.Client, size: int) -> None:
    data = png_header_only(size, size)
    r = client.post("/v1/collections/photos/search", json={"image": base64.b64encode(data).decode()})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "image_too_large" and f"{MAX_PIXELS:,}" in r.text
    assert client.post("/v1/collections/photos/search/image", content=data).status_code == 413


def test_a_real_image_just_over_the_limit_is_413_and_a_smaller_copy_passes(client: httpx.Client,
                                                                         photos: dict[str, Path]) -> None:
    big = io.BytesIO()
    Image.open(photos["chelsea"]).resize((1000, 700)).save(big, format="PNG")
    r = client.post("/v1/collections/photos/search/image", content=big.getvalue())
    assert r.status_code == 413 and "1000 x 700" in r.text
    small = io.BytesIO()
    Image.open(photos["chelsea"]).resize((500, 350)).save(small, format="PNG")
    r = client.post("/v1/collections/photos/search/image?k=1", content=small.getvalue())
    assert r.status_code == 200 and Path(r.json()["hits"][0]["id"]).name == "chelsea.jpg"


def test_a_clip_collection_made_over_http_holds_texts_found_by_image_and_text(
        client: httpx.Client, clip_dir: Path, photos: dict[str, Path]) -> None:
    r = client.post("/v1/collections", json={"name": "notes", "model": f"clip:{clip_dir}"})
    assert r.status_code == 201, r.text
    assert r.json()["embedder"] == "clip:tiny-clip@24"
    records = [{"id": n, "text": t} for n, t in
               [("cat", "a photo of a cat"), ("cup", "a cup of coffee"), ("rocket", "a rocket on its pad")]]
    assert client.post("/v1/collections/notes/upsert", json={"records": records}).status_code == 200
    r = client.post("/v1/collections/notes/search", json={"image": base64.b64encode(
        photos["coffee"].read_bytes()).decode(), "k": 3})  # image → text
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert sorted(h["id"] for h in hits) == ["cat", "cup", "rocket"] and all(h["text"] for h in hits)
    # The random tiny CLIP ranks nothing meaningfully; the raw score must be the model's own
    # cosine, and the score that cosine clipped to [0, 1].
    clip = semkit.model(f"clip:{clip_dir}", cache=False)
    vectors = clip.embed([photos["coffee"], *(rec["text"] for rec in records)])
    expected = {rec["id"]: float(vectors[0] @ vectors[i + 1]) for i, rec in enumerate(records)}
    assert {h["id"]: h["scores"]["vector"] for h in hits} == pytest.approx(expected, abs=1e-4)
    assert {h["id"]: h["score"] for h in hits} == pytest.approx({i: max(0.0, c) for i, c in expected.items()},
                                                                abs=1e-4)
    r = client.post("/v1/collections/notes/search", json={"query": "a cup of coffee", "mode": "vector", "k": 1})
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "cup"  # text → text, identical text
