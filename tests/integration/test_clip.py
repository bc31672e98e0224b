"""The ``clip:`` provider on a real (tiny, randomly initialised) CLIP built in this session,
real photos from scikit-image, and real stores. The real-model ranking check runs only when
``SEMKIT_CLIP_MODEL`` points to a real CLIP folder (nothing is downloaded)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("skimage")
from PIL import Image

import semkit
from semkit.errors import InvalidInput, ModelNotAvailable
from semkit.models.clip import ClipEmbedder
from semkit.models.images import UnreadableImage, image_metadata
from tests.support.tiny_clip import build_tiny_clip, save_photos

PROMPTS = {"chelsea": "a photo of a cat", "coffee": "a cup of coffee", "rocket": "a rocket",
           "astronaut": "an astronaut"}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="session")
def clip(tiny_clip_dir: Path) -> ClipEmbedder:
    model = semkit.model(f"clip:{tiny_clip_dir}", cache=False)
    assert isinstance(model, ClipEmbedder)
    return model


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_photos(tmp_path_factory.mktemp("photos"))


def generated_images() -> list[Image.Image]:
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    return [
        Image.new("RGB", (20, 90), (200, 30, 30)),
        Image.fromarray(ramp, mode="L"),
        Image.new("RGBA", (64, 64), (0, 0, 255, 128)),
        Image.fromarray(np.stack([ramp, ramp.T[:48, :48].repeat(2, 1)[:, :64], ramp], -1)),
    ]


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_loads_from_a_folder_without_importing_torch_at_import_time(clip: ClipEmbedder,
                                                                     tiny_clip_dir: Path) -> None:
    assert clip.id == "clip:tiny-clip@24"
    assert clip.dimensions == 24 and clip.max_tokens == 16
    assert clip.modalities == frozenset({"text", "image"})
    assert "|sha=" in clip.fingerprint
    code = "import sys, semkit, semkit.models.clip; print('torch' in sys.modules, 'PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_texts_and_images_share_one_normalised_space(clip: ClipEmbedder, photos: dict[str, Path]) -> None:
    images: list[Any] = [photos["chelsea"], *generated_images()]
    vectors = clip.embed(["a photo of a cat", *images, "a rocket"])
    assert vectors.shape == (len(images) + 2, 24) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Input order is kept: each row equals the item embedded on its own.
    np.testing.assert_allclose(vectors[0], clip.embed(["a photo of a cat"])[0], atol=1e-5)
    np.testing.assert_allclose(vectors[1], clip.embed_images([photos["chelsea"]]).vectors[0], atol=1e-5)
    np.testing.assert_allclose(vectors[-1], clip.embed(["a rocket"])[0], atol=1e-5)
    # Distinct inputs give distinct vectors (a broken pipeline tends to return one constant row).
    assert len({tuple(np.round(v, 4)) for v in vectors}) == len(vectors)


def test_path_bytes_and_pil_give_the_same_vector_and_it_is_deterministic(
        clip: ClipEmbedder, photos: dict[str, Path]) -> None:
    path = photos["coffee"]
    as_pil = Image.open(path)
    vectors = clip.embed([path, path.read_bytes(), as_pil])
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-6)
    np.testing.assert_allclose(vectors[2], vectors[0], atol=1e-6)
    np.testing.assert_allclose(clip.embed([path]), clip.embed([path]), atol=0)


def test_batching_does_not_change_vectors(tiny_clip_dir: Path, clip: ClipEmbedder,
                                          photos: dict[str, Path]) -> None:
    small = semkit.model(f"clip:{tiny_clip_dir}", cache=False, batch_size=2)
    items: list[Any] = [*photos.values(), *generated_images(), "a cup", "an astronaut in space",
                        "coffee", "x"]
    np.testing.assert_allclose(small.embed(items), clip.embed(items), atol=1e-5)


def test_formats_png_webp_gif(clip: ClipEmbedder) -> None:
    img = generated_images()[3]
    vectors = clip.embed([encoded(img, "PNG"), encoded(img, "WEBP"), encoded(img, "GIF")])
    assert vectors.shape == (3, 24)
    np.testing.assert_allclose(vectors[0], clip.embed([img])[0], atol=1e-5)  # PNG is lossless


def test_bad_files_are_reported_by_index_and_nothing_is_lost(clip: ClipEmbedder, tmp_path: Path,
                                                             photos: dict[str, Path]) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is text, not a JPEG")
    png = encoded(generated_images()[0], "PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png[: len(png) // 2])
    items: list[Any] = [photos["rocket"], fake, png, truncated, tmp_path / "missing.png"]

    with pytest.raises(UnreadableImage) as err:
        clip.embed(["a rocket", *items])
    assert isinstance(err.value, InvalidInput)
    # Indices are positions in the caller's batch (the text is item 0).
    assert [f.index for f in err.value.failures] == [2, 4, 5]
    assert "notes.jpg" in str(err.value) and "cut.png" in str(err.value) and "no such file" in str(err.value)

    batch = clip.embed_images(items, errors="skip")
    assert batch.indices == [0, 2]
    assert [f.index for f in batch.failures] == [1, 3, 4]
    np.testing.assert_allclose(batch.vectors, clip.embed([photos["rocket"], png]), atol=1e-5)


def test_invalid_inputs(clip: ClipEmbedder) -> None:
    with pytest.raises(InvalidInput, match="blank"):
        clip.embed(["a cat", "  "])
    with pytest.raises(InvalidInput, match="nothing to embed"):
        clip.embed([])
    batch = clip.embed_images(["cat.jpg"], errors="skip")
    assert batch.indices == [] and batch.vectors.shape == (0, 24)
    assert "pathlib.Path" in batch.failures[0].reason
    with pytest.raises(InvalidInput, match="errors must be"):
        clip.embed_images([Image.new("RGB", (4, 4))], errors="ignore")  # type: ignore[arg-type]


def test_long_text_is_truncated_and_counted(clip: ClipEmbedder) -> None:
    result = clip.embed_result(["a cat", "a very long caption " * 20])
    assert result.truncated == 1 and result.vectors.shape == (2, 24)


def test_missing_model_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEMKIT_CLIP_MODEL", raising=False)
    with pytest.raises(ModelNotAvailable, match="SEMKIT_CLIP_MODEL") as err:
        semkit.model("clip", cache=False)
    assert "huggingface-cli download openai/clip-vit-base-patch32" in str(err.value)
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        semkit.model(f"clip:{tmp_path / 'nowhere'}", cache=False)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelNotAvailable, match="holds no CLIP model"):
        semkit.model(f"clip:{tmp_path / 'bert'}", cache=False)


def test_env_var_and_sentence_transformers_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  tiny_clip_dir: Path, clip: ClipEmbedder) -> None:
    root = tmp_path / "clip-ViT-tiny"
    shutil.copytree(tiny_clip_dir, root / "0_CLIPModel")
    (root / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}]))
    monkeypatch.setenv("SEMKIT_CLIP_MODEL", str(root))
    model = semkit.model("clip", cache=False)
    assert model.id == "clip:clip-ViT-tiny@24"
    img = generated_images()[0]
    np.testing.assert_allclose(model.embed(["a cat", img]), clip.embed(["a cat", img]), atol=1e-6)


def test_cached_model_passes_images_through(tiny_clip_dir: Path, photos: dict[str, Path]) -> None:
    model = semkit.model(f"clip:{tiny_clip_dir}")  # wrapped in the embedding cache
    first = model.embed_result(["a cat", "a dog"])
    again = model.embed_result(["a cat", "a dog"])
    assert (first.cached, again.cached) == (0, 2)
    np.testing.assert_allclose(again.vectors, first.vectors, atol=1e-6)
    mixed = model.embed(["a cat", photos["chelsea"]])
    assert mixed.shape == (2, 24)
    assert model.embed_images([photos["chelsea"]]).indices == [0]


@pytest.mark.parametrize("backend", ["embedded", "memory"])
def test_image_collection_searched_by_text_and_by_image(backend: str, tmp_path: Path,
                                                        clip: ClipEmbedder, photos: dict[str, Path]) -> None:
    extra = tmp_path / "generated"
    extra.mkdir()
    paths = list(photos.values())
    for i, img in enumerate(generated_images()):
        paths.append(extra / f"gen{i}.png")
        img.save(paths[-1])
    batch = clip.embed_images(paths)
    uri = str(tmp_path / "kb") if backend == "embedded" else "memory://"
    with semkit.connect(uri) as db:
        col = db.collection("photos", model=None, dimensions=clip.dimensions)
        col.upsert(ids=[p.stem for p in paths], vectors=batch.vectors,
                   metadata=[image_metadata(p) for p in paths])
        assert len(col) == len(paths)

        text_vec = clip.embed(["a photo of a cat"], kind="query")[0]
        hits = col.search(text_vec, k=len(paths))
        expected = np.argsort(-(batch.vectors @ text_vec), kind="stable")
        assert [h.id for h in hits] == [paths[i].stem for i in expected]
        np.testing.assert_allclose([h.score for h in hits], (batch.vectors @ text_vec)[expected], atol=1e-4)

        by_image = col.search(clip.embed([photos["rocket"].read_bytes()])[0], k=1)
        assert by_image[0].id == "rocket" and by_image[0].score == pytest.approx(1.0, abs=1e-4)
        meta = by_image[0].metadata
        assert meta["path"] == str(photos["rocket"])
        assert (meta["width"], meta["height"], meta["format"]) == (640, 427, "JPEG")


def test_collection_with_the_clip_model_embeds_text_queries(tmp_path: Path, clip: ClipEmbedder,
                                                            photos: dict[str, Path]) -> None:
    paths = list(photos.values())
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("photos", model=clip)
        col.upsert(ids=[p.stem for p in paths], vectors=clip.embed_images(paths).vectors,
                   metadata=[image_metadata(p) for p in paths])
        hits = col.search("a cup of coffee", k=4)
        direct = col.search(clip.embed(["a cup of coffee"])[0], k=4)
        assert [h.id for h in hits] == [h.id for h in direct]


@pytest.mark.skipif(not os.environ.get("SEMKIT_CLIP_MODEL"), reason="set SEMKIT_CLIP_MODEL to a real CLIP folder")
def test_real_model_ranks_the_right_photo_first(photos: dict[str, Path]) -> None:
    model = semkit.model("clip", cache=False)
    names = list(photos)
    images = model.embed_images([photos[n] for n in names]).vectors
    prompts = model.embed([PROMPTS[n] for n in names])
    best = (prompts @ images.T).argmax(axis=1)
    assert [names[i] for i in best] == names


def test_cli_search_by_image_and_by_text_with_a_clip_model(tmp_path: Path, tiny_clip_dir: Path,
                                                           clip: ClipEmbedder,
                                                           photos: dict[str, Path]) -> None:
    from tests.e2e.test_cli import run

    paths = list(photos.values())
    vectors = clip.embed_images(paths).vectors
    db = str(tmp_path / "kb")
    with semkit.connect(db) as conn:
        conn.collection("photos", model=None, dimensions=clip.dimensions).upsert(
            ids=[p.stem for p in paths], vectors=vectors, metadata=[image_metadata(p) for p in paths])
    env = {"SEMKIT_CLIP_MODEL": str(tiny_clip_dir)}
    common = ("--db", db, "--collection", "photos", "--json")

    by_image = json.loads(run("search", "--image", str(photos["astronaut"]), *common, "-k", "2",
                              env=env).stdout)
    assert by_image[0]["id"] == "astronaut" and by_image[0]["mode"] == "vector"
    assert by_image[0]["metadata"]["width"] == 512 and len(by_image) == 2

    by_text = json.loads(run("search", "a photo of a cat", *common, "--model", "clip", env=env).stdout)
    expected = np.argsort(-(vectors @ clip.embed(["a photo of a cat"])[0]), kind="stable")
    assert [h["id"] for h in by_text] == [paths[i].stem for i in expected]

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    failed = run("search", "--image", str(bad), *common, env=env, check=False)
    assert failed.returncode != 0 and "notes.jpg" in failed.stderr and "could not be read" in failed.stderr
    neither = run("search", *common, env=env, check=False)
    assert neither.returncode != 0 and "--image" in neither.stderr


def test_index_images_is_incremental_and_reports_bad_files(tmp_path: Path, clip: ClipEmbedder,
                                                           photos: dict[str, Path]) -> None:
    from semkit.ingest.images import index_images

    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for name, path in photos.items():
        shutil.copy(path, folder / f"{name}.jpg")
    generated_images()[2].save(folder / "sub" / "blue.png")
    generated_images()[0].save(folder / "sub" / "red.webp")
    (folder / "fake.gif").write_text("GIF? no")
    (folder / "readme.txt").write_text("not an image, not picked up")
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("photos", model=clip)
        first = index_images(col, folder)
        assert first.seen == 7 and len(first.indexed) == 6 and first.unchanged == 0
        assert [Path(s).name for s, _ in first.failed] == ["fake.gif"]
        rec = col.get([str((folder / "rocket.jpg").resolve())], include_vectors=True)[0]
        assert (rec.metadata["width"], rec.metadata["height"], rec.metadata["format"]) == (640, 427, "JPEG")
        assert rec.metadata["thumbnail"].startswith("data:image/jpeg;base64,")
        np.testing.assert_allclose(rec.vector, clip.embed([photos["rocket"]])[0], atol=1e-5)

        generated_images()[1].save(folder / "sub" / "blue.png")  # changed content
        again = index_images(col, folder, batch_size=2)
        assert [Path(i).name for i in again.indexed] == ["blue.png"] and again.unchanged == 5
        assert len(col) == 6
        hits = col.search("a photo of a cat", k=6)  # the collection's CLIP embeds the text query
        assert len(hits) == 6 and all(h.metadata["path"].startswith(str(folder.resolve())) for h in hits)


def test_index_images_removes_deleted_files_but_not_texts_or_other_folders(
        tmp_path: Path, clip: ClipEmbedder, photos: dict[str, Path]) -> None:
    from semkit.ingest.images import index_images

    pics, other = tmp_path / "pics", tmp_path / "other"
    pics.mkdir()
    other.mkdir()
    for name in ("chelsea", "coffee"):
        shutil.copy(photos[name], pics / f"{name}.jpg")
    shutil.copy(photos["rocket"], other / "rocket.jpg")
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("mixed", model=clip)
        col.upsert(["note"], texts=["a note about cats"], metadata=[{"path": str(pics / "gone.jpg")}])
        index_images(col, [pics, other])
        assert len(col) == 4
        (pics / "coffee.jpg").unlink()
        (pics / "chelsea.jpg").write_bytes(b"now broken")  # unreadable, not gone: its record stays
        again = index_images(col, pics)  # 'other' is not indexed this time: its rocket stays
        assert [Path(r).name for r in again.removed] == ["coffee.jpg"]
        assert [Path(s).name for s, _ in again.failed] == ["chelsea.jpg"]
        assert sorted(Path(r.id).name for r in col) == ["chelsea.jpg", "note", "rocket.jpg"]
        (other / "rocket.jpg").unlink()
        assert index_images(col, other, remove_missing=False).removed == [] and len(col) == 3


def test_index_rejects_a_text_only_model(tmp_path: Path, photos: dict[str, Path]) -> None:
    from semkit.ingest.images import index_images
    from tests.support.hash_embedder import HashEmbedder

    with semkit.connect("memory://") as db:
        col = db.collection("docs", model=HashEmbedder())
        with pytest.raises(InvalidInput, match="embeds images"):
            index_images(col, list(photos.values()))


def test_cli_index_with_clip_then_search_by_recorded_model(tmp_path: Path, tiny_clip_dir: Path,
                                                          photos: dict[str, Path]) -> None:
    from tests.e2e.test_cli import run

    folder = tmp_path / "pics"
    folder.mkdir()
    for name, path in photos.items():
        shutil.copy(path, folder / f"{name}.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "note.md").write_text("# Cats\n\nA note about cats sleeping in the sun.\n")
    db = str(tmp_path / "kb")
    env = {"SEMKIT_CLIP_MODEL": str(tiny_clip_dir)}
    report = json.loads(run("index", str(folder), "--db", db, "--clip", "clip",
                            "--image-collection", "photos", "--json", env=env).stdout)
    assert report["count"] == 1  # the markdown note, in the text collection
    images = report["images"]
    assert (len(images["indexed"]), images["count"]) == (4, 4)
    assert [Path(f["source"]).name for f in images["failed"]] == ["broken.png"]
    # The collection recorded clip:tiny-clip; SEMKIT_CLIP_MODEL finds that folder again.
    hits = json.loads(run("search", "a photo of a cat", "--db", db, "--collection", "photos",
                          "--mode", "vector", "--json", env=env).stdout)
    assert len(hits) == 4
    by_image = json.loads(run("search", "--image", str(photos["coffee"]), "--db", db,
                              "--collection", "photos", "-k", "1", "--json", env=env).stdout)
    assert Path(by_image[0]["id"]).name == "coffee.jpg"
    strict = run("index", str(folder), "--db", db, "--clip", "clip", "--image-collection", "photos",
                 "--strict", "--json", env=env, check=False)
    assert strict.returncode == 1 and json.loads(strict.stdout)["images"]["unchanged"] == 4


def test_duplicates_clusters_outliers_on_an_image_collection(tmp_path: Path, clip: ClipEmbedder,
                                                             photos: dict[str, Path]) -> None:
    from semkit.apps._cluster import cluster
    from semkit.apps._dedup import duplicates
    from semkit.apps._outliers import outliers
    from semkit.ingest.images import index_images

    folder = tmp_path / "pics"
    folder.mkdir()
    for name, path in photos.items():
        shutil.copy(path, folder / f"{name}.jpg")
    Image.open(photos["chelsea"]).resize((225, 150)).save(folder / "chelsea_small.png")
    with semkit.connect("memory://") as db:
        col = db.collection("photos", model=clip)
        index_images(col, folder)
        ids = {Path(i).name: i for i in (r.id for r in col.get([str(p.resolve()) for p in folder.iterdir()]))}
        report = duplicates(col, threshold=0.99)
        # Only the resized copy of the cat is a near-duplicate of anything at 0.99.
        assert [{m.id for m in g.members} | {g.keeper} for g in report.groups] == [
            {ids["chelsea.jpg"], ids["chelsea_small.png"]}]
        clusters = cluster(col, k=2)
        assert sorted(clusters.ids) == sorted(ids.values()) and len(set(clusters.labels.tolist())) == 2
        odd = outliers(col, k=2, top=5)
        assert {o.id for o in odd} == set(ids.values()) and odd[0].metadata["width"] > 0


def test_cli_index_mixed_text_and_images_in_one_collection(tmp_path: Path, tiny_clip_dir: Path,
                                                           photos: dict[str, Path]) -> None:
    from tests.e2e.test_cli import run

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(photos["chelsea"], folder / "chelsea.jpg")
    shutil.copy(photos["coffee"], folder / "coffee.jpg")
    (folder / "note.md").write_text("# Cats\n\nA note about cats sleeping in the sun.\n")
    db = str(tmp_path / "kb")
    env = {"SEMKIT_CLIP_MODEL": str(tiny_clip_dir)}
    report = json.loads(run("index", str(folder), "--db", db, "--clip", "clip", "--collection", "docs",
                            "--image-collection", "docs", "--json", env=env).stdout)
    assert report["indexed"] == ["note.md"]
    chunks = report["chunks_written"]  # the tiny CLIP's 16-token context cuts the note in a few
    assert chunks >= 1 and report["images"]["count"] == chunks + 2  # one collection: chunks and photos
    hits = json.loads(run("search", "cats", "--db", db, "--collection", "docs", "--mode", "vector",
                          "--json", env=env).stdout)
    kinds = {"image" if "thumbnail" in h["metadata"] else "text" for h in hits}
    assert kinds == {"image", "text"}
    again = json.loads(run("index", str(folder), "--db", db, "--clip", "clip", "--collection", "docs",
                           "--image-collection", "docs", "--json", env=env).stdout)
    assert again["unchanged"] == 1 and again["images"]["unchanged"] == 2 and again["count"] == chunks + 2
    # A collection made with a text model cannot take CLIP vectors.
    run("index", str(folder), "--db", db, "--collection", "texts", env=env)
    clash = run("index", str(folder), "--db", db, "--clip", "clip", "--collection", "texts",
                "--image-collection", "texts", env=env, check=False)
    assert clash.returncode != 0 and "ModelMismatch" in clash.stderr and "texts" in clash.stderr
    assert "local:all-MiniLM-L6-v2" in clash.stderr and "--image-collection images" in clash.stderr
    # By image: the photo itself first, then the rest of the one collection, texts included.
    by_image = json.loads(run("search", "--image", str(folder / "chelsea.jpg"), "--db", db, "--collection", "docs",
                              "-k", "20", "--json", env=env).stdout)
    assert Path(by_image[0]["id"]).name == "chelsea.jpg" and by_image[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert any(h["id"].startswith("note.md#") for h in by_image)
    wrong = run("search", "--image", str(folder / "chelsea.jpg"), "--db", db, "--collection", "texts",
                env=env, check=False)
    assert wrong.returncode != 0 and "CLIP model" in wrong.stderr and "local:all-MiniLM-L6-v2" in wrong.stderr


def test_mixed_collection_chunks_fit_clip_context(tmp_path: Path, tiny_clip_dir: Path, clip: ClipEmbedder,
                                                  photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Text chunks for CLIP are cut by its own tokenizer to its context (77 tokens for real
    CLIPs, 16 for the tiny one), not by a character estimate that a BPE can exceed."""
    from semkit.ingest import index_paths
    from semkit.ingest.images import index_images
    from semkit.models.tokens import HFTokenizerCounter, counter_for_model

    monkeypatch.setenv("SEMKIT_CLIP_MODEL", str(tiny_clip_dir))
    assert isinstance(counter_for_model(clip.id), HFTokenizerCounter)  # the folder's tokenizer.json
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "cats.md").write_text("# Cats\n\n" + " ".join(
        f"Cat number {i} sleeps in the sun and purrs." for i in range(30)) + "\n")
    shutil.copy(photos["chelsea"], folder / "chelsea.jpg")
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("docs", model=clip)
        report = index_paths(col, [folder])
        index_images(col, [folder], model=clip)
        texts = [r.text for r in col.get([f"cats.md#{i}" for i in range(report.chunks_written)])]
        assert report.chunks_written > 5 and len(texts) == report.chunks_written and len(col) == len(texts) + 1
        sizes = [len(clip.processor.tokenizer(t)["input_ids"]) for t in texts]
        assert max(sizes) <= clip.max_tokens, sizes


