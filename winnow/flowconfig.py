"""The flow configuration: one TOML file, validated with messages that name the key and what it expects.

Sections (every key optional unless said)::

    [train]     winnow.model.training.experiment.ExperimentConfig fields (dataset, m, method, density, epochs, …)
                and the method's options by their keys (kep_keep, filter_ratio, schedule, …: the registered
                methods', winnow.model.pruning.registry)
                sweep = [0.5, 0.2]   extra densities for the accuracy-against-density plot
    [array]     winnow.hw.config.AccelConfig fields (pes, lanes, clusters, k_block, otu_lanes, requant,
                k_max, h_max, w_max, pad_max, stream_depth); the datapath comes from the network
    [sim]       simulator = "verilator" | "icarus", layers = "all" | [conv indices], image = 0,
                waves = false
    [board]     name = "ulx3s" | "orangecrab" | "icebreaker" (no [board]: no build step)
    [report]    title = "…"
    [model]     source = "net.onnx" | "nets.py:factory", weights = "nets.pt" (a factory's state dict),
                paths relative to the TOML file: the imported CNN (docs/import.md) replaces the data set's
                built-in network; [train] prunes it (method magnitude, density, retrain_epochs, qat_epochs,
                the learning rates) instead of training one from scratch
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from winnow.hw.config import ARRAY_FIELDS
from winnow.model.errors import ConfigError, WinnowError
from winnow.model.files.bounded import MAX_JSON_DEPTH, nesting_depth, read_text_bounded, value_error_text


class FlowConfigError(WinnowError, ValueError):
    """A flow configuration that cannot be used; the message names the file, key and expectation."""


#: [array] keys and their types (the AccelConfig fields a user sets; the datapath comes from the network).
ARRAY_KEYS = {**{name: int for name in ARRAY_FIELDS}, "serial": bool, "tiled": bool, "c_block": int}
SIM_KEYS = {"simulator": str, "layers": (str, list), "image": int, "waves": bool}
SIM_DEFAULTS = {"simulator": "verilator", "layers": "all", "image": 0, "waves": False}
BOARD_KEYS = {"name": str}
REPORT_KEYS = {"title": str}
MODEL_KEYS = {"source": str, "weights": str}
SIMULATORS = ("verilator", "icarus")
#: The methods an imported model may be pruned with (Winograd-domain only: they need no spatial structure of
#: the default network).
IMPORTED_METHODS = ("importance_magnitude", "liu_pool")
#: How a flow refusing a slow array says what to do (winnow.hw.config.check_gen_cost).
FLOW_GEN_HINT = "(a flow generates only arrays below them; 'winnow gen --allow-slow' generates any)"
#: Most extra densities of [train].sweep.
MAX_SWEEP = 16

#: The default array for the small MNIST networks (C, K ≤ 32, 28×28): 16 multipliers. Unless set,
#: the output unit gets gcd(L, 4) lanes (winnow.hw.config.AccelConfig.resolved).
DEFAULT_ARRAY = {"pes": 4, "lanes": 4, "clusters": 1, "k_max": 32, "h_max": 28, "w_max": 28, "pad_max": 1}


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}.get(t, str(t))


def _check_types(where: str, section: dict, keys: dict) -> dict:
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise FlowConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(keys))}")
    for k, v in section.items():
        t = keys[k]
        ok = isinstance(v, t) and not (t is int and isinstance(v, bool))
        if t is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise FlowConfigError(f"{where}.{k}: expected {_type_name(t)}, got {type(v).__name__} {v!r}")
    return dict(section)


#: TOML types of the annotations of ExperimentConfig fields and method options (strings under postponed evaluation).
_TOML_TYPES = {"int": int, "float": float, "str": str, "bool": bool,
               "int | None": int, "float | None": float, "str | None": str}


def _toml_type(annotation: str, what: str):
    try:
        return _TOML_TYPES[annotation]
    except KeyError:
        raise ConfigError(f"{what} is annotated {annotation}; [train] keys are int, float, str or bool") from None


def _train_keys() -> dict:
    """[train] keys: ExperimentConfig's fields, every registered method's option keys, and sweep."""
    from winnow.model.training.experiment import CONFIG_FIELDS, ExperimentConfig, option_keys, type_name

    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    keys = {name: _toml_type(type_name(fields[name].type), name) for name in CONFIG_FIELDS}
    keys |= {key: _toml_type(k.type, f"option {k.field} of {k.methods[0]}") for key, k in option_keys().items()}
    keys["sweep"] = list
    return keys


@dataclass(frozen=True)
class FlowConfig:
    """A validated flow configuration (see the module docstring)."""

    train: dict = field(default_factory=dict)
    sweep: tuple = ()
    array: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    board: dict | None = None
    report: dict = field(default_factory=dict)
    source: str = "<defaults>"
    model: dict | None = None  # [model]: source and weights as absolute paths

    def experiment(self):
        """The :class:`winnow.model.training.experiment.ExperimentConfig` of [train]."""
        from winnow.model.training.experiment import experiment_config

        try:
            return experiment_config(self.train)
        except ConfigError as exc:
            raise FlowConfigError(f"{self.source}: [train]: {exc}") from None

    def array_fields(self) -> dict:
        return {**DEFAULT_ARRAY, **self.array}

    def section(self, name: str) -> dict:
        """A section as the step that uses it sees it (for change detection: defaults filled in, so that
        spelling a default out, or 1 for 1.0, does not look like a change)."""
        if name == "train":
            return {**dataclasses.asdict(self.experiment()), "sweep": sorted(set(self.sweep))}
        if name == "array":
            return self.array_fields()
        if name == "sim":
            return {**SIM_DEFAULTS, **self.sim}
        if name == "board":
            return dict(self.board or {})
        if name == "model":
            return dict(self.model or {})
        return dict(getattr(self, name))


def parse_flow_config(text: str, source: str = "<string>") -> FlowConfig:
    """Parse and validate TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FlowConfigError(f"{source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise FlowConfigError(f"{source}: not valid TOML (nested too deeply)") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int-conversion limit)
        raise FlowConfigError(f"{source}: not valid TOML ({value_error_text(exc)})") from None
    if nesting_depth(doc) > MAX_JSON_DEPTH:
        raise FlowConfigError(f"{source}: nested more than {MAX_JSON_DEPTH} levels deep")
    sections = {"train", "array", "sim", "board", "report", "model"}
    unknown = sorted(set(doc) - sections)
    if unknown:
        raise FlowConfigError(f"{source}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
                              f"known: {', '.join(f'[{s}]' for s in sorted(sections))}")
    for name in doc:
        if not isinstance(doc[name], dict):
            raise FlowConfigError(f"{source}: '{name}' must be a table ([{name}]), got {type(doc[name]).__name__}")
    train = _check_types(f"{source}: [train]", doc.get("train", {}), _train_keys())
    sweep = train.pop("sweep", [])
    if len(sweep) > MAX_SWEEP:
        raise FlowConfigError(f"{source}: [train].sweep: at most {MAX_SWEEP} densities (each one is a pruning and "
                              f"fine-tuning run); got {len(sweep)}")
    for d in sweep:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
            raise FlowConfigError(f"{source}: [train].sweep: expected densities in (0, 1], got {d!r:.40}")
    array = _check_types(f"{source}: [array]", doc.get("array", {}), ARRAY_KEYS)
    sim = _check_types(f"{source}: [sim]", doc.get("sim", {}), SIM_KEYS)
    full = {**SIM_DEFAULTS, **sim}
    if full["simulator"] not in SIMULATORS:
        raise FlowConfigError(f"{source}: [sim].simulator: expected one of {', '.join(SIMULATORS)}, "
                              f"got {sim['simulator']!r}")
    layers = full["layers"]
    if isinstance(layers, str) and layers != "all" or isinstance(layers, list) and (not layers or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers)):
        raise FlowConfigError(f"{source}: [sim].layers: expected \"all\" or a non-empty list of conv indices "
                              f"(0, 1, …), got {layers!r}")
    if full["image"] < 0:
        raise FlowConfigError(f"{source}: [sim].image: expected a test-image index >= 0, got {sim['image']}")
    board = _check_types(f"{source}: [board]", doc["board"], BOARD_KEYS) if "board" in doc else None
    if board is not None and "name" not in board:
        from winnow.boards.registry import KNOWN_BOARDS

        raise FlowConfigError(f"{source}: [board].name: missing; expected a board name "
                              f"({', '.join(sorted(KNOWN_BOARDS))})")
    report = _check_types(f"{source}: [report]", doc.get("report", {}), REPORT_KEYS)
    model = _check_types(f"{source}: [model]", doc["model"], MODEL_KEYS) if "model" in doc else None
    if model is not None:
        if "source" not in model:
            raise FlowConfigError(f"{source}: [model].source: missing; expected an ONNX file or file.py:factory")
        base = Path(source).parent if source not in ("<string>", "<defaults>") else Path(".")
        src = model["source"]
        if ".py:" in src:
            path, _, fn = src.rpartition(":")
            model["source"] = f"{(base / path).resolve()}:{fn}"
        else:
            model["source"] = str((base / src).resolve())
        if "weights" in model:
            model["weights"] = str((base / model["weights"]).resolve())
        if sweep:
            raise FlowConfigError(f"{source}: [train].sweep: not with [model] (an imported model is pruned once)")
    cfg = FlowConfig(train=train, sweep=tuple(float(d) for d in sweep), array=array, sim=sim, board=board,
                     report=report, source=source, model=model)
    _check_now(cfg)
    return cfg


