"""Float Winograd convolution by tiles, 2-D and 3-D, for NumPy arrays and torch tensors.

One code path serves both array kinds (the operations used, ``@``, ``reshape`` and a
permutation, exist in each), so the NumPy float model, the differentiable torch layer
and the shapes used by the integer reference cannot drift apart. The channel sum at
each Winograd position is one batched matrix product: M_p (K × T) = U_p (K × C) · V_p
(C × T), the same decomposition the hardware uses (DESIGN §4).
"""

from __future__ import annotations

import math

import numpy as np

from .cook_toom import WinogradAlgorithm, winograd
from .errors import ConfigError, DataError
from .tiling import ConvGeometry, _is_torch, assemble_tiles, extract_tiles, transform_tiles


def _permute(x, perm):
    return x.permute(*perm) if _is_torch(x) else x.transpose(perm)


def _matrix_like(mat: np.ndarray, x):
    """The constant ``mat`` as an array of the kind, dtype and device of ``x``."""
    if _is_torch(x):
        import torch

        return torch.tensor(np.array(mat), dtype=x.dtype, device=x.device)
    return mat.astype(x.dtype, copy=False) if x.dtype.kind == "f" else mat


def to_positions(v, dims: int):
    """(N, C, *tiles, *(n,)*dims) → (P, C, N·T): one C × (N·T) matrix per Winograd position."""
    N, C = v.shape[:2]
    tiles = v.shape[2 : 2 + dims]
    T = math.prod(tiles)
    P = math.prod(v.shape[2 + dims :])
    v = v.reshape(N, C, T, P)
    return _permute(v, (3, 1, 0, 2)).reshape(P, C, N * T)


def from_positions(mp, N: int, tiles, n: int, dims: int):
    """(P, K, N·T) → (N, K, *tiles, *(n,)*dims)."""
    P, K = mp.shape[:2]
    T = math.prod(tiles)
    mp = mp.reshape(P, K, N, T)
    return _permute(mp, (2, 1, 3, 0)).reshape((N, K) + tuple(tiles) + (n,) * dims)


def kernel_to_winograd(w, alg: WinogradAlgorithm):
    """U = G g Gᵀ (nested for 3-D): (K, C, r, …) → (K, C, n, …)."""
    dims = w.ndim - 2
    return transform_tiles(w, _matrix_like(alg.G_f64, w), dims)


def check_conv_args(x, kernel_shape, dims: int, what: str = "weight") -> None:
    if dims not in (2, 3):
        raise DataError(f"{what} must have shape (K, C, r, r) or (K, C, r, r, r); got {tuple(kernel_shape)}")
    if x.ndim != dims + 2:
        raise DataError(
            f"input must have {dims + 2} dims (N, C, {', '.join('DHW'[-dims:])}) for a {dims}-D {what}; "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[1] != kernel_shape[1]:
        raise DataError(f"input has C = {x.shape[1]} channels; the {what} expects C = {kernel_shape[1]}")


def winograd_conv_from_u(x, u, alg: WinogradAlgorithm, padding=0, winograd_relu: bool = False):
    """Convolution from Winograd-domain weights U (K, C, n, …) of algorithm ``alg``.

    Parameters
    ----------
    x : array or tensor, (N, C, H, W) or (N, C, D, H, W)
    u : array or tensor, (K, C, n, n) or (K, C, n, n, n)
    alg : WinogradAlgorithm
    padding : int or tuple
        Zero padding per spatial dim (both sides), as in ``torch.nn.functional.conv2d``.
    winograd_relu : bool
        Apply ReLU to the transformed input tiles V = Bᵀ d B (Liu & Pool 2018).
    """
    dims = u.ndim - 2
    check_conv_args(x, u.shape, dims, "Winograd-domain weight")
    n = alg.n
    if tuple(u.shape[2:]) != (n,) * dims:
        raise DataError(f"U must have tile shape {(n,) * dims} for {alg.name}; got {tuple(u.shape[2:])}")
    geom = ConvGeometry.of(x.shape[2:], padding, alg.m, alg.r)
    N = x.shape[0]
    v = transform_tiles(extract_tiles(x, geom), _matrix_like(alg.BT_f64, x), dims)
    if winograd_relu:
        v = v.clamp_min(0) if _is_torch(v) else np.maximum(v, 0)
    vp = to_positions(v, dims)  # (P, C, N·T)
    K, C = u.shape[:2]
    up = _permute(u.reshape(K, C, -1), (2, 0, 1))  # (P, K, C)
    mp = up @ vp  # (P, K, N·T): one matmul per Winograd position, batched
    mt = from_positions(mp, N, geom.tiles, n, dims)
    y = transform_tiles(mt, _matrix_like(alg.AT_f64, x), dims)
    return assemble_tiles(y, geom)


def winograd_conv(x, w, padding=0, m: int = 4, points=None, bias=None, winograd_relu: bool = False):
    """Stride-1 convolution (cross-correlation, as torch) of ``x`` with spatial ``w`` via F(m, r).

    Equal to ``torch.nn.functional.conv2d``/``conv3d`` up to round-off. ``x`` and ``w``
    are both NumPy arrays or both torch tensors (then the result is differentiable).
    """
    dims = w.ndim - 2
    check_conv_args(x, w.shape, dims)
    r = w.shape[2]
    if any(s != r for s in w.shape[2:]):
        raise ConfigError(f"Winograd needs a cubic kernel (r equal in every dim); got kernel {tuple(w.shape[2:])}")
    alg = winograd(m, r, points)
    y = winograd_conv_from_u(x, kernel_to_winograd(w, alg), alg, padding, winograd_relu)
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * dims)
    return y
