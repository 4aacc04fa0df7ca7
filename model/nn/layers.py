"""Native Winograd-domain convolution layers (Li et al. 2017; Liu & Pool 2018).

The trainable parameter of :class:`WinogradConv2d` / :class:`WinogradConv3d` *is*
the Winograd-domain weight U (K, C, n, n[, n]), initialised from a spatial kernel as
U = G g Gᵀ. Pruning masks live beside it as a buffer; the forward pass uses U ⊙ mask,
so pruned weights contribute nothing and (through the pruner's hooks) receive no
gradient. The forward pass is the batched per-position matrix product of
:mod:`winnow.model.algebra.winograd_conv` — no Python loop over tiles.

Options:

* ``winograd_relu``: the ReLU on the transformed input tiles (Liu & Pool 2018);
* fake quantization (``qat``): set by :func:`winnow.model.nn.qat.prepare_qat`, it quantizes the
  input, the Winograd-domain weights, the bias and the output exactly as
  docs/datapath.md does, with straight-through gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from winnow.model.algebra.cook_toom import winograd
from winnow.model.errors import ConfigError
from winnow.model.algebra.tiling import normalize_padding
from winnow.model.algebra.winograd_conv import winograd_conv_from_u


class WinogradConv(nn.Module):
    """Stride-1 convolution whose parameter is the Winograd-domain weight U.

    The float forward pass returns torch's channels-last layout (as ``nn.Conv2d`` does
    for a channels-last input): elementwise ops and pooling keep it and the next layer
    reads it without a transpose; flatten it with ``flatten``/``reshape``, not ``view``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        r (cubic kernels only).
    padding : int or tuple
    bias : bool
    m : int
        Output tile size; F(m, r) must be buildable (n = m + r − 1 ≤ 32).
    points : sequence, optional
        Interpolation points (default: winnow.model.algebra.points).
    winograd_relu : bool
        ReLU on the transformed input tiles.
    dims : int
        2 or 3.

    Attributes
    ----------
    weight : Parameter (K, C, n, …)
        U, the Winograd-domain weights.
    mask : buffer (K, C, n, …)
        1 where a weight is kept, 0 where pruned.
    bias : Parameter (K,) or None
    path : str
        How the float forward pass is computed (:func:`winnow.model.algebra.winograd_conv.winograd_conv_from_u`):
        ``"auto"`` (the separable torch path) or ``"kron"`` (the Kronecker reference); same function.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding=0, bias: bool = True,
                 m: int = 4, points=None, winograd_relu: bool = False, dims: int = 2):
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"dims must be 2 or 3; got {dims}")
        for nm, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{nm} must be an integer >= 1; got {v!r}")
        self.alg = winograd(m, kernel_size, points)
        self.dims = dims
        self.in_channels, self.out_channels = in_channels, out_channels
        self.m, self.r = m, kernel_size
        self.points = tuple(str(p) for p in self.alg.points)
        self.padding = normalize_padding(padding, dims)
        self.winograd_relu = bool(winograd_relu)
        n = self.alg.n
        shape = (out_channels, in_channels) + (n,) * dims
        self.weight = nn.Parameter(torch.empty(shape))
        self.register_buffer("mask", torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.qat = None  # a winnow.model.nn.qat.LayerQuant when fake quantization is on
        self.path = "auto"  # winograd_conv_from_u's path: "kron" runs the Kronecker reference (bench.training_step)
        g = torch.empty((out_channels, in_channels) + (kernel_size,) * dims)
        nn.init.kaiming_uniform_(g, a=math.sqrt(5))  # nn.Conv2d's default, then moved to U
        if self.bias is not None:
            bound = 1 / math.sqrt(in_channels * kernel_size**dims)
            nn.init.uniform_(self.bias, -bound, bound)
        self.set_spatial_weight(g)

    @property
    def n(self) -> int:
        return self.alg.n

    def set_spatial_weight(self, g: torch.Tensor) -> None:
        """U ← G g Gᵀ (nested) for a spatial kernel g (K, C, r, …)."""
        expect = (self.out_channels, self.in_channels) + (self.r,) * self.dims
        if tuple(g.shape) != expect:
            raise ConfigError(f"spatial weight must have shape {expect}; got {tuple(g.shape)}")
        G = torch.tensor(np.array(self.alg.G_f64), dtype=torch.float64)
        u = g.detach().to(torch.float64)
        for _ in range(self.dims):  # transform the last axis, rotate it to the front of the tile axes
            u = torch.movedim(u @ G.T, -1, -self.dims)
        with torch.no_grad():
            self.weight.copy_(u.to(self.weight.dtype))

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def density(self) -> float:
        """Fraction of Winograd-domain weights kept by the mask."""
        return float(self.mask.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.masked_weight()
        bias = self.bias
        if self.qat is not None:
            return self.qat.forward(self, x, u, bias)
        y = winograd_conv_from_u(x, u, self.alg, self.padding, self.winograd_relu, path=self.path)
        if bias is not None:
            y = y + bias.reshape((1, -1) + (1,) * self.dims)
        return y

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.r}, F({self.m},{self.r}), "
             f"padding={self.padding}, bias={self.bias is not None}")
        if self.winograd_relu:
            s += ", winograd_relu=True"
        if float(self.mask.min()) < 1:
            s += f", density={self.density():.3f}"
        return s

    @classmethod
    def from_conv(cls, conv: nn.Module, m: int = 4, points=None, winograd_relu: bool = False) -> "WinogradConv":
        """A Winograd layer computing the same function as ``conv`` (nn.Conv2d/Conv3d)."""
        dims = conv.weight.ndim - 2
        layer_cls = WinogradConv2d if dims == 2 else WinogradConv3d
        layer = layer_cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.padding,
                          conv.bias is not None, m=m, points=points, winograd_relu=winograd_relu)
        layer = layer.to(conv.weight.device, conv.weight.dtype)
        layer.set_spatial_weight(conv.weight.detach())
        if conv.bias is not None:
            with torch.no_grad():
                layer.bias.copy_(conv.bias.detach())
        return layer


class WinogradConv2d(WinogradConv):
    """2-D :class:`WinogradConv` (input (N, C, H, W))."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=0, bias=True, m=4, points=None,
                 winograd_relu=False):
        super().__init__(in_channels, out_channels, kernel_size, padding, bias, m, points, winograd_relu, dims=2)


class WinogradConv3d(WinogradConv):
    """3-D :class:`WinogradConv` (input (N, C, D, H, W))."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=0, bias=True, m=2, points=None,
                 winograd_relu=False):
        super().__init__(in_channels, out_channels, kernel_size, padding, bias, m, points, winograd_relu, dims=3)


def winograd_layers(model: nn.Module) -> list[tuple[str, WinogradConv]]:
    """(qualified name, layer) of every Winograd layer, in module order."""
    return [(name, mod) for name, mod in model.named_modules() if isinstance(mod, WinogradConv)]
