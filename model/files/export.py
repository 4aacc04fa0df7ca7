"""Export an integer network: one sparse layer file per convolution plus a network manifest.

``out_dir/network.json`` (format ``winnow-network``, version 2) lists the operations
in order — ``conv`` (a ``.wnl`` sparse layer file, docs/pytorch.md "Export"), ``relu``, ``maxpool``,
``flatten``, ``linear`` (an ``.npy`` of int64 weights and one of int64 bias, no
pickle) — with the sha256 of every file, the input shape and scale, and each
convolution's input size; ``manifest_sha256`` is the SHA-256 of the manifest's canonical
JSON without that field (:func:`winnow.model.files.layer_file.canonical_json`).
:func:`load_network` validates all of it — every checksum, and the manifest against its
layer files: act_bits, the input scale and the scale chain from one convolution to the
next, C, K and every operation's input shape traced from ``input_shape`` — and rebuilds
the :class:`~winnow.model.integer.network.IntegerNetwork`, which computes bit for bit what
the exported one did. Version 1 manifests are refused naming the version (their layer
files are version 1 too: re-export).

Version 3 (:data:`GRAPH_VERSION`, docs/import.md "The network format") is written for graphs
and the host operations of imported networks (:data:`GRAPH_OPS`: ``polyphase``, ``avgpool``,
``gap``, ``add``, ``concat``): every operation lists ``inputs``, the indices of the operations it
reads (−1: the network input), and each host requantizer's multipliers are checked against the
ones the traced scales give. A sequential network of the version-2 operations is still written
as version 2; both are read.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.model.files.atomic import atomic_write_bytes, atomic_write_json
from winnow.model.errors import WinnowError
from winnow.model.files.bounded import finite_float, is_file, read_bounded, read_json_bounded
from winnow.model.integer.network import Flatten, IntegerNetwork, IntReLU, QuantizedLinear
from winnow.model.files.layer_file import SparseLayer, canonical_json, decode_layer, write_layer
from winnow.model.integer.host_ops import (Add, AvgPool, Concat, GlobalAvgPool, Polyphase, common_requant,
                                           concat_requant, host_requant)
from winnow.model.integer.reference import MaxPool, QuantizedConv

NETWORK_FORMAT = "winnow-network"
NETWORK_VERSION = 2
#: Version of manifests that are graphs (each operation names its inputs) or use the host operations of
#: imported networks (:data:`GRAPH_OPS`); a sequential network of the version-2 operations is written as 2.
GRAPH_VERSION = 3
#: Operations only a version-3 manifest may hold.
GRAPH_OPS = ("polyphase", "avgpool", "gap", "add", "concat")
#: Most operations a manifest may list.
MAX_OPS = 1024


class ManifestError(WinnowError, ValueError):
    """A network manifest that cannot be trusted: names the file and the field."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_digest(doc: dict) -> str:
    """SHA-256 of the canonical JSON of a manifest without its ``manifest_sha256`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != "manifest_sha256"})).hexdigest()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a.astype("<i8")), allow_pickle=False)
    return buf.getvalue()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "layer"


def sparse_layers(net: IntegerNetwork, input_shape) -> list[SparseLayer]:
    """Every convolution of ``net`` as its sparse layer file holds it, for inputs of shape (C, *spatial)."""
    h = np.zeros((1,) + tuple(input_shape), dtype=np.int64)  # traces each layer's input size
    vals = net.values(h)
    return [SparseLayer.from_quantized_conv(op, (h if j < 0 else vals[j]).shape[2:], name=op.name)
            for i, op in enumerate(net.ops) if isinstance(op, QuantizedConv) for j in net.op_inputs(i)]


def export_network(net: IntegerNetwork, input_shape, out_dir) -> Path:
    """Write ``net`` (for inputs of shape (C, *spatial)) to ``out_dir``; returns the manifest path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    convs = iter(sparse_layers(net, input_shape))
    ops = []
    for i, op in enumerate(net.ops):
        if isinstance(op, QuantizedConv):
            fname = f"{i:02d}_{_safe(op.name)}.wnl"
            sl = next(convs)
            write_layer(out / fname, sl)
            ops.append({"op": "conv", "name": op.name, "file": fname, "sha256": _sha(out / fname),
                        "input_size": list(sl.size), "C": op.in_channels, "K": op.out_channels,
                        "density": sl.density})
        elif isinstance(op, MaxPool):
            ops.append({"op": "maxpool", "name": op.name, "size": op.size})
        elif isinstance(op, IntReLU):
            ops.append({"op": "relu", "name": op.name})
        elif isinstance(op, Flatten):
            ops.append({"op": "flatten", "name": op.name})
        elif isinstance(op, Polyphase):
            ops.append({"op": "polyphase", "name": op.name, "stride": op.stride, "padding": op.padding,
                        "offset": op.offset, "phases": [list(ph) for ph in op.phases], "size": list(op.size)})
        elif isinstance(op, AvgPool):
            ops.append({"op": "avgpool", "name": op.name, "size": op.size, "mult": op.mult, "shift": op.shift})
        elif isinstance(op, GlobalAvgPool):
            ops.append({"op": "gap", "name": op.name, "mult": op.mult, "shift": op.shift})
        elif isinstance(op, Add):
            ops.append({"op": "add", "name": op.name, "mult": list(op.mult), "shift": op.shift,
                        "out_scale": op.out_scale})
        elif isinstance(op, Concat):
            ops.append({"op": "concat", "name": op.name, "mult": list(op.mult), "shift": list(op.shift),
                        "out_scale": op.out_scale})
        elif isinstance(op, QuantizedLinear):
            entry = {"op": "linear", "name": op.name, "in_scale": op.in_scale, "w_scale": op.w_scale,
                     "act_bits": op.act_bits}
            for part, arr in (("weights", op.weights), ("bias", op.bias)):
                fname = f"{i:02d}_{_safe(op.name)}.{part}.npy"
                atomic_write_bytes(out / fname, _npy_bytes(arr))
                entry[part] = {"file": fname, "sha256": _sha(out / fname)}
            ops.append(entry)
        else:
            raise WinnowError(f"cannot export operation {type(op).__name__}")
    graph = net.inputs is not None or any(e["op"] in GRAPH_OPS for e in ops)
    if graph:
        for i, e in enumerate(ops):
            e["inputs"] = list(net.op_inputs(i))
    manifest = {"format": NETWORK_FORMAT, "format_version": GRAPH_VERSION if graph else NETWORK_VERSION,
                "input_shape": list(input_shape),
                "input_scale": net.input_scale, "act_bits": net.act_bits, "ops": ops}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    return atomic_write_json(out / "network.json", manifest)


