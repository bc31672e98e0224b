"""The ONNX graph of a BERT-family encoder, written op by op from ``config.json`` and
``model.safetensors``: no torch, no transformers, no onnx package (the messages are
``onnx_proto.py``'s, on protobuf; all-MiniLM-L6-v2: 0.43 s, docs/install.md).

Supported shapes (``model_type`` in ``config.json``), the ones the local catalogue uses:

- ``bert`` (all-MiniLM, bge, e5, paraphrase-multilingual-MiniLM): absolute positions
  ``0..S-1``, token type embeddings, post-LayerNorm layers;
- ``roberta`` / ``xlm-roberta`` (bge-m3): positions counted over non-padding tokens from
  ``pad_token_id + 1`` (fairseq's ``make_positions``), one token type;
- ``mpnet`` (all-mpnet-base-v2): roberta's positions, no token types, and a relative position
  bias (32 buckets, shared by all layers) added to every attention score.

Anything else (another ``model_type``, ``position_embedding_type`` other than absolute, an
activation or weight dtype not listed here) raises ``UnsupportedArchitecture`` and the caller
falls back to the torch exporter, which handles any Hugging Face model.

The graph is written the way torch's exporter writes it (``MatMul`` by a transposed weight then
``Add`` of the bias, GELU as ``x * 0.5 * (1 + erf(x / √2))``, one ``LayerNormalization`` op), so
that onnxruntime's graph optimiser fuses it (session level ``ORT_ENABLE_ALL``) and ``quantize.py``
finds the weight MatMuls it rewrites. Heads: ``last_hidden_state`` (an embedder; pooling is done
by the caller) or ``logits`` (a sequence-classification cross-encoder: BERT's pooler + linear
classifier, or roberta/MPNet's dense + tanh + out_proj head on the first token).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import SemkitError

Head = Literal["last_hidden_state", "logits"]

GRAPH_RECIPE = "g1"
"""Names this builder's output in the export cache; bump it when the graph it writes changes."""

OPSET = 17
"""LayerNormalization is a standard op from opset 17 on."""

_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh")
_ROBERTA_POSITIONS = ("roberta", "xlm-roberta", "mpnet")


class UnsupportedArchitecture(SemkitError):
    """The folder's model is not one of the shapes this builder writes (the torch exporter can
    still export it)."""


@dataclass(frozen=True)
class EncoderShape:
    """What the graph depends on, read from ``config.json``."""

    model_type: str
    hidden: int
    heads: int
    layers: int
    eps: float
    activation: str
    pad_token_id: int
    type_vocab_size: int
    relative_buckets: int  # MPNet only; 0 elsewhere

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @property
    def roberta_positions(self) -> bool:
        return self.model_type in _ROBERTA_POSITIONS

    @staticmethod
    def read(config: dict[str, Any]) -> EncoderShape:
        model_type = str(config.get("model_type", ""))
        if model_type not in ("bert", *_ROBERTA_POSITIONS):
            raise UnsupportedArchitecture(f"model_type {model_type!r} is not one the graph builder writes")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise UnsupportedArchitecture(f"position_embedding_type {config['position_embedding_type']!r}")
        activation = str(config.get("hidden_act", "gelu"))
        if activation not in _ACTIVATIONS:
            raise UnsupportedArchitecture(f"hidden_act {activation!r}")
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        if hidden % heads:
            raise UnsupportedArchitecture(f"hidden_size {hidden} is not a multiple of {heads} heads")
        return EncoderShape(
            model_type=model_type, hidden=hidden, heads=heads, layers=int(config["num_hidden_layers"]),
            eps=float(config.get("layer_norm_eps", 1e-12)), activation=activation,
            # MPNet's embeddings hard-code padding_idx 1 whatever the config says
            pad_token_id=1 if model_type == "mpnet" else int(config.get("pad_token_id") or 0),
            type_vocab_size=0 if model_type == "mpnet" else int(config.get("type_vocab_size", 0) or 0),
            relative_buckets=int(config.get("relative_attention_num_buckets", 32)) if model_type == "mpnet" else 0,
        )

    def input_names(self) -> list[str]:
        """The graph's inputs, as the torch exporter names them (``token_type_ids`` only when the
        model has token type embeddings)."""
        names = ["input_ids", "attention_mask"]
        return [*names, "token_type_ids"] if self.type_vocab_size else names


