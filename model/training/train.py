"""Seeded, reproducible training and evaluation with progress bars."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from winnow.model.data.datasets import Split
from winnow.model.errors import ConfigError
from winnow.model.training.optim import winograd_adam


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (NumPy's takes seeds below 2^32: reduced into them)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings for one training phase (Adam)."""

    epochs: int = 4
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"epochs >= 0, batch_size >= 1 and lr > 0 are required; got {self}")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam; Winograd-domain weights get per-position step scales (winnow.model.training.optim)."""
    return winograd_adam(model, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(model: nn.Module, data: Split, cfg: TrainConfig, hooks=(), desc: str = "train",
          progress: bool = True, extra_loss=None) -> list[dict]:
    """Train ``model`` on ``data.x_train`` for ``cfg.epochs`` epochs; returns per-epoch loss and accuracy.

    ``hooks`` are objects with ``attach(optimizer)`` (pruners) whose masks then hold
    through every step; ``extra_loss()`` (e.g. KEP's penalty) is added to every batch's
    loss. Seeded: the same ``cfg.seed`` gives the same run.
    """
    seed_everything(cfg.seed)
    opt = make_optimizer(model, cfg)
    for h in hooks:
        h.attach(opt)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    n = len(data.y_train)
    bars = progress and sys.stderr.isatty()  # a terminal: tqdm bars; a log or a pipe: one plain line per epoch
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(range(0, n, cfg.batch_size), desc=f"{desc} {epoch + 1}/{cfg.epochs}", disable=not bars,
                   leave=False, unit="batch")
        for i in bar:
            idx = order[i : i + cfg.batch_size]
            x, y = data.x_train[idx], data.y_train[idx]
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            total_loss = loss + extra_loss() if extra_loss is not None else loss
            value = float(total_loss.detach())
            if not math.isfinite(value):
                raise _diverged(desc, epoch, cfg, f"the loss became {value} at batch {i // cfg.batch_size + 1}")
            total_loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        sched.step()
        bad = nonfinite_parameters(model)
        if bad:
            raise _diverged(desc, epoch, cfg, f"parameter {bad[0]} holds NaN or infinite values")
        history.append({"epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total})
        if progress and not bars:
            print(f"      {desc} epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / total:.3f}, train accuracy "
                  f"{correct / total:.3f} ({time.time() - t0:.1f} s)", flush=True)
    model.eval()
    return history


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters of ``model`` holding NaN or infinite values."""
    return [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]


def _diverged(desc: str, epoch: int, cfg: TrainConfig, what: str) -> ConfigError:
    return ConfigError(f"training diverged in '{desc}', epoch {epoch + 1}/{cfg.epochs} (lr = {cfg.lr:g}): {what}; "
                       f"lower the learning rate (lr, retrain_lr, qat_lr) or the method's penalty (kep_lambda)")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return int((predict(model, x) == y).sum()) / len(y)
