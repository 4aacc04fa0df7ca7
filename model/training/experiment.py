"""One pruning experiment, end to end: train, prune, fine-tune with fake quantization, measure.

Pipeline (every step seeded; the same configuration gives the same numbers):

1. **dense**: the default network for the data set, trained in the spatial domain;
2. **method**: the pruning method registered under ``method``
   (:data:`winnow.model.pruning.registry.METHODS`: importance_magnitude (also
   ``magnitude``), liu_pool, spatial_winograd, filter_l1, filter_distribution_fit, kep), with its own options
   (``options``: the method's config dataclass); it returns a model with Winograd
   layers and the pruner whose masks hold from then on;
3. **QAT**: calibrate activation scales, fine-tune with fake quantization
   (:mod:`winnow.model.nn.qat`), masks still enforced;
4. **measure**: test accuracy in float (before QAT), fake-quant (float64 evaluation)
   and on the bit-accurate integer reference; the Winograd-domain density; the
   multiplication accounting (:mod:`winnow.model.accounting`).

Configurations written as flat keys (the TOML ``[train]`` section, ``winnow prune``'s
options, a JSON object, older checkpoints) go through :func:`experiment_config`: a
method's options are keys ``<prefix>_<option>`` (``kep_keep``, ``filter_ratio``) or,
for importance_magnitude and liu_pool, ``schedule`` and ``iterative_steps``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from winnow.model.accounting import count_multiplications
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.data.datasets import Split, load_dataset
from winnow.model.errors import ConfigError
from winnow.model.imports.importer import TIE
from winnow.model.integer.network import IntegerNetwork, build_integer_network
from winnow.model.data.nets import model_for
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.registry import METHODS
from winnow.model.pruning.winograd import Pruner, check_density
from winnow.model.nn.qat import prepare_qat, restore_qat
from winnow.model.training.train import TrainConfig, accuracy, seed_everything, train


#: Upper bounds of the numeric knobs (a value beyond them is a typo, or hours of training).
MAX_EPOCHS = 1000
MAX_BATCH = 1 << 16
MAX_LR = 10.0
#: NumPy's seed range (the training phases' seeds, ``seed·1000 + salt``, are reduced into it: train.seed_everything)
MAX_SEED = (1 << 32) - 1


@dataclass(frozen=True)
class ExperimentConfig:
    """Every knob of :func:`run_experiment`; validated on construction.

    ``options`` holds the method's own options: an instance of its registered config
    dataclass (``KepConfig(keep=3)``), a dict of its fields, or ``None`` for its
    defaults; after construction it is always the dataclass instance.
    """

    dataset: str = "mnist5k"
    m: int = 4
    method: str = "importance_magnitude"
    density: float = 0.3
    winograd_relu: bool = False
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
    options: Any = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        object.__setattr__(self, "method", METHODS.canonical(self.method))  # an old name: its registered one
        spec = self.spec
        object.__setattr__(self, "options", _method_options(self.method, spec, self.options))
        check_density(self.density)
        if self.winograd_relu and not spec.winograd_relu:
            raise ConfigError(f"{self.method} keeps the network's structure; winograd_relu=True contradicts it")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size \
                <= MAX_BATCH:
            raise ConfigError(f"batch_size must be an integer >= 1 (at most {MAX_BATCH}); got {self.batch_size!r:.40}")
        for nm in ("lr", "retrain_lr", "qat_lr"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= MAX_LR:  # NaN fails too
                raise ConfigError(f"{nm} must be a positive finite number (at most {MAX_LR:g}); got {v!r:.40}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, {MAX_SEED}] (NumPy's and torch's seed range); "
                              f"got {self.seed!r:.40}")
        if self.width is not None and (isinstance(self.width, bool) or not isinstance(self.width, int)
                                       or not 1 <= self.width <= 1024):
            raise ConfigError(f"width must be an integer in [1, 1024] (or unset for the data set's default); "
                              f"got {self.width!r}")
        for nm in ("dense_epochs", "retrain_epochs", "qat_epochs"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_EPOCHS:
                raise ConfigError(f"{nm} must be a non-negative integer (at most {MAX_EPOCHS}); got {v!r:.40}")

    @property
    def spec(self) -> PruningMethod:
        """The registered method."""
        return METHODS.get(self.method)

    @property
    def keeps_structure(self) -> bool:
        """Whether the pruned network has the default network's structure (see :func:`trained_skeleton`)."""
        return self.spec.keeps_structure


