"""The bit-accurate integer reference: against float math, against a naive twin, bad input."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.integer.error_bound import output_error_bound
from winnow.model.errors import ConfigError, DataError
from winnow.model.integer.quant import requant_params, round_shift, saturate
from winnow.model.integer.reference import (
    MaxPool,
    QuantizedConv,
    integer_conv,
    quantize_conv,
    quantize_input,
    run_network,
)
from winnow.model.algebra.winograd_conv import winograd_conv


def make_layer(rng, cfg, c, k, padding, relu=False, winograd_relu=False, x_shape=(2, 9, 7)):
    n_img = x_shape[0]
    x = rng.standard_normal((n_img, c) + x_shape[1:])
    w = rng.standard_normal((k, c) + (cfg.r,) * cfg.dims) / math.sqrt(c * cfg.r**cfg.dims)
    b = 0.1 * rng.standard_normal(k)
    xq, sx = quantize_input(x, cfg.act_bits)
    yf = winograd_conv(xq * sx, w, padding, m=cfg.m, bias=b, winograd_relu=winograd_relu)
    so = float(np.abs(yf).max()) / (2 ** (cfg.act_bits - 1) * 0.8) or 1.0
    layer = quantize_conv(w, b, sx, so, cfg, padding=padding, relu=relu, winograd_relu=winograd_relu)
    target = saturate(yf / so, cfg.act_bits)
    return xq, layer, np.maximum(target, 0) if relu else target


@given(
    dims=st.sampled_from([2, 3]),
    m=st.sampled_from([2, 4, 6]),
    c=st.integers(1, 5),
    k=st.integers(1, 4),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    pad=st.integers(0, 2),
    bits=st.sampled_from([(8, 8), (6, 10), (10, 6)]),
    relu=st.booleans(),
    wrelu=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_integer_output_within_the_derived_error_bound(dims, m, c, k, size, pad, bits, relu, wrelu, seed):
    if dims == 3 and m == 6:
        m = 4  # F(6,3) in 3-D needs more than 64 bits at these widths
    size = size[-dims:]
    if any(s + 2 * pad < 3 for s in size):
        return
    cfg = DatapathConfig(dims=dims, m=m, r=3, act_bits=bits[0], weight_bits=bits[1], c_max=8)
    rng = np.random.default_rng(seed)
    xq, layer, target = make_layer(rng, cfg, c, k, pad, relu, wrelu, x_shape=(2,) + size)
    out = integer_conv(xq, layer)
    bound = output_error_bound(xq, layer)
    assert out.shape == target.shape
    assert np.all(np.abs(out - target) <= bound)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_bound_is_informative_and_catches_a_broken_datapath(m):
    cfg = DatapathConfig(m=m, r=3, c_max=16)
    rng = np.random.default_rng(m)
    xq, layer, target = make_layer(rng, cfg, 16, 8, 1, winograd_relu=True, x_shape=(2, 16, 16))
    bound = output_error_bound(xq, layer)
    assert np.all(np.abs(integer_conv(xq, layer) - target) <= bound)
    assert bound.mean() < 4  # with Winograd-ReLU the bound is a few LSB, not vacuous
    # the same layer with one position's shift wrong (a typical hardware bug) breaks it
    bad_cfg = cfg
    shifts = cfg.shifts.copy()
    shifts.reshape(-1)[1] += 1
    object.__setattr__(bad_cfg, "shifts", shifts)  # cached_property: overwrite the cache
    try:
        broken = integer_conv(xq, layer)
    finally:
        del bad_cfg.__dict__["shifts"]
    assert np.any(np.abs(broken - target) > bound)
    # and a requantizer whose multiplier lost its top bit
    assert np.any(np.abs(integer_conv(xq, dataclasses.replace(layer, mult=layer.mult - (1 << 14))) - target) > bound)


def naive_integer_conv(xq, layer):
    """Tile-by-tile, Python-int twin of docs/datapath.md for 2-D layers (slow, independent)."""
    cfg = layer.config
    BT = [[int(v) for v in row] for row in cfg.transforms.BT]
    AT = [[int(v) for v in row] for row in cfg.transforms.AT]
    n, m, r = cfg.n, cfg.m, cfg.r
    sh = cfg.shifts
    N, C, H, W = xq.shape
    K = layer.out_channels
    ph, pw = layer.padding
    Ho, Wo = H + 2 * ph - r + 1, W + 2 * pw - r + 1
    out = np.zeros((N, K, Ho, Wo), dtype=np.int64)
    lo, hi = signed_range(cfg.act_bits)

    def px(img, c, i, j):
        i, j = i - ph, j - pw
        return int(xq[img, c, i, j]) if 0 <= i < H and 0 <= j < W else 0

    for img in range(N):
        for ti in range(0, Ho, m):
            for tj in range(0, Wo, m):
                V = []
                for c in range(C):
                    d = [[px(img, c, ti + a, tj + b) for b in range(n)] for a in range(n)]
                    t = [[sum(BT[i][a] * d[a][b] for a in range(n)) for b in range(n)] for i in range(n)]
                    v = [[sum(t[i][b] * BT[j][b] for b in range(n)) for j in range(n)] for i in range(n)]
                    if layer.winograd_relu:
                        v = [[max(e, 0) for e in row] for row in v]
                    V.append(v)
                for k in range(K):
                    M = [[sum(int(layer.weights[k, c, i, j]) * V[c][i][j] for c in range(C)) << int(sh[i, j])
                          for j in range(n)] for i in range(n)]
                    t = [[sum(AT[a][i] * M[i][j] for i in range(n)) for j in range(n)] for a in range(m)]
                    Y = [[sum(t[a][j] * AT[b][j] for j in range(n)) for b in range(m)] for a in range(m)]
                    for a in range(m):
                        for b in range(m):
                            if ti + a < Ho and tj + b < Wo:
                                z = Y[a][b] + int(layer.bias[k])
                                s = int(layer.shift[k])
                                q = (z * int(layer.mult[k]) + ((1 << (s - 1)) if s else 0)) >> s
                                q = min(max(q, lo), hi)
                                out[img, k, ti + a, tj + b] = max(q, 0) if layer.relu else q
    return out


@pytest.mark.parametrize("m, wrelu, relu, pad", [(2, False, False, 0), (4, True, False, 1), (6, False, True, 2)])
def test_vectorised_reference_equals_naive_twin_bit_for_bit(m, wrelu, relu, pad):
    cfg = DatapathConfig(m=m, r=3, c_max=4)
    rng = np.random.default_rng(10 + m)
    xq, layer, _ = make_layer(rng, cfg, 3, 2, pad, relu, wrelu, x_shape=(1, 11, 9))
    assert np.array_equal(integer_conv(xq, layer), naive_integer_conv(xq, layer))


@pytest.mark.parametrize("dims, m", [(2, 2), (2, 6), (3, 4)])
def test_exact_float_accumulation_equals_int64(dims, m):
    cfg = DatapathConfig(dims=dims, m=m, r=3, c_max=16)
    rng = np.random.default_rng(dims * m)
    lo, hi = signed_range(cfg.act_bits)
    shape = (1, 16) + (7,) * dims
    xq = rng.integers(lo, hi + 1, size=shape)
    wl, wh = signed_range(cfg.weight_bits)
    layer = QuantizedConv(config=cfg, weights=rng.integers(wl, wh + 1, size=(4, 16) + (cfg.n,) * dims),
                          bias=rng.integers(-1000, 1000, size=4), mult=np.full(4, 1 << (cfg.mult_bits - 1)),
                          shift=np.full(4, 45), padding=1)  # fmt: skip
    assert np.array_equal(integer_conv(xq, layer, exact_float=True), integer_conv(xq, layer, exact_float=False))


def test_round_shift_is_round_half_up():
    # worked by hand from the rule (z + 2^(s−1)) >> s
    z = np.array([3, -3, 5, -5, 6, 7, -7, 4])
    s = np.array([1, 1, 2, 2, 2, 0, 0, 3])
    # 1.5→2, −1.5→−1, 1.25→1, −1.25→−1, 1.5→2, 7, −7, 0.5→1
    assert round_shift(z, s).tolist() == [2, -1, 1, -1, 2, 7, -7, 1]


def test_saturate_uses_the_full_twos_complement_range():
    assert saturate(np.array([-1000, -128, 127, 1000]), 8).tolist() == [-128, -128, 127, 127]


@given(scale=st.floats(1e-12, 1e3), bits=st.integers(4, 31))
def test_requant_params_relative_error(scale, bits):
    if scale >= 2 ** (bits - 1):
        return  # needs a left shift: the error case below
    mult, shift = requant_params(scale, bits)
    if (mult, shift) == (0, 0):  # the shift would pass 62: every output rounds to 0
        assert scale * 2.0**62 < 2 ** (bits - 1)
        return
    assert 1 << (bits - 1) <= mult < 1 << bits
    assert abs(mult * 2.0**-shift - scale) <= scale * 2.0**-bits


def test_requant_params_errors():
    with pytest.raises(ConfigError, match="finite and > 0"):
        requant_params(0.0, 15)
    with pytest.raises(ConfigError, match="left shift"):
        requant_params(1e9, 15)
    assert requant_params(1e-30, 15, max_shift=62) == (0, 0)


def test_two_layer_network_and_pooling():
    cfg = DatapathConfig(m=4, r=3, c_max=8)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 12, 12))
    xq, sx = quantize_input(x, 8)
    w1 = rng.standard_normal((8, 3, 3, 3)) / 5
    w2 = rng.standard_normal((4, 8, 3, 3)) / 8
    l1 = quantize_conv(w1, None, sx, 0.05, cfg, padding=1, relu=True, name="c1")
    l2 = quantize_conv(w2, None, 0.05, 0.05, cfg, padding=1, name="c2")
    y = run_network(xq, [l1, MaxPool(2), l2])
    assert y.shape == (2, 4, 6, 6)
    h = integer_conv(xq, l1)
    pooled = h.reshape(2, 8, 6, 2, 6, 2).max(axis=(3, 5))
    assert np.array_equal(y, integer_conv(pooled, l2))
    l2_bad = quantize_conv(w2, None, 0.07, 0.05, cfg, padding=1, name="c2")
    with pytest.raises(ConfigError, match="in_scale 0.07 but the previous convolution"):
        run_network(xq, [l1, l2_bad])


@pytest.fixture
def small_layer():
    cfg = DatapathConfig(m=2, r=3, c_max=4)
    return quantize_conv(np.ones((2, 3, 3, 3)), None, 1.0, 1.0, cfg, padding=1)


@pytest.mark.parametrize(
    "x, err, words",
    [
        (np.zeros((1, 3, 5, 5)), DataError, "must be an integer array; got dtype float64"),
        (np.full((1, 3, 5, 5), 200), DataError, r"outside the signed 8-bit range \[-128, 127\]"),
        (np.zeros((1, 2, 5, 5), dtype=np.int64), DataError, "C = 2 channels; layer conv expects 3"),
        (np.zeros((3, 5, 5), dtype=np.int64), DataError, r"input must have shape \(N, C, H, W\)"),
        (torch.zeros((1, 3, 5, 5), dtype=torch.int64), DataError, "torch tensor"),
    ],
)
def test_bad_inputs_are_named(small_layer, x, err, words):
    with pytest.raises(err, match=words):
        integer_conv(x, small_layer)


def test_bad_layers_are_named(small_layer):
    with pytest.raises(DataError, match=r"weights holds values .* outside the signed 8-bit range"):
        dataclasses.replace(small_layer, weights=small_layer.weights * 1000)
    with pytest.raises(ConfigError, match="C = 3 input channels; the datapath is sized for c_max = 2"):
        dataclasses.replace(small_layer, config=DatapathConfig(m=2, r=3, c_max=2))
    with pytest.raises(DataError, match=r"mult must be in \[0, 2\^15\)"):
        dataclasses.replace(small_layer, mult=np.array([1 << 15, 1]))
    with pytest.raises(DataError, match=r"bias must have shape \(2,\)"):
        dataclasses.replace(small_layer, bias=np.array([1, 2, 3]))
    with pytest.raises(DataError, match="must have shape"):
        quantize_conv(np.ones((2, 3, 5, 5)), None, 1.0, 1.0, small_layer.config)
    with pytest.raises(ConfigError, match="in_scale and out_scale must be finite"):
        quantize_conv(np.ones((2, 3, 3, 3)), None, 0.0, 1.0, small_layer.config)


def test_weights_are_read_only(small_layer):
    with pytest.raises(ValueError):
        small_layer.weights[0, 0, 0, 0] = 1


@pytest.mark.parametrize("dims, m, scale", [(2, 2, 4), (3, 2, 8), (2, 4, 576)])
def test_integer_winograd_equals_exact_direct_convolution(dims, m, scale):
    """Kernels chosen so U = G g Gᵀ is integral: the integer datapath must then equal the
    exact integer direct convolution, with no quantization at all (an oracle independent
    of every float computation)."""
    import itertools

    from winnow.model.algebra.winograd_conv import kernel_to_winograd

    cfg = DatapathConfig(dims=dims, m=m, r=3, c_max=3, weight_bits=16, max_position_shift=0,
                         act_bits=6, bias_bits=16, mult_bits=1)
    rng = np.random.default_rng(dims * 10 + m)
    g = rng.integers(-2, 3, size=(2, 3) + (3,) * dims) * scale
    u = kernel_to_winograd(g.astype(np.float64), cfg.alg) * cfg.transforms.fold(dims)
    assert np.allclose(u, np.rint(u)) and np.abs(u).max() < 2**15
    layer = QuantizedConv(config=cfg, weights=np.rint(u).astype(np.int64), bias=np.zeros(2, np.int64),
                          mult=np.ones(2, np.int64), shift=np.zeros(2, np.int64), padding=1)
    size = (5, 7, 6)[:dims]
    x = rng.integers(-32, 32, size=(1, 3) + size)
    from winnow.model.integer.reference import integer_conv_biased

    z = integer_conv_biased(x, layer)
    xp = np.pad(x, ((0, 0), (0, 0)) + ((1, 1),) * dims)
    direct = np.zeros((1, 2) + size, dtype=np.int64)
    for k in range(2):
        for pos in itertools.product(*(range(s) for s in size)):
            win = xp[(0, slice(None)) + tuple(slice(p, p + 3) for p in pos)]
            direct[(0, k) + pos] = int((win * g[k]).sum())
    assert np.array_equal(z, direct)
