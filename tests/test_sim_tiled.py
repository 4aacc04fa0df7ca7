"""Tiled mode on the generated RTL: a layer larger than the array's window, C and K split into blocks,
runs pass after pass with the partial sums kept in the accumulators; bit-exact against the reference,
every pass's cycles equal to the model."""

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.tiled_packer import passes, plan_for, tiled_cycles
from winnow.model.errors import ConfigError
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.cocotb_run import simulator_available
from winnow.sim.layers import random_input, random_layer, reference_output

SHAPES = {  # name: (datapath, array fields, layer (C, K, H, W, padding), layer flags)
    "f23": (dict(m=2, c_max=16), dict(pes=2, lanes=2, otu_lanes=1, k_max=4, h_max=8, w_max=6, c_block=3),
            (7, 6, 11, 9, 1), {}),
    "f43_s2": (dict(m=4, c_max=16), dict(pes=4, lanes=2, clusters=2, otu_lanes=2, k_max=4, h_max=10, w_max=14,
                                         c_block=4), (9, 5, 13, 17, 1), {"winograd_relu": True, "relu": True}),
}


def _setup(name):
    dpf, af, (C, K, H, W, pad), flags = SHAPES[name]
    dp = DatapathConfig(m=dpf["m"], r=3, c_max=dpf["c_max"])
    cfg = AccelConfig(datapath=dp, pad_max=0, tiled=True, **af)
    layer = random_layer(dp, C=C, K=K, H=H, W=W, density=0.4, seed=C + K, padding=pad, **flags)
    return cfg, layer, random_input(layer, seed=11)


def test_the_layer_needs_several_patches_blocks_and_c_blocks():
    for name in SHAPES:
        cfg, layer, _ = _setup(name)
        plan = plan_for(cfg, layer)
        assert len(plan.patches) > 1 and len(plan.block_rows) > 1 and len(plan.c_blocks) > 1, name
        assert layer.in_channels > cfg.c_block and layer.out_channels > cfg.k_max
        assert max(layer.size) > max(cfg.h_max, cfg.w_max)


@pytest.mark.parametrize("name", list(SHAPES))
def test_tiled_layer_on_verilator_is_bit_exact_and_every_pass_takes_the_modelled_cycles(name, tmp_path):
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    from winnow.sim.tiled_run import run_tiled

    cfg, layer, xq = _setup(name)
    res = run_tiled(cfg, layer, xq, "verilator", build_dir=tmp_path / "build")
    np.testing.assert_array_equal(res.out, reference_output(layer, xq))
    assert [c for _, c, _ in res.passes] == [m for _, _, m in res.passes]
    rep, dense = tiled_cycles(layer, cfg)
    assert rep.cycles == res.cycles and dense > rep.cycles  # the layer's model: the sum over its passes


def test_tiled_layer_on_icarus():
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    from winnow.sim.tiled_run import run_tiled

    cfg, layer, xq = _setup("f23")
    res = run_tiled(cfg, layer, xq, "icarus")
    np.testing.assert_array_equal(res.out, reference_output(layer, xq))
    assert res.cycles == res.model_cycles


def test_only_the_last_pass_of_a_job_finishes():
    cfg, layer, xq = _setup("f23")
    runs = passes(layer, xq, cfg)
    by_job = {}
    for r in runs:
        by_job.setdefault(r.job, []).append(r.finish)
    assert all(f == [False] * (len(f) - 1) + [True] for f in by_job.values())
    assert all(r.packed.registers["finish"] == int(r.finish) for r in runs)


