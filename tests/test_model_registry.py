"""Registries: a pruning method and a data set added from outside (one definition, one register call) reach
the pipeline, the flow's [train] validation and `winnow prune` with nothing else changed."""

import copy
import json
from dataclasses import dataclass

import pytest
import torch

from winnow.model.data.datasets import DATASETS, Dataset, Split, digits, load_dataset
from winnow.model.errors import ConfigError, DataError
from winnow.model.pruning.method import PruningMethod
from winnow.model.pruning.registry import METHODS
from winnow.model.pruning.winograd import Pruner
from winnow.model.training.experiment import (ExperimentConfig, experiment_config, option_keys, run_experiment,
                                              trained_skeleton)
from winnow.model.training.registry import Registry


# ---------------------------------------------------------------- a toy method, as docs/pytorch.md shows it
@dataclass(frozen=True)
class ToyConfig:
    epochs: int = 0  # retraining epochs after pruning

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"toy_epochs must be an integer >= 0; got {self.epochs!r}")


def toy_run(ctx):
    """One-shot Winograd-domain pruning, retrained for the toy's own number of epochs."""
    from winnow.model.nn.convert import convert_to_winograd

    model = copy.deepcopy(ctx.dense)
    convert_to_winograd(model, m=ctx.cfg.m)
    pruner = Pruner(model)
    pruner.prune(ctx.cfg.density)
    ctx.train(model, 42, "toy retrain", hooks=[pruner], epochs=ctx.options.epochs)
    ctx.info["toy_epochs"] = ctx.options.epochs
    return model, pruner


def tiny_digits(seed: int = 0) -> Split:
    d = digits(seed)
    return Split("tiny_digits", d.x_train[:300], d.y_train[:300], d.x_test[:100], d.y_test[:100], d.classes)


@pytest.fixture
def toy():
    METHODS.register("toy", PruningMethod(ToyConfig, toy_run, "a toy: one-shot pruning"))
    DATASETS.register("tiny_digits", Dataset(tiny_digits, "300 / 100 sklearn digits"))
    yield
    METHODS.unregister("toy")
    DATASETS.unregister("tiny_digits")


TINY = dict(dataset="tiny_digits", width=4, dense_epochs=1, retrain_epochs=1, qat_epochs=1, density=0.4)


def test_a_registered_method_runs_through_the_pipeline_end_to_end(toy):
    cfg = experiment_config({**TINY, "method": "toy", "toy_epochs": 1})  # its option by its flat key
    assert cfg.options == ToyConfig(epochs=1)
    r = run_experiment(cfg, progress=False)  # the data set comes from the registry too
    assert r["toy_epochs"] == 1 and r["config"]["options"] == {"epochs": 1}
    assert r["winograd_density"] == pytest.approx(0.4, abs=0.01)
    assert r["spatial_macs"] == r["dense_spatial_macs"]  # the method reported none: the dense model's
    assert r["integer_accuracy"] == r["fake_quant_accuracy"]  # quantized and measured like every method
    # it keeps the structure, so its checkpoint loads back into the skeleton
    skel = trained_skeleton(cfg, (1, 8, 8), 10, r["scales"])
    skel.load_state_dict(r["model"].state_dict())
    x = load_dataset("tiny_digits").x_test[:20].double()
    with torch.no_grad():
        assert torch.equal(skel.double().eval()(x), copy.deepcopy(r["model"]).double().eval()(x))


