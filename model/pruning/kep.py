"""KEP: kernel-element pruning to structured per-plane patterns (Neural Networks 180, 2024).

Each kernel plane w[k, c] (r × r) keeps the elements of one pattern from a small
library, so a plane stores one pattern index instead of per-element indices:

1. **score** the elements of every plane by magnitude;
2. **prior-knowledge mask**: build a library of the ``library_size`` most frequent
   top-``keep`` patterns over the layer, and give each plane the library pattern that
   retains most of its magnitude;
3. **regularize**: while training, add λ·Σ|w ⊙ (1 − mask)|, a controllable penalty
   that drives the elements outside each plane's pattern towards zero;
4. **prune** to the patterns (recomputed on the regularized weights) and fine-tune with
   the mask enforced.

In the pipeline (method ``kep``, options :class:`KepConfig`) the patterned network is
then converted and, for a density below what is left, pruned further in the Winograd
domain (:func:`winnow.model.pruning.winograd.winograd_after_spatial`).

:func:`pattern_sparse_conv2d` is the sparse convolution that skips the zero taps: for
every kernel offset it multiplies only the (k, c) planes whose pattern keeps that
offset, and it is checked against the dense convolution.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.errors import ConfigError
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.winograd import Pruner, apply_mask, winograd_after_spatial


#: Largest penalty weight: far above any that trains (the default is 1e-4).
MAX_LAMBDA = 1e3


@dataclass(frozen=True)
class KepConfig:
    """Options of ``kep`` (keys ``kep_keep``, ``kep_library``, ``kep_lambda``).

    Parameters
    ----------
    keep : int
        Taps kept of every 3×3 kernel plane, in [1, 9].
    library : int
        Patterns in the library (≥ 1).
    lambda_ : float
        Weight of the penalty on the taps outside each plane's pattern (≥ 0).
    """

    keep: int = 4
    library: int = 8
    lambda_: float = 1e-4

    def __post_init__(self):
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or not 1 <= self.keep <= 9:
            raise ConfigError(f"kep_keep must be an integer in [1, 9] (taps kept of a 3×3 kernel); got {self.keep!r}")
        if isinstance(self.library, bool) or not isinstance(self.library, int) or not 1 <= self.library <= 512:
            raise ConfigError(f"kep_library must be an integer >= 1 (at most 512, the 3×3 patterns there are); "
                              f"got {self.library!r:.40}")
        v = self.lambda_
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_LAMBDA:  # NaN, inf fail too
            raise ConfigError(f"kep_lambda must be >= 0 and finite (at most {MAX_LAMBDA:g}); got {v!r:.40}")


@dataclass(frozen=True)
class PatternMask:
    """The patterns of one Conv2d: library (L, r, r) bool and per-plane pattern ids (K, C)."""

    library: np.ndarray
    ids: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.library[self.ids]  # (K, C, r, r)

    def index_bits(self) -> int:
        """Bits to store the pattern choice of every plane plus the library itself."""
        L, r, _ = self.library.shape
        return self.ids.size * max(1, math.ceil(math.log2(L))) + L * r * r

    def unstructured_index_bits(self) -> int:
        """Bits an element-wise sparse format needs for the same non-zeros (⌈log2 r²⌉ per element)."""
        r = self.library.shape[1]
        return int(self.mask.sum()) * math.ceil(math.log2(r * r))


def build_patterns(weight: torch.Tensor, keep: int, library_size: int) -> PatternMask:
    """Steps 1–2 for a (K, C, r, r) weight."""
    K, C, r, r2 = weight.shape
    if r != r2:
        raise ConfigError(f"KEP needs square kernel planes; got {r}×{r2}")
    if not 1 <= keep <= r * r:
        raise ConfigError(f"keep must be in [1, {r * r}] elements per {r}×{r} plane; got {keep}")
    if library_size < 1:
        raise ConfigError(f"library_size must be >= 1; got {library_size}")
    a = weight.detach().abs().reshape(K * C, r * r).cpu().numpy()
    top = np.argsort(-a, axis=1, kind="stable")[:, :keep]
    keys = [tuple(sorted(row)) for row in top.tolist()]
    lib_keys = [k for k, _ in Counter(keys).most_common(library_size)]
    library = np.zeros((len(lib_keys), r * r), dtype=bool)
    for i, k in enumerate(lib_keys):
        library[i, list(k)] = True
    retained = a @ library.T  # (K·C, L): magnitude each pattern keeps
    ids = retained.argmax(axis=1).reshape(K, C)
    return PatternMask(library.reshape(-1, r, r), ids)


class KEP:
    """Applies KEP to every 3×3-or-larger ``nn.Conv2d`` of a model (module docstring)."""

    def __init__(self, model: nn.Module, keep: int = 4, library_size: int = 8, lam: float = 1e-3):
        if lam < 0:
            raise ConfigError(f"the regularization weight lam must be >= 0; got {lam}")
        self.keep, self.library_size, self.lam = keep, library_size, lam
        self.convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1
                      and m.kernel_size[0] == m.kernel_size[1] and m.groups == 1]
        if not self.convs:
            raise ConfigError("KEP found no square Conv2d (kernel > 1, groups 1) to prune")
        self.patterns = {id(c): build_patterns(c.weight, keep, library_size) for c in self.convs}
        self.pruned = False
        self._handles = []

    def penalty(self) -> torch.Tensor:
        """λ·Σ|w ⊙ (1 − prior mask)| over all layers (add it to the loss while regularizing)."""
        total = 0.0
        for c in self.convs:
            outside = torch.as_tensor(~self.patterns[id(c)].mask, dtype=c.weight.dtype, device=c.weight.device)
            total = total + (c.weight * outside).abs().sum()
        return self.lam * total

    def prune(self) -> None:
        """Step 4: recompute the patterns on the current weights and zero everything outside them."""
        for c in self.convs:
            self.patterns[id(c)] = build_patterns(c.weight, self.keep, self.library_size)
        self.pruned = True
        self._apply()
        for c in self.convs:
            m = torch.as_tensor(self.patterns[id(c)].mask, dtype=c.weight.dtype)
            self._handles.append(c.weight.register_hook(lambda g, m=m: g * m))

    def _apply(self):
        with torch.no_grad():
            for c in self.convs:
                c.weight.mul_(torch.as_tensor(self.patterns[id(c)].mask, dtype=c.weight.dtype))

    def attach(self, optimizer: torch.optim.Optimizer):
        """After each step, re-apply the masks (once pruned) to weights and optimizer state."""
        def post(opt, args, kwargs):
            if not self.pruned:
                return
            for c in self.convs:
                apply_mask(c.weight, torch.as_tensor(self.patterns[id(c)].mask, dtype=c.weight.dtype), opt)
        h = optimizer.register_step_post_hook(post)
        self._handles.append(h)
        return h

    def report(self) -> dict:
        params = sum(c.weight.numel() for c in self.convs)
        kept = sum(int(self.patterns[id(c)].mask.sum()) for c in self.convs)
        bits = sum(self.patterns[id(c)].index_bits() for c in self.convs)
        unstructured = sum(self.patterns[id(c)].unstructured_index_bits() for c in self.convs)
        return {"conv_weights": params, "kept_weights": kept, "parameter_reduction": params / max(kept, 1),
                "index_bits": bits, "index_bits_unstructured": unstructured,
                "index_bits_per_kept_weight": bits / max(kept, 1)}


def pattern_sparse_conv2d(x: torch.Tensor, weight: torch.Tensor, mask: np.ndarray, bias=None,
                          padding: int = 0) -> tuple[torch.Tensor, int]:
    """Convolution (stride 1) that multiplies only the kept taps; returns (output, MACs done).

    For each offset (a, b) the kept (k, c) pairs form a sparse K × C matrix that multiplies
    the shifted input; taps outside every plane's pattern cost nothing.
    """
    N, C, H, W = x.shape
    K, C2, r, _ = weight.shape
    if C != C2 or mask.shape != weight.shape:
        raise ConfigError(f"shapes disagree: input C={C}, weight {tuple(weight.shape)}, mask {mask.shape}")
    xp = F.pad(x, (padding,) * 4)
    Ho, Wo = H + 2 * padding - r + 1, W + 2 * padding - r + 1
    y = torch.zeros(N, K, Ho * Wo, dtype=x.dtype)
    macs = 0
    for a in range(r):
        for b in range(r):
            kk, cc = np.nonzero(mask[:, :, a, b])
            if len(kk) == 0:
                continue  # no plane keeps this tap
            xs = xp[:, :, a : a + Ho, b : b + Wo].reshape(N, C, Ho * Wo)
            vals = weight[kk, cc, a, b]
            contrib = vals[None, :, None] * xs[:, cc, :]  # (N, nnz, HW)
            y.index_add_(1, torch.as_tensor(kk), contrib)
            macs += len(kk) * N * Ho * Wo
    y = y.reshape(N, K, Ho, Wo)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y, macs


def run(ctx) -> tuple[nn.Module, Pruner]:
    """Regularize towards the prior patterns, prune to them, fine-tune; then Winograd-domain pruning."""
    opts = ctx.options
    model = copy.deepcopy(ctx.dense)
    kep = KEP(model, opts.keep, opts.library, opts.lambda_)
    ctx.train(model, 6, "kep regularize", extra_loss=kep.penalty)
    kep.prune()
    ctx.train(model, 7, "kep fine-tune", hooks=[kep])
    ctx.info["kep"] = kep.report()
    return winograd_after_spatial(ctx, model)


METHOD = PruningMethod(KepConfig, run, "KEP: kernel-element patterns per 3×3 plane (Neural Networks 180, 2024)",
                       winograd_relu=False)
