"""The importer's graph: what the ONNX and torch.fx readers produce and the lowering consumes.

A :class:`Graph` is a list of :class:`Node` in execution order over named tensors, one input
(C, H, W) and one output. Node kinds (``op``) and their attributes:

========== ====================================================================================
conv       ``stride`` (1 or 2), ``padding`` (symmetric, per side), ``kernel``; params ``weight``
           (K, C, k, k), ``bias`` (K,) or absent
batchnorm  params ``mean``, ``var``, ``gamma``, ``beta``; ``eps``
relu       —
maxpool    ``size`` (kernel = stride, no padding)
avgpool    ``size`` (kernel = stride, no padding)
gap        global average pooling: (C, H, W) → (C, 1, 1)
add        two tensors of one shape
concat     tensors along channels
flatten    (C, H, W) → (C·H·W,)
linear     params ``weight`` (out, in), ``bias`` (out,) or absent
========== ====================================================================================

:func:`infer_shapes` traces every tensor's shape from the input shape and refuses a node
the shape cannot go through with :class:`~winnow.model.errors.InputShapeError`;
:func:`fold_batchnorm` folds every BatchNorm into the convolution before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from winnow.model.errors import InputShapeError, ModelImportError, UnsupportedOperationError

KINDS = ("conv", "batchnorm", "relu", "maxpool", "avgpool", "gap", "add", "concat", "flatten", "linear")
#: Largest side of an input and most channels an import takes (the bounds of a layer file).
MAX_SIDE = 4096
MAX_CHANNELS = 1 << 16


@dataclass
class Node:
    """One operation: ``op`` of :data:`KINDS` reading ``inputs`` (tensor names), writing ``output``."""

    name: str
    op: str
    inputs: list
    output: str
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    source_op: str = ""  # the ONNX op type or torch module/function it came from


@dataclass
class Graph:
    """Nodes in execution order from tensor ``input`` (shape ``input_shape`` = (C, H, W)) to ``output``."""

    input: str
    input_shape: tuple
    nodes: list
    output: str
    source: str = "<model>"

    def consumers(self, tensor: str) -> list:
        return [n for n in self.nodes if tensor in n.inputs]


def parse_input_shape(text) -> tuple:
    """``"C,H,W"`` (or a sequence) → (C, H, W) of positive integers, else a named error."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        vals = tuple(int(v) for v in parts) if len(parts) == 3 and all(len(str(v).strip()) <= 6 for v in parts) else ()
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != 3 or min(vals) < 1 or vals[0] > MAX_CHANNELS or max(vals[1:]) > MAX_SIDE:
        raise InputShapeError(f"--input-shape expects C,H,W (three positive integers, C <= {MAX_CHANNELS}, sides "
                              f"<= {MAX_SIDE}), got {str(text)[:60]!r}")
    return vals


