"""Hardware-cycle columns of the comparison table (bench/compare_methods.py) on a real,
untrained SmallVGG: converted to F(4,3), pruned in the Winograd domain, quantized."""

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.compare_methods import (PE_ARRAY, layer_cycles, main, network_cycles, network_layers, pe_array,
                                    render_hardware)
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.files.export import export_network
from winnow.model.integer.network import build_integer_network
from winnow.model.files.layer_file import SparseLayer, read_layer
from winnow.model.data.nets import SmallVGG
from winnow.model.pruning.winograd import Pruner
from winnow.model.nn.qat import prepare_qat

SHAPE = (1, 28, 28)


def _net(density: float, width: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    model = SmallVGG(width=width)
    convert_to_winograd(model, m=4)
    Pruner(model).prune(density)
    prepare_qat(model, torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(seed)))
    return model


@pytest.fixture(scope="module")
def pruned():
    return _net(0.3)


@pytest.fixture(scope="module")
def pruned_hw(pruned):
    return network_cycles(pruned, SHAPE)


def test_the_four_convolutions_with_their_traced_sizes(pruned_hw):
    assert pruned_hw["runs"] and pruned_hw["tile"] == "F(4,3)"
    got = [(r["C"], r["K"], tuple(r["input_size"])) for r in pruned_hw["layers"]]
    assert got == [(1, 16, (28, 28)), (16, 16, (28, 28)), (16, 32, (14, 14)), (32, 32, (14, 14))]
    a = pruned_hw["array"]
    assert (a["pes"], a["lanes"], a["multipliers"]) == (PE_ARRAY["pes"], PE_ARRAY["lanes"], 16)


def test_dense_cycles_equal_those_of_the_same_layer_at_density_one(pruned):
    for layer in network_layers(pruned, SHAPE):
        op = layer.to_quantized_conv()
        full_op = dataclasses.replace(op, weights=np.where(op.weights == 0, 1, op.weights))
        full = SparseLayer.from_quantized_conv(full_op, layer.size, name=layer.name)
        assert full.density == 1.0
        full_sparse_mode = packed_cycles(pack_layer(full, pe_array(full.config))).cycles
        rec = layer_cycles(layer)
        assert rec["dense"]["cycles"] == full_sparse_mode
        assert layer.density <= 0.31
        assert rec["sparse"]["cycles"] <= rec["dense"]["cycles"]
    # the three layers with C > 1 are PE-bound: pruning must save cycles there
    recs = [layer_cycles(layer) for layer in network_layers(pruned, SHAPE)]
    assert all(r["sparse"]["cycles"] < r["dense"]["cycles"] for r in recs[1:])


def test_floor_is_tiles_times_nonzeros_over_multipliers_and_below_the_cycles(pruned, pruned_hw):
    for layer, rec in zip(network_layers(pruned, SHAPE), pruned_hw["layers"]):
        h, w = layer.size
        tiles = math.ceil(h / 4) * math.ceil(w / 4)  # 3×3, padding 1: output = input size, F(4,3)
        nnz = int(np.count_nonzero(layer.to_dense()))
        assert rec["sparse"]["floor"] == math.ceil(tiles * nnz / 16)
        for mode in ("sparse", "dense"):
            assert 0 < rec[mode]["floor"] <= rec[mode]["cycles"]


def test_network_figures_are_the_sums_of_the_layers(pruned_hw):
    layers = pruned_hw["layers"]
    assert len(layers) == 4
    assert pruned_hw["sparse_cycles"] == sum(r["sparse"]["cycles"] for r in layers)
    assert pruned_hw["dense_cycles"] == sum(r["dense"]["cycles"] for r in layers)
    assert pruned_hw["floor"] == sum(r["sparse"]["floor"] for r in layers)
    assert pruned_hw["speedup"] == pruned_hw["dense_cycles"] / pruned_hw["sparse_cycles"] > 2
    assert pruned_hw["efficiency"] == pruned_hw["floor"] / pruned_hw["sparse_cycles"] <= 1


