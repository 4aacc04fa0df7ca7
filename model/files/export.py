"""Export an integer network: one sparse layer file per convolution plus a network manifest.

``out_dir/network.json`` (format ``winnow-network``, version 1) lists the operations
in order — ``conv`` (a ``.wnl`` sparse layer file, docs/pytorch.md "Export"), ``relu``, ``maxpool``,
``flatten``, ``linear`` (an ``.npy`` of int64 weights and one of int64 bias, no
pickle) — with the sha256 of every file, the input shape and scale, and each
convolution's input size. :func:`load_network` validates all of it and rebuilds the
:class:`~winnow.model.integer.network.IntegerNetwork`, which computes bit for bit what the
exported one did.
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
from winnow.model.files.json_file import read_json
from winnow.model.integer.network import Flatten, IntegerNetwork, IntReLU, QuantizedLinear
from winnow.model.files.layer_file import SparseLayer, read_layer, write_layer
from winnow.model.integer.reference import MaxPool, QuantizedConv

NETWORK_FORMAT = "winnow-network"
NETWORK_VERSION = 1


class ManifestError(WinnowError, ValueError):
    """A network manifest that cannot be trusted: names the file and the field."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a.astype("<i8")), allow_pickle=False)
    return buf.getvalue()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "layer"


def sparse_layers(net: IntegerNetwork, input_shape) -> list[SparseLayer]:
    """Every convolution of ``net`` as its sparse layer file holds it, for inputs of shape (C, *spatial)."""
    h = np.zeros((1,) + tuple(input_shape), dtype=np.int64)  # traces each layer's input size
    layers = []
    for op in net.ops:
        if isinstance(op, QuantizedConv):
            layers.append(SparseLayer.from_quantized_conv(op, h.shape[2:], name=op.name))
        h = op(h)
    return layers


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
    manifest = {"format": NETWORK_FORMAT, "format_version": NETWORK_VERSION, "input_shape": list(input_shape),
                "input_scale": net.input_scale, "act_bits": net.act_bits, "ops": ops}
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
            fail(field, f"expected an integer in [{lo}, {hi}], got {v!r}")
        return v

    def scale(field: str, v) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            fail(field, f"expected a positive finite number, got {v!r}")
        return float(v)

    doc = read_json(path, ManifestError, where=where, missing="no such network manifest")
    if not isinstance(doc, dict) or doc.get("format") != NETWORK_FORMAT:
        fail("format", f"expected '{NETWORK_FORMAT}'")
    if doc.get("format_version") != NETWORK_VERSION:
        fail("format_version", f"this reader supports version {NETWORK_VERSION}; the file has {doc.get('format_version')!r}")
    for key in ("input_shape", "input_scale", "act_bits", "ops"):
        if key not in doc:
            fail(key, "missing")
    if not isinstance(doc["ops"], list) or not doc["ops"]:
        fail("ops", "expected a non-empty list")

    def checked(i: int, entry: dict, key: str = "") -> Path:
        rec = entry if not key else entry.get(key)
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str) or not isinstance(rec.get("sha256"), str):
            fail(f"ops[{i}]{'.' + key if key else ''}", "needs 'file' and 'sha256' (strings)")
        f = path.parent / rec["file"]
        if Path(rec["file"]).name != rec["file"]:
            fail(f"ops[{i}].file", "must be a plain file name in the manifest's directory")
        if not f.is_file():
            fail(f"ops[{i}].file", f"{rec['file']} is missing")
        if _sha(f) != rec["sha256"]:
            fail(f"ops[{i}].sha256", f"checksum mismatch for {rec['file']}")
        return f

    ops, convs = [], []
    for i, e in enumerate(doc["ops"]):
        kind = e.get("op") if isinstance(e, dict) else None
        if kind == "conv":
            layer = read_layer(checked(i, e))
            ops.append(layer.to_quantized_conv())
            convs.append((str(e.get("name", layer.name)), layer))
        elif kind == "maxpool":
            ops.append(MaxPool(integer(f"ops[{i}].size", e.get("size"), 1, 64), str(e.get("name", "maxpool"))))
        elif kind == "relu":
            ops.append(IntReLU(e.get("name", "relu")))
        elif kind == "flatten":
            ops.append(Flatten(e.get("name", "flatten")))
        elif kind == "linear":
            arrs = {}
            for part in ("weights", "bias"):
                try:
                    arrs[part] = np.load(checked(i, e, part), allow_pickle=False)
                except ValueError as exc:
                    fail(f"ops[{i}].{part}", f"not a NumPy .npy array ({exc})")
            w, b = arrs["weights"], arrs["bias"]
            if w.ndim != 2 or b.shape != (w.shape[0],) or w.dtype.kind != "i" or b.dtype.kind != "i":
                fail(f"ops[{i}]", f"linear weights must be int (out, in) and bias int (out,); got {w.shape}, {b.shape}")
            ops.append(QuantizedLinear(w, b, scale(f"ops[{i}].in_scale", e.get("in_scale")),
                                       scale(f"ops[{i}].w_scale", e.get("w_scale")),
                                       integer(f"ops[{i}].act_bits", e.get("act_bits"), 2, 32), str(e.get("name", "linear"))))
        else:
            fail(f"ops[{i}].op", f"unknown operation {kind!r}")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
        fail("input_shape", f"expected a list of 1 to 4 positive integers, got {shape!r}")
    shape = tuple(integer(f"input_shape[{j}]", v) for j, v in enumerate(shape))
    net = IntegerNetwork(ops, scale("input_scale", doc["input_scale"]), integer("act_bits", doc["act_bits"], 2, 32),
                         shape)
    return NetworkFiles(net, convs)