def test_tiled_mode_configuration_errors():
    dp = DatapathConfig(m=2, r=3, c_max=16)
    with pytest.raises(ConfigError, match="needs tiled mode"):
        AccelConfig(datapath=dp, c_block=4)
    with pytest.raises(ConfigError, match="banked memories"):
        AccelConfig(datapath=dp, tiled=True, serial=True, pes=1, clusters=1, pad_max=0)
    with pytest.raises(ConfigError, match="one output-channel block per pass"):
        AccelConfig(datapath=dp, tiled=True, k_max=8, k_block=4, pad_max=0)
    with pytest.raises(ConfigError, match=r"c_block must be an integer in \[1, c_max = 16\]"):
        AccelConfig(datapath=dp, tiled=True, c_block=17, pad_max=0)
    with pytest.raises(ConfigError, match="k_max = 5 .* must be a multiple of clusters = 2"):
        AccelConfig(datapath=dp, tiled=True, pes=2, clusters=2, k_max=5, pad_max=0)
    with pytest.raises(ConfigError, match="pad_max must be 0"):
        AccelConfig(datapath=dp, tiled=True)


def test_winnow_sim_random_runs_a_tiled_layer_and_winnow_cycles_sums_its_passes(tmp_path, capsys):
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    import json

    from winnow import cli

    args = ["--m", "2", "--c-max", "16", "--pes", "2", "--lanes", "2", "--k-max", "4", "--h-max", "8",
            "--w-max", "6", "--pad-max", "0", "--tiled", "--c-block", "3"]
    assert cli.main(["sim", "--random", "7,6,11,9", *args, "--sim", "icarus", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "36 passes (6 patches × 2 blocks × 3 C blocks)" in out and "bit-exact" in out
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert rep["layers"][0]["runs"] == 36 and rep["all_bit_exact"]
    assert rep["layers"][0]["model_cycles"] == rep["layers"][0]["rtl_cycles"]  # the passes' model, summed
    # winnow cycles of the same layer (the one --random built: density 0.3, seed 0) as a layer file
    from winnow.model.files.layer_file import write_layer

    same = random_layer(DatapathConfig(m=2, r=3, c_max=16), C=7, K=6, H=11, W=9, density=0.3, seed=0,
                        name="random")
    path = write_layer(tmp_path / "random.wnl", same)
    assert cli.main(["cycles", str(path), *args[4:], "--json", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["layers"][0]["sparse"]["cycles"] == rep["layers"][0]["rtl_cycles"]
    assert doc["layers"][0]["dense_cycles"] > doc["layers"][0]["sparse"]["cycles"]


def test_a_trained_network_runs_layer_after_layer_on_a_tiled_array(tmp_path, capsys):
    """Every convolution of the trained F(4,3) network (real activations of a test digit) on an array
    with 10×10 windows, 8-channel C blocks and 8-channel output blocks: bit-exact against the reference and
    the network's own next activation, cycles equal to the model."""
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    import json
    from pathlib import Path

    from winnow import cli

    net = Path(__file__).resolve().parent / "data" / "trained_f43"
    assert cli.main(["sim", "--network", str(net), "--tiled", "--c-block", "8", "--k-max", "8", "--h-max", "10",
                     "--w-max", "10", "--pad-max", "0", "--pes", "4", "--lanes", "4", "--sim", "verilator",
                     "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "16 patches × 2 blocks × 2 C blocks" in out
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert len(rep["layers"]) == 4 and rep["all_bit_exact"] and all(r["runs"] > 1 for r in rep["layers"])


def test_passes_without_a_single_non_zero_take_the_modelled_cycles_too():
    """A C block whose channels are all pruned away: every PE walks only its end-of-block marker, and the
    pass still takes one cycle more than an untiled one (the accumulators' add), as the model says."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    import dataclasses

    from winnow.model.files.layer_file import SparseLayer
    from winnow.sim.tiled_run import run_tiled

    cfg, layer, xq = _setup("f23")
    q = layer.to_quantized_conv()
    w = q.weights.copy()
    w[:, :cfg.c_block] = 0  # the first C block holds no weights at all
    layer = SparseLayer.from_quantized_conv(dataclasses.replace(q, weights=w), layer.size, name=layer.name)
    runs = passes(layer, xq, cfg)
    assert any(r.c_index == 0 and r.packed.layer.nnz == 0 for r in runs)
    res = run_tiled(cfg, layer, xq, "icarus")
    np.testing.assert_array_equal(res.out, reference_output(layer, xq))
    assert [c for _, c, _ in res.passes] == [m for _, _, m in res.passes]