def test_a_registered_method_reaches_the_flow_config_and_winnow_prune(toy, tmp_path, capsys):
    from winnow import cli
    from winnow.flowconfig import FlowConfigError, parse_flow_config

    cfg = parse_flow_config('[train]\ndataset = "tiny_digits"\nmethod = "toy"\ntoy_epochs = 2\n').experiment()
    assert cfg.options == ToyConfig(epochs=2)
    with pytest.raises(FlowConfigError, match=r"\[train\].toy_epochs: expected an integer"):
        parse_flow_config('[train]\nmethod = "toy"\ntoy_epochs = "two"\n')
    with pytest.raises(FlowConfigError, match="toy_epochs must be an integer >= 0"):
        parse_flow_config('[train]\nmethod = "toy"\ntoy_epochs = -1\n')
    out = tmp_path / "out"
    args = ["prune", "--method", "toy", "--toy-epochs", "0", "--out", str(out), "--quiet"]
    args += [a for k, v in TINY.items() for a in ("--" + k.replace("_", "-"), str(v))]
    assert cli.main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["method"] == "toy" and report["toy_epochs"] == 0
    assert (out / "network" / "network.json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["prune", "--help"])
    assert "--toy-epochs" in capsys.readouterr().out


def test_methods_and_their_option_keys():
    assert METHODS.names() == ("importance_magnitude", "liu_pool", "spatial_winograd", "filter_l1",
                               "filter_distribution_fit", "kep")
    assert METHODS.aliases() == {"magnitude": "importance_magnitude"}
    keys = option_keys()
    both = ("importance_magnitude", "liu_pool")
    assert {k: (v.methods, v.field) for k, v in keys.items()} == {
        "schedule": (both, "schedule"), "iterative_steps": (both, "iterative_steps"),
        "spatial_winograd_step_rule": (("spatial_winograd",), "step_rule"),
        "filter_ratio": (("filter_l1", "filter_distribution_fit"), "ratio"),
        "kep_keep": (("kep",), "keep"), "kep_library": (("kep",), "library"), "kep_lambda": (("kep",), "lambda_")}
    assert [n for n, m in METHODS.items() if not m.keeps_structure] == ["filter_l1", "filter_distribution_fit"]
    assert [n for n, m in METHODS.items() if not m.winograd_relu] == ["filter_l1", "filter_distribution_fit", "kep"]


def test_magnitude_is_the_earlier_name_of_importance_magnitude():
    """Configuration files and checkpoints saying method = "magnitude" keep their meaning (|U|·F)."""
    from winnow.flowconfig import parse_flow_config
    from winnow.model.pruning.magnitude import MagnitudeConfig

    assert METHODS.get("magnitude") is METHODS.get("importance_magnitude")
    assert "magnitude" in METHODS and "magnitude" not in METHODS.names()
    cfg = experiment_config({"method": "magnitude", "schedule": "iterative"})
    assert cfg.method == "importance_magnitude" and cfg.options == MagnitudeConfig(schedule="iterative")
    assert ExperimentConfig(method="magnitude").method == "importance_magnitude"
    assert experiment_config({"method": "liu_pool", "iterative_steps": 2}).options == MagnitudeConfig(iterative_steps=2)
    assert parse_flow_config('[train]\nmethod = "magnitude"\n').experiment().method == "importance_magnitude"
    with pytest.raises(ConfigError, match="already registered"):
        METHODS.register("magnitude", METHODS.get("liu_pool"))
    with pytest.raises(ConfigError, match="unknown pruning method 'nope'"):
        METHODS.alias("old", "nope")


def test_a_key_two_methods_read_differently_is_refused():
    @dataclass(frozen=True)
    class Clash:
        keep: float = 0.5  # kep's kep_keep is an integer with another default

    METHODS.register("kep2", PruningMethod(Clash, toy_run, "clash", option_prefix="kep"))
    try:
        with pytest.raises(ConfigError, match="option key kep_keep means different things to methods kep and kep2"):
            option_keys()
    finally:
        METHODS.unregister("kep2")


def test_a_method_config_must_be_a_frozen_dataclass_with_defaults():
    @dataclass
    class Mutable:
        x: int = 1

    @dataclass(frozen=True)
    class NoDefault:
        x: int

    with pytest.raises(TypeError, match="frozen dataclass"):
        PruningMethod(Mutable, toy_run, "x")
    with pytest.raises(TypeError, match="needs a default"):
        PruningMethod(NoDefault, toy_run, "x")


def test_the_generic_registry():
    reg = Registry("model frontend")
    reg.register("vgg", object(), "a frontend")
    assert "vgg" in reg and list(reg) == ["vgg"] and reg.description("vgg") == "a frontend" and len(reg) == 1
    with pytest.raises(ConfigError, match="model frontend 'vgg' is already registered"):
        reg.register("vgg", object())
    with pytest.raises(ConfigError, match="must be an identifier"):
        reg.register("two words", object())
    with pytest.raises(ConfigError, match="unknown model frontend 'onnx'; choose from vgg"):
        reg.get("onnx")
    reg.unregister("vgg")
    assert reg.names() == ()


def test_data_sets_by_name():
    assert DATASETS.names() == ("mnist5k", "digits", "shapes3d", "cifar10")
    assert [n for n, d in DATASETS.items() if not d.embedded] == ["cifar10"]
    with pytest.raises(DataError, match="unknown data set 'imagenet'; choose from mnist5k, digits, shapes3d, cifar10"):
        load_dataset("imagenet")
    assert ExperimentConfig().options is not None  # the default method's default options
