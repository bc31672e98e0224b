"""Deterministic int8 quantisation of an exported fp32 transformer graph.

Every MatMul with a constant 2-D weight (the Q/K/V, attention-output and feed-forward
projections: 36 of MiniLM's 48 MatMuls) becomes an int8 x int8 matrix product:

- weights: symmetric int8 with one scale per output column, computed once here;
- activations: 8 bits with one scale **per token** (per row of the MatMul's input), computed
  in the graph at run time from that row alone (symmetric, or shifted after GELU: ``_Builder``);
- the product: onnxruntime's fused ``MatMulIntegerToFloat`` (exact int32 accumulation, then
  the row and column scales applied as the output is written).

Why per token: onnxruntime's ``quantize_dynamic`` uses one activation scale for the whole
batch tensor, so a text's vector moves with its batch-mates and with the padding around it
(cosine 0.989 worst case between a text alone and in a batch of 32). A per-row scale depends
on nothing but the row, the integer product is exact, and every other op of the graph works
per row or per sequence, so a text's int8 vector is bit-identical alone or in any batch (as the
fp32 graph's already is); ``tests/integration/test_int8_determinism.py`` checks it. Per-token
scales are also finer than one scale per batch, which is why quality is closer to fp32 (figures
in ``docs/models.md`` and ``benchmarks/quality_sts.py``).

The activation is stored as ``uint8`` with the fixed zero point 128 (values 1..255 standing for
-127..127) because u8 x s8 is the product onnxruntime's MLAS runs fastest on x86 (VNNI/AMX
``vpdpbusd``). Without VNNI, AVX2's ``vpmaddubsw`` can saturate on u8 x s8, which is one reason
int8 is the default only on CPUs with VNNI or AMX (``cpu_has_int8_dot``).

The attention products (QK^T and softmax x V) stay fp32: they have no weights, and their
inputs differ per head and per sequence.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

RECIPE = "tok2"
"""Names this recipe in the export cache's folder name; bump it when the graph it builds changes."""

GELU_MINIMUM = -0.1700
"""Just below GELU's smallest value (-0.16997): feed-forward activations after GELU are shifted
by this much so they are non-negative and use all 256 levels of uint8 (see ``_Builder``)."""

_INT8_MAX = 127.0
_UINT8_MAX = 255.0
_EPSILON = 1e-8
"""Floor of a row's largest magnitude, so an all-zero row divides by something."""


