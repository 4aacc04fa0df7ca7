"""One pruning experiment, end to end: train, prune, fine-tune with fake quantization, measure.

Pipeline (every step seeded; the same configuration gives the same numbers):

1. **dense**: the default network for the data set, trained in the spatial domain;
2. **method** (``magnitude`` or ``spatial_winograd``, module :mod:`winnow.model.pruning.winograd`):
   * magnitude (Li et al. 2017; Liu & Pool 2018): convert to Winograd layers (with the
     Winograd-ReLU rule if asked; then a dense Winograd-domain fine-tune, since moving
     the ReLU changes the function), prune to the target density one-shot or on an
     iterative schedule, retrain with the masks;
   * spatial_winograd (Yu et al. 2019): structured spatial pruning to Winograd density
     √target, spatial retraining, conversion (zeros transfer exactly), Winograd-domain
     pruning to the target with the importance factors, retraining;
3. **QAT**: calibrate activation scales, fine-tune with fake quantization
   (:mod:`winnow.model.nn.qat`), masks still enforced;
4. **measure**: test accuracy in float (before QAT), fake-quant (float64 evaluation)
   and on the bit-accurate integer reference; the Winograd-domain density; the
   multiplication accounting (:mod:`winnow.model.accounting`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from winnow.model.accounting import count_multiplications
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.data.datasets import Split, load_dataset
from winnow.model.errors import ConfigError
from winnow.model.integer.network import IntegerNetwork, build_integer_network
from winnow.model.data.nets import model_for
from winnow.model.pruning.winograd import Pruner, SpatialStructuredPruner, check_density, iterative_schedule, transfer_spatial_zeros
from winnow.model.nn.qat import prepare_qat, restore_qat
from winnow.model.training.train import TrainConfig, accuracy, seed_everything, train

METHODS = ("magnitude", "spatial_winograd", "filter_l1", "filter_distribution_fit", "kep")
SPATIAL_METHODS = ("filter_l1", "filter_distribution_fit", "kep")
#: Methods whose pruned model keeps the default network's structure (zeros, not removed filters).
STRUCTURE_PRESERVING = ("magnitude", "spatial_winograd", "kep")
SCHEDULES = ("one_shot", "iterative")


@dataclass(frozen=True)
class ExperimentConfig:
    """Every knob of :func:`run_experiment`; validated on construction."""

    dataset: str = "mnist5k"
    m: int = 4
    method: str = "magnitude"
    density: float = 0.3
    winograd_relu: bool = False
    schedule: str = "one_shot"
    iterative_steps: int = 3
    width: int | None = None
    dense_epochs: int = 4
    retrain_epochs: int = 3
    qat_epochs: int = 1
    lr: float = 2e-3
    retrain_lr: float = 1e-3
    qat_lr: float = 2e-4
    batch_size: int = 64
    act_bits: int = 8
    weight_bits: int = 8
    seed: int = 0
    integer_eval: bool = True
    filter_ratio: float = 0.5
    kep_keep: int = 4
    kep_library: int = 8
    kep_lambda: float = 1e-4

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        check_density(self.density)
        if self.method == "spatial_winograd" and self.schedule == "iterative":
            raise ConfigError("spatial_winograd has its own two-step schedule; use schedule='one_shot' with it")
        if self.method in SPATIAL_METHODS and self.schedule == "iterative":
            raise ConfigError(f"{self.method} prunes in the spatial domain once; use schedule='one_shot'")
        if self.method in SPATIAL_METHODS and self.winograd_relu:
            raise ConfigError(f"{self.method} keeps the network's structure; winograd_relu=True contradicts it")
        if not 0 <= self.filter_ratio < 1:
            raise ConfigError(f"filter_ratio must be in [0, 1) (1 would remove every filter); got {self.filter_ratio}")
        if self.kep_lambda < 0:
            raise ConfigError(f"kep_lambda must be >= 0; got {self.kep_lambda}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1; got {self.batch_size!r}")
        for nm in ("lr", "retrain_lr", "qat_lr"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{nm} must be a positive finite number; got {v!r}")
        if self.width is not None and (isinstance(self.width, bool) or not isinstance(self.width, int)
                                       or not 1 <= self.width <= 1024):
            raise ConfigError(f"width must be an integer in [1, 1024] (or unset for the data set's default); "
                              f"got {self.width!r}")
        if isinstance(self.kep_keep, bool) or not isinstance(self.kep_keep, int) or not 1 <= self.kep_keep <= 9:
            raise ConfigError(f"kep_keep must be an integer in [1, 9] (taps kept of a 3×3 kernel); got {self.kep_keep!r}")
        if isinstance(self.kep_library, bool) or not isinstance(self.kep_library, int) or self.kep_library < 1:
            raise ConfigError(f"kep_library must be an integer >= 1; got {self.kep_library!r}")
        for nm in ("dense_epochs", "retrain_epochs", "qat_epochs", "iterative_steps"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if nm == "iterative_steps" else 0):
                raise ConfigError(f"{nm} must be a non-negative integer; got {v!r}")


def _phase(cfg: ExperimentConfig, epochs: int, lr: float, salt: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=lr, batch_size=cfg.batch_size, seed=cfg.seed * 1000 + salt)


def train_dense(cfg: ExperimentConfig, data: Split, progress: bool = True) -> nn.Module:
    """Step 1: the dense spatial network (shared by every method for one data set and seed)."""
    seed_everything(cfg.seed)
    model = model_for(data.name, data.input_shape, data.classes, cfg.width)
    train(model, data, _phase(cfg, cfg.dense_epochs, cfg.lr, 1), desc="dense", progress=progress)
    return model


def spatial_macs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiplications per image of the spatial convolutions, zero weights skipped."""
    from winnow.model.pruning.filter import layer_macs

    return float(layer_macs(model, x, skip_zeros=True, linear=False))


