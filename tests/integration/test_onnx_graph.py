"""The torch-free ONNX graph (``onnx_graph.py``) against transformers/sentence-transformers torch:
tiny random BERT, MPNet and XLM-R encoders and classification heads built here, the bundled
all-MiniLM-L6-v2 on STSb sentences (200 here, 2,000 in the slow test), the fallback to the torch
exporter for a shape the builder does not write, and the README's main job with torch,
transformers, scipy and scikit-learn made impossible to import."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semkit.models.local import pool
from semkit.models.onnx_export import load_or_export
from semkit.models.onnx_graph import UnsupportedArchitecture, build, relative_position_buckets
from tests.support.shared_data import shared
from tests.support.without_packages import HEAVY, cli_without, run_without

ROOT = Path(__file__).resolve().parents[2]
TINY = {"vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 160}


@pytest.fixture
def fresh_onnx_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty export cache, so the graph is built here rather than found."""
    folder = tmp_path / "onnx"
    monkeypatch.setenv("SEMKIT_ONNX_DIR", str(folder))
    return folder


def _session(path_or_bytes: Path | bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes),
                                providers=["CPUExecutionProvider"])


def _tiny(kind: str, folder: Path, *, classifier: bool = False) -> Any:
    """A tiny randomly initialised ``kind`` model saved in ``folder``, with the torch module."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config_class, base, head = {
        "bert": (tf.BertConfig, tf.BertModel, tf.BertForSequenceClassification),
        "mpnet": (tf.MPNetConfig, tf.MPNetModel, tf.MPNetForSequenceClassification),
        "xlm-roberta": (tf.XLMRobertaConfig, tf.XLMRobertaModel, tf.XLMRobertaForSequenceClassification),
        "distilbert": (tf.DistilBertConfig, tf.DistilBertModel, None),
    }[kind]
    extra: dict[str, Any] = {"type_vocab_size": 1, "pad_token_id": 1} if kind == "xlm-roberta" else {}
    if kind == "distilbert":
        extra = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37}
    config = config_class(**TINY, **extra, num_labels=2)
    model_class = head if classifier else base
    assert model_class is not None, f"no {kind} classifier here"
    model = model_class(config).eval()
    model.save_pretrained(folder)
    return model


def _batch(vocab: int, pad_id: int, names: list[str]) -> dict[str, np.ndarray]:
    """Three rows of 120 ids, two of them padded (with the model's pad id, as its tokenizer pads)."""
    rng = np.random.default_rng(1)
    ids = rng.integers(3, vocab, size=(3, 120), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 70:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = pad_id
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: feeds[n] for n in names}


def test_relative_position_buckets_are_transformers_for_every_distance() -> None:
    import torch
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    span = 4096
    expected = MPNetEncoder.relative_position_bucket(torch.arange(-(span - 1), span)).numpy()
    np.testing.assert_array_equal(relative_position_buckets(span), expected)


@pytest.mark.parametrize("kind", ["bert", "mpnet", "xlm-roberta"])
def test_tiny_encoder_graph_equals_torch(kind: str, tmp_path: Path, fresh_onnx_dir: Path) -> None:
    import torch

    model = _tiny(kind, tmp_path / kind)
    path = load_or_export(tmp_path / kind, "fp32")
    assert path.parent.name.endswith("-graphg1"), path  # written by the builder, not by torch
    session = _session(path)
    names = [i.name for i in session.get_inputs()]
    assert ("token_type_ids" in names) == (kind != "mpnet")
    feeds = _batch(TINY["vocab_size"], 1 if kind != "bert" else 0, names)
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        ref = model(**{n: torch.from_numpy(v) for n, v in feeds.items()}).last_hidden_state.numpy()
    real = feeds["attention_mask"].astype(bool)
    assert np.abs(got[real] - ref[real]).max() <= 1e-4 * max(1.0, float(np.abs(ref[real]).max()))
    # the embedder's contract: mean-pooled, normalised vectors within 1e-5
    vectors = pool(got, feeds["attention_mask"], "mean", True)
    expected = pool(ref, feeds["attention_mask"], "mean", True)
    assert np.abs(vectors - expected).max() <= 1e-5


@pytest.mark.parametrize("kind", ["bert", "mpnet", "xlm-roberta"])
def test_tiny_classifier_graph_equals_torch(kind: str, tmp_path: Path) -> None:
    import torch

    model = _tiny(kind, tmp_path / kind, classifier=True)
    session = _session(build(tmp_path / kind, "logits"))
    feeds = _batch(TINY["vocab_size"], 1 if kind != "bert" else 0, [i.name for i in session.get_inputs()])
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        ref = model(**{n: torch.from_numpy(v) for n, v in feeds.items()}).logits.numpy()
    assert got.shape == (3, 2)
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_graphs_written_without_the_onnx_package_are_what_onnx_reads_and_writes(kind: str, tmp_path: Path) -> None:
    """onnx_proto.py declares onnx's messages itself (the base install has no onnx package): the
    real onnx package parses the fp32 and int8 graphs, its checker accepts the fp32 one, and it
    re-serialises both to the same bytes, so no field has another number, type or packing."""
    import onnx

    from semkit.models.quantize import quantize_file

    _tiny(kind, tmp_path / kind)
    fp32 = build(tmp_path / kind)
    parsed = onnx.load_from_string(fp32)
    onnx.checker.check_model(parsed)
    assert parsed.SerializeToString() == fp32
    assert len(parsed.graph.node) > 10 and len(parsed.graph.initializer) > 10
    int8 = quantize_file(fp32)
    parsed_int8 = onnx.load_from_string(int8)
    assert parsed_int8.SerializeToString() == int8
    assert any(n.op_type == "MatMulIntegerToFloat" and n.domain == "com.microsoft" for n in parsed_int8.graph.node)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for n in parsed_int8.graph.node for a in n.attribute}
    assert attributes["axes"] == [-1] and isinstance(attributes["value"], onnx.TensorProto)