class _Builder:
    """Rewrites one graph's weight MatMuls; the nodes and initialisers it adds go to the lists.

    For an activation row x (one token, K values) and a weight W (K x N):

    - symmetric rows (LayerNorm outputs, attention context): s = max|x| / 127,
      q = round(x / s) + 128 as uint8 with the fixed zero point 128;
    - rows after GELU, which are never below ``GELU_MINIMUM``: x' = x - GELU_MINIMUM >= 0,
      s = max x' / 255, q = round(x' / s) as uint8 with zero point 0, which doubles the
      resolution of the half-empty symmetric range; x W = x' W + GELU_MINIMUM * colsum(W), a
      constant vector added back after the product.

    ``QuantizeLinear`` with one scale per row (axis 0 of the activation flattened to 2-D)
    rounds in one fused pass after two reductions for the row statistics, and
    ``MatMulIntegerToFloat`` multiplies exactly and scales in its output loop. Fewer, fused
    passes are the whole speed-up: built from one ONNX op per step (Abs, Mul, Round, Cast,
    Cast, Mul...), element-wise work took 60% of the run time and int8 ran 0.8x onnxruntime's
    dynamic int8; fused, it runs as fast (profile of 640 STSb sentences, 1 thread).
    """

    def __init__(self, model: Any) -> None:
        from . import onnx_proto as proto

        self.model = model
        self.weights = {init.name: init for init in model.graph.initializer}
        self.producers = {out: node for node in model.graph.node for out in node.output}
        self.nodes: list[Any] = []
        self.initializers = [
            proto.from_array(np.array(_EPSILON, dtype=np.float32), "q8/epsilon"),
            proto.from_array(np.array(1.0 / _INT8_MAX, dtype=np.float32), "q8/inv_int8_max"),
            proto.from_array(np.array(1.0 / _UINT8_MAX, dtype=np.float32), "q8/inv_uint8_max"),
            proto.from_array(np.array(-GELU_MINIMUM, dtype=np.float32), "q8/gelu_shift"),
            proto.from_array(np.array([-1], dtype=np.int64), "q8/flat"),
        ]
        self._activations: dict[str, tuple[str, str, bool]] = {}

    def after_gelu(self, name: str) -> bool:
        """Whether ``name`` is the output of the exported GELU, ``x * 0.5 * (1 + erf(x / √2))``:
        an ``Erf`` within the five nodes that produce it."""
        frontier = [name]
        for _ in range(5):
            nodes = [self.producers[n] for n in frontier if n in self.producers]
            if any(node.op_type == "Erf" for node in nodes):
                return True
            frontier = [i for node in nodes for i in node.input]
        return False

    def quantise_activation(self, x: str) -> tuple[str, str, bool]:
        """(uint8 rows, per-row scale of shape [..., 1], shifted) for the activation ``x``;
        each activation is quantised once however many MatMuls read it (Q, K and V)."""
        from . import onnx_proto as proto

        if x in self._activations:
            return self._activations[x]
        p = f"q8/a{len(self._activations)}"
        shifted = self.after_gelu(x)
        mk = proto.make_node
        if shifted:
            self.nodes += [
                mk("Add", [x, "q8/gelu_shift"], [f"{p}/x"]),
                mk("ReduceMax", [f"{p}/x"], [f"{p}/max"], axes=[-1], keepdims=1),
                mk("Max", [f"{p}/max", "q8/epsilon"], [f"{p}/range"]),
                mk("Mul", [f"{p}/range", "q8/inv_uint8_max"], [f"{p}/scale"]),
            ]
            zero_point = proto.from_array(np.array([0], dtype=np.uint8))
            source = f"{p}/x"
        else:
            self.nodes += [
                mk("ReduceMax", [x], [f"{p}/max"], axes=[-1], keepdims=1),
                mk("ReduceMin", [x], [f"{p}/min"], axes=[-1], keepdims=1),
                mk("Neg", [f"{p}/min"], [f"{p}/neg_min"]),
                mk("Max", [f"{p}/max", f"{p}/neg_min", "q8/epsilon"], [f"{p}/range"]),
                mk("Mul", [f"{p}/range", "q8/inv_int8_max"], [f"{p}/scale"]),
            ]
            zero_point = proto.from_array(np.array([128], dtype=np.uint8))
            source = x
        self.nodes += [
            mk("Shape", [source], [f"{p}/shape"]),
            mk("Shape", [source], [f"{p}/width"], start=-1),
            mk("Concat", ["q8/flat", f"{p}/width"], [f"{p}/rows_shape"], axis=0),
            mk("Reshape", [source, f"{p}/rows_shape"], [f"{p}/rows"]),
            mk("Reshape", [f"{p}/scale", "q8/flat"], [f"{p}/row_scale"]),
            mk("Shape", [f"{p}/row_scale"], [f"{p}/n_rows"]),
            mk("ConstantOfShape", [f"{p}/n_rows"], [f"{p}/zero_point"], value=zero_point),
            mk("QuantizeLinear", [f"{p}/rows", f"{p}/row_scale", f"{p}/zero_point"], [f"{p}/q_rows"], axis=0),
            # Back to the activation's own shape, so batched MatMul semantics are unchanged.
            mk("Reshape", [f"{p}/q_rows", f"{p}/shape"], [f"{p}/q"]),
        ]
        self._activations[x] = (f"{p}/q", f"{p}/scale", shifted)
        return self._activations[x]

    def replace_matmul(self, node: Any, weight: Any, bias: tuple[Any, Any] | None) -> None:
        """Replace ``node`` (activation x ``weight``) by onnxruntime's fused int8 GEMM,
        ``MatMulIntegerToFloat``, which applies the row and column scales as it writes its
        output. ``bias`` (the ``Add`` after the MatMul and its vector) is left as an ``Add``:
        the fused op would scale its own bias input by the row scale. For shifted rows, the
        shift's correction is added to that bias (or by a new ``Add`` when there is none)."""
        from . import onnx_proto as proto

        w = proto.to_array(weight).astype(np.float32)
        column_scale = (np.maximum(np.abs(w).max(axis=0), _EPSILON) / _INT8_MAX).astype(np.float32)
        w_q = np.clip(np.rint(w / column_scale), -_INT8_MAX, _INT8_MAX).astype(np.int8)
        q, row_scale, shifted = self.quantise_activation(node.input[0])
        base = f"q8/w/{weight.name}"
        self.initializers += [proto.from_array(w_q, f"{base}/q"),
                              proto.from_array(column_scale, f"{base}/scale")]
        zero_point = "q8/zero_point_0" if shifted else "q8/zero_point_128"
        product = node.output[0]
        fused_output = f"{product}/unshifted" if shifted and bias is None else product
        self.nodes.append(proto.make_node(
            "MatMulIntegerToFloat", [q, f"{base}/q", row_scale, f"{base}/scale", zero_point],
            [fused_output], domain="com.microsoft"))
        if not shifted:
            return
        # x W = (x - GELU_MINIMUM) W + GELU_MINIMUM colsum(W), with W as quantised
        correction = GELU_MINIMUM * (w_q.astype(np.float64) * column_scale).sum(axis=0)
        if bias is None:
            self.initializers.append(proto.from_array(correction.astype(np.float32), f"{base}/shift_back"))
            self.nodes.append(proto.make_node("Add", [fused_output, f"{base}/shift_back"], [product]))
            return
        add, vector = bias
        merged = proto.to_array(vector).astype(np.float64) + correction
        self.initializers.append(proto.from_array(merged.astype(np.float32), f"{base}/bias"))
        add.input[list(add.input).index(vector.name)] = f"{base}/bias"


