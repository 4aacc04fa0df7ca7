"""Tile geometry shared by the float, torch and integer convolutions.

A stride-1 convolution with kernel r and zero padding p maps a spatial extent S to
S + 2p − r + 1 outputs. Winograd F(m, r) covers the output with ⌈out/m⌉ tiles of m;
the padded input is extended with zeros at the high end so the last (ragged) tile has
a full n = m + r − 1 input window, and the surplus outputs are cropped. Works for any
number of spatial dimensions; the code below is written for 2-D and 3-D.

The functions accept NumPy arrays or torch tensors (torch is never imported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from winnow.model.errors import ConfigError, DataError


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def normalize_padding(padding, dims: int) -> tuple[int, ...]:
    """``int`` or a sequence of ``dims`` ints, each >= 0 (torch's conv semantics)."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        pads = (int(padding),) * dims
    elif isinstance(padding, Sequence) and not isinstance(padding, str):
        if len(padding) != dims:
            raise ConfigError(f"padding {tuple(padding)} must have {dims} entries for a {dims}-D convolution")
        pads = tuple(padding)
        for p in pads:
            if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
                raise ConfigError(f"padding entries must be integers; got {p!r}")
        pads = tuple(int(p) for p in pads)
    else:
        raise ConfigError(f"padding must be an int or a sequence of {dims} ints; got {padding!r}")
    for p in pads:
        if p < 0:
            raise ConfigError(f"padding must be >= 0; got {pads}")
    return pads


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one stride-1 convolution tiled by F(m, r).

    Attributes
    ----------
    size : tuple of int
        Input spatial extent per dimension (H, W) or (D, H, W).
    padding : tuple of int
        Zero padding per dimension, both sides.
    m, r : int
        Output tile and kernel size.
    out : tuple of int
        Output extent per dimension.
    tiles : tuple of int
        Tiles per dimension, ⌈out/m⌉.
    """

    size: tuple[int, ...]
    padding: tuple[int, ...]
    m: int
    r: int

    def __post_init__(self):
        names = ("D", "H", "W")[-len(self.size):] if len(self.size) <= 3 else tuple(f"S{i}" for i in range(len(self.size)))
        for nm, s, p in zip(names, self.size, self.padding):
            if s < 1:
                raise DataError(f"input {nm} = {s}: every spatial size must be >= 1")
            if s + 2 * p < self.r:
                raise DataError(
                    f"input {nm} = {s} with padding {p} is smaller than the kernel r = {self.r}: "
                    f"the output would be empty (need {nm} + 2·padding >= r)"
                )

    @classmethod
    def of(cls, size: Sequence[int], padding, m: int, r: int) -> "ConvGeometry":
        size = tuple(int(s) for s in size)
        return cls(size=size, padding=normalize_padding(padding, len(size)), m=m, r=r)

    @property
    def dims(self) -> int:
        return len(self.size)

    @property
    def n(self) -> int:
        return self.m + self.r - 1

    @property
    def out(self) -> tuple[int, ...]:
        return tuple(s + 2 * p - self.r + 1 for s, p in zip(self.size, self.padding))

    @property
    def tiles(self) -> tuple[int, ...]:
        return tuple(math.ceil(o / self.m) for o in self.out)

    @property
    def num_tiles(self) -> int:
        return math.prod(self.tiles)

    def pad_widths(self) -> tuple[tuple[int, int], ...]:
        """(before, after) zeros per spatial dim so the tiles cover a full window."""
        return tuple(
            (p, t * self.m + self.r - 1 - s - p) for s, p, t in zip(self.size, self.padding, self.tiles)
        )


def extract_tiles(x, geom: ConvGeometry):
    """Overlapping n-windows with stride m.

    ``x`` has shape (N, C, *size); the result has shape (N, C, *tiles, *(n,)*dims).
    """
    d = geom.dims
    if x.ndim != d + 2:
        raise DataError(f"input must have shape (N, C, {', '.join('DHW'[-d:])}); got {tuple(x.shape)}")
    n, m = geom.n, geom.m
    pads = geom.pad_widths()
    if _is_torch(x):
        import torch.nn.functional as F  # local: keeps this module torch-free for hw/

        flat = [v for pw in reversed(pads) for v in pw]
        xp = F.pad(x, flat)
        for axis in range(2, 2 + d):
            xp = xp.unfold(axis, n, m)
        return xp
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    win = np.lib.stride_tricks.sliding_window_view(xp, (n,) * d, axis=tuple(range(2, 2 + d)))
    return win[(slice(None), slice(None)) + (slice(None, None, m),) * d]


def kron_power(mat: np.ndarray, dims: int) -> np.ndarray:
    """mat ⊗ mat (⊗ mat): the ``dims``-D tile transform as one matrix on flattened tiles."""
    out = mat
    for _ in range(dims - 1):
        out = np.kron(out, mat)
    return out


_TORCH_CONSTANTS: dict = {}


def _constant_like(mat: np.ndarray, x):
    """``mat`` as an array of x's kind, dtype (and device); torch copies are cached."""
    if _is_torch(x):
        key = (mat.tobytes(), mat.shape, x.dtype, x.device)
        t = _TORCH_CONSTANTS.get(key)
        if t is None:
            import torch

            t = _TORCH_CONSTANTS.setdefault(key, torch.tensor(np.array(mat), dtype=x.dtype, device=x.device))
        return t
    return mat.astype(x.dtype, copy=False) if x.dtype.kind == "f" else mat


def transform_tiles(x, mat: np.ndarray, dims: int):
    """Apply ``mat`` (p × q) along each of the last ``dims`` axes of ``x`` (size q each).

    ``mat`` is a NumPy matrix; ``x`` a NumPy array or torch tensor. The nested
    transform is one matrix product with the Kronecker power on flattened tiles, which
    is several times faster than ``dims`` small products on strided views.
    """
    p, q = mat.shape
    lead = tuple(x.shape[: x.ndim - dims])
    kt = _constant_like(np.ascontiguousarray(kron_power(mat, dims).T), x)
    y = x.reshape(lead + (q**dims,)) @ kt
    return y.reshape(lead + (p,) * dims)
