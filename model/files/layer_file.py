"""The sparse layer file: the contract between the model side and the hardware (docs/pytorch.md "Export").

One file per convolution layer, hardware-agnostic, versioned and self-describing::

    bytes 0–7    magic  b"WINNOWL\\0"
    bytes 8–11   header length H, uint32 little-endian
    bytes 12…    header: UTF-8 JSON (format version, layer, geometry, datapath,
                 quantization, density, a table of blobs with dtype, shape,
                 offset, length and sha256, and ``header_sha256``)
    then         the blobs, back to back, at the offsets the header gives
                 (relative to the end of the header)

Tamper evidence (format version 2): ``header_sha256`` is the SHA-256 of the header's
canonical JSON (:func:`canonical_json`: sorted keys, no spaces, the header without
``header_sha256``), and the blob table in the header holds each blob's SHA-256, so no
byte of the file can change without a checksum failing. Each blob's dtype is the one of
its field (``row_ptr``, ``bias``, ``mult``, ``shift`` int64, ``col_idx`` int32,
``values`` the narrowest integer of ``weight_bits``, ``weight_scale`` float64).
Version 1 files (written before the header was covered) are refused with a message
naming the version: re-export them. A checksum detects edits and corruption; it is not
a signature (whoever edits a file on purpose can recompute it).

Weights are stored as compressed sparse rows per Winograd position p: U_p is a K × C
matrix of quantized Winograd-domain weights; ``row_ptr[p, k] … row_ptr[p, k+1]`` index
the column indices (input channels c, increasing) and values of output channel k at
position p, in arrays shared by all positions (``row_ptr`` is monotone over the whole
file: row_ptr[p, K] == row_ptr[p+1, 0]). Zeros are never stored.

Readers validate everything and raise :class:`LayerFileError` naming the field (and
read at most :data:`winnow.model.files.bounded.LIMITS` ["layer file"] bytes of a regular
file); writers write a temporary file and rename it, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from winnow.model.files.atomic import atomic_write_bytes
from winnow.model.files.bounded import parse_json, read_bounded
from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.errors import ConfigError, DataError, WinnowError
from winnow.model.integer.reference import QuantizedConv

MAGIC = b"WINNOWL\0"
FORMAT_VERSION = 2
SUFFIX = ".wnl"
_BLOBS = ("row_ptr", "col_idx", "values", "bias", "mult", "shift", "weight_scale")
#: The rounding rules the values were quantized with: the only ones this version computes (checked on reading).
ROUNDING = {"quantize": "round_half_even", "requantize": "round_half_up (z*mult + 2^(shift-1)) >> shift"}
#: Largest header, in bytes (a real header is a few kB: the blob table and the datapath).
MAX_HEADER_BYTES = 1 << 20
#: Largest output channel count and input side a layer file may declare (before anything is allocated).
MAX_K = 1 << 16
MAX_SIDE = 1 << 14
#: Largest dense weight tensor P·K·C (elements) a layer file may describe.
MAX_WEIGHTS = 1 << 28


def canonical_json(doc) -> bytes:
    """The canonical bytes of a JSON document: sorted keys, no spaces, UTF-8 (what checksums cover)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def header_digest(header: dict) -> str:
    """SHA-256 of the canonical JSON of ``header`` without its ``header_sha256`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in header.items() if k != "header_sha256"})).hexdigest()


class LayerFileError(WinnowError, ValueError):
    """A layer file that cannot be trusted: names the file and the field."""


@dataclass(frozen=True)
class SparseLayer:
    """One quantized sparse Winograd convolution, as stored in a layer file.

    Attributes
    ----------
    name : str
    config : DatapathConfig
        Tile, point set and bit widths (the datapath the values are quantized for).
    in_channels, out_channels : int
        C and K.
    size : tuple of int
        Input spatial size (H, W) or (D, H, W) the layer was exported for.
    padding : tuple of int
    relu, winograd_relu : bool
    in_scale, out_scale : float
    weight_scale : float64 (K,)
    bias, mult, shift : int64 (K,)
    row_ptr : int64 (P, K + 1)
    col_idx : int32 (nnz,)
    values : int32 (nnz,)
    """

    name: str
    config: DatapathConfig
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    padding: tuple[int, ...]
    relu: bool
    winograd_relu: bool
    in_scale: float
    out_scale: float
    weight_scale: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    mult: np.ndarray = field(repr=False)
    shift: np.ndarray = field(repr=False)
    row_ptr: np.ndarray = field(repr=False)
    col_idx: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)

    @property
    def positions(self) -> int:
        return self.config.positions

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    @property
    def density(self) -> float:
        """Stored non-zeros over all Winograd-domain weights, P·K·C."""
        return self.nnz / (self.positions * self.out_channels * self.in_channels)

    def nnz_per_position(self) -> np.ndarray:
        """Non-zeros of each U_p, shape (P,)."""
        return (self.row_ptr[:, -1] - self.row_ptr[:, 0]).astype(np.int64)

    def to_dense(self) -> np.ndarray:
        """Quantized weights W (K, C, n, …) with the zeros filled back in."""
        P, K, C = self.positions, self.out_channels, self.in_channels
        w = np.zeros((P, K, C), dtype=np.int64)
        counts = np.diff(self.row_ptr, axis=1).reshape(-1)  # per (p, k)
        rows = np.repeat(np.arange(P * K), counts)
        w.reshape(P * K, C)[rows, self.col_idx] = self.values
        return w.transpose(1, 2, 0).reshape((K, C) + (self.config.n,) * self.config.dims)

    def to_quantized_conv(self) -> QuantizedConv:
        """The layer as the integer reference runs it."""
        return QuantizedConv(config=self.config, weights=self.to_dense(), bias=self.bias, mult=self.mult,
                             shift=self.shift, padding=self.padding, relu=self.relu,
                             winograd_relu=self.winograd_relu, in_scale=self.in_scale,
                             out_scale=self.out_scale, weight_scale=self.weight_scale, name=self.name)  # fmt: skip

    @classmethod
    def from_quantized_conv(cls, layer: QuantizedConv, size, name: str | None = None) -> "SparseLayer":
        """Compress a :class:`QuantizedConv` for input spatial ``size``."""
        cfg = layer.config
        size = tuple(int(s) for s in size)
        if len(size) != cfg.dims:
            raise DataError(f"size {size} must have {cfg.dims} entries for a {cfg.dims}-D layer")
        K, C, P = layer.out_channels, layer.in_channels, cfg.positions
        w = layer.weights.reshape(K, C, P).transpose(2, 0, 1)  # (P, K, C)
        nz = w != 0
        counts = nz.sum(axis=2).reshape(-1)
        row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        row_ptr = np.concatenate([row_ptr[:-1].reshape(P, K), row_ptr[K::K].reshape(P, 1)], axis=1)
        _, _, cols = np.nonzero(nz)  # row-major: p, then k, then increasing c
        scale = layer.weight_scale if layer.weight_scale is not None else np.ones(K)
        return cls(name=name or layer.name, config=cfg, in_channels=C, out_channels=K, size=size,
                   padding=tuple(layer.padding), relu=bool(layer.relu), winograd_relu=bool(layer.winograd_relu),
                   in_scale=float(layer.in_scale), out_scale=float(layer.out_scale),
                   weight_scale=np.asarray(scale, dtype=np.float64), bias=np.asarray(layer.bias, dtype=np.int64),
                   mult=np.asarray(layer.mult, dtype=np.int64), shift=np.asarray(layer.shift, dtype=np.int64),
                   row_ptr=row_ptr, col_idx=cols.astype(np.int32),
                   values=w[nz].astype(np.int32))  # fmt: skip


# ---------------------------------------------------------------- writing


def _config_header(cfg: DatapathConfig) -> dict:
    return {
        "dims": cfg.dims, "m": cfg.m, "r": cfg.r, "points": [str(p) for p in cfg.alg.points],
        "act_bits": cfg.act_bits, "weight_bits": cfg.weight_bits, "c_max": cfg.c_max,
        "bias_bits": cfg.bias_bits, "mult_bits": cfg.mult_bits, "max_position_shift": cfg.max_position_shift,
        "position_shifts": [int(v) for v in cfg.shifts.reshape(-1)],
    }  # fmt: skip


def _value_dtype(bits: int) -> str:
    return "<i1" if bits <= 8 else "<i2" if bits <= 16 else "<i4"


def _blob_dtype(name: str, weight_bits: int) -> np.dtype:
    """The one dtype blob ``name`` is stored as (module docstring)."""
    kinds = {"row_ptr": "<i8", "col_idx": "<i4", "values": _value_dtype(weight_bits), "bias": "<i8", "mult": "<i8",
             "shift": "<i8", "weight_scale": "<f8"}
    return np.dtype(kinds[name])


def encode_layer(layer: SparseLayer) -> bytes:
    """The bytes of a layer file (see the module docstring)."""
    bits = layer.config.weight_bits
    arrays = {name: np.asarray(getattr(layer, name)).astype(_blob_dtype(name, bits)) for name in _BLOBS}
    blobs, table, offset = [], {}, 0
    for name in _BLOBS:
        raw = np.ascontiguousarray(arrays[name]).tobytes()
        table[name] = {"dtype": arrays[name].dtype.str, "shape": list(arrays[name].shape), "offset": offset,
                       "nbytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}  # fmt: skip
        blobs.append(raw)
        offset += len(raw)
    header = {
        "format": "winnow-sparse-layer",
        "format_version": FORMAT_VERSION,
        "name": layer.name,
        "geometry": {"C": layer.in_channels, "K": layer.out_channels, "size": list(layer.size),
                     "padding": list(layer.padding)},
        "datapath": _config_header(layer.config),
        "activation": {"relu": layer.relu, "winograd_relu": layer.winograd_relu,
                       "in_scale": layer.in_scale, "out_scale": layer.out_scale},
        "rounding": ROUNDING,
        "nnz": layer.nnz,
        "density": layer.density,
        "nnz_per_position": [int(v) for v in layer.nnz_per_position()],
        "blobs": table,
        "data_bytes": offset,
    }  # fmt: skip
    header["header_sha256"] = header_digest(header)
    head = json.dumps(header, indent=1).encode("utf-8")
    return MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)


def write_layer(path, layer: SparseLayer) -> Path:
    """Write ``layer`` atomically to ``path`` (conventionally ``*.wnl``)."""
    return atomic_write_bytes(path, encode_layer(layer))


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, where: str):
        self.where = where

    def fail(self, field_name: str, why: str):
        raise LayerFileError(f"{self.where}: field '{field_name}': {why}")

    def get(self, obj: dict, key: str, kind, path: str):
        if not isinstance(obj, dict) or key not in obj:
            self.fail(path, "missing")
        v = obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
            self.fail(path, f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(v).__name__} {v!r:.60}")
        return v

    def int_list(self, obj: dict, key: str, path: str, length: int | None = None) -> list[int]:
        v = self.get(obj, key, list, path)
        if not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
            self.fail(path, "expected a list of integers")
        if length is not None and len(v) != length:
            self.fail(path, f"expected {length} entries, got {len(v)}")
        return v


def decode_layer(data: bytes, where: str = "<bytes>") -> SparseLayer:
    """Parse and validate the bytes of a layer file."""
    rd = _Reader(where)
    if len(data) < 12 or data[:8] != MAGIC:
        rd.fail("magic", f"not a Winnow sparse layer file (expected {MAGIC!r} at offset 0)")
    (hlen,) = struct.unpack("<I", data[8:12])
    if hlen > MAX_HEADER_BYTES:
        rd.fail("header", f"announces {hlen:,} bytes of header; a layer file's header is at most {MAX_HEADER_BYTES:,}")
    if 12 + hlen > len(data):
        rd.fail("header", f"truncated: header needs {hlen} bytes, file has {len(data) - 12} after the magic")
    h = parse_json(data[12 : 12 + hlen], LayerFileError, f"{where}: field 'header'")
    if not isinstance(h, dict):
        rd.fail("header", "expected a JSON object")
    if rd.get(h, "format", str, "format") != "winnow-sparse-layer":
        rd.fail("format", f"expected 'winnow-sparse-layer', got {h['format']!r:.60}")
    version = rd.get(h, "format_version", int, "format_version")
    if version != FORMAT_VERSION:
        old = (" (version 1 predates the checksum over the header: re-export the network with 'winnow export' "
               "or 'winnow train')") if version == 1 else ""
        rd.fail("format_version", f"this reader supports version {FORMAT_VERSION}; the file has {version}{old}")
    if rd.get(h, "header_sha256", str, "header_sha256") != header_digest(h):
        rd.fail("header_sha256", "checksum mismatch: the header was edited or is corrupted")
    name = rd.get(h, "name", str, "name")
    if rd.get(h, "rounding", dict, "rounding") != ROUNDING:
        rd.fail("rounding", f"this version rounds as {ROUNDING}; the file says {h['rounding']!r:.120}")

    dp = rd.get(h, "datapath", dict, "datapath")
    kw = {k: rd.get(dp, k, int, f"datapath.{k}") for k in
          ("dims", "m", "r", "act_bits", "weight_bits", "c_max", "bias_bits", "mult_bits", "max_position_shift")}
    points = rd.get(dp, "points", list, "datapath.points")
    if not all(isinstance(p, str) and len(p) <= 40 for p in points):
        rd.fail("datapath.points", "expected a list of rationals as strings ('0', '1/2', '-3')")
    try:
        cfg = DatapathConfig(points=tuple(points), **kw)
    except (ConfigError, ValueError, TypeError, ZeroDivisionError) as exc:
        rd.fail("datapath", f"not a valid datapath configuration: {exc}")
    shifts = rd.int_list(dp, "position_shifts", "datapath.position_shifts", cfg.positions)
    if shifts != [int(v) for v in cfg.shifts.reshape(-1)]:
        rd.fail("datapath.position_shifts", "do not match the shifts this version derives for the configuration")

    geo = rd.get(h, "geometry", dict, "geometry")
    C = rd.get(geo, "C", int, "geometry.C")
    K = rd.get(geo, "K", int, "geometry.K")
    size = rd.int_list(geo, "size", "geometry.size", cfg.dims)
    padding = rd.int_list(geo, "padding", "geometry.padding", cfg.dims)
    if C < 1 or K < 1:
        rd.fail("geometry", f"C and K must be >= 1; got C={C}, K={K}")
    if C > cfg.c_max:
        rd.fail("geometry.C", f"C = {C} exceeds the datapath's c_max = {cfg.c_max}")
    if any(s < 1 for s in size) or any(p < 0 for p in padding):
        rd.fail("geometry", f"sizes must be >= 1 and paddings >= 0; got size {size}, padding {padding}")
    if any(s + 2 * p < cfg.r for s, p in zip(size, padding)):
        rd.fail("geometry", f"input {size} with padding {padding} is smaller than the kernel r = {cfg.r}")
    if K > MAX_K or max(size) > MAX_SIDE or max(padding) > MAX_SIDE:
        rd.fail("geometry", f"K = {K}, size {size}, padding {padding}: beyond the limits of a layer file "
                            f"(K <= {MAX_K}, sides and paddings <= {MAX_SIDE})")
    if cfg.positions * K * C > MAX_WEIGHTS:
        rd.fail("geometry", f"P·K·C = {cfg.positions * K * C:,} Winograd weights, above the limit of {MAX_WEIGHTS:,}")

    act = rd.get(h, "activation", dict, "activation")
    relu = rd.get(act, "relu", bool, "activation.relu")
    wrelu = rd.get(act, "winograd_relu", bool, "activation.winograd_relu")
    scales = {}
    for key in ("in_scale", "out_scale"):
        v = _as_float(rd, rd.get(act, key, (int, float), f"activation.{key}"), f"activation.{key}")
        if not (math.isfinite(v) and v > 0):
            rd.fail(f"activation.{key}", f"must be finite and > 0; got {v}")
        scales[key] = float(v)

    P = cfg.positions
    data_bytes = rd.get(h, "data_bytes", int, "data_bytes")
    body = data[12 + hlen :]
    if len(body) < data_bytes:
        rd.fail("data_bytes", f"truncated: the header announces {data_bytes} bytes of blobs, the file has {len(body)}")
    if len(body) > data_bytes:
        rd.fail("data_bytes", f"{len(body) - data_bytes} unexpected bytes after the blobs")
    table = rd.get(h, "blobs", dict, "blobs")
    arrays = {}
    for bname in _BLOBS:
        entry = rd.get(table, bname, dict, f"blobs.{bname}")
        path = f"blobs.{bname}"
        off = rd.get(entry, "offset", int, f"{path}.offset")
        nbytes = rd.get(entry, "nbytes", int, f"{path}.nbytes")
        shape = rd.int_list(entry, "shape", f"{path}.shape")
        dtype_s = rd.get(entry, "dtype", str, f"{path}.dtype")
        want = _blob_dtype(bname, cfg.weight_bits)
        if dtype_s != want.str:
            rd.fail(f"{path}.dtype", f"unsupported dtype {dtype_s!r:.40} for {bname}: expected {want.str!r}")
        dtype = want
        if off < 0 or nbytes < 0 or off + nbytes > data_bytes or any(s < 0 for s in shape):
            rd.fail(path, f"offset {off} + nbytes {nbytes} lies outside the {data_bytes} bytes of blobs")
        if math.prod(shape) * dtype.itemsize != nbytes:
            rd.fail(path, f"shape {shape} of {dtype_s} needs {math.prod(shape) * dtype.itemsize} bytes, not {nbytes}")
        raw = body[off : off + nbytes]
        if hashlib.sha256(raw).hexdigest() != rd.get(entry, "sha256", str, f"{path}.sha256"):
            rd.fail(f"{path}.sha256", "checksum mismatch: the blob is corrupted")
        arrays[bname] = np.frombuffer(raw, dtype=dtype).reshape(shape)

    def expect_shape(bname, shape):
        if arrays[bname].shape != shape:
            rd.fail(f"blobs.{bname}.shape", f"expected {list(shape)} for C={C}, K={K}, P={P}; got {list(arrays[bname].shape)}")

    for bname in ("bias", "mult", "shift", "weight_scale"):
        expect_shape(bname, (K,))
    expect_shape("row_ptr", (P, K + 1))
    nnz = arrays["values"].size
    expect_shape("col_idx", (nnz,))
    expect_shape("values", (nnz,))
    row_ptr = arrays["row_ptr"].astype(np.int64)
    flat = np.concatenate([row_ptr[:, :-1].reshape(-1), row_ptr[-1:, -1]])
    if flat[0] != 0 or flat[-1] != nnz:
        rd.fail("row_ptr", f"must start at 0 and end at nnz = {nnz}; got {flat[0]} … {flat[-1]}")
    if np.any(np.diff(flat) < 0):
        rd.fail("row_ptr", "not monotone non-decreasing")
    if np.any(row_ptr[:-1, -1] != row_ptr[1:, 0]):
        rd.fail("row_ptr", "positions do not chain: row_ptr[p, K] must equal row_ptr[p+1, 0]")
    cols = arrays["col_idx"].astype(np.int64)
    if nnz and (cols.min() < 0 or cols.max() >= C):
        rd.fail("col_idx", f"index out of range [0, {C}): found [{cols.min()}, {cols.max()}]")
    counts = np.diff(flat)
    row_of = np.repeat(np.arange(counts.size), counts)
    if nnz > 1 and np.any((np.diff(cols) <= 0) & (row_of[1:] == row_of[:-1])):
        rd.fail("col_idx", "column indices within a row must be strictly increasing (sorted, no duplicates)")
    vals = arrays["values"].astype(np.int64)
    lo, hi = signed_range(cfg.weight_bits)
    if nnz and (vals.min() < lo or vals.max() > hi):
        rd.fail("values", f"outside the signed {cfg.weight_bits}-bit range [{lo}, {hi}]")
    if np.any(vals == 0):
        rd.fail("values", "holds explicit zeros; zeros are never stored")
    if rd.get(h, "nnz", int, "nnz") != nnz:
        rd.fail("nnz", f"header says {h['nnz']}, the blobs hold {nnz}")
    per_pos = rd.int_list(h, "nnz_per_position", "nnz_per_position", P)
    if per_pos != [int(v) for v in (row_ptr[:, -1] - row_ptr[:, 0])]:
        rd.fail("nnz_per_position", "does not match row_ptr")
    ws = arrays["weight_scale"].astype(np.float64)
    if not np.all(np.isfinite(ws)) or np.any(ws <= 0):
        rd.fail("blobs.weight_scale", "scales must be finite and > 0")
    try:
        layer = SparseLayer(name=name, config=cfg, in_channels=C, out_channels=K, size=tuple(size),
                            padding=tuple(padding), relu=relu, winograd_relu=wrelu, weight_scale=ws,
                            bias=arrays["bias"].astype(np.int64), mult=arrays["mult"].astype(np.int64),
                            shift=arrays["shift"].astype(np.int64), row_ptr=row_ptr,
                            col_idx=cols.astype(np.int32), values=vals.astype(np.int32), **scales)  # fmt: skip
        layer.to_quantized_conv()  # validates bias, mult and shift ranges against the datapath
    except (DataError, ConfigError) as exc:
        rd.fail("quantization", str(exc))
    density = _as_float(rd, rd.get(h, "density", (int, float), "density"), "density")
    if not math.isclose(density, layer.density, rel_tol=1e-12, abs_tol=1e-15):
        rd.fail("density", f"header says {density}, the blobs give {layer.density}")
    return layer


def _as_float(rd, v, field: str) -> float:
    try:
        f = float(v)
    except OverflowError:
        rd.fail(field, "a number too large for a float")
    if f != v:  # an integer a float cannot hold exactly: reading it would change it
        rd.fail(field, f"{v} is not exactly a float")
    return f


def read_layer(path) -> SparseLayer:
    """Read and validate a layer file; :class:`LayerFileError` names the field at fault."""
    path = Path(path)
    if path.is_dir():
        raise LayerFileError(f"{path}: is a directory, not a layer file")
    return decode_layer(read_bounded(path, error=LayerFileError, what="layer file"), str(path))
