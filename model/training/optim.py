"""Adam with a fixed per-element step scale, for training Winograd-domain weights.

Adam normalises every gradient element, so each element moves by about ``lr`` per
step whatever its natural size. Winograd-domain weights have very different natural
sizes per position: for a kernel of i.i.d. entries, U_p = (G g Gᵀ)_p has standard
deviation ∏_d ‖G_{i_d}‖₂, which spans a factor of ~40 for F(4,3) and ~300 for F(6,3).
Plain Adam therefore over-drives the small positions and training from scratch in the
Winograd domain stalls (measured on MNIST-5k, docs/pytorch.md). Scaling each element's
step by its position's natural size (normalised to max 1) makes Winograd-domain Adam
behave like spatial-domain Adam. Spatial-Winograd retraining multiplies each step by
a further per-position factor of its own (winnow.model.pruning.winograd.STEP_RULES).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from winnow.model.nn.layers import WinogradConv


def natural_scale(layer: WinogradConv) -> torch.Tensor:
    """∏_d ‖G_{i_d}‖₂ per position, normalised to max 1, shape (n,)*dims."""
    g = np.linalg.norm(layer.alg.G_f64, axis=1)
    s = g
    for _ in range(layer.dims - 1):
        s = np.multiply.outer(s, g)
    return torch.tensor(s / s.max(), dtype=layer.weight.dtype)


class ScaledAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba) whose step for parameter p is multiplied by ``scales[p]`` (broadcast)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, scales=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.scales = scales or {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                st["exp_avg"].mul_(b1).add_(grad, alpha=1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                bc1 = 1 - b1 ** st["step"]
                bc2 = 1 - b2 ** st["step"]
                denom = (st["exp_avg_sq"] / bc2).sqrt_().add_(group["eps"])
                upd = st["exp_avg"] / denom * (group["lr"] / bc1)
                scale = self.scales.get(p)
                if scale is not None:
                    upd = upd * scale
                p.sub_(upd)
        return loss


def winograd_adam(model: nn.Module, lr: float, weight_decay: float = 0.0) -> ScaledAdam:
    """:class:`ScaledAdam` over all parameters, with natural scales for every Winograd weight."""
    scales = {}
    for mod in model.modules():
        if isinstance(mod, WinogradConv):
            scales[mod.weight] = natural_scale(mod).to(mod.weight.device)
    return ScaledAdam(model.parameters(), lr=lr, weight_decay=weight_decay, scales=scales)