def _out_side(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def infer_shapes(graph: Graph) -> dict:
    """Shape of every tensor (without the batch dimension), traced from ``graph.input_shape``."""
    shapes = {graph.input: tuple(graph.input_shape)}
    where = graph.source

    def bad(node: Node, why: str):
        raise InputShapeError(f"{where}: node {node.name!r} ({node.source_op or node.op}): {why} (input shape "
                              f"{','.join(map(str, graph.input_shape))})")

    for node in graph.nodes:
        missing = [t for t in node.inputs if t not in shapes]
        if missing:
            raise UnsupportedOperationError(f"{where}: node {node.name!r} ({node.source_op or node.op}) reads "
                                            f"{missing[0]!r}, which no supported node computes before it")
        ins = [shapes[t] for t in node.inputs]
        x = ins[0]
        if node.op in ("conv", "batchnorm", "maxpool", "avgpool", "gap") and len(x) != 3:
            bad(node, f"expects a (C, H, W) tensor, gets shape {list(x)}")
        if node.op == "conv":
            K, C, k, _ = node.params["weight"].shape
            if x[0] != C:
                bad(node, f"takes {C} input channels, gets {x[0]}")
            s, p = node.attrs["stride"], node.attrs["padding"]
            out = tuple(_out_side(v, k, s, p) for v in x[1:])
            if min(out) < 1:
                bad(node, f"a {k}×{k} kernel (stride {s}, padding {p}) does not fit a {x[1]}×{x[2]} input")
            shapes[node.output] = (K, *out)
        elif node.op == "batchnorm":
            if node.params["mean"].shape != (x[0],):
                bad(node, f"normalises {node.params['mean'].shape[0]} channels, gets {x[0]}")
            shapes[node.output] = x
        elif node.op == "relu":
            shapes[node.output] = x
        elif node.op in ("maxpool", "avgpool"):
            k = node.attrs["size"]
            if min(x[1:]) < k:
                bad(node, f"pooling by {k} a {x[1]}×{x[2]} input")
            shapes[node.output] = (x[0], x[1] // k, x[2] // k)
        elif node.op == "gap":
            shapes[node.output] = (x[0], 1, 1)
        elif node.op == "add":
            if len(ins) != 2 or ins[0] != ins[1]:
                bad(node, f"adds tensors of shapes {[list(s) for s in ins]} (two of one shape needed)")
            shapes[node.output] = x
        elif node.op == "concat":
            if any(len(s) != 3 or s[1:] != x[1:] for s in ins):
                bad(node, f"concatenates shapes {[list(s) for s in ins]} along channels (equal H, W needed)")
            shapes[node.output] = (sum(s[0] for s in ins), *x[1:])
        elif node.op == "flatten":
            shapes[node.output] = (math.prod(x),)
        elif node.op == "linear":
            w = node.params["weight"]
            if x != (w.shape[1],):
                bad(node, f"takes {w.shape[1]} features, gets shape {list(x)}" +
                    (" (flatten first)" if len(x) > 1 else ""))
            shapes[node.output] = (w.shape[0],)
        else:
            raise UnsupportedOperationError(f"{where}: node {node.name!r}: unknown kind {node.op!r}")
    if graph.output not in shapes:
        raise UnsupportedOperationError(f"{where}: the output {graph.output!r} is not computed by supported nodes")
    return shapes


def fold_batchnorm(graph: Graph) -> list:
    """Fold each BatchNorm into the convolution that feeds it (in place); returns [(bn name, conv name)].

    y = γ (conv(x) − μ) / √(σ² + ε) + β = conv'(x) with w' = w · γ/√(σ²+ε) per output channel and
    b' = (b − μ) · γ/√(σ²+ε) + β. A BatchNorm whose input is not a convolution's output read by it
    alone has nothing to fold into and is refused.
    """
    producers = {n.output: n for n in graph.nodes}
    folded, keep = [], []
    for node in graph.nodes:
        if node.op != "batchnorm":
            keep.append(node)
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "conv" or len(graph.consumers(conv.output)) != 1:
            raise UnsupportedOperationError(
                f"{graph.source}: node {node.name!r} ({node.source_op}): a BatchNormalization must directly follow "
                f"a convolution read by it alone, to be folded into it; nearest supported: Conv followed by "
                f"BatchNormalization")
        p = node.params
        scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
        bias = conv.params.get("bias")
        bias = np.zeros(conv.params["weight"].shape[0]) if bias is None else bias
        conv.params["weight"] = conv.params["weight"] * scale[:, None, None, None]
        conv.params["bias"] = (bias - p["mean"]) * scale + p["beta"]
        conv.attrs["folded"] = node.name
        conv.output = node.output
        folded.append((node.name, conv.name))
    graph.nodes = keep
    return folded


def check_finite(graph: Graph) -> None:
    """Every parameter finite (a NaN weight would only surface as a quantization error much later)."""
    for node in graph.nodes:
        for key, arr in node.params.items():
            if not np.all(np.isfinite(arr)):
                raise ModelImportError(f"{graph.source}: node {node.name!r} ({node.source_op}): its {key} holds NaN "
                                       f"or infinite values")
