"""spatial_winograd (Yu, Park & Naumov 2019): structured spatial pruning that empties whole Winograd positions, then Winograd-domain pruning.

1. :class:`SpatialStructuredPruner` prunes the *spatial* kernels so that whole Winograd
   positions vanish (Winograd density √target), retrained in the spatial domain;
2. the network is converted (the zeros transfer exactly, :func:`transfer_spatial_zeros`)
   and pruned in the Winograd domain to the target, ranked by the importance factors,
   retrained with Yu et al.'s released per-position adjustment: each step of U_p scaled
   by (F_p / F_min)^-1.5 (:class:`winnow.model.pruning.winograd.Pruner` with
   ``step_rule="yu2019"``; under SGD this is their gradient division, under Adam the
   only form of it that changes training).

The method has its own two-step schedule; its one option chooses the step rule.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from winnow.model.algebra.cook_toom import winograd
from winnow.model.errors import ConfigError
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.winograd import STEP_RULES, Pruner, apply_mask, check_density, transfer_spatial_zeros


@dataclass(frozen=True)
class SpatialWinogradConfig:
    """Options of ``spatial_winograd`` (flat key ``spatial_winograd_step_rule``).

    Parameters
    ----------
    step_rule : str
        The per-position factor on each Winograd-domain retraining step, one of
        :data:`winnow.model.pruning.winograd.STEP_RULES`: ``"yu2019"`` (Yu et al.'s
        released rule, the default) or ``"none"`` (plain steps, for comparison).
    """

    step_rule: str = "yu2019"

    def __post_init__(self):
        if self.step_rule not in STEP_RULES:
            raise ConfigError(f"step_rule must be one of {', '.join(STEP_RULES)}; got {self.step_rule!r:.40}")


def winograd_supports(m: int, r: int, dims: int, points=None) -> np.ndarray:
    """Boolean (P, r, …): which spatial weights each Winograd position depends on (G_i ⊗ G_j ≠ 0)."""
    G = winograd(m, r, points).G_f64 != 0
    supp = G
    for _ in range(dims - 1):
        supp = np.einsum("i...,jb->ij...b", supp, G).reshape((-1,) + supp.shape[1:] + (r,))
    return supp.reshape((-1,) + (r,) * dims)


@dataclass
class SpatialMaskResult:
    threshold: float
    winograd_density: float
    spatial_density: float


class SpatialStructuredPruner:
    """Yu et al.'s first step on spatial ``nn.Conv2d``/``nn.Conv3d`` layers.

    For every kernel (k, c) and Winograd position p of F(m, r), if all spatial weights
    in p's support have |g| below a threshold, they are all pruned, so U_p becomes
    exactly zero once the layer is converted. The threshold is found by bisection so the
    resulting Winograd-domain density is the smallest one at or above the target.
    Masks are enforced like :class:`Pruner`'s (gradient hook + optimizer post-step hook).
    """

    def __init__(self, model: nn.Module, m: int, points=None):
        self.m, self.points = m, points
        self.layers = [mod for mod in model.modules()
                       if isinstance(mod, (nn.Conv2d, nn.Conv3d)) and mod.stride == (1,) * (mod.weight.ndim - 2)
                       and mod.groups == 1 and len(set(mod.kernel_size)) == 1 and mod.kernel_size[0] > 1]
        if not self.layers:
            raise ConfigError("no eligible spatial convolution (stride 1, groups 1, cubic kernel > 1) to prune")
        self.masks = {id(mod): torch.ones_like(mod.weight) for mod in self.layers}
        self._handles = [mod.weight.register_hook(self._hook(mod)) for mod in self.layers]

    def _hook(self, mod):
        return lambda grad: grad * self.masks[id(mod)]

    def _mask_for(self, weight: torch.Tensor, supp: torch.Tensor, thr: float) -> tuple[torch.Tensor, float]:
        a = weight.detach().abs()  # (K, C, r, …)
        K, C = a.shape[:2]
        flat = a.reshape(K, C, 1, -1)
        s = supp.reshape(1, 1, supp.shape[0], -1)
        peak = torch.where(s, flat, torch.zeros_like(flat)).amax(dim=-1)  # (K, C, P)
        dead = peak < thr  # positions to zero
        pruned = (dead.unsqueeze(-1) & s).any(dim=2).reshape(a.shape)
        alive = (s & ~pruned.reshape(K, C, 1, -1)).any(dim=-1)  # U_p is zero iff its whole support is pruned
        return (~pruned).to(weight.dtype), float(alive.float().mean())

    def prune(self, winograd_density: float) -> list[SpatialMaskResult]:
        check_density(winograd_density, "winograd_density")
        results = []
        for mod in self.layers:
            dims = mod.weight.ndim - 2
            supp = torch.tensor(winograd_supports(self.m, mod.kernel_size[0], dims, self.points))
            current = self.masks[id(mod)]
            w = mod.weight.detach() * current
            lo, hi = 0.0, float(w.abs().max()) * 1.0001 + 1e-12
            best = (current, 1.0, 0.0)
            for _ in range(40):
                mid = (lo + hi) / 2
                mask, dens = self._mask_for(w, supp, mid)
                if dens >= winograd_density:
                    best, lo = (mask * current, dens, mid), mid
                else:
                    hi = mid
            self.masks[id(mod)] = best[0]
            with torch.no_grad():
                mod.weight.mul_(best[0])
            results.append(SpatialMaskResult(best[2], best[1], float(best[0].mean())))
        return results

    def attach(self, optimizer: torch.optim.Optimizer):
        def post_step(opt, args, kwargs):
            for mod in self.layers:
                apply_mask(mod.weight, self.masks[id(mod)], opt)
        h = optimizer.register_step_post_hook(post_step)
        self._handles.append(h)
        return h

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def run(ctx) -> tuple[nn.Module, Pruner]:
    """Step 1 to √density in the spatial domain, retrain; convert; step 2 to the density, retrain."""
    from winnow.model.nn.convert import convert_to_winograd

    model = copy.deepcopy(ctx.dense)
    sp = SpatialStructuredPruner(model, ctx.cfg.m)
    sp.prune(math.sqrt(ctx.cfg.density))
    ctx.train(model, 2, "spatial retrain", hooks=[sp])
    sp.remove()
    ctx.record_spatial_macs(model)
    convert_to_winograd(model, m=ctx.cfg.m, winograd_relu=ctx.cfg.winograd_relu)
    transfer_spatial_zeros(model)
    pruner = Pruner(model, step_rule=ctx.options.step_rule)
    pruner.prune(ctx.cfg.density)
    ctx.train(model, 3, "winograd retrain", hooks=[pruner])
    return model, pruner


METHOD = PruningMethod(SpatialWinogradConfig, run, "spatial-Winograd: structured spatial, then Winograd-domain "
                                                   "pruning with importance factors, retraining steps scaled by "
                                                   "(F/F_min)^-1.5 (Yu, Park & Naumov 2019)")