def test_cli_index_clip_on_images_only_makes_no_text_collection(tmp_path: Path, tiny_clip_dir: Path,
                                                                photos: dict[str, Path]) -> None:
    from tests.e2e.test_cli import run

    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(photos["rocket"], folder / "rocket.jpg")
    db = str(tmp_path / "kb")
    env = {"SEMKIT_CLIP_MODEL": str(tiny_clip_dir)}
    report = json.loads(run("index", str(folder), "--db", db, "--clip", "clip", "--image-collection", "photos",
                            "--json", env=env).stdout)
    assert report["images"]["count"] == 1 and report["count"] == 0
    assert json.loads(run("collections", "--db", db, "--json").stdout)[0]["name"] == "photos"
    assert len(json.loads(run("collections", "--db", db, "--json").stdout)) == 1


def test_cli_dedup_finds_a_resized_copy_in_an_image_collection(tmp_path: Path, tiny_clip_dir: Path,
                                                               photos: dict[str, Path]) -> None:
    from tests.e2e.test_cli import run

    folder = tmp_path / "pics"
    folder.mkdir()
    for path in photos.values():
        shutil.copy(path, folder / path.name)
    Image.open(photos["chelsea"]).resize((226, 150)).save(folder / "chelsea-small.png")  # other bytes, format
    db = str(tmp_path / "kb")
    env = {"SEMKIT_CLIP_MODEL": str(tiny_clip_dir)}
    run("index", str(folder), "--db", db, "--clip", "clip", "--image-collection", "photos", env=env)
    # The tiny random CLIP puts all photos close together (cosine ~0.95): only a copy is this close.
    report = json.loads(run("dedup", "--db", db, "--collection", "photos", "--threshold", "0.995", "--json",
                            env=env).stdout)
    assert report["items"] == 5 and report["exact_duplicates"] == 0
    assert len(report["groups"]) == 1
    group = report["groups"][0]
    assert Path(group["keeper"]).name == "chelsea.jpg"  # images have no text: the most pixels is kept
    assert [Path(m["id"]).name for m in group["members"]] == ["chelsea-small.png"]
    # Clusters of images: no texts for keywords, so the representative is shown by its file name.
    table = run("cluster", "--db", db, "--collection", "photos", "-k", "2", env=env).stdout
    assert "5 items → 2 clusters" in table
    assert sum(f"{name}.jpg" in table or f"{name}.png" in table for name in (*photos, "chelsea-small")) == 2
