"""Winograd-domain pruning mechanics shared by every method: ranking, masks that stay pruned, schedules.

The methods themselves are one module each, registered by name in
:mod:`winnow.model.pruning.registry` (magnitude, spatial_winograd, filter_l1,
filter_distribution_fit, kep); what they share lives here:

* :class:`Pruner`: Winograd-domain masks in force through retraining, pruning to a
  target density by the ranking below (:func:`prune_layer`);
* :func:`iterative_schedule`: a geometric schedule of densities;
* :func:`transfer_spatial_zeros` and :func:`winograd_after_spatial`: a spatially pruned
  network converted to Winograd layers, its exact zeros as the mask, pruned further in
  the Winograd domain (structured spatial methods feeding Winograd-domain pruning).

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

import numpy as np
import torch
import torch.nn as nn

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


def transfer_spatial_zeros(model: nn.Module) -> None:
    """After converting a spatially pruned model: mask every U that is exactly zero."""
    with torch.no_grad():
        for _, layer in winograd_layers(model):
            layer.mask.copy_((layer.weight != 0).to(layer.mask.dtype))


def winograd_after_spatial(ctx, model: nn.Module) -> tuple[nn.Module, Pruner]:
    """Finish a method that pruned the spatial network: measure it, convert, then Winograd-domain pruning.

    Records the spatial model's accuracy and multiplications in ``ctx.info``, converts
    it (no Winograd-ReLU: the spatial structure is kept), masks the Winograd weights the
    spatial zeros made exactly 0, and, if ``ctx.cfg.density`` is below the density that
    leaves, prunes to it and retrains with the mask.
    """
    from winnow.model.nn.convert import convert_to_winograd

    ctx.info["spatial_accuracy"] = ctx.accuracy(model)
    ctx.record_spatial_macs(model)
    convert_to_winograd(model, m=ctx.cfg.m)
    transfer_spatial_zeros(model)  # Winograd weights that the spatial zeros made exactly 0
    pruner = Pruner(model)
    ctx.info["winograd_density_from_spatial"] = pruner.density()
    if ctx.cfg.density < pruner.density():
        pruner.prune(ctx.cfg.density)
        ctx.train(model, 9, "winograd retrain", hooks=[pruner])
    return model, pruner