def _method_options(method: str, spec: PruningMethod, options):
    if options is None:
        return spec.config()
    if isinstance(options, dict):
        known = [f.name for f in dataclasses.fields(spec.config)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} of method {method}; its options: "
                              f"{', '.join(known) or '(none)'}")
        return spec.config(**options)
    if not isinstance(options, spec.config):
        raise ConfigError(f"options of method {method} must be a {spec.config.__name__}; "
                          f"got {type(options).__name__}")
    return options


#: ExperimentConfig fields given directly as flat keys (``options`` is spelt out as the methods' keys).
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.name != "options")


def type_name(annotation) -> str:
    """``"int"``, ``"int | None"``, … of a dataclass field's annotation, postponed (a string) or not."""
    if isinstance(annotation, str):
        return annotation
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


@dataclass(frozen=True)
class OptionKey:
    """A flat key of a method option: the methods that take it, the config field, its type and default."""

    methods: tuple[str, ...]
    field: str
    type: str
    default: Any


def option_keys() -> dict[str, OptionKey]:
    """Every method option's flat key, over the registered methods (in registration order).

    Raises ``ConfigError`` if two methods give one key different meanings, or a key is
    an ExperimentConfig field.
    """
    keys: dict[str, OptionKey] = {}
    for name, spec in METHODS.items():
        fields = {f.name: f for f in dataclasses.fields(spec.config)}
        for key, fname in spec.option_keys(name).items():
            f = fields[fname]
            if key in CONFIG_FIELDS:
                raise ConfigError(f"option {fname} of method {name}: its key {key} is an experiment field")
            prev = keys.get(key)
            if prev is not None and (prev.field, prev.type, prev.default) != (fname, type_name(f.type), f.default):
                raise ConfigError(f"option key {key} means different things to methods {prev.methods[0]} and {name}")
            keys[key] = OptionKey((*prev.methods, name) if prev else (name,), fname, type_name(f.type), f.default)
    return keys


def experiment_config(values: dict) -> ExperimentConfig:
    """An ExperimentConfig from flat keys (module docstring).

    The chosen method's keys become its options. A key of another method is checked
    (its value must be one that method accepts) and must keep that method's default:
    a setting the chosen method would silently ignore is an error naming both.
    ``options`` as a dict of the chosen method's fields is accepted too (the nested
    form ``dataclasses.asdict`` writes).
    """
    keys = option_keys()
    unknown = sorted(set(values) - set(CONFIG_FIELDS) - set(keys) - {"options"})
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known keys: "
                          f"{', '.join(sorted([*CONFIG_FIELDS, *keys]))}")
    method = values.get("method", ExperimentConfig.method)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    method = METHODS.canonical(method)
    own: dict = {}
    for key, value in values.items():
        k = keys.get(key)
        if k is None:
            continue
        if method in k.methods:
            own[k.field] = value
            continue
        METHODS.get(k.methods[0]).config(**{k.field: value})  # a bad value is named whichever method it is for
        if value != k.default:
            raise ConfigError(f"{key} = {value!r} is an option of {', '.join(k.methods)}; "
                              f"method {method} does not use it")
    options = values.get("options")
    if options is not None and own:
        raise ConfigError("give the method's options as keys or as options, not both")
    fields = {k: values[k] for k in CONFIG_FIELDS if k in values}
    return ExperimentConfig(**fields, options=options if options is not None else own)


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


