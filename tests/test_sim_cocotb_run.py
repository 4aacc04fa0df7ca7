"""Generated Verilog under Verilator and Icarus (cocotb): every output bit-exact, every cycle count exact.

Each configuration is built once (its own build directory under build/sim/) and runs
a batch of layers back to back on one simulated array, so the tests also check that
a run leaves the array clean for the next one. Skips with the reason when a
simulator is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.files.layer_file import read_layer, write_layer
from winnow.sim.cocotb_run import run_layers, simulator_available
from winnow.sim.layers import random_input, random_layer, reference_output
from winnow.sim.network import traced_convolutions

BUILD = Path(__file__).resolve().parents[1] / "build" / "sim"

# (C, K, H, W, density, padding, extreme, relu, winograd_relu): sizes not divisible by m,
# 1×1 inputs, the channel limits, every density of the issue, the corners of the ranges
LAYERS = [
    (32, 32, 24, 24, 0.3, 1, False, True, False),
    (1, 1, 1, 1, 1.0, 1, False, False, False),
    (7, 5, 13, 11, 0.05, 1, True, False, True),
    (3, 32, 9, 17, 1.0, 0, True, True, False),
    (32, 3, 6, 5, 0.0, 1, False, False, False),
    (12, 9, 24, 7, 1.0, 1, False, False, True),
]


#: One generated array per tile; F(4,3) also splits rows over two PE clusters, blocks K by 16
#: and finishes two tiles per OTU cycle; F(6,3) blocks K by 8, finishes two tiles at once and
#: shares 4 requantizers among each tile's 36 outputs (9 cycles per tile).
ARRAYS = {
    2: dict(pes=4, lanes=4),
    4: dict(pes=4, lanes=4, clusters=2, k_block=16, otu_lanes=2),
    6: dict(pes=4, lanes=4, k_block=8, otu_lanes=2, requant=4),
}
#: The tests' layers are short: a model compiled without optimisation builds several times faster.
CXX_OPT = "-O0"
TRAINED = Path(__file__).resolve().parent / "data" / "trained_f43"


def _config(m: int, mode: str = "sparse") -> AccelConfig:
    return AccelConfig(datapath=DatapathConfig(m=m, r=3, c_max=32), k_max=32, h_max=28, w_max=28, pad_max=1,
                       mode=mode, **ARRAYS[m])  # fmt: skip


def _batch(cfg: AccelConfig, layers, seed: int, tmp_path: Path):
    items = []
    for i, (C, K, H, W, d, pad, ext, relu, wrelu) in enumerate(layers):
        layer = random_layer(cfg.datapath, C=C, K=K, H=H, W=W, density=d, padding=pad, extreme=ext, relu=relu,
                             winograd_relu=wrelu, seed=seed + i, name=f"l{i}")
        # through the layer file, as the packer gets it from model/
        layer = read_layer(write_layer(tmp_path / f"l{i}.wnl", layer))
        xq = random_input(layer, seed=seed + 100 + i, extreme=ext)
        items.append((pack_layer(layer, cfg), xq, f"l{i}"))
    return items


def _check(items, results, expected=None):
    for i, ((packed, xq, name), res) in enumerate(zip(items, results)):
        want = reference_output(packed.layer, xq)
        diff = np.argwhere(res.out != want)
        assert diff.size == 0, f"{name}: {len(diff)} outputs differ, first at (k, h, w) = {tuple(diff[0])}: " \
                               f"RTL {res.out[tuple(diff[0])]}, reference {want[tuple(diff[0])]}"
        if expected is not None and expected[i] is not None:
            assert np.array_equal(res.out, expected[i]), f"{name}: differs from the network's own activation"
        model = packed_cycles(packed).cycles
        assert res.cycles == model, f"{name}: RTL {res.cycles} cycles, model {model}"
        assert res.start_to_done_cycles == model, f"{name}: start→done {res.start_to_done_cycles}, model {model}"


def _trained(cfg: AccelConfig):
    """Every convolution of the trained MNIST network with a real digit's activations, and their outputs."""
    from winnow.model.data.datasets import load_mnist5k

    images, _ = load_mnist5k()
    items, outs = [], []
    for layer, xq, yq in traced_convolutions(TRAINED, images[7]):
        items.append((pack_layer(layer, cfg), xq, f"trained_{layer.name}"))
        outs.append(yq)
    return items, outs


#: Tests that share the F(2,3) Verilator build directory run on one xdist worker (--dist loadgroup).
SHARES_F23_BUILD = pytest.mark.xdist_group("verilator_f23")


@pytest.mark.parametrize("m", [pytest.param(2, marks=SHARES_F23_BUILD), 4, 6])
def test_verilator_random_layers(m, tmp_path):
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    cfg = _config(m)
    items = _batch(cfg, LAYERS, seed=10 * m, tmp_path=tmp_path)
    expected = [None] * len(items)
    if m == 4:
        # dense-mode images (every weight, zeros included) on the same generated array
        dense = dataclasses.replace(cfg, mode="dense")
        items += [(pack_layer(p.layer, dense), x, f"{name}_dense") for p, x, name in items[2:5]]
        # the trained network's layers, with real activations
        trained, outs = _trained(cfg)
        items += trained
        expected += [None] * 3 + outs
    _check(items, run_layers(cfg, items, "verilator", build_dir=BUILD / f"verilator_f{m}3", cxx_opt=CXX_OPT), expected)


def test_icarus_random_layers(tmp_path):
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    # Icarus runs this array at a few hundred cycles/s: a small configuration and small layers,
    # with two PE clusters, two output-channel blocks, a two-lane OTU and two requantizers per lane
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=4, clusters=2, lanes=2, otu_lanes=2,
                      requant=2, k_max=8, k_block=4, h_max=9, w_max=9)
    layers = [(3, 6, 7, 9, 0.3, 1, False, False, False), (8, 8, 9, 9, 1.0, 0, True, True, False),
              (1, 1, 1, 1, 0.05, 1, False, False, True), (5, 2, 5, 3, 0.0, 1, False, False, False)]
    items = _batch(cfg, layers, seed=3, tmp_path=tmp_path)
    _check(items, run_layers(cfg, items, "icarus", build_dir=BUILD / "icarus_f23", cxx_opt=CXX_OPT))


@SHARES_F23_BUILD
def test_a_run_that_does_not_finish_fails_with_its_name(tmp_path):
    """A hang (here: a PE stream whose end-of-block mark is lost) is a named failure, not a stalled simulator."""
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    cfg = _config(2)
    packed, xq, _ = _batch(cfg, [(2, 2, 4, 4, 0.5, 1, False, False, False)], seed=1, tmp_path=tmp_path)[0]
    streams = [st.copy() for st in packed.streams]
    streams[0][-1, 5] = 0  # PE 0 walks on through the whole stream memory
    stuck = dataclasses.replace(packed, streams=streams)
    with pytest.raises(RuntimeError, match="layer stuck: no done within"):
        run_layers(cfg, [(stuck, xq, "stuck")], "verilator", build_dir=BUILD / "verilator_f23", cxx_opt=CXX_OPT)
