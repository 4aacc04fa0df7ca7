"""Filter pruning: plain L1-norm selection and selection by distribution fitting.

* **L1-norm** (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): keep the
  filters with the largest L1 norms.
* **Distribution fitting** (Zhang, Kou & Liu, Computer Technology and Development
  2022): keep a subset whose norm distribution *fits the original layer's*, instead
  of cutting off its lower tail. Here the kept filters are the ones at evenly spaced
  quantiles of the sorted norms (the i-th kept filter is the one nearest the
  (i + ½)/K' quantile), which keeps the Kolmogorov–Smirnov distance between the kept
  and the original empirical norm distributions at most 1/(2K') — about the best a
  subset of K' values can do; :func:`ks_distance` measures the fit.

Both physically remove the filters: the convolution loses output channels, and the
layer that consumes them (the next convolution, or the linear layer after a flatten)
loses the matching inputs, giving a smaller dense model with fewer FLOPs. Pruning the
same number of filters per layer makes the two methods equal in FLOPs.

In the pipeline they are the methods ``filter_l1`` and ``filter_distribution_fit``
(options :class:`FilterConfig`, key ``filter_ratio``): the smaller network is
fine-tuned, converted and, for a density below what is left, pruned further in the
Winograd domain (:func:`winnow.model.pruning.winograd.winograd_after_spatial`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from winnow.model.errors import ConfigError
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.winograd import Pruner, winograd_after_spatial

PRUNABLE = (nn.Conv2d, nn.Conv3d)


def filter_norms(conv: nn.Module) -> np.ndarray:
    """L1 norm of every output filter."""
    return conv.weight.detach().abs().reshape(conv.out_channels, -1).sum(dim=1).cpu().numpy()


def select_l1(norms: np.ndarray, keep: int) -> np.ndarray:
    return np.sort(np.argsort(-norms, kind="stable")[:keep])


def select_distribution_fit(norms: np.ndarray, keep: int) -> np.ndarray:
    order = np.argsort(norms, kind="stable")
    K = len(norms)
    picks = np.floor((np.arange(keep) + 0.5) * K / keep).astype(int)
    return np.sort(order[np.clip(picks, 0, K - 1)])


def ks_distance(sample: np.ndarray, reference: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup |F_sample − F_reference|."""
    grid = np.sort(np.concatenate([sample, reference]))
    fs = np.searchsorted(np.sort(sample), grid, side="right") / len(sample)
    fr = np.searchsorted(np.sort(reference), grid, side="right") / len(reference)
    return float(np.abs(fs - fr).max())


SELECTORS = {"l1": select_l1, "distribution_fit": select_distribution_fit}


def _chain(model: nn.Sequential):
    """(index, module) of the Sequential's children; nested Sequentials are not walked."""
    if not isinstance(model, nn.Sequential):
        raise ConfigError(f"filter pruning rewires nn.Sequential models; got {type(model).__name__}")
    return list(model.named_children())