def test_cycles_equal_those_of_the_exported_layer_files(pruned, pruned_hw, tmp_path):
    export_network(build_integer_network(copy.deepcopy(pruned).double()), SHAPE, tmp_path)
    manifest = json.loads((tmp_path / "network.json").read_text())
    convs = [e for e in manifest["ops"] if e["op"] == "conv"]
    assert len(convs) == len(pruned_hw["layers"])
    for entry, rec in zip(convs, pruned_hw["layers"]):
        layer = read_layer(tmp_path / entry["file"])
        cfg = pe_array(layer.config)
        assert rec["name"] == entry["name"]
        assert rec["sparse"]["cycles"] == packed_cycles(pack_layer(layer, cfg)).cycles
        assert rec["dense"]["cycles"] == packed_cycles(pack_layer(layer, dataclasses.replace(cfg, mode="dense"))).cycles


def test_unpruned_network_gains_nothing_and_bigger_networks_are_refused_by_name():
    dense = network_cycles(_net(1.0), SHAPE)
    assert dense["runs"] and 1.0 <= dense["speedup"] < 1.05  # only quantization zeros are skipped
    wide = network_cycles(_net(0.3, width=32), SHAPE)  # C, K up to 64: beyond the array
    assert not wide["runs"] and "c_max = 64" in wide["reason"]
    spatial = network_cycles(SmallVGG(), SHAPE)  # never converted
    assert not spatial["runs"] and "not Winograd layers" in spatial["reason"]


def _hw(sparse: int, dense: int, floor: int) -> dict:
    return {"runs": True, "sparse_cycles": sparse, "dense_cycles": dense, "floor": floor, "speedup": dense / sparse,
            "efficiency": floor / sparse, "tile": "F(4,3)", "c_max": 32, "layers": []}


def test_render_reads_the_figures_from_the_document():
    doc = {"array": {**PE_ARRAY, "multipliers": 16},
           "rows": [{"method": "unpruned", "integer_accuracy": 0.9, "winograd_density": 1.0,
                     "hardware": _hw(86_000, 88_000, 84_000)},
                    {"method": "pruned", "integer_accuracy": 0.8, "winograd_density": 0.3,
                     "hardware": _hw(26_500, 88_000, 25_000)},
                    {"method": "odd", "integer_accuracy": 0.7, "winograd_density": 0.3,
                     "hardware": {"runs": False, "reason": "layer x has K = 64"}}]}
    text = "\n".join(render_hardware(doc))
    assert "P = 4 PEs × L = 4 lanes (16 multipliers)" in text
    # by hand: 88/26.5 = 3.3208 (speedup and vs unpruned), 25/26.5 = 0.9434
    assert "| pruned | 26.5 | 88.0 | 25.0 | 3.32× | 0.943 | 3.32× |" in text
    assert "| odd | cannot run: layer x has K = 64 |" in text
    assert "Not runnable on the array: *odd*" in text
    assert "Fewest cycles: *pruned*, 26,500 per image" in text
    assert "added once" not in text


def test_committed_document_is_rendered_from_the_committed_json(tmp_path, capsys):
    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "bench" / "results" / "compare_methods.json").read_text(encoding="utf-8"))
    assert all(r["hardware"]["runs"] for r in doc["rows"]), [r["hardware"].get("reason") for r in doc["rows"]]
    for r in doc["rows"]:  # the JSON's totals are the sums of its per-layer figures
        h = r["hardware"]
        assert h["sparse_cycles"] == sum(x["sparse"]["cycles"] for x in h["layers"])
        assert h["floor"] <= h["sparse_cycles"] <= h["dense_cycles"]
    assert main(["--render-only", "--out", str(tmp_path / "c.md")]) == 0
    capsys.readouterr()
    text = (tmp_path / "c.md").read_text(encoding="utf-8")
    assert text == (root / "docs" / "comparison.md").read_text(encoding="utf-8")
    assert "## Hardware cycles on the sparse PE array (cycle model)" in text and "added once" not in text
