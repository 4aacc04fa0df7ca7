"""Cycle model: structure, the schedule and the floor (the RTL equality is checked in test_hw_array / test_sim_*)."""

import dataclasses
import math

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.abi import ITU_LATENCY, PE_LATENCY, otu_latency
from winnow.hw.cycle_model import cycles, packed_cycles, shape_cycles
from winnow.hw.packer import pack_layer, sparse_and_dense
from winnow.hw.schedule import phases
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_layer

DP = DatapathConfig(m=4, r=3, c_max=16)


def _rows(layer):
    return np.diff(layer.row_ptr, axis=1)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("arr", [{}, dict(pes=8, clusters=2, k_block=4, otu_lanes=2)])
def test_shape_model_equals_the_packed_model(density, arr):
    cfg = AccelConfig(**{"datapath": DP, "pes": 4, "lanes": 4, "k_max": 16, "h_max": 16, "w_max": 16, **arr})
    layer = random_layer(DP, C=12, K=10, H=13, W=16, density=density, seed=5)
    sparse = pack_layer(layer, cfg)
    dense = pack_layer(layer, dataclasses.replace(cfg, mode="dense"))
    est = shape_cycles(cfg, in_channels=12, out_channels=10, tiles=sparse.tiles, nnz_rows=_rows(layer))
    assert est["sparse"] == packed_cycles(sparse)
    assert est["dense"].cycles == packed_cycles(dense).cycles
    packed, s, d = sparse_and_dense(layer, cfg)
    assert packed.segments.tolist() == sparse.segments.tolist() and s == packed_cycles(sparse)
    assert d == packed_cycles(dense)  # derived without packing the dense layer


def test_schedule_runs_every_step_once_per_unit_in_order():
    G, B = 5, 3
    ph = phases(G, B)
    assert len(ph) == G * B + 2
    for unit in ("pe", "otu"):
        done = [getattr(p, unit) for p in ph if getattr(p, unit) is not None]
        assert [s.index for s in done] == list(range(G * B))
    itu = [p.itu for p in ph if p.itu is not None]
    assert [s.group for s in itu] == list(range(G))  # once per group: the V' serves every block
    for p in ph:
        if p.itu is not None and p.pe is not None:
            assert p.itu.v_half != p.pe.v_half  # the input unit never writes the half the PEs read
        if p.pe is not None and p.otu is not None:
            assert p.pe.acc_half != p.otu.acc_half
        if p.pe is not None:  # the PEs read a group the input unit finished in an earlier phase
            assert any(q.itu is not None and q.itu.group == p.pe.group and q.index < p.index for q in ph)


def test_hand_computed_single_step():
    """One group, one block: phases ITU | PE | OTU, each 1 + its busy time, plus the final check."""
    cfg = AccelConfig(datapath=DP, pes=2, lanes=4, k_max=8, h_max=8, w_max=8)
    rep = cycles(cfg, in_channels=3, out_channels=5, tiles=4, segments=[[7], [9]], nnz=16)
    itu, pe, otu = 3 * 4 + ITU_LATENCY, 9 + PE_LATENCY, 5 * 4 + otu_latency(cfg)
    assert rep.cycles == (1 + itu) + (1 + pe) + (1 + otu) + 1
    assert rep.floor == math.ceil(4 * 16 / 8)


def test_floor_and_ordering():
    cfg = AccelConfig(datapath=DP, pes=4, lanes=4, k_max=16, h_max=16, w_max=16)
    layer = random_layer(DP, C=16, K=16, H=16, W=16, density=0.3, seed=1)
    rep = packed_cycles(pack_layer(layer, cfg))
    assert rep.floor == math.ceil(rep.tiles * layer.nnz / 16)
    assert rep.floor <= rep.cycles
    dense = packed_cycles(pack_layer(layer, dataclasses.replace(cfg, mode="dense")))
    assert dense.cycles > rep.cycles
    assert 0 < rep.efficiency <= 1


def test_input_bound_layer_is_reported():
    cfg = AccelConfig(datapath=DP, pes=4, lanes=4, k_max=16, h_max=16, w_max=16)
    rep = shape_cycles(cfg, in_channels=16, out_channels=1, tiles=16, nnz_rows=np.ones((36, 1), int))["sparse"]
    assert rep.bottleneck == "itu"


def test_output_lanes_remove_the_output_bound():
    """Few input channels, many outputs (VGG's conv1_1): the OTU bounds the run until it gets more lanes."""
    dp = DatapathConfig(m=4, r=3, c_max=4)
    rows = np.full((36, 64), 1)  # d·C ≈ 1 non-zero per row
    base = dict(datapath=dp, pes=4, lanes=16, k_max=64, h_max=64, w_max=64)
    one = shape_cycles(AccelConfig(**base), in_channels=3, out_channels=64, tiles=256, nnz_rows=rows)["sparse"]
    four = shape_cycles(AccelConfig(**base, otu_lanes=4), in_channels=3, out_channels=64, tiles=256,
                        nnz_rows=rows)["sparse"]
    assert one.bottleneck == "otu" and four.bottleneck == "pe"
    assert four.cycles < one.cycles