def build(transformer_dir: Path, head: Head = "last_hidden_state") -> bytes:
    """The serialised fp32 ONNX graph of the encoder in ``transformer_dir`` (``config.json`` +
    ``model.safetensors``), inputs ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) with
    dynamic batch and sequence axes, output ``head``."""
    return build_model(transformer_dir, head).SerializeToString()


def build_model(transformer_dir: Path, head: Head = "last_hidden_state") -> Any:
    """``build``'s graph as an unserialised ``onnx_proto.ModelProto``: the int8 export rewrites
    it in place (``quantize.quantize_per_token``) instead of writing the fp32 file and parsing
    it back."""
    from .onnx_proto import ElementType, make_tensor_value_info

    config_path, weights_path = transformer_dir / "config.json", transformer_dir / "model.safetensors"
    if not weights_path.is_file():
        raise UnsupportedArchitecture(f"{transformer_dir} has no model.safetensors (only torch reads .bin)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedArchitecture(f"cannot read {config_path}: {exc}") from None
    shape = EncoderShape.read(config)
    g = _Graph(_Weights(weights_path))
    hidden = _encoder(g, shape)
    if head == "logits":
        output, axes = _classifier(g, hidden), ["batch", int(config.get("num_labels") or 0) or "labels"]
    else:
        output, axes = hidden, ["batch", "sequence", shape.hidden]
    g.weights.check_all_used()
    g.weights.close()  # unmap the safetensors file before serialising: its pages count in the peak
    graph = g.model.graph
    graph.name = f"{shape.model_type}-{head}"
    graph.input.extend(make_tensor_value_info(n, ElementType.INT64, ["batch", "sequence"])
                       for n in shape.input_names())
    graph.output.append(make_tensor_value_info(head, ElementType.FLOAT, axes))
    graph.node.extend(g.nodes)
    _rename_output(graph, output, head)
    # No onnx.checker pass (the onnx package is not a dependency; it also serialised the whole
    # model once more, 0.7 s for MiniLM): the caller loads the result in onnxruntime, which
    # validates it, before trusting it.
    return g.model


def _rename_output(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


# --- weights ------------------------------------------------------------------------------------

class _Weights:
    """The safetensors file, read one tensor at a time (no second copy of the whole model),
    under whatever prefix the checkpoint uses (``bert.``, ``roberta.``, ``mpnet.`` or none)."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self._file: Any = safe_open(str(path), framework="np")
        keys = set(self._file.keys())
        anchor = "embeddings.word_embeddings.weight"
        found = sorted((k for k in keys if k.endswith(anchor)), key=len)
        if not found:
            raise UnsupportedArchitecture(f"{path} has no {anchor}: not a BERT-family checkpoint")
        self.prefix = found[0][: -len(anchor)]
        self.keys = keys
        self.used: set[str] = set()

    def has(self, name: str, *, encoder: bool = True) -> bool:
        return (self.prefix + name if encoder else name) in self.keys

    def get(self, name: str, *, encoder: bool = True) -> np.ndarray:
        key = self.prefix + name if encoder else name
        if key not in self.keys:
            raise UnsupportedArchitecture(f"the checkpoint has no {key!r}")
        self.used.add(key)
        try:
            array = self._file.get_tensor(key)
        except (TypeError, ValueError) as exc:  # e.g. bfloat16, which numpy does not have
            raise UnsupportedArchitecture(f"cannot read {key!r} with numpy: {exc}") from None
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float32)  # fp16 checkpoints: the fp32 graph computes in fp32
        return array

    def close(self) -> None:
        self._file = None

    def check_all_used(self) -> None:
        """A weight the builder did not read is a part of the model it does not know (an extra
        projection, adapter...): refuse rather than write a graph that silently skips it."""
        ignorable = ("position_ids", "pooler.", "lm_head.", "cls.", "classifier.", "num_batches_tracked")
        unread = sorted(k for k in self.keys - self.used if not any(s in k for s in ignorable))
        if unread:
            raise UnsupportedArchitecture(f"weights the graph builder does not use: {', '.join(unread[:5])}")


class _Graph:
    """Nodes and initialisers of the graph being written; names follow torch's exporter."""

    def __init__(self, weights: _Weights) -> None:
        from .onnx_proto import make_model, make_opsetid

        self.weights = weights
        self.nodes: list[Any] = []
        # Weights go straight into the model's protobuf, one tensor at a time: building a list
        # first and handing it over would copy all of them twice more.
        self.model = make_model("encoder", [make_opsetid("", OPSET)], producer_name="semkit.onnx_graph",
                                producer_version=GRAPH_RECIPE)
        self._constants: dict[tuple[str, bytes], str] = {}

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from .onnx_proto import make_node

        self.nodes.append(make_node(op_type, inputs, [f"{name}_output_0"], name=name, **attrs))
        return f"{name}_output_0"

    def tensor(self, name: str, array: np.ndarray) -> str:
        from .onnx_proto import fill_tensor

        # np.ascontiguousarray would turn a 0-d scalar into shape (1,)
        contiguous = array if array.flags.c_contiguous else array.copy(order="C")
        fill_tensor(self.model.graph.initializer.add(), contiguous, name)  # in place: no copy of the message
        return name

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        array = np.asarray(value, dtype=dtype)
        key = (str(array.dtype) + str(array.shape), array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.tensor(f"const_{len(self._constants)}", array)
        return self._constants[key]

    def weight(self, name: str, *, encoder: bool = True) -> str:
        return self.tensor(name, self.weights.get(name, encoder=encoder))

    def linear(self, x: str, module: str, *, encoder: bool = True) -> str:
        """``x @ W.T + b`` for the nn.Linear ``module``; the weight is stored transposed, as
        torch's exporter stores it, so MatMul reads it as (in, out)."""
        w = self.tensor(f"{module}.weight.T", self.weights.get(f"{module}.weight", encoder=encoder).T)
        product = self.op("MatMul", [x, w], f"/{module}/MatMul")
        return self.op("Add", [product, self.weight(f"{module}.bias", encoder=encoder)], f"/{module}/Add")

    def layer_norm(self, x: str, module: str, eps: float) -> str:
        return self.op("LayerNormalization", [x, self.weight(f"{module}.weight"), self.weight(f"{module}.bias")],
                       f"/{module}/LayerNormalization", axis=-1, epsilon=eps)


# --- the encoder --------------------------------------------------------------------------------

def _encoder(g: _Graph, shape: EncoderShape) -> str:
    x = _embeddings(g, shape)
    mask_bias = _attention_mask_bias(g)
    position_bias = _relative_position_bias(g, shape) if shape.relative_buckets else None
    mpnet = shape.model_type == "mpnet"
    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        names = (f"{p}.attention.attn.{n}" for n in "qkvo") if mpnet else (
            f"{p}.attention.self.query", f"{p}.attention.self.key", f"{p}.attention.self.value",
            f"{p}.attention.output.dense")
        q, k, v, o = names
        context = _attention(g, shape, x, (q, k, v), mask_bias, position_bias, p)
        norm = f"{p}.attention.LayerNorm" if mpnet else f"{p}.attention.output.LayerNorm"
        attended = g.layer_norm(g.op("Add", [g.linear(context, o), x], f"/{p}/attention/residual"), norm, shape.eps)
        inner = _activation(g, g.linear(attended, f"{p}.intermediate.dense"), shape.activation, p)
        out = g.op("Add", [g.linear(inner, f"{p}.output.dense"), attended], f"/{p}/output/residual")
        x = g.layer_norm(out, f"{p}.output.LayerNorm", shape.eps)
    return x


def _embeddings(g: _Graph, shape: EncoderShape) -> str:
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "/embeddings/word")
    positions_table = g.weight("embeddings.position_embeddings.weight")
    if shape.roberta_positions:
        # fairseq's make_positions: 1, 2, ... over non-padding tokens, offset by the pad id;
        # padding tokens get the pad id's row (computed from input_ids, not the attention mask,
        # as transformers does).
        pad = g.const(shape.pad_token_id, np.int64)
        is_pad = g.op("Equal", ["input_ids", pad], "/embeddings/is_pad")
        real = g.op("Cast", [g.op("Not", [is_pad], "/embeddings/not_pad")], "/embeddings/real", to=7)
        counted = g.op("CumSum", [real, g.const(1, np.int64)], "/embeddings/cumsum")
        ids = g.op("Add", [g.op("Mul", [counted, real], "/embeddings/masked_count"), pad], "/embeddings/position_ids")
        positions = g.op("Gather", [positions_table, ids], "/embeddings/position")
    else:  # rows 0..S-1 of the table, broadcast over the batch
        length = _sequence_length(g)
        positions = g.op("Slice", [positions_table, g.const([0], np.int64), length, g.const([0], np.int64)],
                         "/embeddings/position")
    total = g.op("Add", [words, positions], "/embeddings/add_position")
    if shape.type_vocab_size:
        types = g.op("Gather", [g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
                     "/embeddings/token_type")
        total = g.op("Add", [total, types], "/embeddings/add_token_type")
    return g.layer_norm(total, "embeddings.LayerNorm", shape.eps)


def _sequence_length(g: _Graph) -> str:
    """``[S]``: the sequence axis of ``input_ids`` as a 1-element int64 tensor (one node, however
    many readers)."""
    if any(node.name == "/sequence_length" for node in g.nodes):
        return "/sequence_length_output_0"
    return g.op("Shape", ["input_ids"], "/sequence_length", start=1, end=2)


def _attention_mask_bias(g: _Graph) -> str:
    """``(1 - mask) * float32.min`` of shape (B, 1, 1, S), added to every head's scores:
    transformers' eager attention mask."""
    mask = g.op("Cast", ["attention_mask"], "/mask/float", to=1)
    mask = g.op("Unsqueeze", [mask, g.const([1, 2], np.int64)], "/mask/unsqueeze")
    inverted = g.op("Sub", [g.const(1.0), mask], "/mask/invert")
    return g.op("Mul", [inverted, g.const(np.finfo(np.float32).min)], "/mask/bias")


def _attention(g: _Graph, shape: EncoderShape, x: str, qkv: tuple[str, str, str], mask_bias: str,
               position_bias: str | None, prefix: str) -> str:
    split = g.const([0, 0, shape.heads, shape.head_size], np.int64)
    p = f"/{prefix}/attention"

    def heads(name: str, module: str, perm: list[int]) -> str:
        projected = g.op("Reshape", [g.linear(x, module), split], f"{p}/{name}/split")
        return g.op("Transpose", [projected], f"{p}/{name}/transpose", perm=perm)

    q = heads("query", qkv[0], [0, 2, 1, 3])
    k = heads("key", qkv[1], [0, 2, 3, 1])  # already transposed for Q @ K^T
    v = heads("value", qkv[2], [0, 2, 1, 3])
    scores = g.op("MatMul", [q, k], f"{p}/scores")
    scores = g.op("Div", [scores, g.const(math.sqrt(shape.head_size))], f"{p}/scale")
    if position_bias is not None:
        scores = g.op("Add", [scores, position_bias], f"{p}/position_bias")
    scores = g.op("Add", [scores, mask_bias], f"{p}/mask")
    probabilities = g.op("Softmax", [scores], f"{p}/softmax", axis=-1)
    context = g.op("MatMul", [probabilities, v], f"{p}/context")
    context = g.op("Transpose", [context], f"{p}/context/transpose", perm=[0, 2, 1, 3])
    return g.op("Reshape", [context, g.const([0, 0, shape.hidden], np.int64)], f"{p}/context/merge")


def _activation(g: _Graph, x: str, activation: str, prefix: str) -> str:
    p = f"/{prefix}/intermediate/act"
    if activation == "relu":
        return g.op("Relu", [x], p)
    if activation == "gelu":  # exact GELU, written as torch exports it (quantize.py looks for the Erf)
        erf = g.op("Erf", [g.op("Div", [x, g.const(math.sqrt(2.0))], f"{p}/div")], f"{p}/erf")
        gated = g.op("Mul", [x, g.op("Add", [erf, g.const(1.0)], f"{p}/add")], f"{p}/mul")
        return g.op("Mul", [gated, g.const(0.5)], f"{p}/half")
    # gelu_new / gelu_pytorch_tanh: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
    cube = g.op("Mul", [g.op("Mul", [x, x], f"{p}/square"), x], f"{p}/cube")
    inner = g.op("Add", [x, g.op("Mul", [cube, g.const(0.044715)], f"{p}/scaled_cube")], f"{p}/inner")
    tanh = g.op("Tanh", [g.op("Mul", [inner, g.const(math.sqrt(2.0 / math.pi))], f"{p}/scaled")], f"{p}/tanh")
    gated = g.op("Mul", [x, g.op("Add", [tanh, g.const(1.0)], f"{p}/add")], f"{p}/mul")
    return g.op("Mul", [gated, g.const(0.5)], f"{p}/half")


def relative_position_buckets(max_distance_seen: int, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNet's (T5's) bucket of every relative position ``j - i`` in ``[-(n-1), n-1]``, indexed by
    ``j - i + n - 1`` with ``n = max_distance_seen``: transformers' ``relative_position_bucket``
    computed once, in float32 as torch computes it, so the graph only gathers."""
    relative = np.arange(-(max_distance_seen - 1), max_distance_seen, dtype=np.int64)
    n = -relative
    half = num_buckets // 2
    bucket = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(n.astype(np.float32) / np.float32(max_exact))
                  / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact))
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    large = np.minimum(large, half - 1)
    return bucket + np.where(n < max_exact, n, large)


def _relative_position_bias(g: _Graph, shape: EncoderShape) -> str:
    """(1, heads, S, S): the bias of each head for each (query i, key j), from the positions
    ``0..S-1`` (MPNet's encoder ignores padding here)."""
    table = g.weights.get("encoder.relative_attention_bias.weight")  # (buckets, heads)
    span = 4096  # longest sequence the table covers; MPNet's own limit is 514 positions
    buckets = relative_position_buckets(span, shape.relative_buckets)
    per_distance = g.tensor("encoder.relative_attention_bias.by_distance", table[buckets])  # (2*span-1, heads)
    length = g.op("Squeeze", [_sequence_length(g)], "/position_bias/length")
    steps = g.op("Range", [g.const(0, np.int64), length, g.const(1, np.int64)], "/position_bias/range")
    rows = g.op("Unsqueeze", [steps, g.const([1], np.int64)], "/position_bias/rows")
    columns = g.op("Unsqueeze", [steps, g.const([0], np.int64)], "/position_bias/columns")
    distance = g.op("Sub", [columns, rows], "/position_bias/distance")  # j - i
    index = g.op("Add", [distance, g.const(span - 1, np.int64)], "/position_bias/index")
    bias = g.op("Gather", [per_distance, index], "/position_bias/gather")  # (S, S, heads)
    bias = g.op("Transpose", [bias], "/position_bias/transpose", perm=[2, 0, 1])
    return g.op("Unsqueeze", [bias, g.const([0], np.int64)], "/position_bias/unsqueeze")


# --- the classification head --------------------------------------------------------------------

def _classifier(g: _Graph, hidden: str) -> str:
    """Logits from the first token: BERT's ``pooler`` + ``classifier``, or roberta/MPNet's
    ``classifier.dense`` + tanh + ``classifier.out_proj``."""
    first = g.op("Gather", [hidden, g.const(0, np.int64)], "/head/first_token", axis=1)
    w = g.weights
    if w.has("classifier.out_proj.weight", encoder=False):
        pooled = g.op("Tanh", [g.linear(first, "classifier.dense", encoder=False)], "/head/tanh")
        return g.linear(pooled, "classifier.out_proj", encoder=False)
    if w.has("classifier.weight", encoder=False) and w.has("pooler.dense.weight"):
        pooled = g.op("Tanh", [g.linear(first, "pooler.dense")], "/head/tanh")
        return g.linear(pooled, "classifier", encoder=False)
    raise UnsupportedArchitecture("no classification head the graph builder knows (pooler + classifier)")