def test_an_unknown_weight_is_refused_not_skipped(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    _tiny("bert", tmp_path / "m")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    weights["encoder.layer.0.adapter.weight"] = np.zeros((4, 4), dtype=np.float32)
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(UnsupportedArchitecture, match="adapter"):
        build(tmp_path / "m")


def _nodes(path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_another_shape_falls_back_to_the_torch_exporter(tmp_path: Path, fresh_onnx_dir: Path) -> None:
    import torch

    model = _tiny("distilbert", tmp_path / "d")
    with pytest.raises(UnsupportedArchitecture, match="distilbert"):
        build(tmp_path / "d")
    path = load_or_export(tmp_path / "d", "fp32")
    assert "-torch" in path.parent.name
    session = _session(path)
    feeds = _batch(TINY["vocab_size"], 0, [i.name for i in session.get_inputs()])
    with torch.no_grad():
        ref = model(**{n: torch.from_numpy(v) for n, v in feeds.items()}).last_hidden_state.numpy()
    real = feeds["attention_mask"].astype(bool)
    assert np.abs(session.run(None, feeds)[0][real] - ref[real]).max() < 1e-4
    # torch's file (fields onnx_proto.py does not declare included) quantises and runs in int8
    int8 = _session(load_or_export(tmp_path / "d", "int8")).run(None, feeds)[0][real]
    assert any(n.op_type == "MatMulIntegerToFloat" for n in _nodes(load_or_export(tmp_path / "d", "int8")))
    cosine = (int8 * ref[real]).sum(axis=-1) / (np.linalg.norm(int8, axis=-1) * np.linalg.norm(ref[real], axis=-1))
    assert cosine.min() > 0.95, cosine.min()
    # and without torch the error names the extra to install
    code = ("from pathlib import Path\nfrom semkit.models.onnx_export import load_or_export\n"
            f"load_or_export(Path({str(tmp_path / 'd')!r}), 'fp32')\n")
    proc = run_without(code, tmp_path / "imports.log", env={"SEMKIT_ONNX_DIR": str(tmp_path / "empty")})
    assert proc.returncode != 0
    assert "MissingDependency" in proc.stderr and "pip install 'semkit[torch]'" in proc.stderr


# --- the bundled model ----------------------------------------------------------------------------

def _stsb_sentences(n: int) -> list[str]:
    path = shared("stsbenchmark/sts-test.csv")
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        for sentence in fields[5:7]:
            seen.setdefault(sentence.strip(), None)
    sentences = [s for s in seen if s]
    assert len(sentences) >= n
    return sentences[:n]


def _max_diff_to_sentence_transformers(n: int) -> float:
    from sentence_transformers import SentenceTransformer

    from semkit.models.local import load_local, resolve

    sentences = _stsb_sentences(n)
    model = load_local("all-MiniLM-L6-v2", backend="onnx", precision="fp32")
    assert model.fingerprint.endswith("#onnx-fp32"), model.fingerprint
    reference = SentenceTransformer(str(resolve("all-MiniLM-L6-v2").folder), device="cpu")
    expected = reference.encode(sentences, batch_size=32, normalize_embeddings=True)
    return float(np.abs(model.embed(sentences) - expected).max())


def test_bundled_model_graph_equals_sentence_transformers(fresh_onnx_dir: Path) -> None:
    assert _max_diff_to_sentence_transformers(200) <= 1e-5
    exported = [p.parent.name for p in fresh_onnx_dir.glob("*/model.fp32.onnx")]
    assert len(exported) == 1 and exported[0].endswith("-graphg1")
    meta = json.loads(next(fresh_onnx_dir.glob("*/model.fp32.json")).read_text())
    assert meta["exporter"] == "graphg1" and meta["head"] == "last_hidden_state"


@pytest.mark.slow
def test_bundled_model_graph_equals_sentence_transformers_on_2000_stsb_sentences(fresh_onnx_dir: Path) -> None:
    assert _max_diff_to_sentence_transformers(2000) <= 1e-5


# --- the main job without the heavy packages ------------------------------------------------------

def test_index_and_search_run_without_torch_transformers_scipy_sklearn(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    env = {"SEMKIT_ONNX_DIR": str(tmp_path / "onnx"), "SEMKIT_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    kb = str(tmp_path / "kb")
    indexed = cli_without(["index", str(ROOT / "examples" / "docs"), "--db", kb], log, env=env)
    assert indexed.returncode == 0, indexed.stderr
    found = cli_without(["search", "how to fix slow website", "--db", kb, "--json"], log, env=env)
    assert found.returncode == 0, found.stderr
    assert "slow" in found.stdout.lower()
    # Nobody even tried: not a blocked import that something caught and worked around.
    tried = log.read_text() if log.exists() else ""
    assert tried == "", f"the main job tried to import {HEAVY}:\n{tried}"
    exported = list((tmp_path / "onnx").glob("*/model.*.onnx"))
    assert exported and all(p.parent.name.endswith("-graphg1") for p in exported)


def test_int8_export_skips_the_fp32_file_and_equals_the_int8_derived_from_it(tmp_path: Path,
                                                                              fresh_onnx_dir: Path) -> None:
    """The default int8 is quantised from the in-memory fp32 graph: no fp32 file is written on
    the way, and the bytes are those the former route (fp32 file, parsed back) gave."""
    import hashlib

    from semkit.models.onnx_export import _quantize_int8

    _tiny("bert", tmp_path / "bert")
    int8 = load_or_export(tmp_path / "bert", "int8")
    assert int8.name == "model.int8.onnx" and not (int8.parent / "model.fp32.onnx").exists()
    meta = json.loads(int8.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(int8.read_bytes()).hexdigest()
    fp32 = load_or_export(tmp_path / "bert", "fp32")  # asked for: exported now, beside the int8
    assert fp32.parent == int8.parent
    assert _quantize_int8(fp32, TINY["vocab_size"]) == int8.read_bytes()
    assert load_or_export(tmp_path / "bert", "int8") == int8  # found, not rebuilt


def test_the_recorded_int8_graph_of_the_bundled_model_is_the_checked_routes(fresh_onnx_dir: Path) -> None:
    """``KNOWN_INT8_GRAPHS`` lets the first run skip the check sessions only because its value is
    what the checked route builds: re-derived here, so an exporter change that forgets to update
    it fails this test (and users would only lose the shortcut, never get an unchecked graph)."""
    import hashlib

    from semkit.models import onnx_export
    from semkit.models.local import resolve

    folder = resolve("all-MiniLM-L6-v2").folder
    digest = onnx_export.content_digest(folder)
    key = (digest, f"{onnx_export.RECIPE}-graph{onnx_export.GRAPH_RECIPE}", "last_hidden_state")
    checked = onnx_export._export_graph_int8(folder, head="last_hidden_state")  # no digest: checked
    assert onnx_export.KNOWN_INT8_GRAPHS[key] == hashlib.sha256(checked).hexdigest()
    int8 = load_or_export(folder, "int8")
    assert int8.read_bytes() == checked and not (int8.parent / "model.fp32.onnx").exists()


def test_a_graph_that_misses_its_recorded_hash_is_checked_the_slow_way(
        tmp_path: Path, fresh_onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.models import onnx_export

    _tiny("bert", tmp_path / "bert")
    digest = onnx_export.content_digest(tmp_path / "bert")
    key = (digest, f"{onnx_export.RECIPE}-graph{onnx_export.GRAPH_RECIPE}", "last_hidden_state")
    checks: list[object] = []
    real_check = onnx_export._check_int8
    monkeypatch.setattr(onnx_export, "_check_int8", lambda *a: checks.append(a) or real_check(*a))
    monkeypatch.setitem(onnx_export.KNOWN_INT8_GRAPHS, key, "0" * 64)
    slow = onnx_export._export_graph_int8(tmp_path / "bert", head="last_hidden_state", digest=digest)
    assert len(checks) == 1
    monkeypatch.setitem(onnx_export.KNOWN_INT8_GRAPHS, key, hashlib.sha256(slow).hexdigest())
    quick = onnx_export._export_graph_int8(tmp_path / "bert", head="last_hidden_state", digest=digest)
    assert quick == slow and len(checks) == 1  # recorded and equal: no check session