def _check_now(cfg: FlowConfig) -> None:
    """Refuse, before any training, what a later step would refuse: [train], [array] rules, the board."""
    from winnow.hw.config import check_buildable, check_gen_cost
    from winnow.model.integer.datapath import DatapathConfig

    from .steps import array_config

    from winnow.model.data.datasets import DATASETS

    exp = cfg.experiment()
    embedded = [name for name, ds in DATASETS.items() if ds.embedded]
    if exp.dataset not in embedded:
        local = ", ".join(name for name, ds in DATASETS.items() if not ds.embedded)
        raise FlowConfigError(f"{cfg.source}: [train].dataset: unknown or unsupported in a flow: {exp.dataset!r}; "
                              f"choose from {', '.join(embedded)} ({local}: local files, through the Python API "
                              f"winnow.model.data.datasets.load_dataset and run_experiment)")
    r = 3
    if cfg.model is not None:  # the imported model, read and lowered now: its refusals come before any training
        imp = imported_model(cfg)
        r, c_max = imp.net.spec["r"], max(c["C"] for c in imp.net.spec["convs"])
        if exp.method not in IMPORTED_METHODS:
            raise FlowConfigError(f"{cfg.source}: [train].method: an imported model is pruned with "
                                  f"{' or '.join(IMPORTED_METHODS)} (or magnitude, importance_magnitude's earlier "
                                  f"name); got {exp.method!r}")
    else:
        c_max = _widest_input(exp)
    try:  # the network's c_max: its widest convolution input (filter pruning may narrow it after training)
        dp = DatapathConfig(m=exp.m, r=r, act_bits=exp.act_bits, weight_bits=exp.weight_bits, c_max=c_max)
    except ConfigError as exc:
        raise FlowConfigError(f"{cfg.source}: [train]: {exc}") from None
    try:
        arr = array_config(dp, cfg.array_fields(), where=f"{cfg.source}: [array]")
        check_buildable(arr)
        check_gen_cost(arr, hint=FLOW_GEN_HINT)
    except ConfigError as exc:
        raise FlowConfigError(str(exc) if str(exc).startswith(cfg.source) else f"{cfg.source}: [array]: {exc}") \
            from None
    if cfg.model is None:
        _check_sim_choices(cfg, exp)
    if cfg.board is not None:
        from winnow.boards.registry import KNOWN_BOARDS

        if cfg.board["name"] not in KNOWN_BOARDS:
            raise FlowConfigError(f"{cfg.source}: [board].name: unknown board {cfg.board['name']!r}; known boards: "
                                  f"{', '.join(sorted(KNOWN_BOARDS))}")


