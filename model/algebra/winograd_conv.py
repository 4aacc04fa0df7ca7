"""Float Winograd convolution by tiles, 2-D and 3-D, for NumPy arrays and torch tensors.

One code path serves both array kinds (the operations used, ``@``, ``reshape`` and a
permutation, exist in each), so the NumPy float model, the differentiable torch layer
and the shapes used by the integer reference cannot drift apart. The channel sum at
each Winograd position is one batched matrix product: M_p (K × T) = U_p (K × C) · V_p
(C × T), the same decomposition the hardware uses (docs/hardware.md §2).
"""

from __future__ import annotations

import math

import numpy as np

from winnow.model.algebra.cook_toom import WinogradAlgorithm, winograd
from winnow.model.errors import ConfigError, DataError
from winnow.model.algebra.tiling import ConvGeometry, _constant_like, _is_torch, extract_tiles, kron_power, transform_tiles


def _permute(x, perm):
    return x.permute(*perm) if _is_torch(x) else x.transpose(perm)


def input_positions(x, geom: ConvGeometry, bt: np.ndarray):
    """Input transform of every tile, position-major: (N, C, *size) → V (P, N, C, T).

    One copy to flatten the overlapping windows, then one matrix product with the
    Kronecker power of ``bt``; the result is already in the layout the per-position
    channel products want, so no further copy is made.
    """
    d = geom.dims
    tiles = extract_tiles(x, geom)  # (N, C, *tiles, *n) strided view
    N, C = x.shape[:2]
    T = geom.num_tiles
    flat = tiles.reshape(N * C * T, geom.n**d)
    kb = _constant_like(kron_power(bt, d), x)
    return (kb @ flat.T).reshape(-1, N, C, T)


def output_transform(mp, at: np.ndarray, dims: int):
    """Output transform of position-major products: M (P, N, K, T) → Y (m^dims, N, K, T)."""
    P, N, K, T = mp.shape
    ka = _constant_like(kron_power(at, dims), mp)
    return (ka @ mp.reshape(P, N * K * T)).reshape(-1, N, K, T)


def assemble_positions(y, geom: ConvGeometry):
    """Y (m^dims, N, K, T) → output (N, K, *out), cropping the ragged last tiles."""
    d, m = geom.dims, geom.m
    _, N, K, _ = y.shape
    y = y.reshape((m,) * d + (N, K) + tuple(geom.tiles))
    perm = (d, d + 1) + tuple(a for i in range(d) for a in (d + 2 + i, i))  # → (N, K, t0, m0, t1, m1, …)
    y = _permute(y, perm).reshape((N, K) + tuple(t * m for t in geom.tiles))
    return y[(slice(None), slice(None)) + tuple(slice(0, o) for o in geom.out)]


def weights_by_position(u):
    """(K, C, *n) → (P, 1, K, C): broadcastable against V (P, N, C, T)."""
    K, C = u.shape[:2]
    return _permute(u.reshape(K, C, -1), (2, 0, 1))[:, None]


def kernel_to_winograd(w, alg: WinogradAlgorithm):
    """U = G g Gᵀ (nested for 3-D): (K, C, r, …) → (K, C, n, …)."""
    dims = w.ndim - 2
    return transform_tiles(w, alg.G_f64, dims)


def check_array_kinds(x, w, what: str = "weight") -> None:
    """Both NumPy arrays or both float torch tensors of one dtype; otherwise a DataError."""
    for nm, a in (("input", x), (what, w)):
        if not hasattr(a, "ndim") or not hasattr(a, "shape"):
            raise DataError(f"{nm} must be a NumPy array or a torch tensor; got {type(a).__name__}")
    if _is_torch(x) != _is_torch(w):
        raise DataError(f"input and {what} must both be NumPy arrays or both torch tensors; got "
                        f"{type(x).__name__} and {type(w).__name__}")
    if _is_torch(x):
        if not (x.is_floating_point() and w.is_floating_point()):
            raise DataError(f"torch input and {what} must be floating point; got {x.dtype} and {w.dtype} "
                            "(the integer datapath is winnow.model.integer.reference.integer_conv)")
        if x.dtype != w.dtype:
            raise DataError(f"input ({x.dtype}) and {what} ({w.dtype}) must have the same dtype")


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
    for nm, v in (("N", x.shape[0]), ("C", x.shape[1]), ("K", kernel_shape[0])):
        if v < 1:
            raise DataError(f"{nm} = {v}: batch, input and output channels must be >= 1")


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
    check_array_kinds(x, u, "Winograd-domain weight")
    dims = u.ndim - 2
    check_conv_args(x, u.shape, dims, "Winograd-domain weight")
    n = alg.n
    if tuple(u.shape[2:]) != (n,) * dims:
        raise DataError(f"U must have tile shape {(n,) * dims} for {alg.name}; got {tuple(u.shape[2:])}")
    geom = ConvGeometry.of(x.shape[2:], padding, alg.m, alg.r)
    v = input_positions(x, geom, alg.BT_f64)  # (P, N, C, T)
    if winograd_relu:
        v = v.clamp_min(0) if _is_torch(v) else np.maximum(v, 0)
    mp = weights_by_position(u) @ v  # (P, N, K, T): one matmul per Winograd position, batched
    return assemble_positions(output_transform(mp, alg.AT_f64, dims), geom)


def winograd_conv(x, w, padding=0, m: int = 4, points=None, bias=None, winograd_relu: bool = False):
    """Stride-1 convolution (cross-correlation, as torch) of ``x`` with spatial ``w`` via F(m, r).

    Equal to ``torch.nn.functional.conv2d``/``conv3d`` up to round-off. ``x`` and ``w``
    are both NumPy arrays or both torch tensors (then the result is differentiable).
    """
    check_array_kinds(x, w)
    dims = w.ndim - 2
    check_conv_args(x, w.shape, dims)
    r = w.shape[2]
    if any(s != r for s in w.shape[2:]):
        raise ConfigError(f"Winograd needs a cubic kernel (r equal in every dim); got kernel {tuple(w.shape[2:])}")
    alg = winograd(m, r, points)
    y = winograd_conv_from_u(x, kernel_to_winograd(w, alg), alg, padding, winograd_relu)
    if bias is not None:
        if tuple(bias.shape) != (w.shape[0],):
            raise DataError(f"bias must have shape ({w.shape[0]},); got {tuple(bias.shape)}")
        y = y + bias.reshape((1, -1) + (1,) * dims)
    return y