def quantize_per_token(model: Any) -> Any:
    """Rewrite the ONNX ``model`` (an ``onnx_proto.ModelProto``) in place into its int8 graph,
    quantised as the module docstring says, and return it. In place because the fp32 weights
    are most of the graph's size (90 MB for MiniLM): a copy, or a second parse of the file, was
    the first run's memory peak."""
    from . import onnx_proto as proto

    graph = model.graph
    builder = _Builder(model)
    builder.initializers += [
        proto.from_array(np.array(128, dtype=np.uint8), "q8/zero_point_128"),
        proto.from_array(np.array(0, dtype=np.uint8), "q8/zero_point_0"),
    ]
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for node in graph.node:
        weight = builder.weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or weight.data_type != proto.ElementType.FLOAT:
            builder.nodes.append(node)
            continue
        bias = _bias_add(readers.get(node.output[0], []), node.output[0], builder.weights,
                         int(weight.dims[1]))
        builder.replace_matmul(node, weight, bias)
        uses[weight.name] -= 1
        if bias is not None and bias[1].name not in bias[0].input:  # its vector was replaced
            uses[bias[1].name] -= 1
    # Drop the replaced fp32 weights where they are: taking the kept ones out and extending the
    # field with them would copy the embedding tables (half of MiniLM's bytes) once more.
    builder.weights.clear()
    for index in reversed(range(len(graph.initializer))):
        if uses.get(graph.initializer[index].name, 0) <= 0:
            del graph.initializer[index]
    graph.initializer.extend(builder.initializers)
    del graph.node[:]
    graph.node.extend(builder.nodes)
    model.opset_import.append(proto.make_opsetid("com.microsoft", 1))
    return model


def _bias_add(readers: list[Any], product: str, weights: dict[str, Any], width: int) -> tuple[Any, Any] | None:
    """(the Add node, its bias initialiser) when the MatMul's only reader adds a constant vector
    of the output's width."""
    if len(readers) != 1 or readers[0].op_type != "Add":
        return None
    add = readers[0]
    others = [name for name in add.input if name != product]
    bias = weights.get(others[0]) if len(others) == 1 else None
    if bias is None or list(bias.dims) != [width]:
        return None
    return add, bias


def quantize_file(fp32: bytes | str | os.PathLike[str]) -> bytes:
    """The serialised int8 graph of the fp32 graph ``fp32`` (its bytes, or the path of its
    file: then only its one parsed copy is ever in memory)."""
    from . import onnx_proto as proto

    model = proto.load_from_string(fp32) if isinstance(fp32, bytes) else proto.load(os.fspath(fp32))
    return quantize_per_token(model).SerializeToString()


@functools.cache
def cpu_has_int8_dot() -> bool:
    """Whether this CPU has an int8 dot-product instruction (AVX-512 VNNI, AVX-VNNI or AMX-INT8
    on x86; the dot-product extension on ARM), where onnxruntime's int8 GEMM is both faster than
    fp32 and free of AVX2's u8 x s8 saturation."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
                    break
    except OSError:
        return False
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})
