"""End to end through the UART: the host driver's bytes go in on the HostLink's rx pin
(cocotb UART model, 4 clocks per bit), layers read from layer files run on the generated
Verilog, and the bit-exact outputs and the exact cycle counts come back on tx."""

import time

import numpy as np
import pytest

from winnow.boards.export import TOP, export_verilog, link_params
from winnow.boards.sim_hostlink import run_hostlink
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.files.layer_file import read_layer, write_layer
from winnow.sim.cocotb_run import simulator_available
from winnow.sim.layers import random_input, random_layer, reference_output


def _layers(dp, cfg, shapes, tmp_path):
    out = []
    for i, (C, K, H, W, d) in enumerate(shapes):
        path = write_layer(tmp_path / f"layer{i}.wnl", random_layer(dp, C=C, K=K, H=H, W=W, density=d, seed=10 + i,
                                                                   name=f"rand{i}"))
        layer = read_layer(path)
        xq = random_input(layer, seed=20 + i)
        out.append((pack_layer(layer, cfg), xq, layer.name, layer))
    return out


def _check(runs, layers):
    for run, (packed, xq, name, layer) in zip(runs, layers):
        assert run.name == name
        np.testing.assert_array_equal(run.out, reference_output(layer, xq), err_msg=name)
        assert run.cycles == packed_cycles(packed).cycles, name


@pytest.mark.skipif(simulator_available("verilator") is not None, reason=str(simulator_available("verilator")))
def test_layers_through_the_uart_under_verilator(tmp_path):
    dp = DatapathConfig(m=2, r=3, c_max=8)
    cfg = AccelConfig(datapath=dp, pes=2, lanes=2, k_max=8, h_max=8, w_max=8)
    # a small ragged layer, then a full one (C = K = 8, 8×8, Winograd density 0.3), back to back
    layers = _layers(dp, cfg, [(3, 4, 5, 7, 0.5), (8, 8, 8, 8, 0.3)], tmp_path)
    t0 = time.perf_counter()
    runs, timing = run_hostlink(cfg, [x[:3] for x in layers], "verilator", tmp_path / "build", divisor=4)
    _check(runs, layers)
    assert runs[1].bytes_to_board > 7000  # the whole layer really went through the serial line
    assert time.perf_counter() - t0 < 120


@pytest.mark.skipif(simulator_available("icarus") is not None, reason=str(simulator_available("icarus")))
@pytest.mark.parametrize("serial", [False, True])  # serial: the iCEBreaker's memory organisation
def test_small_layer_through_the_uart_under_icarus(tmp_path, serial):
    dp = DatapathConfig(m=2, r=3, c_max=2)
    cfg = AccelConfig(datapath=dp, pes=1, lanes=1, k_max=2, h_max=4, w_max=4, requant=1 if serial else None,
                      serial=serial)
    layers = _layers(dp, cfg, [(2, 2, 4, 4, 0.5)], tmp_path)
    runs, _ = run_hostlink(cfg, [x[:3] for x in layers], "icarus", tmp_path / "build", divisor=4)
    _check(runs, layers)


def test_verilog_export_writes_both_modules_and_the_link_parameters(tmp_path):
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=1, lanes=1, k_max=4, h_max=6, w_max=6)
    paths = export_verilog(cfg, tmp_path, divisor=217)
    assert [p.name for p in paths] == ["winnow_array.v", f"{TOP}.v"]
    top = paths[1].read_text()
    assert f"module {TOP}(" in top.replace(" (", "(") and "winnow_array array" in top
    assert "module winnow_array" in paths[0].read_text()
    assert (tmp_path / "params.json").exists() and (tmp_path / "hostlink.json").exists()
    p = link_params(cfg, divisor=217)
    assert p["divisor"] == 217 and p["data_bits"] == 8


@pytest.mark.skipif(simulator_available("verilator") is not None, reason=str(simulator_available("verilator")))
def test_a_tiled_layer_through_the_uart_pass_after_pass(tmp_path):
    """The host driver runs a layer larger than a tiled-mode array (2 × 2 patches, 2 blocks, 2 C blocks) over
    the UART: bit-exact, and the summed RUN cycles equal the model's."""
    from winnow.hw.tiled_packer import plan_for, tiled_cycles

    dp = DatapathConfig(m=2, r=3, c_max=8)
    cfg = AccelConfig(datapath=dp, pes=2, lanes=2, otu_lanes=1, k_max=4, h_max=6, w_max=6, pad_max=0, tiled=True,
                      c_block=2)
    layer = random_layer(dp, C=4, K=5, H=7, W=7, density=0.5, seed=3, relu=True, name="tiled")
    xq = random_input(layer, seed=4)
    plan = plan_for(cfg, layer)
    assert (len(plan.patches), len(plan.block_rows), len(plan.c_blocks)) == (4, 2, 2)
    runs, _ = run_hostlink(cfg, [(("tiled", cfg, layer), xq, "tiled")], "verilator", build_dir=tmp_path / "b")
    np.testing.assert_array_equal(runs[0].out, reference_output(layer, xq))
    assert runs[0].cycles == tiled_cycles(layer, cfg)[0].cycles
