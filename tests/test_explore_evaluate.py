"""A point's cycles: the shape-based evaluation equals the packer-based cycle model, and the memory term binds
when the port is slow."""

from pathlib import Path

import numpy as np
import pytest

from winnow.explore import evaluate, networks
from winnow.explore.space import array_config
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.packer import pack_layer
from winnow.hw.tiled_packer import plan_for, tiled_cycles, tiled_shape_cycles
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_layer

DEMO = Path(__file__).resolve().parent / "data" / "trained_f43"


def _layer_counts(layer, c_block):
    """Non-zeros per (position, row, C block), counted straight from the dense weights."""
    w = layer.to_dense().reshape(layer.out_channels, layer.in_channels, -1)  # (K, C, P)
    nb = -(-layer.in_channels // c_block)
    out = np.zeros((w.shape[2], layer.out_channels, nb), dtype=np.int64)
    for b in range(nb):
        out[:, :, b] = (w[:, b * c_block:(b + 1) * c_block, :] != 0).sum(axis=1).T
    return out


@pytest.mark.parametrize("c_block,k_max,patch", [(8, 8, 2), (16, 4, 3), (5, 12, 1)])
def test_tiled_shape_cycles_equals_the_packed_passes(c_block, k_max, patch):
    dp = DatapathConfig(m=2, r=3, c_max=16)
    layer = random_layer(dp, C=16, K=12, H=11, W=9, density=0.35, seed=c_block + k_max)
    cfg = AccelConfig(datapath=dp, pes=4, lanes=2, clusters=2, k_max=k_max, h_max=patch * 2 + 2,
                      w_max=patch * 2 + 2, pad_max=0, tiled=True, c_block=c_block)
    plan = plan_for(cfg, layer)
    model, dense = tiled_cycles(layer, cfg)  # packs every pass
    rep, dn, _, longest = tiled_shape_cycles(cfg, plan, _layer_counts(layer, c_block))
    assert (rep.cycles, rep.itu, rep.pe, rep.otu, rep.floor) == (model.cycles, model.itu, model.pe, model.otu,
                                                                 model.floor)
    assert dn == dense
    from winnow.hw.tiled_packer import passes

    assert longest == max(len(st) for r in passes(layer, None, cfg, plan) for st in r.packed.streams)


def test_network_counts_from_the_files_are_the_layers_non_zeros():
    net = networks.load_network(DEMO)
    from winnow.model.files.export import read_network

    files = read_network(DEMO).convs
    for i, (_, layer) in enumerate(files):
        assert np.array_equal(net.counts(i, 4, 8), _layer_counts(layer, 8))
    assert net.exact(4) and not net.exact(2)
    est = net.counts(1, 2, 16)  # F(2,3): drawn at the layer's density
    assert est.shape == (16, 16, 1) and abs(est.mean() / 16 - files[1][1].density) < 0.05


def test_a_banked_points_cycles_equal_the_packed_layers():
    net = networks.load_network(DEMO)
    from winnow.model.files.export import read_network

    files = read_network(DEMO).convs
    point = {"m": 4, "pes": 8, "lanes": 2, "clusters": 2, "otu_lanes": 2, "requant": "m", "org": "banked",
             "k_block": 16}
    cfg = array_config(point, net.limits())
    res = evaluate.evaluate_cycles(point, net, (2.0,))
    assert res["status"] == "ok" and res["counts"] == "exact"
    for row, (_, layer) in zip(res["layers"], files):
        assert row["compute"] == packed_cycles(pack_layer(layer, cfg)).cycles


def test_the_memory_term_binds_on_a_slow_port_and_not_on_a_fast_one():
    net = networks.load_network("shapes:cifar-vgg@0.3")
    point = {"m": 4, "pes": 8, "lanes": 2, "clusters": 2, "otu_lanes": 2, "requant": "m", "org": "tiled",
             "k_block": 32, "patch": 4, "c_block": 32}
    cyc = evaluate.evaluate_cycles(point, net, (0.25, 1.0, 64.0))
    slow, mid, fast = (evaluate.with_bandwidth(cyc, bw) for bw in (0.25, 1.0, 64.0))
    assert slow["memory_bound_layers"] == len(net.layers) and fast["memory_bound_layers"] == 0
    assert slow["cycles"] > mid["cycles"] >= fast["cycles"] == sum(L["compute"] for L in cyc["layers"])
    for a, b in zip(slow["layers"], mid["layers"]):  # 4× less bandwidth, 4× the memory cycles (whole beats)
        assert a["memory"] == pytest.approx(4 * b["memory"], abs=4)
    # conv1 (3 → 64, 32×32 input, padding 1) reads its whole padded input at least once: 3·34·34 bytes
    assert cyc["layers"][0]["bytes"]["1.0"] >= 3 * 34 * 34 + 64 * 32 * 32


def test_a_point_the_array_refuses_is_recorded_as_invalid_not_raised():
    net = networks.load_network("shapes:smallvgg")
    point = {"m": 2, "pes": 2, "lanes": 1, "clusters": 1, "otu_lanes": 1, "requant": "1", "org": "banked",
             "k_block": None}
    assert evaluate.evaluate_cycles(point, net, (1.0,))["status"] == "ok"
    bad = evaluate.evaluate_cycles({**point, "pes": 3, "clusters": 2}, net, (1.0,))
    assert bad["status"] == "invalid" and "clusters = 2 must divide pes = 3" in bad["error"]
