"""Read an ONNX CNN (the ``onnx`` package) into the importer's :class:`~winnow.model.imports.graph.Graph`.

``torch.onnx.export(model, x, path, dynamo=False)`` output imports as it is (the TorchScript
exporter; in eval mode it already folds BatchNorm into the convolutions, with
``training=TrainingMode.PRESERVE`` the BatchNormalization nodes stay and are folded here).
Weights must be initializers or ``Constant`` nodes. Refusals name the node, its op type and the
nearest supported alternative (:data:`ALTERNATIVES`); symbolic dimensions other than the batch,
and shapes computed in the graph (``Shape``), are :class:`~winnow.model.errors.DynamicShapeError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winnow.model.errors import DynamicShapeError, InputShapeError, ModelParseError, UnsupportedOperationError
from winnow.model.files.bounded import read_bounded
from winnow.model.imports.graph import Graph, Node

#: ONNX op types read, and what each becomes.
SUPPORTED = ("Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Concat",
             "Flatten", "Gemm", "Reshape (to N × features)", "Identity", "Dropout")
#: The nearest supported alternative of op types people meet in CNNs.
ALTERNATIVES = {
    "Clip": "Relu (a ReLU6 or clamp becomes a plain ReLU)", "LeakyRelu": "Relu", "PRelu": "Relu",
    "Sigmoid": "Relu", "Tanh": "Relu", "HardSwish": "Relu", "HardSigmoid": "Relu", "Elu": "Relu", "Selu": "Relu",
    "Gelu": "Relu", "Softmax": "remove it: the integer network's outputs are the last Gemm's logits",
    "LogSoftmax": "remove it: the integer network's outputs are the last Gemm's logits",
    "ConvTranspose": "Conv (stride 1 or 2) after an upsampling the host does", "Mul": "Add (a residual sum)",
    "Sub": "Add (a residual sum)", "Div": "AveragePool or GlobalAveragePool", "MatMul": "Gemm (nn.Linear)",
    "ReduceMean": "GlobalAveragePool", "ReduceMax": "MaxPool", "GlobalMaxPool": "MaxPool with kernel = stride",
    "Pad": "Conv's own pads", "Upsample": "none on the array: keep the upsampling outside the imported model",
    "Resize": "none on the array: keep the resizing outside the imported model", "Transpose": "Flatten",
    "Squeeze": "Flatten", "Unsqueeze": "Flatten", "LRN": "BatchNormalization",
    "InstanceNormalization": "BatchNormalization", "Split": "Concat's inverse is not supported: separate models",
    "Shape": "static shapes (export with a fixed input size)",
}
#: Largest ONNX file read.
MAX_BYTES = 1 << 30


def _nearest(op_type: str) -> str:
    return ALTERNATIVES.get(op_type, "one of " + ", ".join(SUPPORTED))


def read_onnx(path, input_shape) -> Graph:
    """The :class:`Graph` of the ONNX model at ``path`` for inputs of shape (C, H, W) (module docstring)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    where = str(path)
    data = read_bounded(path, MAX_BYTES, ModelParseError, what="ONNX model", missing="no such ONNX model")
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelParseError(f"{where}: not an ONNX model ({type(exc).__name__}: {str(exc)[:160]})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelParseError(f"{where}: not a valid ONNX model ({str(exc).splitlines()[0][:200]})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f"
              else numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedOperationError(f"{where}: {len(inputs)} graph inputs ({', '.join(i.name for i in inputs)}); "
                                        f"an imported CNN takes one image tensor")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InputShapeError(f"{where}: input {inp.name!r} has rank {len(dims)}; expected N × C × H × W")
    for axis, d in enumerate(dims[1:], start=1):
        if d.HasField("dim_param") or not d.HasField("dim_value"):
            raise DynamicShapeError(f"{where}: input {inp.name!r} has a dynamic dimension {axis} "
                                    f"({d.dim_param or '?'}); export with a fixed C × H × W (only the batch may be "
                                    f"dynamic)")
    declared = tuple(d.dim_value for d in dims[1:])
    if declared != tuple(input_shape):
        raise InputShapeError(f"{where}: the model's input {inp.name!r} is {','.join(map(str, declared))}, not the "
                              f"--input-shape {','.join(map(str, input_shape))}")
    if len(g.output) != 1:
        raise UnsupportedOperationError(f"{where}: {len(g.output)} graph outputs; an imported CNN has one")
    alias: dict = {}

    def name_of(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    def const(node, idx: int, what: str, optional: bool = False):
        if idx >= len(node.input) or not node.input[idx]:
            if optional:
                return None
            raise UnsupportedOperationError(f"{where}: node {node.name!r} ({node.op_type}) has no {what}")
        t = node.input[idx]
        if t not in consts:
            raise UnsupportedOperationError(
                f"{where}: node {node.name!r} ({node.op_type}): its {what} {t!r} is computed in the graph, not a "
                f"constant; nearest supported: weights as initializers (torch.onnx.export does that)")
        return consts[t]

    nodes = []
    for k, node in enumerate(g.node):
        op = node.op_type
        nm = node.name or f"{op}_{k}"
        at = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOperationError(f"{where}: node {nm!r} (op type {node.domain}.{op}) is not supported; "
                                            f"nearest supported: {_nearest(op)}")
        if op == "Constant":
            if "value" not in at:
                raise UnsupportedOperationError(f"{where}: node {nm!r} (Constant) without a tensor value")
            arr = numpy_helper.to_array(at["value"])
            consts[node.output[0]] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
            continue
        if op == "Shape":
            raise DynamicShapeError(f"{where}: node {nm!r} (op type Shape) computes a shape at run time; export "
                                    f"with a fixed input size (torch.onnx.export without dynamic_axes)")
        x = name_of(node.input[0]) if node.input else ""
        out = node.output[0] if node.output else ""

        def refuse(why: str, alt: str):
            raise UnsupportedOperationError(f"{where}: node {nm!r} (op type {op}): {why}; nearest supported: {alt}")

        if op in ("Identity", "Dropout"):
            if node.input[0] in consts:  # the exporter passes shared weights through Identity nodes
                consts[out] = consts[node.input[0]]
            else:
                alias[out] = x
            continue
        if op == "Conv":
            w = const(node, 1, "weight")
            b = const(node, 2, "bias", optional=True)
            if w.ndim != 4:
                refuse(f"a {w.ndim - 2}-D convolution", "a 2-D Conv")
            ks = tuple(at.get("kernel_shape", w.shape[2:]))
            strides = tuple(at.get("strides", (1, 1)))
            pads = tuple(at.get("pads", (0, 0, 0, 0)))
            if at.get("group", 1) != 1:
                refuse(f"group = {at['group']} (grouped or depthwise)", "Conv with group 1")
            if tuple(at.get("dilations", (1, 1))) != (1, 1):
                refuse(f"dilations {list(at['dilations'])}", "Conv with dilation 1")
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                refuse(f"auto_pad {at['auto_pad']!r}", "explicit symmetric pads")
            if ks[0] != ks[1]:
                refuse(f"kernel {ks[0]}×{ks[1]} is not square", "a square kernel")
            if strides[0] != strides[1] or strides[0] not in (1, 2):
                refuse(f"strides {list(strides)}", "stride 1 or 2 (the same in both directions)")
            if len(set(pads)) != 1:
                refuse(f"pads {list(pads)} are not symmetric", "equal pads on every side")
            nodes.append(Node(nm, "conv", [x], out, {"stride": strides[0], "padding": pads[0]},
                              {"weight": w, **({"bias": b} if b is not None else {})}, op))
        elif op == "BatchNormalization":
            if at.get("training_mode", 0):
                refuse("training_mode = 1", "BatchNormalization in inference mode (export with model.eval())")
            gamma, beta, mean, var = (const(node, i, what) for i, what in
                                      ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
            nodes.append(Node(nm, "batchnorm", [x], out, {"eps": float(at.get("epsilon", 1e-5))},
                              {"gamma": gamma, "beta": beta, "mean": mean, "var": var}, op))
        elif op == "Relu":
            nodes.append(Node(nm, "relu", [x], out, source_op=op))
        elif op in ("MaxPool", "AveragePool"):
            ks = tuple(at.get("kernel_shape", ()))
            strides = tuple(at.get("strides", ks))
            pads = tuple(at.get("pads", (0, 0, 0, 0)))
            if len(ks) != 2 or ks[0] != ks[1] or strides != ks or any(pads) or at.get("ceil_mode", 0) \
                    or tuple(at.get("dilations", (1, 1))) != (1, 1):
                refuse(f"kernel {list(ks)}, strides {list(strides)}, pads {list(pads)}, ceil_mode "
                       f"{at.get('ceil_mode', 0)}", f"{op} with kernel = stride, no padding, floor mode")
            nodes.append(Node(nm, "maxpool" if op == "MaxPool" else "avgpool", [x], out, {"size": ks[0]}, source_op=op))
        elif op == "GlobalAveragePool":
            nodes.append(Node(nm, "gap", [x], out, source_op=op))
        elif op == "Add":
            if any(t in consts for t in node.input):
                refuse("adds a constant", "Conv or Gemm bias (an Add of two computed tensors is a residual add)")
            nodes.append(Node(nm, "add", [name_of(t) for t in node.input], out, source_op=op))
        elif op == "Concat":
            if at.get("axis") != 1:
                refuse(f"axis {at.get('axis')}", "Concat along channels (axis 1)")
            nodes.append(Node(nm, "concat", [name_of(t) for t in node.input], out, source_op=op))
        elif op == "Flatten":
            if at.get("axis", 1) != 1:
                refuse(f"axis {at.get('axis')}", "Flatten with axis 1")
            nodes.append(Node(nm, "flatten", [x], out, source_op=op))
        elif op == "Reshape":
            shape = const(node, 1, "shape")
            shape = [int(v) for v in np.asarray(shape).reshape(-1)]
            if len(shape) != 2 or shape[1] not in (-1,) and shape[0] not in (-1, 0, 1):
                refuse(f"reshape to {shape}", "Flatten (a reshape to N × features)")
            nodes.append(Node(nm, "flatten", [x], out, {"reshape": shape}, source_op=op))
        elif op == "Gemm":
            if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
                refuse("transA, alpha or beta other than 0, 1, 1", "Gemm as nn.Linear exports it")
            w = const(node, 1, "weight")
            w = w if at.get("transB", 0) else w.T
            b = const(node, 2, "bias", optional=True)
            if b is not None:
                b = np.broadcast_to(np.asarray(b, dtype=np.float64).reshape(-1), (w.shape[0],)).copy()
            nodes.append(Node(nm, "linear", [x], out, {}, {"weight": np.asarray(w, dtype=np.float64),
                                                            **({"bias": b} if b is not None else {})}, op))
        else:
            raise UnsupportedOperationError(f"{where}: node {nm!r} (op type {op}) is not supported; nearest "
                                            f"supported: {_nearest(op)}")
    graph = Graph(inp.name, tuple(input_shape), nodes, name_of(g.output[0].name), where)
    for n in graph.nodes:  # a later Identity may have renamed an input
        n.inputs = [name_of(t) for t in n.inputs]
    _check_reshapes(graph)
    return graph


def _check_reshapes(graph: Graph) -> None:
    """A Reshape read as Flatten must keep the batch: [N or -1 or 0, features or -1]."""
    from winnow.model.imports.graph import infer_shapes

    shapes = infer_shapes(graph)
    for n in graph.nodes:
        shape = n.attrs.get("reshape")
        if shape is None:
            continue
        feats = int(np.prod(shapes[n.inputs[0]]))
        if shape[1] not in (-1, feats) or (shape[1] == -1 and shape[0] not in (-1, 0, 1)):
            raise UnsupportedOperationError(f"{graph.source}: node {n.name!r} (op type Reshape): reshape to {shape} "
                                            f"is not N × {feats}; nearest supported: Flatten")