def prune_filters(model: nn.Sequential, ratio: float, method: str = "distribution_fit",
                  skip_last: bool = False) -> tuple[nn.Sequential, list[dict]]:
    """A new, smaller model with ``ratio`` of the filters of every convolution removed.

    Parameters
    ----------
    model : nn.Sequential
        Convolutions, ReLU, pooling, Flatten, Linear (like :mod:`winnow.model.data.nets`).
    ratio : float
        Fraction of filters to remove per layer, in [0, 1); at least one filter stays.
    method : "l1" or "distribution_fit"
    skip_last : bool
        Keep the last convolution whole.

    Returns
    -------
    (pruned model, per-layer report: kept indices, KS distance of the kept norms)
    """
    if method not in SELECTORS:
        raise ConfigError(f"method must be one of {', '.join(SELECTORS)}; got {method!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(f"ratio must be in [0, 1) (1 would remove every filter of a layer); got {ratio!r}")
    new = copy.deepcopy(model)
    children = _chain(new)
    convs = [i for i, (_, m) in enumerate(children) if isinstance(m, PRUNABLE)]
    if not convs:
        raise ConfigError("the model has no Conv2d/Conv3d layer to prune")
    report = []
    for ci in convs[:-1] if skip_last else convs:
        name, conv = children[ci]
        if conv.groups != 1:
            raise ConfigError(f"layer {name}: grouped convolutions are not supported by filter pruning")
        K = conv.out_channels
        keep_n = max(1, K - int(round(ratio * K)))
        norms = filter_norms(conv)
        keep = SELECTORS[method](norms, keep_n)
        report.append({"layer": name, "filters": K, "kept": int(keep_n), "method": method,
                       "ks_distance": ks_distance(norms[keep], norms), "kept_indices": keep.tolist()})
        _shrink_out(conv, keep)
        _shrink_consumer(children, ci, keep, K, name)
    return new, report


def _shrink_out(conv: nn.Module, keep: np.ndarray) -> None:
    idx = torch.as_tensor(keep, dtype=torch.long)
    conv.weight = nn.Parameter(conv.weight.detach()[idx].clone())
    if conv.bias is not None:
        conv.bias = nn.Parameter(conv.bias.detach()[idx].clone())
    conv.out_channels = len(keep)


def _shrink_consumer(children, ci: int, keep: np.ndarray, K: int, name: str) -> None:
    idx = torch.as_tensor(keep, dtype=torch.long)
    flattened = False
    for _, mod in children[ci + 1 :]:
        if isinstance(mod, PRUNABLE):
            if flattened:
                break
            mod.weight = nn.Parameter(mod.weight.detach()[:, idx].clone())
            mod.in_channels = len(keep)
            return
        if isinstance(mod, nn.Flatten):
            flattened = True
        elif isinstance(mod, nn.Linear) and flattened:
            per = mod.in_features // K
            cols = (idx[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
            mod.weight = nn.Parameter(mod.weight.detach()[:, cols].clone())
            mod.in_features = len(cols)
            return
        elif isinstance(mod, (nn.ReLU, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool2d, nn.Identity, nn.Dropout)):
            continue
        else:
            raise ConfigError(f"cannot remove filters of {name}: the following {type(mod).__name__} "
                              "would need rewiring (supported: conv, ReLU, pooling, Flatten, Linear)")
    raise ConfigError(f"cannot remove filters of {name}: no consumer found for its output channels")


def layer_macs(model: nn.Module, x: torch.Tensor, skip_zeros: bool = False, linear: bool = True) -> int:
    """Multiply-accumulates per image of every spatial convolution (and linear layer).

    ``skip_zeros`` counts only non-zero weights (what a zero-skipping convolution does).
    """
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Linear):
            total[0] += int((mod.weight != 0).sum()) if skip_zeros else mod.in_features * mod.out_features
        else:
            taps = int((mod.weight != 0).sum()) if skip_zeros else int(mod.weight.numel())
            total[0] += taps * int(np.prod(out.shape[2:]))
    kinds = (*PRUNABLE, nn.Linear) if linear else PRUNABLE
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model.eval()(x[:1])
    finally:
        for h in hs:
            h.remove()
    return total[0]


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of all convolutions and linear layers for one image."""
    return layer_macs(model, x)


@dataclass(frozen=True)
class FilterConfig:
    """Options of ``filter_l1`` and ``filter_distribution_fit`` (key ``filter_ratio``).

    Parameters
    ----------
    ratio : float
        Fraction of the filters of every convolution removed, in [0, 1).
    """

    ratio: float = 0.5

    def __post_init__(self):
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise ConfigError(f"filter_ratio must be in [0, 1) (1 would remove every filter); got {r!r}")


def _method(selection: str, description: str) -> PruningMethod:
    def run(ctx) -> tuple[nn.Module, Pruner]:
        """Remove filters, fine-tune the smaller network; then Winograd-domain pruning."""
        model, rep = prune_filters(ctx.dense, ctx.options.ratio, method=selection)
        ctx.info["filters"] = [{k: r[k] for k in ("layer", "filters", "kept", "ks_distance")} for r in rep]
        ctx.train(model, 8, "filter fine-tune")
        return winograd_after_spatial(ctx, model)

    return PruningMethod(FilterConfig, run, description, winograd_relu=False, keeps_structure=False,
                         option_prefix="filter")


L1 = _method("l1", "filter pruning, keeping the largest L1 norms (Li et al. 2017)")
DISTRIBUTION_FIT = _method("distribution_fit", "filter pruning by distribution fitting "
                                               "(Zhang, Kou & Liu 2022)")
