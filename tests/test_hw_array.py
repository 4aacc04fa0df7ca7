"""The whole array under the Amaranth simulator: bit-exact outputs, cycles equal to the model."""

import numpy as np
import pytest

from winnow.hw import abi, cycle_model
from winnow.hw.config import AccelConfig
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_input, random_layer, reference_output
from winnow.sim.pysim_run import run_pysim


def _latency(unit) -> int:
    unit._MustUse__silence = True  # only inspected, never elaborated
    return unit.latency


@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("m, requant", [(2, None), (2, 1), (4, 16), (4, 4), (6, 36), (6, 6)])
def test_latencies_of_the_abi_are_the_rtl_pipeline_depths(m, requant, serial):
    from winnow.hw.input_transform import InputTransform
    from winnow.hw.output_transform import OutputTransform
    from winnow.hw.output_unit import OutputUnit
    from winnow.hw.pe import SparsePE

    cfg = AccelConfig(datapath=DatapathConfig(m=m, r=3, c_max=4), pes=1, lanes=1, k_max=4, h_max=8, w_max=8,
                      requant=requant, serial=serial)
    n2, Q = (m + 2) ** 2, m * m // cfg.requant
    # by hand, the stages each unit's docstring lists: read and rotate before the two-stage transform
    # (serial: then n² position writes); the PE's stream read, V' address, V' word, product, sum; the
    # output unit's accumulator read and input register before the core (4 stages, 5 with R < m²;
    # serial: the last position, the bias add, Q requantizer cycles, multiply and round)
    assert abi.ITU_LATENCY == 2 + InputTransform.latency == 4
    assert abi.itu_latency(cfg) == 4 + (n2 if serial else 0)
    assert abi.PE_LATENCY == _latency(SparsePE(cfg)) == 5
    assert abi.otu_latency(cfg) == _latency(OutputUnit(cfg)) == (6 + Q if serial else (6 if Q == 1 else 7))
    if not serial:
        assert _latency(OutputTransform(cfg.datapath, requant=cfg.requant)) == abi.otu_latency(cfg) - 2


@pytest.mark.parametrize("m, layer_kw, mode, arr", [
    (2, dict(C=3, K=2, H=5, W=6, density=0.5, padding=1), "sparse", {}),
    (4, dict(C=2, K=3, H=9, W=7, density=1.0, padding=0, relu=True), "dense", {}),
    (4, dict(C=3, K=2, H=3, W=4, density=0.0, padding=1), "sparse", {}),
    (6, dict(C=2, K=2, H=9, W=10, density=0.3, padding=1, winograd_relu=True, extreme=True), "sparse", {}),
    # two clusters (rows split by k mod 2), three output-channel blocks (2, 2, 1 rows), two OTU lanes
    (2, dict(C=3, K=5, H=6, W=7, density=0.4, padding=1), "sparse",
     dict(pes=4, clusters=2, lanes=2, k_max=6, k_block=2, otu_lanes=2)),
    (4, dict(C=2, K=4, H=10, W=9, density=1.0, padding=1, relu=True), "dense",
     dict(pes=2, clusters=2, lanes=4, k_max=4, k_block=2, otu_lanes=4)),
    # four requantizers for F(4,3)'s 16 outputs: four cycles per tile in the output unit
    (4, dict(C=3, K=3, H=8, W=7, density=0.5, padding=1), "sparse", dict(lanes=2, otu_lanes=2, requant=4)),
    # position-serial memories (one PE per cluster): one V', accumulator and input memory per cluster,
    # n² cycles per tile in the input and output units
    (2, dict(C=3, K=2, H=5, W=6, density=0.5, padding=1), "sparse", dict(pes=1, lanes=1, requant=1, serial=True)),
    (2, dict(C=3, K=5, H=6, W=7, density=0.4, padding=1, relu=True), "sparse",
     dict(pes=2, clusters=2, lanes=4, k_max=6, k_block=2, otu_lanes=2, serial=True)),
    (4, dict(C=2, K=3, H=9, W=7, density=1.0, padding=0, winograd_relu=True, extreme=True), "dense",
     dict(pes=2, clusters=2, lanes=2, otu_lanes=2, requant=4, serial=True)),
    (6, dict(C=2, K=2, H=9, W=10, density=0.3, padding=1), "sparse", dict(pes=1, lanes=3, otu_lanes=3, serial=True)),
])
def test_array_bit_exact_and_cycle_exact(m, layer_kw, mode, arr):
    dp = DatapathConfig(m=m, r=3, c_max=4)
    cfg = AccelConfig(**{"datapath": dp, "pes": 3, "lanes": 2, "k_max": 4, "h_max": 10, "w_max": 10, "mode": mode,
                         **arr})
    layer = random_layer(dp, seed=m, **layer_kw)
    packed = pack_layer(layer, cfg)
    x = random_input(layer, seed=m, extreme=layer_kw.get("extreme", False))
    out, cycles = run_pysim(packed, x)
    assert np.array_equal(out, reference_output(layer, x))
    assert cycles == cycle_model.packed_cycles(packed).cycles
