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


class _Windows:
    """Overlapping n-windows with stride m along the middle axis of z (L, S, R) → (n, L, t, R).

    ``out[i, l, j, r] = z[l, j·m + i, r]``. A custom autograd function because the
    generic backward of ``unfold`` (an index-add) costs more than the whole forward
    pass; the adjoint here is n strided adds into a zero gradient.
    """

    _fn = None

    @classmethod
    def apply(cls, z, n: int, m: int, t: int):
        if cls._fn is None:
            import torch  # local: keeps this module importable without torch for hw/

            class Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, z, n, m, t):
                    ctx.meta = (z.shape, n, m, t)
                    return torch.stack([z[:, i : i + (t - 1) * m + 1 : m] for i in range(n)])

                @staticmethod
                def backward(ctx, g):
                    shape, n, m, t = ctx.meta
                    L, S, R = shape
                    if n - m > m:  # windows overlap more than their stride: the plain adjoint
                        gz = g.new_zeros(shape)
                        for i in range(n):
                            gz[:, i : i + (t - 1) * m + 1 : m] += g[i]
                        return gz, None, None, None
                    # window j's first m entries tile z exactly; only the n − m overlapping ones add
                    gz = g.new_empty(shape)
                    gz[:, : t * m].view(L, t, m, R).copy_(g[:m].permute(1, 2, 0, 3))
                    gz[:, t * m :].zero_()
                    for i in range(m, n):
                        gz[:, i : i + (t - 1) * m + 1 : m] += g[i]
                    return gz, None, None, None

            cls._fn = Fn
        return cls._fn.apply(z, n, m, t)



class _ChannelSum:
    """M_p = V_p · U_p for every position p: (P, X, C) × (P, C, K) → (P, X, K).

    A custom autograd function to pick the fastest product for each gradient: for one
    input channel (the first layer) the forward is a broadcast product (a rank-1 bmm is
    several times slower) and dU = Vᵀ·dM stays a bmm (autograd's reduction of the
    broadcast product is several times slower than that).
    """

    _fn = None

    @classmethod
    def apply(cls, v, up):
        if cls._fn is None:
            import torch

            class Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, v, up):
                    ctx.save_for_backward(v, up)
                    return v * up if v.shape[2] == 1 else v @ up

                @staticmethod
                def backward(ctx, g):
                    v, up = ctx.saved_tensors
                    gv = g @ up.transpose(1, 2) if ctx.needs_input_grad[0] else None
                    gu = v.transpose(1, 2) @ g if ctx.needs_input_grad[1] else None
                    return gv, gu

            cls._fn = Fn
        return cls._fn.apply(v, up)

