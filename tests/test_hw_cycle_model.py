"""Cycle model: structure and the floor (the RTL equality is checked in test_hw_array / test_sim_*)."""

import math

import numpy as np
import pytest

from hw.config import AccelConfig
from hw.cycle_model import packed_cycles, shape_cycles
from hw.packer import pack_layer
from model.datapath import DatapathConfig
from sim.layers import random_layer

DP = DatapathConfig(m=4, r=3, c_max=16)


@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_shape_model_equals_the_packed_model(density):
    cfg = AccelConfig(datapath=DP, pes=4, lanes=4, k_max=16, h_max=16, w_max=16)
    layer = random_layer(DP, C=12, K=10, H=13, W=16, density=density, seed=5)
    sparse = pack_layer(layer, cfg)
    dense = pack_layer(layer, AccelConfig(**{**cfg.__dict__, "mode": "dense"}))
    est = shape_cycles(cfg, in_channels=12, out_channels=10, tiles=sparse.tiles,
                       nnz_per_position=layer.nnz_per_position())
    assert est["sparse"] == packed_cycles(sparse)
    assert est["dense"].cycles == packed_cycles(dense).cycles


def test_floor_and_ordering():
    cfg = AccelConfig(datapath=DP, pes=4, lanes=4, k_max=16, h_max=16, w_max=16)
    layer = random_layer(DP, C=16, K=16, H=16, W=16, density=0.3, seed=1)
    rep = packed_cycles(pack_layer(layer, cfg))
    assert rep.floor == math.ceil(rep.tiles * layer.nnz / 16)
    assert rep.floor <= rep.cycles
    dense = packed_cycles(pack_layer(layer, AccelConfig(**{**cfg.__dict__, "mode": "dense"})))
    assert dense.cycles > rep.cycles
    assert 0 < rep.efficiency <= 1


def test_input_bound_layer_is_reported():
    cfg = AccelConfig(datapath=DP, pes=4, lanes=4, k_max=16, h_max=16, w_max=16)
    rep = shape_cycles(cfg, in_channels=16, out_channels=1, tiles=16, nnz_per_position=np.ones(36, int))["sparse"]
    assert rep.bottleneck == "itu"
