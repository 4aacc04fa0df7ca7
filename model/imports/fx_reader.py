"""Read a PyTorch CNN, ``path/to/file.py:factory`` plus a checkpoint, traced with ``torch.fx``.

The factory is called without arguments and must return an ``nn.Module``; ``--weights`` is a
state dict saved with ``torch.save`` (or a dict holding one under ``state_dict`` or ``model``),
loaded with ``weights_only=True`` and ``strict``: a missing, unexpected or differently shaped
parameter is a :class:`~winnow.model.errors.CheckpointMismatchError` naming them. The module is
traced by ``torch.fx.symbolic_trace`` (control flow on the input cannot be traced: a named error)
and its nodes read into the importer's :class:`~winnow.model.imports.graph.Graph`:

* modules: Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear,
  Identity, Dropout;
* functions and methods: ``+`` / ``torch.add``, ``torch.cat(dim=1)``, ``torch.flatten(x, 1)``,
  ``x.flatten(1)``, ``x.view(x.size(0), -1)`` / ``reshape``, ``torch.relu`` / ``F.relu`` / ``x.relu()``,
  ``F.adaptive_avg_pool2d(x, 1)``, ``F.max_pool2d`` / ``F.avg_pool2d`` (kernel = stride), ``x.mean((2, 3),
  keepdim=True)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import operator
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.errors import CheckpointMismatchError, ModelParseError, UnsupportedOperationError
from winnow.model.files.bounded import read_bounded
from winnow.model.imports.graph import Graph, Node

#: torch modules and what their nearest supported alternative is when they are not.
ALTERNATIVES = {
    nn.ReLU6: "nn.ReLU", nn.LeakyReLU: "nn.ReLU", nn.PReLU: "nn.ReLU", nn.Sigmoid: "nn.ReLU", nn.Tanh: "nn.ReLU",
    nn.GELU: "nn.ReLU", nn.SiLU: "nn.ReLU", nn.Hardswish: "nn.ReLU", nn.ELU: "nn.ReLU",
    nn.Softmax: "remove it: the integer network's outputs are the last Linear's logits",
    nn.LogSoftmax: "remove it: the integer network's outputs are the last Linear's logits",
    nn.ConvTranspose2d: "nn.Conv2d (stride 1 or 2)", nn.Conv1d: "nn.Conv2d", nn.Conv3d: "nn.Conv2d",
    nn.BatchNorm1d: "nn.BatchNorm2d after a Conv2d", nn.GroupNorm: "nn.BatchNorm2d", nn.LayerNorm: "nn.BatchNorm2d",
    nn.InstanceNorm2d: "nn.BatchNorm2d", nn.AdaptiveMaxPool2d: "nn.MaxPool2d with kernel = stride",
    nn.Upsample: "none on the array: keep the upsampling outside the imported model",
}
SUPPORTED = ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d(1)", "Flatten", "Linear",
             "Identity", "Dropout", "+", "torch.cat", "torch.flatten")


def load_factory(spec: str):
    """``path/to/file.py:factory`` → (the factory's module, a description for messages)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelParseError(f"{str(spec)[:80]!r}: expected path/to/file.py:factory")
    path, _, name = spec.rpartition(":")
    p = Path(path)
    if p.suffix != ".py" or not name.isidentifier():
        raise ModelParseError(f"{spec[:80]!r}: expected path/to/file.py:factory (a Python file and a function name)")
    source = read_bounded(p, 16 << 20, ModelParseError, what="Python file", missing="no such Python file")
    modname = f"winnow_import_{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]}"
    try:
        code = compile(source, str(p), "exec")
        mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(modname, loader=None))
        mod.__file__ = str(p)
        sys.modules[modname] = mod  # dataclasses and pickling look modules up by name
        exec(code, mod.__dict__)
    except Exception as exc:
        raise ModelParseError(f"{p}: importing it failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise ModelParseError(f"{p}: no function {name!r} in it")
    try:
        model = factory()
    except Exception as exc:
        raise ModelParseError(f"{spec}: calling {name}() failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(model, nn.Module):
        raise ModelParseError(f"{spec}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: nn.Module, weights, where: str) -> None:
    """Load a checkpoint into ``model`` strictly; a mismatch names the keys and shapes (module docstring)."""
    data = read_bounded(Path(weights), error=ModelParseError, what="checkpoint", missing="no such checkpoint")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelParseError(f"{weights}: not a readable torch checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:160]})") from None
    if isinstance(blob, dict) and not any(torch.is_tensor(v) for v in blob.values()):
        for key in ("state_dict", "model"):
            if isinstance(blob.get(key), dict):
                blob = blob[key]
                break
    if not isinstance(blob, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in blob.items()):
        raise CheckpointMismatchError(f"{weights}: not a state dict (names → tensors) of {where}")
    ours = model.state_dict()
    missing = sorted(set(ours) - set(blob))
    unexpected = sorted(set(blob) - set(ours))
    shapes = [f"{k}: {list(blob[k].shape)} in the file, {list(ours[k].shape)} in the model" for k in sorted(ours)
              if k in blob and tuple(blob[k].shape) != tuple(ours[k].shape)]
    if missing or unexpected or shapes:
        parts = ([f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}"] if unexpected else []) \
                + ([f"shape of {shapes[0]}" + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else "")]
                   if shapes else [])
        raise CheckpointMismatchError(f"{weights}: does not match the model of {where}: {'; '.join(parts)}")
    model.load_state_dict(blob, strict=True)


def _np(t) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _pair(v, what: str, node, where: str) -> int:
    vals = (v, v) if isinstance(v, int) else tuple(v)
    if len(vals) != 2 or vals[0] != vals[1]:
        raise UnsupportedOperationError(f"{where}: node {node.name!r} ({what}): {vals} differs between height and "
                                        f"width; nearest supported: the same in both directions")
    return int(vals[0])


def read_module(model: nn.Module, input_shape, where: str) -> Graph:
    """The :class:`Graph` of ``model`` (eval mode) traced with torch.fx."""
    import torch.fx

    model.eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:
        raise UnsupportedOperationError(f"{where}: torch.fx cannot trace the model ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0][:200]}); nearest supported: a forward without "
                                        f"Python control flow on the input") from None
    mods = dict(gm.named_modules())
    nodes, alias, sizes = [], {}, set()
    inp = None
    out = None

    def t(a):
        if not isinstance(a, torch.fx.Node):
            return None
        name = a.name
        while name in alias:
            name = alias[name]
        return name

    def refuse(node, what: str, why: str, alt: str):
        raise UnsupportedOperationError(f"{where}: node {node.name!r} ({what}): {why}; nearest supported: {alt}")

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if inp is not None:
                refuse(node, "input", "a second input", "a model of one image tensor")
            inp = node.name
            continue
        if node.op == "output":
            out = t(node.args[0])
            if out is None:
                refuse(node, "output", "returns no single tensor", "return one tensor of logits")
            continue
        if node.op == "get_attr":
            refuse(node, f"attribute {node.target}", "reads a tensor attribute in forward", "parameters of modules")
        args = node.args
        x = t(args[0]) if args else None
        if node.op == "call_module":
            m = mods[node.target]
            kind = type(m).__name__
            if isinstance(m, nn.Conv2d):
                if m.groups != 1:
                    refuse(node, kind, f"groups = {m.groups}", "Conv2d with groups 1")
                if tuple(m.dilation) != (1, 1):
                    refuse(node, kind, f"dilation {tuple(m.dilation)}", "Conv2d with dilation 1")
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    refuse(node, kind, f"padding {m.padding!r} ({m.padding_mode})", "integer zero padding")
                k = _pair(m.kernel_size, f"{kind} kernel", node, where)
                s = _pair(m.stride, f"{kind} stride", node, where)
                p = _pair(m.padding, f"{kind} padding", node, where)
                if s not in (1, 2):
                    refuse(node, kind, f"stride {s}", "stride 1 or 2")
                params = {"weight": _np(m.weight)}
                if m.bias is not None:
                    params["bias"] = _np(m.bias)
                nodes.append(Node(node.target, "conv", [x], node.name, {"stride": s, "padding": p, "kernel": k},
                                  params, kind))
            elif isinstance(m, nn.BatchNorm2d):
                if m.running_mean is None:
                    refuse(node, kind, "track_running_stats = False", "BatchNorm2d with running statistics")
                gamma = _np(m.weight) if m.weight is not None else np.ones(m.num_features)
                beta = _np(m.bias) if m.bias is not None else np.zeros(m.num_features)
                nodes.append(Node(node.target, "batchnorm", [x], node.name, {"eps": float(m.eps)},
                                  {"gamma": gamma, "beta": beta, "mean": _np(m.running_mean),
                                   "var": _np(m.running_var)}, kind))
            elif isinstance(m, nn.ReLU):
                nodes.append(Node(node.target, "relu", [x], node.name, source_op=kind))
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                k = _pair(m.kernel_size, kind, node, where)
                s = _pair(m.stride if m.stride is not None else k, kind, node, where)
                p = _pair(m.padding, kind, node, where)
                if s != k or p or m.ceil_mode or getattr(m, "dilation", 1) not in (1, (1, 1)):
                    refuse(node, kind, f"kernel {k}, stride {s}, padding {p}, ceil_mode {m.ceil_mode}",
                           f"{kind} with kernel = stride, no padding, floor mode")
                nodes.append(Node(node.target, "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool", [x],
                                  node.name, {"size": k}, source_op=kind))
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                if m.output_size not in (1, (1, 1)):
                    refuse(node, kind, f"output size {m.output_size}", "AdaptiveAvgPool2d(1) (global average pooling)")
                nodes.append(Node(node.target, "gap", [x], node.name, source_op=kind))
            elif isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim != -1:
                    refuse(node, kind, f"start_dim {m.start_dim}, end_dim {m.end_dim}", "nn.Flatten()")
                nodes.append(Node(node.target, "flatten", [x], node.name, source_op=kind))
            elif isinstance(m, nn.Linear):
                params = {"weight": _np(m.weight)}
                if m.bias is not None:
                    params["bias"] = _np(m.bias)
                nodes.append(Node(node.target, "linear", [x], node.name, {}, params, kind))
            elif isinstance(m, (nn.Identity, nn.Dropout)):
                alias[node.name] = x
            else:
                alt = next((v for c, v in ALTERNATIVES.items() if isinstance(m, c)), "one of " + ", ".join(SUPPORTED))
                raise UnsupportedOperationError(f"{where}: node {node.target!r} (module type {kind}) is not "
                                                f"supported; nearest supported: {alt}")
            continue
        target = node.target
        what = getattr(target, "__name__", str(target)) if node.op == "call_function" else f".{target}()"
        kw = node.kwargs
        if node.op == "call_method" and target == "size":
            sizes.add(node.name)
        elif (node.op == "call_function" and target in (operator.add, torch.add)) or \
                (node.op == "call_method" and target == "add"):
            ins = [t(a) for a in args[:2]]
            if None in ins or len(args) != 2 or kw:
                refuse(node, what, "adds a constant or takes alpha", "x + y of two tensors (a residual add)")
            nodes.append(Node(node.name, "add", ins, node.name, source_op=what))
        elif node.op == "call_function" and target in (torch.cat, torch.concat):
            dim = args[1] if len(args) > 1 else kw.get("dim", 0)
            ins = [t(a) for a in args[0]]
            if dim != 1 or None in ins:
                refuse(node, what, f"dim = {dim}", "torch.cat(..., dim=1)")
            nodes.append(Node(node.name, "concat", ins, node.name, source_op=what))
        elif (node.op == "call_function" and target in (torch.relu, F.relu)) or \
                (node.op == "call_method" and target == "relu"):
            nodes.append(Node(node.name, "relu", [x], node.name, source_op=what))
        elif (node.op == "call_function" and target is torch.flatten) or \
                (node.op == "call_method" and target == "flatten"):
            start = args[1] if len(args) > 1 else kw.get("start_dim", 0 if node.op == "call_function" else 0)
            if start != 1 or (len(args) > 2 and args[2] != -1):
                refuse(node, what, f"start_dim {start}", "flatten(x, 1)")
            nodes.append(Node(node.name, "flatten", [x], node.name, source_op=what))
        elif node.op == "call_method" and target in ("view", "reshape"):
            shape = list(args[1:]) if not (len(args) == 2 and isinstance(args[1], (tuple, list))) else list(args[1])
            first = shape[0] if shape else None
            keeps_batch = isinstance(first, torch.fx.Node) and first.name in sizes or first == -1
            if len(shape) != 2 or shape[1] != -1 or not keeps_batch:
                refuse(node, what, f"reshape to {[getattr(v, 'name', v) for v in shape]}",
                       "x.view(x.size(0), -1) or torch.flatten(x, 1)")
            nodes.append(Node(node.name, "flatten", [x], node.name, source_op=what))
        elif node.op == "call_function" and target is F.adaptive_avg_pool2d:
            size = args[1] if len(args) > 1 else kw.get("output_size")
            if size not in (1, (1, 1)):
                refuse(node, what, f"output size {size}", "adaptive_avg_pool2d(x, 1)")
            nodes.append(Node(node.name, "gap", [x], node.name, source_op=what))
        elif node.op == "call_method" and target == "mean":
            dims = args[1] if len(args) > 1 else kw.get("dim")
            if tuple(dims or ()) not in ((2, 3), (-2, -1)) or not kw.get("keepdim", False):
                refuse(node, what, f"mean over {dims}", "x.mean((2, 3), keepdim=True) or adaptive_avg_pool2d(x, 1)")
            nodes.append(Node(node.name, "gap", [x], node.name, source_op=what))
        elif node.op == "call_function" and target in (F.max_pool2d, F.avg_pool2d):
            k = args[1] if len(args) > 1 else kw.get("kernel_size")
            s = args[2] if len(args) > 2 else kw.get("stride", None)
            extra = [a for a in args[3:]] + [v for n, v in kw.items() if n not in ("kernel_size", "stride")]
            k = _pair(k, what, node, where)
            s = k if s in (None, []) else _pair(s, what, node, where)
            if s != k or any(v not in (0, False, None, (0, 0), True) for v in extra):
                refuse(node, what, f"kernel {k}, stride {s}", f"{what} with kernel = stride, no padding")
            nodes.append(Node(node.name, "maxpool" if target is F.max_pool2d else "avgpool", [x], node.name,
                              {"size": k}, source_op=what))
        else:
            raise UnsupportedOperationError(f"{where}: node {node.name!r} ({node.op} {what}) is not supported; "
                                            f"nearest supported: one of {', '.join(SUPPORTED)}")
    for n in nodes:
        n.inputs = [a for a in n.inputs]
        for i, a in enumerate(n.inputs):
            while a in alias:
                a = alias[a]
            n.inputs[i] = a
    while out in alias:
        out = alias[out]
    return Graph(inp, tuple(input_shape), nodes, out, where)


def read_factory(spec: str, weights, input_shape) -> tuple[Graph, nn.Module]:
    """(Graph, the loaded module) of ``file.py:factory`` with ``weights`` (module docstring)."""
    model = load_factory(spec)
    if weights is not None:
        load_weights(model, weights, spec)
    return read_module(model, input_shape, spec), model