def _torch_conv_from_u(x, u, alg: WinogradAlgorithm, geom: ConvGeometry, winograd_relu: bool):
    """The torch path of :func:`winograd_conv_from_u`: separable transforms, one bmm.

    Same sums as the Kronecker path (``path="kron"``), arranged for speed on a CPU,
    where every step but the channel sum is bound by memory traffic:

    * the input is laid out channels-last, (N, *S, C), once, with its zero padding;
    * each spatial axis in turn is windowed (:class:`_Windows`) and transformed by Bᵀ,
      an n × n product on the window axis (not an n^d × n^d Kronecker product); each
      pass puts its window index in front, which leaves V as (P, N·T, C) with the
      positions in the order (i_d, …, i_1) and no further copy;
    * the channel sum is one batched product over the P positions (N·T × C times C × K);
    * Aᵀ is applied one position axis at a time, (m × n)·(n × rest), each output index
      in front, so one copy with whole channel rows as inner runs gives (N, *out, K).

    The result is that memory seen as (N, K, *out): torch's channels-last layout, which
    its elementwise and pooling layers keep and the next Winograd layer reads without a
    transpose. Against the previous layouts, measured by ``bench.training_step``
    interleaved in one run: batch-innermost (K, *out, N) 1.74× → 1.44× nn.Conv2d at
    F(4,3); a contiguous NCHW result was slower still.
    """
    d, n, m = geom.dims, geom.n, geom.m
    N, C = x.shape[:2]
    K = u.shape[0]
    P = n**d
    tiles = geom.tiles
    # (N, *S, C) with the zero padding (high ends widened so the ragged tiles have full windows)
    size = tuple(t * m + geom.r - 1 for t in tiles)
    z = x.new_zeros((N,) + size + (C,))
    z[(slice(None),) + tuple(slice(p, p + s) for p, s in zip(geom.padding, geom.size))] = _permute(
        x, (0,) + tuple(range(2, 2 + d)) + (1,))
    bt = _constant_like(alg.BT_f64, x)
    shape = list(z.shape)  # after a passes: (i_a … i_1, N, t_1 … t_a, S_{a+1} … S_d, C)
    for a in range(d):
        pos = 2 * a + 1  # index of S_{a+1}
        L, R = math.prod(shape[:pos]), math.prod(shape[pos + 1 :])
        w = _Windows.apply(z.reshape(L, shape[pos], R), n, m, tiles[a])  # (n, L, t, R)
        z = bt @ w.reshape(n, -1)
        shape = [n] + shape[:pos] + [tiles[a]] + shape[pos + 1 :]
    v = z.reshape(P, -1, C)  # (P, N·T, C)
    if winograd_relu:
        v = v.clamp_min(0)
    # U (K, C, n_1 … n_d) → (P, C, K), positions (i_d … i_1) as in V
    up = _permute(u, tuple(range(d + 1, 1, -1)) + (1, 0)).reshape(P, C, K)
    mp = _ChannelSum.apply(v, up)  # (P, N·T, K)
    a_t = _constant_like(alg.AT_f64, x)  # (m, n)
    y = mp
    for k in range(d):  # Aᵀ along i_{d-k}: (o_d … o_{d-k+1}, i_{d-k}, rest) → (…, o_{d-k}, rest)
        y = a_t @ (y.reshape(n, -1) if k == 0 else y.reshape(m**k, n, -1))  # 2-D first: bmm of one is slower
    # (o_d … o_1, N, t_1 … t_d, K) → memory (N, t_1, o_1, …, t_d, o_d, K): channels-last (N, K, *out)
    y = y.reshape((m,) * d + (N,) + tuple(tiles) + (K,))
    perm = (d,) + tuple(i for a in range(1, d + 1) for i in (d + a, d - a)) + (2 * d + 1,)
    y = _permute(y, perm).reshape((N,) + tuple(t * m for t in tiles) + (K,))
    for a, (t, o) in enumerate(zip(tiles, geom.out)):  # crop the ragged tiles' surplus (only where there is one)
        if t * m != o:
            y = y.narrow(1 + a, 0, o)
    return _permute(y, (0, d + 1) + tuple(range(1, d + 1)))  # channels-last view, as torch's own layers keep it


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


def winograd_conv_from_u(x, u, alg: WinogradAlgorithm, padding=0, winograd_relu: bool = False, path: str = "auto"):
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
    path : {"auto", "kron", "separable"}
        ``"kron"``: tiles flattened and transformed by Kronecker powers, the layout the
        integer reference shares (NumPy always takes it). ``"separable"``: the torch
        training path, one axis at a time (:func:`_torch_conv_from_u`); ``"auto"``
        picks it for torch tensors. Both compute the same sums, equal to round-off.
    """
    check_array_kinds(x, u, "Winograd-domain weight")
    dims = u.ndim - 2
    check_conv_args(x, u.shape, dims, "Winograd-domain weight")
    n = alg.n
    if tuple(u.shape[2:]) != (n,) * dims:
        raise DataError(f"U must have tile shape {(n,) * dims} for {alg.name}; got {tuple(u.shape[2:])}")
    geom = ConvGeometry.of(x.shape[2:], padding, alg.m, alg.r)
    if path not in ("auto", "kron", "separable"):
        raise ConfigError(f"path must be 'auto', 'kron' or 'separable'; got {path!r}")
    if path == "separable" and not _is_torch(x):
        raise ConfigError("path 'separable' is the torch path; NumPy arrays take 'kron' (or 'auto')")
    if path != "kron" and _is_torch(x):
        return _torch_conv_from_u(x, u, alg, geom, winograd_relu)
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