@dataclass
class PruneContext:
    """What a pruning method's ``run(ctx)`` gets (:mod:`winnow.model.pruning.method`).

    Attributes
    ----------
    cfg : ExperimentConfig
        The whole experiment: ``m``, ``density``, ``winograd_relu``, the epochs and rates.
    dense : nn.Module
        The trained dense spatial model, shared by every run: copy it, never change it.
    data : Split
    progress : bool
        Show progress bars while training.
    info : dict
        Figures the method reports (merged into the experiment's result).
    """

    cfg: ExperimentConfig
    dense: nn.Module
    data: Split
    progress: bool
    info: dict

    @property
    def options(self):
        """The method's own options (its config dataclass)."""
        return self.cfg.options

    def train(self, model: nn.Module, salt: int, desc: str, hooks=(), extra_loss=None,
              epochs: int | None = None, lr: float | None = None) -> None:
        """Train ``model`` (default: ``cfg.retrain_epochs`` at ``cfg.retrain_lr``), seeded by ``cfg.seed`` and ``salt``.

        ``salt`` tells a method's training phases apart (each draws its own batches);
        ``hooks`` are pruners whose masks hold through every step; ``extra_loss()`` is
        added to every batch's loss.
        """
        cfg = self.cfg
        phase = _phase(cfg, cfg.retrain_epochs if epochs is None else epochs,
                       cfg.retrain_lr if lr is None else lr, salt)
        train(model, self.data, phase, hooks=list(hooks), extra_loss=extra_loss, desc=desc, progress=self.progress)

    def accuracy(self, model: nn.Module) -> float:
        """Test accuracy of ``model``."""
        return accuracy(model, self.data.x_test, self.data.y_test)

    def record_spatial_macs(self, model: nn.Module) -> None:
        """Report ``model``'s spatial multiplications (zeros skipped) as the method's ``spatial_macs``."""
        self.info["spatial_macs"] = spatial_macs(model, self.data.x_test)


def prune_model(cfg: ExperimentConfig, dense: nn.Module, data: Split, progress: bool = True,
                info: dict | None = None) -> tuple[nn.Module, Pruner]:
    """Step 2: the registered method's pruned Winograd model (the dense model is left untouched).

    A method that does not report ``spatial_macs`` (it prunes only in the Winograd
    domain) has the dense model's.
    """
    info = {} if info is None else info
    info["dense_spatial_macs"] = spatial_macs(dense, data.x_test)
    model, pruner = cfg.spec.run(PruneContext(cfg, dense, data, progress, info))
    info.setdefault("spatial_macs", info["dense_spatial_macs"])
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
    """Bits of a layer's sparse Winograd weights as stored (docs/pytorch.md "Export"): values, column
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
        x = data.x_test.numpy()
        logits = np.concatenate([inet.run(x[i : i + 250]) for i in range(0, len(x), 250)])
        pred = logits.argmax(1)  # = inet.predict(x)
        out["integer_accuracy"] = int((pred == data.y_test.numpy()).sum()) / len(pred)
        with torch.no_grad():
            fq_pred = m64(data.x_test.double()).argmax(1).numpy()
        out["integer_vs_fake_quant_disagreements"] = int((pred != fq_pred).sum())
        # as the import check (winnow.model.imports.importer.agreement): where both classes' integer logits
        # are equal, the float64 model breaks the tie by round-off, not by a difference of the datapath
        rows = np.arange(len(pred))
        split = (pred != fq_pred) & (np.abs(logits[rows, pred] - logits[rows, fq_pred]) > TIE)
        out["integer_vs_fake_quant_disagreements_not_ties"] = int(split.sum())
    acc = count_multiplications(model, data.x_test[:200])
    out["accounting"] = acc
    return out


def trained_skeleton(cfg: ExperimentConfig, input_shape, classes: int, scales: list[dict]) -> nn.Module:
    """The fine-tuned model's structure (Winograd layers, fake quantization with ``scales``), untrained.

    Loading the checkpoint of a :func:`run_experiment` model into it restores that model.
    A method that removes filters does not keep the structure, which then cannot be rebuilt
    from the configuration.
    """
    if not cfg.keeps_structure:
        raise ConfigError(f"method {cfg.method} removes filters: its network cannot be rebuilt from the "
                          f"configuration (use the network the training run exported)")
    model = model_for(cfg.dataset, tuple(input_shape), classes, cfg.width)
    convert_to_winograd(model, m=cfg.m, winograd_relu=cfg.winograd_relu)
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
