"""An imported ResNet-style model's convolutions on the RTL (Verilator): stride 2, 1×1 and residual inputs.

The test model (tests/data/imports/resnet_style.py) is exported to ONNX, imported, pruned briefly on
MNIST-5k, quantized and exported; every convolution of the network (the stride-2 3×3 and 1×1 lowered
through the host polyphase split, the 1×1 stride-1 as a centre tap) then runs on the generated array
with a real digit's activations: outputs equal to the reference and to the exported network's own
activations, cycles equal to the cycle model. The same model from its ``.py:factory`` gives the same
layer files. The array is the F(4,3) one of tests/test_sim_cocotb_run.py, in the same build directory,
so its Verilator build is shared (maps here are at most 9×9, C ≤ 16, K ≤ 8: a few seconds of simulation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.cocotb_run import run_layers, simulator_available
from winnow.sim.layers import reference_output
from winnow.sim.network import traced_convolutions

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "sim"
FACTORY = f"{ROOT / 'tests' / 'data' / 'imports' / 'resnet_style.py'}:factory"


def _array() -> AccelConfig:
    # the F(4,3) array of tests/test_sim_cocotb_run.py (its _config(4)): one Verilator build for both
    return AccelConfig(datapath=DatapathConfig(m=4, r=3, c_max=32), k_max=32, h_max=28, w_max=28, pad_max=1,
                       pes=4, lanes=4, clusters=2, k_block=16, otu_lanes=2)


def _imported(source: str, out: Path, weights=None) -> Path:
    from winnow.model.imports.importer import (calibration_images, import_model, prune_imported, quantize_imported,
                                               write_import)

    imp = import_model(source, (1, 28, 28), weights)
    calib, split = calibration_images((1, 28, 28), None, 128)
    prune_imported(imp.net, split, 0.4, steps=5)
    write_import(out, imp, quantize_imported(imp, calib, c_max=32))
    return out / "network"


def test_imported_convolutions_on_verilator(tmp_path):
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    from winnow.model.data.datasets import load_mnist5k
    from winnow.model.imports.fx_reader import load_factory

    model = load_factory(FACTORY)
    onnx_path = tmp_path / "resnet.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), str(onnx_path), dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    net_onnx = _imported(str(onnx_path), tmp_path / "onnx")
    net_fx = _imported(FACTORY, tmp_path / "fx", tmp_path / "w.pt")
    images, _ = load_mnist5k()
    traced = traced_convolutions(net_onnx, images[3])
    assert len(traced) == 5
    assert {(l.in_channels, l.out_channels) for l, _, _ in traced} == {(1, 4), (16, 8), (8, 8), (4, 8)}
    # the factory's import is the same network: equal quantized weights, layer for layer
    for (a, _, _), (b, _, _) in zip(traced, traced_convolutions(net_fx, images[3])):
        assert np.array_equal(a.to_quantized_conv().weights, b.to_quantized_conv().weights)
    cfg = _array()
    items = [(pack_layer(layer, cfg), xq, f"imported_{i}") for i, (layer, xq, _) in enumerate(traced)]
    results = run_layers(cfg, items, "verilator", build_dir=BUILD / "verilator_f43", cxx_opt="-O0")
    for (packed, xq, name), (layer, _, yq), res in zip(items, traced, results):
        assert np.array_equal(res.out, reference_output(layer, xq)), name
        assert np.array_equal(res.out, yq), name  # the network's own activation
        assert res.cycles == packed_cycles(packed).cycles, name