def _spatial_method(cfg: ExperimentConfig, dense: nn.Module, data: Split, progress: bool, info: dict) -> nn.Module:
    """Filter pruning (L1 / distribution fit) or KEP, retrained in the spatial domain."""
    from winnow.model.pruning.filter import prune_filters
    from winnow.model.pruning.kep import KEP

    if cfg.method == "kep":
        model = copy.deepcopy(dense)
        kep = KEP(model, cfg.kep_keep, cfg.kep_library, cfg.kep_lambda)
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 6), extra_loss=kep.penalty,
              desc="kep regularize", progress=progress)
        kep.prune()
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 7), hooks=[kep], desc="kep fine-tune",
              progress=progress)
        info["kep"] = kep.report()
    else:
        method = "l1" if cfg.method == "filter_l1" else "distribution_fit"
        model, rep = prune_filters(dense, cfg.filter_ratio, method=method)
        info["filters"] = [{k: r[k] for k in ("layer", "filters", "kept", "ks_distance")} for r in rep]
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 8), desc="filter fine-tune",
              progress=progress)
    info["spatial_accuracy"] = accuracy(model, data.x_test, data.y_test)
    return model


def prune_model(cfg: ExperimentConfig, dense: nn.Module, data: Split, progress: bool = True,
                info: dict | None = None) -> tuple[nn.Module, Pruner]:
    """Step 2: a pruned Winograd model (the dense model is left untouched).

    Spatial methods (filter pruning, KEP) run first in the spatial domain; their model
    is then converted and, for ``density`` < 1, pruned further in the Winograd domain —
    structured spatial methods feeding Winograd-domain pruning.
    """
    info = {} if info is None else info
    model = copy.deepcopy(dense)
    info["dense_spatial_macs"] = spatial_macs(dense, data.x_test)
    if cfg.method in SPATIAL_METHODS:
        model = _spatial_method(cfg, dense, data, progress, info)
        info["spatial_macs"] = spatial_macs(model, data.x_test)
        convert_to_winograd(model, m=cfg.m)
        transfer_spatial_zeros(model)  # Winograd weights that the spatial zeros made exactly 0
        pruner = Pruner(model)
        info["winograd_density_from_spatial"] = pruner.density()
        if cfg.density < pruner.density():
            pruner.prune(cfg.density)
            train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 9), hooks=[pruner],
                  desc="winograd retrain", progress=progress)
        return model, pruner
    if cfg.method == "spatial_winograd":
        sp = SpatialStructuredPruner(model, cfg.m)
        sp.prune(math.sqrt(cfg.density))
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 2), hooks=[sp], desc="spatial retrain",
              progress=progress)
        sp.remove()
        info["spatial_macs"] = spatial_macs(model, data.x_test)
        convert_to_winograd(model, m=cfg.m, winograd_relu=cfg.winograd_relu)
        transfer_spatial_zeros(model)
        pruner = Pruner(model, scale_gradients=True)
        pruner.prune(cfg.density)
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 3), hooks=[pruner],
              desc="winograd retrain", progress=progress)
        return model, pruner
    info["spatial_macs"] = info["dense_spatial_macs"]
    convert_to_winograd(model, m=cfg.m, winograd_relu=cfg.winograd_relu)
    pruner = Pruner(model)
    if cfg.winograd_relu:  # the function changed: dense fine-tune in the Winograd domain first
        train(model, data, _phase(cfg, cfg.retrain_epochs, cfg.retrain_lr, 4), hooks=[pruner],
              desc="dense winograd-relu", progress=progress)
    steps = iterative_schedule(cfg.density, cfg.iterative_steps) if cfg.schedule == "iterative" else [cfg.density]
    for i, d in enumerate(steps):
        pruner.prune(d)
        epochs = cfg.retrain_epochs if cfg.schedule == "one_shot" else max(1, round(cfg.retrain_epochs / len(steps)))
        train(model, data, _phase(cfg, epochs, cfg.retrain_lr, 10 + i), hooks=[pruner],
              desc=f"retrain @{d:.2f}", progress=progress)
    return model, pruner


