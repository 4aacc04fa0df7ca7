"""Packer: streams hold exactly the layer's weights, balanced over PEs; limits are errors."""

import dataclasses

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.balance import balance_positions
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError
from winnow.sim.layers import random_layer

DP = DatapathConfig(m=4, r=3, c_max=16)


def cfg(**kw):
    return AccelConfig(**{"datapath": DP, "pes": 4, "lanes": 2, "k_max": 8, "h_max": 12, "w_max": 12, **kw})


def rebuild(packed, K, C):
    """Weights (P, K, C) from the streams; checks each entry sits on the PE that owns it."""
    cfg = packed.config
    w = np.zeros((DP.positions, K, C), dtype=np.int64)
    for j, s in enumerate(packed.streams):
        cluster, i = divmod(j, cfg.pes_per_cluster)
        for p, k, c, v, _last, _eob in s:
            if k < 0:  # an empty segment's end-of-block marker
                assert v == 0 and _last == 0 and _eob == 1
                continue
            assert k % cfg.clusters == cluster and packed.owner[cluster, p] == i
            w[p, k, c] = v
    return w


@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("arr", [{}, dict(pes=4, clusters=2, k_block=4), dict(pes=2, clusters=2, k_block=2)])
def test_sparse_streams_hold_every_nonzero_once(density, arr):
    c = cfg(**arr)
    layer = random_layer(DP, C=5, K=6, H=7, W=9, density=density, seed=3)
    packed = pack_layer(layer, c)
    dense = layer.to_dense().reshape(6, 5, -1).transpose(2, 0, 1)
    markers = sum(int((s[:, 1] < 0).sum()) for s in packed.streams)
    assert sum(len(s) for s in packed.streams) == int((dense != 0).sum()) + markers
    assert np.array_equal(rebuild(packed, 6, 5), dense)
    blocks = -(-6 // c.k_block)
    assert packed.segments.shape == (c.pes, blocks)
    for s, segs in zip(packed.streams, packed.segments):
        assert segs.sum() == len(s) and segs.min() >= 1
        bounds = np.cumsum(np.concatenate([[0], segs]))
        for b in range(blocks):
            seg = s[bounds[b]:bounds[b + 1]]
            # each segment: its block's rows only, rows (p, k) contiguous, 'last' exactly at their ends,
            # one end-of-block mark on its final entry
            real = seg[seg[:, 1] >= 0]
            assert np.all(real[:, 1] // c.k_block == b)
            key = real[:, 0] * 1000 + real[:, 1]
            ends = np.append(key[1:] != key[:-1], True) if len(key) else np.zeros(0, bool)
            assert len(set(key.tolist())) == int(ends.sum())
            assert np.array_equal(real[:, 4].astype(bool), ends)
            assert seg[-1, 5] == 1 and seg[:-1, 5].sum() == 0


def test_dense_mode_streams_every_weight():
    layer = random_layer(DP, C=3, K=4, H=6, W=6, density=0.3, seed=1)
    packed = pack_layer(layer, cfg(mode="dense"))
    assert sum(len(s) for s in packed.streams) == DP.positions * 4 * 3  # no markers: no PE has an empty segment
    dense = layer.to_dense().reshape(4, 3, -1).transpose(2, 0, 1)
    assert np.array_equal(rebuild(packed, 4, 3), dense)


def test_lpt_balance_is_within_the_largest_job_of_optimal():
    rng = np.random.default_rng(0)
    for _ in range(50):
        loads = rng.integers(0, 100, size=36)
        owner = balance_positions(loads, 5)
        per = np.bincount(owner, weights=loads, minlength=5)
        # LPT bound: makespan <= mean + max job
        assert per.max() <= loads.sum() / 5 + loads.max()
        assert per.sum() == loads.sum()


def test_lpt_spreads_positions_without_entries():
    owner = balance_positions(np.zeros(36, int), 4)
    assert np.bincount(owner, minlength=4).tolist() == [9, 9, 9, 9]


def test_clusters_balance_what_positions_alone_cannot():
    """F(4,3)'s 36 positions on 16 PEs: whole positions leave PEs with 3 against a mean of 2.25;
    four clusters of 4 PEs (rows split by k mod 4) balance 9 positions per PE."""
    dp = DatapathConfig(m=4, r=3, c_max=32)
    layer = random_layer(dp, C=32, K=32, H=8, W=8, density=1.0, seed=0)
    base = dict(datapath=dp, lanes=1, k_max=32, h_max=8, w_max=8, mode="dense")  # every row: C entries
    whole = pack_layer(layer, AccelConfig(**base, pes=16))
    split = pack_layer(layer, AccelConfig(**base, pes=16, clusters=4))
    assert whole.imbalance == pytest.approx(3 / 2.25)
    assert split.imbalance == pytest.approx(1.0)


def test_imbalance_reported():
    layer = random_layer(DP, C=8, K=8, H=6, W=6, density=0.3, seed=2)
    packed = pack_layer(layer, cfg())
    lens = packed.stream_lengths
    assert packed.imbalance == pytest.approx(lens.max() / lens.mean())
    assert packed.imbalance >= 1.0


def test_input_banks_place_each_pixel_once():
    layer = random_layer(DP, C=2, K=1, H=7, W=11, density=1.0, seed=0)
    packed = pack_layer(layer, cfg())
    x = np.arange(2 * 7 * 11).reshape(2, 7, 11) % 251 - 125
    banks = packed.input_banks(x)
    n = DP.n
    c = packed.config
    for ch, h, w in [(0, 0, 0), (1, 6, 10), (1, 3, 7)]:
        v = banks[(h % n) * n + w % n, (ch * c.x_rows + h // n) * c.x_cols + w // n]
        assert v == x[ch, h, w] & 0xFF


@pytest.mark.parametrize("kw, limit", [
    (dict(C=17, K=2, H=6, W=6), "c_max"),  # rejected by the layer itself (datapath c_max)
    (dict(C=2, K=9, H=6, W=6), "k_max = 8"),
    (dict(C=2, K=2, H=13, W=6), "h_max = 12"),
    (dict(C=2, K=2, H=6, W=13), "w_max = 12"),
])
def test_layers_beyond_the_limits_are_errors(kw, limit):
    with pytest.raises(ConfigError, match=limit):
        pack_layer(random_layer(DP, density=0.5, seed=0, **kw), cfg())


def test_padding_beyond_the_limit():
    layer = random_layer(DP, C=2, K=2, H=6, W=6, density=0.5, seed=0, padding=2)
    with pytest.raises(ConfigError, match="pad_max = 1"):
        pack_layer(layer, cfg())


def test_stream_depth_limit():
    layer = random_layer(DP, C=8, K=8, H=6, W=6, density=1.0, seed=0)
    with pytest.raises(ConfigError, match="stream_depth = 50"):
        pack_layer(layer, cfg(stream_depth=50))


def test_layer_for_another_tile_is_an_error():
    layer = random_layer(DatapathConfig(m=2, r=3, c_max=16), C=2, K=2, H=6, W=6, density=0.5, seed=0)
    with pytest.raises(ConfigError, match="F\\(2,3\\).*F\\(4,3\\)|F\\(2, 3\\).*F\\(4, 3\\)"):
        pack_layer(layer, cfg())


def test_layer_for_other_bit_widths_is_an_error():
    other = DatapathConfig(m=4, r=3, c_max=16, weight_bits=10)
    layer = random_layer(other, C=2, K=2, H=6, W=6, density=0.5, seed=0)
    with pytest.raises(ConfigError, match="weight_bits=10"):
        pack_layer(layer, cfg())