def load_network(path) -> IntegerNetwork:
    """Read ``network.json`` (or its directory), check every file and checksum, rebuild the network."""
    return read_network(path).net


@dataclass(frozen=True)
class NetworkFiles:
    """An exported network as read back: the integer network and its convolutions' layer files."""

    net: IntegerNetwork
    #: [(name, SparseLayer)] of the conv operations, in network order
    convs: list


def read_network(path) -> NetworkFiles:
    """:func:`load_network`, also returning each convolution's :class:`SparseLayer` (each file read once)."""
    path = Path(path)
    if path.is_dir():
        path = path / "network.json"
    where = str(path)

    def fail(field: str, why: str):
        raise ManifestError(f"{where}: field '{field}': {why}")

    def integer(field: str, v, lo: int = 1, hi: int = 1 << 20) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            fail(field, f"expected an integer in [{lo}, {hi}], got {v!r:.60}")
        return v

    def scale(field: str, v) -> float:
        f = finite_float(v)
        if f is None or f <= 0:
            fail(field, f"expected a positive finite number, got {v!r:.60}")
        return f

    doc = read_json_bounded(path, ManifestError, what="network manifest", where=where,
                            missing="no such network manifest")
    if not isinstance(doc, dict) or doc.get("format") != NETWORK_FORMAT:
        fail("format", f"expected '{NETWORK_FORMAT}'")
    if doc.get("format_version") not in (NETWORK_VERSION, GRAPH_VERSION):
        old = (" (version 1 predates the manifest and layer-file checksums over every field: re-export the network "
               "with 'winnow export' or 'winnow train')") if doc.get("format_version") == 1 else ""
        fail("format_version", f"this reader supports versions {NETWORK_VERSION} (sequential) and {GRAPH_VERSION} "
                               f"(graphs, host operations); the file has {doc.get('format_version')!r:.40}{old}")
    if doc.get("manifest_sha256") != manifest_digest(doc):
        fail("manifest_sha256", "checksum mismatch: the manifest was edited or is corrupted")
    for key in ("input_shape", "input_scale", "act_bits", "ops"):
        if key not in doc:
            fail(key, "missing")
    if not isinstance(doc["ops"], list) or not 1 <= len(doc["ops"]) <= MAX_OPS:
        fail("ops", f"expected a non-empty list of at most {MAX_OPS} operations")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
        fail("input_shape", f"expected a list of 1 to 4 positive integers, got {shape!r:.60}")
    shape = tuple(integer(f"input_shape[{j}]", v) for j, v in enumerate(shape))
    input_scale = scale("input_scale", doc["input_scale"])
    act_bits = integer("act_bits", doc["act_bits"], 2, 32)

    def checked(i: int, entry: dict, key: str = "", what: str = "layer file") -> bytes:
        """The bytes of the file an entry names, read once, with its checksum verified."""
        rec = entry if not key else entry.get(key)
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str) or not isinstance(rec.get("sha256"), str):
            fail(f"ops[{i}]{'.' + key if key else ''}", "needs 'file' and 'sha256' (strings)")
        name = rec["file"]
        if not name or "\0" in name or Path(name).name != name or name in (".", ".."):
            fail(f"ops[{i}].file", "must be a plain file name in the manifest's directory")
        f = path.parent / name
        if not is_file(f) and not f.exists():
            fail(f"ops[{i}].file", f"{name} is missing")
        data = read_bounded(f, error=ManifestError, what=what)
        if hashlib.sha256(data).hexdigest() != rec["sha256"]:
            fail(f"ops[{i}].sha256", f"checksum mismatch for {name}")
        return data

    def npy(i: int, entry: dict, part: str) -> np.ndarray:
        data = checked(i, entry, part, what="linear weights")
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError, TypeError) as exc:
            fail(f"ops[{i}].{part}", f"not a NumPy .npy array ({str(exc)[:120]})")
        if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype("<i8"):
            fail(f"ops[{i}].{part}", f"expected an int64 array, got {getattr(arr, 'dtype', type(arr).__name__)}")
        return arr

    def host_mults(i: int, e: dict, ratios: list, single: bool = False, each: bool = False):
        """A host requantizer's (mult, shift) from the entry, checked against the ones the scales give."""
        what = f"{e.get('op')} {str(e.get('name'))[:60]}"
        try:
            if single:
                want = host_requant(ratios[0], what)
            elif each:
                pairs = [concat_requant(r, what) for r in ratios]
                want = ([m for m, _ in pairs], [sh for _, sh in pairs])
            else:
                want = common_requant(ratios, what)
        except WinnowError as exc:
            fail(f"ops[{i}]", str(exc))
        got = (e.get("mult"), e.get("shift"))
        if got != tuple(want):
            fail(f"ops[{i}].mult", f"{what}: mult, shift {got!r:.80} differ from {tuple(want)!r} that the scales "
                                   f"before it give")
        return want

    # every operation's input shape, traced from input_shape: the manifest must agree with its files
    version = doc["format_version"]
    vshape, vscale = [], []  # every operation's output shape and scale (None after a linear)
    ops, convs, inputs = [], [], []
    n_ops = len(doc["ops"])
    for i, e in enumerate(doc["ops"]):
        kind = e.get("op") if isinstance(e, dict) else None
        label = str(e.get("name", kind))[:80] if isinstance(e, dict) else "?"
        if version == 2:
            if kind in GRAPH_OPS or (isinstance(e, dict) and "inputs" in e):
                fail(f"ops[{i}]", f"{'operation ' + repr(kind) if kind in GRAPH_OPS else 'inputs'} needs format "
                                  f"version 3 (an edited manifest?)")
            srcs = (i - 1,)
        else:
            srcs = e.get("inputs") if isinstance(e, dict) else None
            arity = {"add": (2, 2), "concat": (2, 64)}.get(kind, (1, 1))
            if not isinstance(srcs, list) or not arity[0] <= len(srcs) <= arity[1] or not all(
                    isinstance(j, int) and not isinstance(j, bool) and -1 <= j < i for j in srcs):
                fail(f"ops[{i}].inputs", f"expected {arity[0]}{'' if arity[0] == arity[1] else f' to {arity[1]}'} "
                                         f"indices of earlier operations (-1: the network input), got {srcs!r:.60}")
            srcs = tuple(srcs)
        if any(j >= 0 and vscale[j] is None for j in srcs):
            fail(f"ops[{i}]", f"{kind} {label} reads a linear layer's logits")
        ins = [shape if j < 0 else vshape[j] for j in srcs]
        in_scales = [input_scale if j < 0 else vscale[j] for j in srcs]
        cur, scale_now = ins[0], in_scales[0]
        if kind == "conv":
            layer = decode_layer(checked(i, e), str(path.parent / e["file"]))
            dims = layer.config.dims
            if len(cur) != dims + 1:
                fail(f"ops[{i}]", f"conv {label} is {dims}-D but its input has shape {list(cur)}")
            for key, want, got in (("C", layer.in_channels, e.get("C")), ("K", layer.out_channels, e.get("K")),
                                   ("input_size", list(layer.size), e.get("input_size"))):
                if got != want:
                    fail(f"ops[{i}].{key}", f"the manifest says {got!r:.60}, the layer file {e['file']} says {want!r}")
            if (layer.in_channels, *layer.size) != cur:
                fail(f"ops[{i}]", f"conv {label} expects input {[layer.in_channels, *layer.size]}, the operations "
                                  f"before it give {list(cur)}")
            if layer.config.act_bits != act_bits:
                fail(f"ops[{i}]", f"conv {label} has act_bits = {layer.config.act_bits}, the network {act_bits}")
            if not np.isclose(layer.in_scale, scale_now, rtol=1e-12, atol=0):
                fail(f"ops[{i}]", f"conv {label} reads scale {layer.in_scale!r}, the operations before it write "
                                  f"{scale_now!r}" + (" (the input_scale)" if srcs == (-1,) else ""))
            conv = layer.to_quantized_conv()
            ops.append(conv)
            convs.append((str(e.get("name", layer.name)), layer))
            out = tuple(s + 2 * p - layer.config.r + 1 for s, p in zip(layer.size, layer.padding))
            cur, scale_now = (layer.out_channels, *out), layer.out_scale
        elif kind in ("maxpool", "avgpool"):
            size = integer(f"ops[{i}].size", e.get("size"), 1, 64)
            if len(cur) < 2 or any(s < size for s in cur[1:]):
                fail(f"ops[{i}].size", f"pooling by {size} an input of shape {list(cur)}")
            if kind == "maxpool":
                ops.append(MaxPool(size, label))
            else:
                ops.append(AvgPool(size, *host_mults(i, e, [1.0 / size ** (len(cur) - 1)], single=True), act_bits,
                                   label))
            cur = (cur[0], *(s // size for s in cur[1:]))
        elif kind == "gap":
            if len(cur) != 3:
                fail(f"ops[{i}]", f"global average pooling of shape {list(cur)} (expected C, H, W)")
            ops.append(GlobalAvgPool(*host_mults(i, e, [1.0 / (cur[1] * cur[2])], single=True), act_bits, label))
            cur = (cur[0], 1, 1)
        elif kind == "polyphase":
            st = integer(f"ops[{i}].stride", e.get("stride"), 1, 2)
            pad = integer(f"ops[{i}].padding", e.get("padding"), 0, 64)
            off = integer(f"ops[{i}].offset", e.get("offset"), 0, 64)
            phases, size = e.get("phases"), e.get("size")
            if not isinstance(phases, list) or not 1 <= len(phases) <= st * st or not all(
                    isinstance(ph, list) and len(ph) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                  and 0 <= v < st for v in ph) for ph in phases):
                fail(f"ops[{i}].phases", f"expected 1 to {st * st} pairs [a, b] with 0 <= a, b < {st}")
            if not isinstance(size, list) or len(size) != 2:
                fail(f"ops[{i}].size", "expected [H, W]")
            size = tuple(integer(f"ops[{i}].size", v) for v in size)
            if len(cur) != 3:
                fail(f"ops[{i}]", f"polyphase of shape {list(cur)} (expected C, H, W)")
            ops.append(Polyphase(st, pad, off, tuple(tuple(ph) for ph in phases), size, label))
            cur = (cur[0] * len(phases), *size)
        elif kind == "add":
            if ins[0] != ins[1]:
                fail(f"ops[{i}]", f"add {label} of shapes {[list(v) for v in ins]}")
            out_scale = scale(f"ops[{i}].out_scale", e.get("out_scale"))
            mult, sh = host_mults(i, e, [s / out_scale for s in in_scales])
            ops.append(Add(tuple(mult), sh, act_bits, out_scale, label))
            scale_now = out_scale
        elif kind == "concat":
            if any(len(v) != 3 or v[1:] != cur[1:] for v in ins):
                fail(f"ops[{i}]", f"concat {label} of shapes {[list(v) for v in ins]}")
            out_scale = scale(f"ops[{i}].out_scale", e.get("out_scale"))
            mult, sh = host_mults(i, e, [s / out_scale for s in in_scales], each=True)
            ops.append(Concat(tuple(mult), tuple(sh), act_bits, out_scale, label))
            cur, scale_now = (sum(v[0] for v in ins), *cur[1:]), out_scale
        elif kind == "relu":
            ops.append(IntReLU(label))
        elif kind == "flatten":
            ops.append(Flatten(label))
            cur = (math.prod(cur),)
        elif kind == "linear":
            if i != n_ops - 1:
                fail(f"ops[{i}]", "a linear operation must be the last one")
            w, b = npy(i, e, "weights"), npy(i, e, "bias")
            if w.ndim != 2 or b.shape != (w.shape[0],):
                fail(f"ops[{i}]", f"linear weights must be int (out, in) and bias int (out,); got {w.shape}, {b.shape}")
            if cur != (w.shape[1],):
                fail(f"ops[{i}]", f"linear {label} takes {w.shape[1]} inputs, the operations before it give "
                                  f"shape {list(cur)}")
            lin_bits = integer(f"ops[{i}].act_bits", e.get("act_bits"), 2, 32)
            if lin_bits != act_bits:
                fail(f"ops[{i}].act_bits", f"{lin_bits}, but the network's act_bits is {act_bits}")
            in_s = scale(f"ops[{i}].in_scale", e.get("in_scale"))
            if not np.isclose(in_s, scale_now, rtol=1e-12, atol=0):
                fail(f"ops[{i}].in_scale", f"linear {label} reads scale {in_s!r}, the operations before it write "
                                           f"{scale_now!r}")
            ops.append(QuantizedLinear(w, b, in_s, scale(f"ops[{i}].w_scale", e.get("w_scale")), lin_bits, label))
            cur, scale_now = (w.shape[0],), None
        else:
            fail(f"ops[{i}].op", f"unknown operation {kind!r:.60}")
        vshape.append(cur)
        vscale.append(scale_now)
        inputs.append(srcs)
    net = IntegerNetwork(ops, input_scale, act_bits, shape, None if version == 2 else tuple(inputs))
    return NetworkFiles(net, convs)