def quantize_model(cfg: ExperimentConfig, model: nn.Module, pruner: Pruner, data: Split,
                   progress: bool = True) -> list[dict]:
    """Step 3: calibrate and fine-tune with fake quantization (in place)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    calib = data.x_train[torch.randperm(len(data.x_train), generator=gen)[:512]]
    scales = prepare_qat(model, calib, act_bits=cfg.act_bits, weight_bits=cfg.weight_bits)
    train(model, data, _phase(cfg, cfg.qat_epochs, cfg.qat_lr, 5), hooks=[pruner], desc="qat", progress=progress)
    return scales


def winograd_storage_bits(layer) -> int:
    """Bits of a layer's sparse Winograd weights as stored (DESIGN §3): values, column
    indices ⌈log2 C⌉ bits each, row pointers ⌈log2(nnz + 1)⌉ bits each."""
    K, C = layer.weights.shape[:2]
    P = layer.config.positions
    nnz = int(np.count_nonzero(layer.weights))
    return (nnz * layer.config.weight_bits + nnz * max(1, math.ceil(math.log2(C)))
            + P * (K + 1) * max(1, math.ceil(math.log2(nnz + 1))))


def measure(cfg: ExperimentConfig, model: nn.Module, data: Split) -> dict:
    """Step 4 on a fake-quantized model: fake-quant and integer accuracy, accounting."""
    m64 = copy.deepcopy(model).double().eval()
    fq = accuracy(m64, data.x_test.double(), data.y_test)
    out = {"fake_quant_accuracy": fq}
    if cfg.integer_eval:
        inet = build_integer_network(m64)
        out["winograd_storage_bits"] = sum(winograd_storage_bits(op) for op in inet.conv_layers())
        pred = inet.predict(data.x_test.numpy())
        out["integer_accuracy"] = int((pred == data.y_test.numpy()).sum()) / len(pred)
        with torch.no_grad():
            fq_pred = m64(data.x_test.double()).argmax(1).numpy()
        out["integer_vs_fake_quant_disagreements"] = int((pred != fq_pred).sum())
    acc = count_multiplications(model, data.x_test[:200])
    out["accounting"] = acc
    return out


def trained_skeleton(cfg: ExperimentConfig, input_shape, classes: int, scales: list[dict]) -> nn.Module:
    """The fine-tuned model's structure (Winograd layers, fake quantization with ``scales``), untrained.

    Loading the checkpoint of a :func:`run_experiment` model into it restores that model.
    Filter pruning removes filters, so its structure cannot be rebuilt from the configuration.
    """
    if cfg.method not in STRUCTURE_PRESERVING:
        raise ConfigError(f"method {cfg.method} removes filters: its network cannot be rebuilt from the "
                          f"configuration (use the network the training run exported)")
    model = model_for(cfg.dataset, tuple(input_shape), classes, cfg.width)
    convert_to_winograd(model, m=cfg.m, winograd_relu=cfg.winograd_relu and cfg.method not in SPATIAL_METHODS)
    restore_qat(model, scales, act_bits=cfg.act_bits, weight_bits=cfg.weight_bits)
    return model


def run_experiment(cfg: ExperimentConfig, data: Split | None = None, dense: nn.Module | None = None,
                   progress: bool = True) -> dict:
    """The whole pipeline; ``data`` and ``dense`` may be passed in to share them across runs."""
    t0 = time.time()
    data = data or load_dataset(cfg.dataset)
    timings = {}
    if dense is None:
        dense = train_dense(cfg, data, progress)
        timings["dense_s"] = round(time.time() - t0, 2)
    dense_acc = accuracy(dense, data.x_test, data.y_test)
    t1 = time.time()
    info: dict = {}
    model, pruner = prune_model(cfg, dense, data, progress, info)
    timings["prune_s"] = round(time.time() - t1, 2)
    float_acc = accuracy(model, data.x_test, data.y_test)
    t2 = time.time()
    scales = quantize_model(cfg, model, pruner, data, progress)
    timings["qat_s"] = round(time.time() - t2, 2)
    result = {"config": asdict(cfg), "dense_accuracy": dense_acc, "float_accuracy": float_acc,
              "winograd_density": pruner.density(), "scales": scales, **info}
    result.update(measure(cfg, model, data))
    timings["total_s"] = round(time.time() - t0, 2)
    result["timings"] = timings
    result["model"] = model
    return result