def imported_model(cfg: FlowConfig):
    """The [model] of ``cfg`` imported for the data set's input shape (winnow.model.imports.importer.import_model)."""
    from winnow.model.data.datasets import DATASETS
    from winnow.model.imports.importer import import_model

    exp = cfg.experiment()
    shape = DATASETS.get(exp.dataset).input_shape
    return import_model(cfg.model["source"], tuple(shape), cfg.model.get("weights"), m=exp.m)


def _convolutions(exp) -> list:
    """The convolutions of the data set's default network, built on torch's meta device (nothing allocated)."""
    import torch

    from winnow.model.data.datasets import DATASETS
    from winnow.model.data.nets import model_for

    ds = DATASETS.get(exp.dataset)
    if ds.input_shape is None:
        return []
    with torch.device("meta"):
        net = model_for(exp.dataset, ds.input_shape, ds.classes, exp.width)
    return [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]


def _widest_input(exp) -> int:
    """c_max of the network a flow will export: the largest input channel count of its convolutions."""
    return max((m.in_channels for m in _convolutions(exp)), default=16)


def _check_sim_choices(cfg: FlowConfig, exp) -> None:
    """[sim].layers against the data set's network, before any training ([sim].image is checked by the
    simulate step, against the split it loads)."""
    from winnow.model.data.datasets import DATASETS

    ds = DATASETS.get(exp.dataset)
    if ds.input_shape is None:
        return
    sim = {**SIM_DEFAULTS, **cfg.sim}
    if sim["layers"] != "all":
        convs = len(_convolutions(exp))
        bad = [i for i in sim["layers"] if i >= convs]
        if bad:
            raise FlowConfigError(f"{cfg.source}: [sim].layers: conv {bad[0]} does not exist: the {exp.dataset} "
                                  f"network has {convs} convolutions (0 … {convs - 1})")


def load_flow_config(path) -> FlowConfig:
    """Read (with a bound: :mod:`winnow.model.files.bounded`) and validate the TOML file ``path``."""
    path = Path(path)
    if path.is_dir():
        raise FlowConfigError(f"{path}: cannot read the configuration file (Is a directory)")
    text = read_text_bounded(path, error=FlowConfigError, what="configuration file",
                             missing="no such configuration file")
    return parse_flow_config(text, str(path))
