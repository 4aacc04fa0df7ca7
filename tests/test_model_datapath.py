"""Derived datapath widths: reached by worst-case inputs, never exceeded, errors named."""

import itertools

import numpy as np
import pytest

from winnow.model.integer.datapath import MAX_WIDTH, DatapathConfig, _kron_rows, signed_bits, signed_range
from winnow.model.errors import ConfigError
from winnow.model.integer.reference import DatapathOverflow, QuantizedConv, _check_range, integer_conv

CASES = [(2, 2), (2, 4), (2, 6), (3, 2), (3, 4)]


def adversarial_tiles(cfg):
    """2P single-tile images: image p drives V'_p to its maximum, image P + p to its minimum."""
    kb = np.array(_kron_rows(cfg.transforms.BT, cfg.dims))  # (P, P), row-major positions
    lo, hi = signed_range(cfg.act_bits)
    x_hi = np.where(kb > 0, hi, lo)  # coefficient > 0 → largest input
    x_lo = np.where(kb > 0, lo, hi)
    tiles = np.concatenate([x_hi, x_lo]).reshape((-1, 1) + (cfg.n,) * cfg.dims)
    return tiles


def layer_with_weight(cfg, value, channels, mult=1, shift=0, bias=0):
    shape = (1, channels) + (cfg.n,) * cfg.dims
    return QuantizedConv(config=cfg, weights=np.full(shape, value), bias=np.array([bias]),
                         mult=np.array([mult]), shift=np.array([shift]), padding=0)  # fmt: skip


@pytest.mark.parametrize("dims, m", CASES)
def test_worst_case_inputs_reach_every_accumulation_stage_exactly(dims, m):
    cfg = DatapathConfig(dims=dims, m=m, r=3, c_max=3)
    w = cfg.widths
    x = np.repeat(adversarial_tiles(cfg), cfg.c_max, axis=1)  # the same tile in every channel
    trace = {}
    for wv in signed_range(cfg.weight_bits):
        integer_conv(x, layer_with_weight(cfg, wv, cfg.c_max), trace=trace)
    assert trace["V'"] == (min(w.v_lo), max(w.v_hi))
    assert trace["product"] == (min(w.prod_lo), max(w.prod_hi))
    assert trace["acc"] == (min(w.acc_lo), max(w.acc_hi))
    assert trace["shifted"] == (min(w.shifted_lo), max(w.shifted_hi))
    # and the widths follow: the hardware could not be one bit narrower
    assert signed_bits(*trace["V'"]) == w.v_bits
    assert signed_bits(*trace["acc"]) == w.acc_bits


@pytest.mark.parametrize("dims, m", CASES)
@pytest.mark.parametrize("pattern", ["all_max", "all_min", "alternating", "alternating_inv"])
def test_extreme_patterns_never_exceed_any_width(dims, m, pattern):
    cfg = DatapathConfig(dims=dims, m=m, r=3, c_max=4)
    lo, hi = signed_range(cfg.act_bits)
    shape = (1, cfg.c_max) + (2 * cfg.n,) * dims
    parity = np.indices(shape[2:]).sum(axis=0) % 2
    x = {
        "all_max": np.full(shape, hi),
        "all_min": np.full(shape, lo),
        "alternating": np.broadcast_to(np.where(parity, hi, lo), shape),
        "alternating_inv": np.broadcast_to(np.where(parity, lo, hi), shape),
    }[pattern]
    b_lo, b_hi = signed_range(cfg.bias_bits)
    trace = {}
    for wv in signed_range(cfg.weight_bits):
        for bias in (b_lo, b_hi):
            mult = (1 << cfg.mult_bits) - 1
            out = integer_conv(x, layer_with_weight(cfg, wv, cfg.c_max, mult=mult, shift=40, bias=bias), trace=trace)
            assert out.min() >= lo and out.max() <= hi
    for stage, bits in (("V'", "v_bits"), ("acc", "acc_bits"), ("Y", "y_bits"), ("biased", "biased_bits")):
        assert signed_bits(*trace[stage]) <= getattr(cfg.widths, bits)


def test_output_transform_bound_is_within_one_bit_of_the_true_maximum_f23():
    """Exhaustive search over all 2^16 sign patterns of an F(2,3) tile.

    The Y bound treats positions independently, so it can exceed what one input tile
    reaches. For F(2,3) the exact maximum needs y_bits − 1 bits: the derived width
    spends at most one extra bit (docs/datapath.md records this).
    """
    cfg = DatapathConfig(dims=2, m=2, r=3, c_max=2, max_position_shift=0)
    w = cfg.widths
    kb = np.array(_kron_rows(cfg.transforms.BT, 2))
    ka = np.array(_kron_rows(cfg.transforms.AT, 2))
    lo, hi = signed_range(cfg.act_bits)
    verts = np.array(list(itertools.product([lo, hi], repeat=cfg.positions)))
    v = verts @ kb.T  # V' of every vertex
    wl, wh = signed_range(cfg.weight_bits)
    best = np.where(ka[0] * v > 0, wh, wl) * v * ka[0]  # weight sign chosen per position
    per_tile = best.sum(axis=1)
    i = int(per_tile.argmax())
    true_max = cfg.c_max * int(per_tile[i])
    assert true_max <= max(w.y_hi)
    assert signed_bits(-true_max, true_max) >= w.y_bits - 1
    # the reference reproduces it: the worst tile in every channel, the chosen weights
    x = np.repeat(verts[i].reshape(1, 1, cfg.n, cfg.n), cfg.c_max, axis=1)
    weights = np.repeat(np.where(ka[0] * v[i] > 0, wh, wl).reshape(1, 1, cfg.n, cfg.n), cfg.c_max, axis=1)
    layer = QuantizedConv(config=cfg, weights=weights, bias=np.array([0]), mult=np.array([1]), shift=np.array([0]))
    trace = {}
    integer_conv(x, layer, trace=trace)
    assert trace["Y"][1] == true_max


def test_range_check_fires_on_overflow():
    with pytest.raises(DatapathOverflow, match="stage acc"):
        _check_range("acc", np.array([5, 300]), -256, 255, None)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"m": 8, "r": 3}, rf"F\(8,3\) 2-D .* needs \w+_bits = \d+ > {MAX_WIDTH}"),
        ({"m": 6, "r": 3, "c_max": 1 << 16}, f"> {MAX_WIDTH}: reduce c_max"),
        ({"dims": 4}, r"dims must be in \[2, 3\]"),
        ({"act_bits": 1}, r"act_bits must be in \[2, 32\]"),
        ({"weight_bits": 33}, r"weight_bits must be in \[2, 32\]"),
        ({"c_max": 0}, "c_max must be in"),
        ({"act_bits": 8.0}, "act_bits must be an integer"),
        ({"m": 0}, "m must be >= 1"),
    ],
)
def test_impossible_configurations_are_named(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        DatapathConfig(**kwargs)


def test_config_is_frozen_and_serialisable():
    import dataclasses
    import json

    cfg = DatapathConfig(m=6, r=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.m = 4
    doc = json.loads(json.dumps(cfg.to_dict()))
    assert doc["n"] == 8 and len(doc["position_shifts"]) == 64
    assert doc["points"] == ["0", "1", "-1", "2", "-2", "1/2", "-1/2"]
    assert dataclasses.replace(cfg, m=4).n == 6
