"""Winograd-domain magnitude pruning (Li et al. 2017; Liu & Pool 2018): prune the Winograd weights, retrain with the mask.

Two methods share this module and differ only in the ranking
(:func:`winnow.model.pruning.winograd.ranking_score`):

* ``liu_pool`` (:data:`LIU_POOL`): plain |U| per layer, Liu & Pool 2018's own criterion;
* ``importance_magnitude`` (:data:`METHOD`, also accepted as ``magnitude``, its earlier
  name): |U|·F, the output-referred (importance-weighted) magnitude, a scale-invariant
  variant of ours.

The dense network is converted to Winograd layers (with the Winograd-ReLU rule if
``winograd_relu``; then a dense Winograd-domain fine-tune first, since moving the ReLU
changes the function), pruned to the target density, one-shot or along an iterative
schedule, and retrained with the masks after every step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch.nn as nn

from winnow.model.errors import ConfigError
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.winograd import Pruner, iterative_schedule

SCHEDULES = ("one_shot", "iterative")
#: Most steps of the iterative schedule.
MAX_STEPS = 100


@dataclass(frozen=True)
class MagnitudeConfig:
    """Options of ``magnitude``.

    Parameters
    ----------
    schedule : "one_shot" or "iterative"
        Prune to the density at once, or along the geometric densities
        target^(i/steps), i = 1 … steps, retraining after each.
    iterative_steps : int
        Steps of the iterative schedule (≥ 1); the retraining epochs are shared among them.
    """

    schedule: str = "one_shot"
    iterative_steps: int = 3

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        v = self.iterative_steps
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_STEPS:
            raise ConfigError(f"iterative_steps must be an integer >= 1 (at most {MAX_STEPS}: each step retrains "
                              f"at least one epoch); got {v!r:.40}")


def run(ctx, criterion: str = "importance") -> tuple[nn.Module, Pruner]:
    """Convert, (dense Winograd-ReLU fine-tune), prune by ``criterion`` and retrain along the schedule."""
    from winnow.model.nn.convert import convert_to_winograd

    cfg, opts = ctx.cfg, ctx.options
    model = copy.deepcopy(ctx.dense)
    convert_to_winograd(model, m=cfg.m, winograd_relu=cfg.winograd_relu)
    pruner = Pruner(model, criterion=criterion)
    if cfg.winograd_relu:  # the function changed: dense fine-tune in the Winograd domain first
        ctx.train(model, 4, "dense winograd-relu", hooks=[pruner])
    one_shot = opts.schedule == "one_shot"
    steps = [cfg.density] if one_shot else iterative_schedule(cfg.density, opts.iterative_steps)
    for i, d in enumerate(steps):
        pruner.prune(d)
        epochs = cfg.retrain_epochs if one_shot else max(1, round(cfg.retrain_epochs / len(steps)))
        ctx.train(model, 10 + i, f"retrain @{d:.2f}", hooks=[pruner], epochs=epochs)
    return model, pruner


def run_plain(ctx) -> tuple[nn.Module, Pruner]:
    """:func:`run` ranking plain |U| (Liu & Pool 2018)."""
    return run(ctx, criterion="plain")


#: ``importance_magnitude``. Its options keep the pipeline's historical keys: ``schedule``, ``iterative_steps``.
METHOD = PruningMethod(MagnitudeConfig, run, "Winograd-domain magnitude pruning ranked by importance-weighted "
                                             "|U|·F (a scale-invariant variant of Li et al. 2017; Liu & Pool 2018), "
                                             "one-shot or iterative", option_prefix="")
#: ``liu_pool``: the same schedule and keys, ranking plain |U| per layer.
LIU_POOL = PruningMethod(MagnitudeConfig, run_plain, "Winograd-domain magnitude pruning ranked by plain |U| per "
                                                     "layer, one-shot or iterative (Liu & Pool 2018's criterion)",
                         option_prefix="")
