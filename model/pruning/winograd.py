"""Winograd-domain pruning mechanics shared by every method: ranking, masks that stay pruned, schedules.

The methods themselves are one module each, registered by name in
:mod:`winnow.model.pruning.registry` (importance_magnitude, liu_pool, spatial_winograd,
filter_l1, filter_distribution_fit, kep); what they share lives here:

* :class:`Pruner`: Winograd-domain masks in force through retraining, pruning to a
  target density by one of the rankings below (:func:`prune_layer`), optional
  per-position step factors;
* :func:`iterative_schedule`: a geometric schedule of densities;
* :func:`transfer_spatial_zeros` and :func:`winograd_after_spatial`: a spatially pruned
  network converted to Winograd layers, its exact zeros as the mask, pruned further in
  the Winograd domain (structured spatial methods feeding Winograd-domain pruning).

**Ranking criteria.** Two Winograd-domain rankings, chosen per method
(:data:`CRITERIA`, :func:`ranking_score`):

* ``"importance"``, the *output-referred magnitude* |U_p| · F_p with
  F_p = ∏_d ‖Aᵀ[:, i_d]‖₂ ‖Bᵀ[i_d, :]‖₂. The contribution of U_p to the output is
  Kα[:, p] · U_p · V_p, and for white inputs E|V_p| ∝ ‖Bᵀ row‖, so F_p measures how much
  a unit of U_p moves the output. The rows of Bᵀ and G can be rescaled in pairs without
  changing the algorithm (the integer hardware transforms do exactly that, position by
  position), which rescales |U_p| arbitrarily; |U_p|·F_p is invariant under every such
  rescaling, so the ranking is the same for the float model, any point normalisation
  and the integer datapath. F is also Yu et al.'s importance factor matrix (their
  released code tabulates an empirical matrix for F(4,3) only; this closed form covers
  every tile). This is a variant of ours, not a paper's criterion.
* ``"plain"``, |U_p| alone: Liu & Pool 2018's criterion as released (their pruning script
  keeps each layer's top ⌊N·density⌋ |U|; here the top round(N·density), as for "importance").
  It depends on the point normalisation of the transforms.

**Step factors of spatial-Winograd retraining** (:data:`STEP_RULES`,
:func:`yu_step_factors`). Yu et al.'s released retraining divides the gradient of U_p by
(F_p / F_min)^1.5 under SGD with momentum. Adam is invariant to a constant
per-element gradient scale, so scaling the gradient would do nothing under the
pipeline's optimizer; :class:`Pruner` therefore multiplies each optimizer step's
*update* of U_p by (F_p / F_min)^-1.5 (an optimizer post-step hook). Under SGD, with or
without momentum (a linear recursion in the gradient), this is exactly the released rule
when weight decay is 0; with weight decay, the decay term is scaled too (the released
code adds the decay after dividing). The pipeline trains with no weight decay. (The
earlier factor, the diagonal ∏_d ‖G_{i_d}‖² of the preconditioner that spatial training
implies, multiplied the gradient and so did nothing under Adam; applied to the update it
trained worse than both rules here, docs/pytorch.md, and was removed.)

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


def yu_step_factors(layer: WinogradConv) -> torch.Tensor:
    """(F_p / F_min)^-1.5: Yu et al.'s released gradient division, as a factor on each step (module docstring)."""
    f = importance_factors(layer)
    return (f / f.min()) ** -1.5


#: Per-position factors on every optimizer update of U (module docstring), by name; ``"none"``: plain steps.
STEP_RULES = {"none": None, "yu2019": yu_step_factors}
#: Winograd-domain ranking criteria (module docstring).
CRITERIA = ("importance", "plain")


def ranking_score(layer: WinogradConv, criterion: str = "importance") -> torch.Tensor:
    """The score U is ranked by: |U|·F (``"importance"``) or |U| (``"plain"``, Liu & Pool 2018)."""
    if criterion == "importance":
        return layer.weight.detach().abs() * importance_factors(layer)
    if criterion == "plain":
        return layer.weight.detach().abs()
    raise ConfigError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")


def prune_layer(layer: WinogradConv, density: float, criterion: str = "importance") -> None:
    """Keep the ``density`` fraction of U with the largest :func:`ranking_score`; pruned weights stay pruned."""
    density = check_density(density)
    with torch.no_grad():
        score = ranking_score(layer, criterion)
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
    criterion : str
        The ranking of :meth:`prune`, one of :data:`CRITERIA`.
    step_rule : str
        One of :data:`STEP_RULES`: per-position factors on every optimizer update of U
        once :meth:`attach` ed (``"yu2019"``: spatial-Winograd retraining as released).
    """

    def __init__(self, model: nn.Module, criterion: str = "importance", step_rule: str = "none"):
        self.layers = [layer for _, layer in winograd_layers(model)]
        if not self.layers:
            raise ConfigError("the model has no Winograd layers to prune: convert it first (winnow.model.nn.convert)")
        if criterion not in CRITERIA:
            raise ConfigError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
        if step_rule not in STEP_RULES:
            raise ConfigError(f"step_rule must be one of {', '.join(STEP_RULES)}; got {step_rule!r}")
        self.criterion, self.step_rule = criterion, step_rule
        rule = STEP_RULES[step_rule]
        self.step_factors = [rule(layer) for layer in self.layers] if rule is not None else None
        self._handles = [layer.weight.register_hook(self._grad_hook(layer)) for layer in self.layers]

    @staticmethod
    def _grad_hook(layer: WinogradConv):
        return lambda grad: grad * layer.mask

    def prune(self, density: float) -> None:
        """Prune every layer to ``density`` (uniform per layer, as Liu & Pool)."""
        for layer in self.layers:
            prune_layer(layer, density, self.criterion)

    def attach(self, optimizer: torch.optim.Optimizer):
        """After every ``optimizer.step()``: scale the update of U by the step factors, re-apply the masks
        to weights and optimizer state. Returns the post-step hook's handle."""
        before: list[torch.Tensor] = []
        if self.step_factors is not None:
            def pre_step(opt, args, kwargs):
                before[:] = [layer.weight.detach().clone() for layer in self.layers]
            self._handles.append(optimizer.register_step_pre_hook(pre_step))

        def post_step(opt, args, kwargs):
            if before:
                with torch.no_grad():
                    for layer, old, f in zip(self.layers, before, self.step_factors):
                        layer.weight.copy_(old + (layer.weight - old) * f)
                before.clear()
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
