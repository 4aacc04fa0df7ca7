"""Winograd-domain pruning with masks that stay pruned through retraining.

Methods (named after their papers):

* **magnitude** (Li et al. 2017, native Winograd-domain pruning; Liu & Pool 2018):
  dense Winograd training, pruning to a target density, retraining with the mask;
  one-shot or iterative (a geometric schedule of densities);
* **spatial-Winograd** (Yu, Park & Naumov 2019): (1) structured pruning of the
  *spatial* kernel so that whole Winograd positions vanish (:class:`SpatialStructuredPruner`),
  retrained in the spatial domain; (2) Winograd-domain pruning and retraining where an
  importance factor matrix scales both the weight importance and the weight gradients
  per position.

**Ranking domain.** All Winograd-domain ranking uses one domain, the *output-referred
magnitude* |U_p| · F_p with F_p = ∏_d ‖Aᵀ[:, i_d]‖₂ ‖Bᵀ[i_d, :]‖₂. The contribution of
U_p to the output is Kα[:, p] · U_p · V_p, and for white inputs E|V_p| ∝ ‖Bᵀ row‖, so F_p
measures how much a unit of U_p moves the output. Plain |U| is not a meaningful domain
for large tiles: the rows of Bᵀ and G can be rescaled in pairs without changing the
algorithm (and the integer hardware transforms do exactly that, position by position),
which rescales |U_p| arbitrarily; |U_p|·F_p is invariant under every such rescaling,
so the ranking is the same for the float model, for any point normalisation, and for
the integer datapath. F is also Yu et al.'s importance factor matrix here (their
released code tabulates an empirical matrix for F(4,3) only; this closed form
covers every tile).

**Gradient factor.** Training U directly changes the optimisation geometry: a spatial
step Δg maps to ΔU = G Δg Gᵀ, i.e. Winograd-domain gradients are preconditioned by
GGᵀ ⊗ GGᵀ in spatial training. Spatial-Winograd retraining scales the gradient of U_p
by the diagonal of that preconditioner, D_p = ∏_d ‖G_{i_d}‖₂², normalised to max 1.

Masks stay pruned: a gradient hook multiplies the gradient by the mask, and an
optimizer post-step hook re-applies the mask to the weights *and* to every optimizer
state tensor of the same shape (Adam's moments, momentum buffers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from winnow.model.algebra.cook_toom import winograd
from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv, winograd_layers


def apply_mask(param: torch.Tensor, mask: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Zero the masked entries of ``param`` and of every same-shaped optimizer state tensor."""
    with torch.no_grad():
        param.mul_(mask)
        if optimizer is not None:
            for value in optimizer.state.get(param, {}).values():
                if torch.is_tensor(value) and value.shape == mask.shape:
                    value.mul_(mask)


def check_density(density, name: str = "density") -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not (0 < density <= 1):
        raise ConfigError(f"{name} must be in (0, 1]; got {density!r}")
    return float(density)


def _outer(vec: np.ndarray, dims: int) -> np.ndarray:
    out = vec
    for _ in range(dims - 1):
        out = np.multiply.outer(out, vec)
    return out


def importance_factors(layer: WinogradConv) -> torch.Tensor:
    """F_p = ∏_d ‖Aᵀ[:, i_d]‖ ‖Bᵀ[i_d, :]‖, shape (n,)*dims (see module docstring)."""
    alg = layer.alg
    a = np.linalg.norm(alg.AT_f64, axis=0)
    b = np.linalg.norm(alg.BT_f64, axis=1)
    return torch.tensor(_outer(a * b, layer.dims), dtype=layer.weight.dtype, device=layer.weight.device)


def gradient_factors(layer: WinogradConv) -> torch.Tensor:
    """D_p = ∏_d ‖G_{i_d}‖², normalised to max 1 (see module docstring)."""
    g = np.linalg.norm(layer.alg.G_f64, axis=1) ** 2
    d = _outer(g, layer.dims)
    return torch.tensor(d / d.max(), dtype=layer.weight.dtype, device=layer.weight.device)


def prune_layer(layer: WinogradConv, density: float) -> None:
    """Keep the ``density`` fraction of U with the largest |U|·F; already-pruned weights stay pruned."""
    density = check_density(density)
    with torch.no_grad():
        score = layer.weight.abs() * importance_factors(layer)
        score = torch.where(layer.mask > 0, score, torch.full_like(score, -1.0))
        keep = max(1, round(density * score.numel()))
        keep = min(keep, int(layer.mask.sum()))
        idx = torch.topk(score.reshape(-1), keep, sorted=False).indices
        mask = torch.zeros(score.numel(), dtype=layer.mask.dtype, device=score.device)
        mask[idx] = 1
        layer.mask.copy_(mask.reshape(layer.mask.shape))
        layer.weight.mul_(layer.mask)


class Pruner:
    """Keeps Winograd-domain masks in force during training.

    Parameters
    ----------
    model : nn.Module
        A model with :class:`WinogradConv` layers.
    scale_gradients : bool
        Multiply gradients by :func:`gradient_factors` (spatial-Winograd retraining).
    """

    def __init__(self, model: nn.Module, scale_gradients: bool = False):
        self.layers = [layer for _, layer in winograd_layers(model)]
        if not self.layers:
            raise ConfigError("the model has no Winograd layers to prune: convert it first (winnow.model.nn.convert)")
        self.scale_gradients = scale_gradients
        self._handles = []
        for layer in self.layers:
            factor = gradient_factors(layer) if scale_gradients else None
            self._handles.append(layer.weight.register_hook(self._grad_hook(layer, factor)))

    @staticmethod
    def _grad_hook(layer: WinogradConv, factor):
        def hook(grad):
            g = grad * layer.mask
            return g * factor if factor is not None else g
        return hook

    def prune(self, density: float) -> None:
        """Prune every layer to ``density`` (uniform per layer, as Liu & Pool)."""
        for layer in self.layers:
            prune_layer(layer, density)

    def attach(self, optimizer: torch.optim.Optimizer):
        """Re-apply masks to weights and optimizer state after every ``optimizer.step()``."""
        def post_step(opt, args, kwargs):
            self.enforce(opt)
        handle = optimizer.register_step_post_hook(post_step)
        self._handles.append(handle)
        return handle

    def enforce(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        for layer in self.layers:
            apply_mask(layer.weight, layer.mask, optimizer)

    def density(self) -> float:
        kept = sum(float(layer.mask.sum()) for layer in self.layers)
        return kept / sum(layer.mask.numel() for layer in self.layers)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def iterative_schedule(target: float, steps: int) -> list[float]:
    """Geometric densities from 1 towards ``target``: target^(1/steps), …, target."""
    check_density(target, "target density")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1; got {steps!r}")
    return [target ** (i / steps) for i in range(1, steps + 1)]


# ---------------------------------------------------------------- spatial structured (Yu et al. 2019, step 1)


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


def transfer_spatial_zeros(model: nn.Module) -> None:
    """After converting a spatially pruned model: mask every U that is exactly zero."""
    with torch.no_grad():
        for _, layer in winograd_layers(model):
            layer.mask.copy_((layer.weight != 0).to(layer.mask.dtype))
