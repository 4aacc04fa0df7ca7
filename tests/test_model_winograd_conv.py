"""Float Winograd convolution (NumPy and torch) against torch.nn.functional.conv2d/conv3d."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from winnow.model.errors import ConfigError, DataError
from winnow.model.algebra.winograd_conv import winograd_conv

# float64 round-off of a Winograd tile grows with the transform constants: a bound of
# 1e-9 relative to the output's scale leaves 3 orders of magnitude above the largest
# error seen for F(6,5) (the worst tile below) and 6 below anything a bug produces.
REL_TOL = 1e-9


def torch_conv(x, w, padding, bias=None):
    conv = F.conv2d if w.ndim == 4 else F.conv3d
    b = None if bias is None else torch.from_numpy(bias)
    return conv(torch.from_numpy(x), torch.from_numpy(w), b, padding=padding).numpy()


def assert_close(y, ref):
    assert y.shape == ref.shape
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.abs(y - ref).max() <= REL_TOL * scale


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("padding", [0, 1, 2, (0, 2)])
def test_2d_matches_torch(m, r, padding):
    rng = np.random.default_rng(m * 10 + r)
    x = rng.standard_normal((2, 3, 13, 10))
    w = rng.standard_normal((4, 3, r, r))
    b = rng.standard_normal(4)
    ref = torch_conv(x, w, padding, b)
    assert_close(winograd_conv(x, w, padding, m=m, bias=b), ref)
    yt = winograd_conv(torch.from_numpy(x), torch.from_numpy(w), padding, m=m, bias=torch.from_numpy(b))
    assert_close(yt.numpy(), ref)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("padding", [0, 1, (1, 0, 2)])
def test_3d_matches_torch(m, padding):
    rng = np.random.default_rng(m)
    x = rng.standard_normal((2, 2, 7, 9, 6))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    ref = torch_conv(x, w, padding)
    assert_close(winograd_conv(x, w, padding, m=m), ref)
    assert_close(winograd_conv(torch.from_numpy(x), torch.from_numpy(w), padding, m=m).numpy(), ref)


@given(
    m=st.sampled_from([1, 2, 3, 4, 6]),
    r=st.sampled_from([1, 2, 3, 5]),
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    k=st.integers(1, 3),
    h=st.integers(1, 15),
    w=st.integers(1, 15),
    ph=st.integers(0, 3),
    pw=st.integers(0, 3),
    seed=st.integers(0, 2**31),
)
def test_2d_property_any_shape_and_padding(m, r, n, c, k, h, w, ph, pw, seed):
    if h + 2 * ph < r or w + 2 * pw < r:
        return  # empty output: covered by the error test below
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c, r, r))
    assert_close(winograd_conv(x, wt, (ph, pw), m=m), torch_conv(x, wt, (ph, pw)))


@given(
    m=st.sampled_from([2, 4]),
    size=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    seed=st.integers(0, 2**31),
)
def test_3d_property_any_shape_and_padding(m, size, pad, seed):
    if any(s + 2 * p < 3 for s, p in zip(size, pad)):
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2) + size)
    wt = rng.standard_normal((2, 2, 3, 3, 3))
    assert_close(winograd_conv(x, wt, pad, m=m), torch_conv(x, wt, pad))


def test_torch_gradients_match_conv2d():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 3, 9, 7))
    w0 = rng.standard_normal((4, 3, 3, 3))
    grads = []
    for fn in (lambda x, w: winograd_conv(x, w, 1, m=4), lambda x, w: F.conv2d(x, w, padding=1)):
        x = torch.tensor(x0, requires_grad=True)
        w = torch.tensor(w0, requires_grad=True)
        (fn(x, w) ** 2).sum().backward()
        grads.append((x.grad.numpy(), w.grad.numpy()))
    for a, b in zip(*grads):
        assert_close(a, b)


def test_winograd_relu_is_relu_on_the_transformed_tiles():
    # Liu & Pool's Winograd-ReLU: y = Aᵀ[U ⊙ relu(Bᵀ d B)]A, checked against a per-tile loop
    from winnow.model.algebra.cook_toom import winograd

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 4, 4))  # exactly one F(2,3) tile, no padding
    w = rng.standard_normal((1, 2, 3, 3))
    alg = winograd(2, 3)
    G, BT, AT = alg.G_f64, alg.BT_f64, alg.AT_f64
    y = sum(AT @ ((G @ w[0, c] @ G.T) * np.maximum(BT @ x[0, c] @ BT.T, 0)) @ AT.T for c in range(2))
    got = winograd_conv(x, w, 0, m=2, winograd_relu=True)
    assert_close(got[0, 0], y)
    assert np.abs(got - torch_conv(x, w, 0)).max() > 1e-3  # it really changes the function


@pytest.mark.parametrize(
    "xshape, wshape, padding, err, words",
    [
        ((1, 3, 8, 8), (4, 2, 3, 3), 0, DataError, "C = 3 channels"),
        ((1, 3, 2, 8), (4, 3, 3, 3), 0, DataError, "smaller than the kernel"),
        ((1, 3, 8, 8), (4, 3, 3, 3), -1, ConfigError, "padding must be >= 0"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1, 1), ConfigError, "must have 2 entries"),
        ((1, 3, 8, 8), (4, 3, 3, 5), 0, ConfigError, "cubic kernel"),
        ((3, 8, 8), (4, 3, 3, 3), 0, DataError, "must have 4 dims"),
        ((1, 3, 8), (4, 3, 3), 0, DataError, r"weight must have shape \(K, C, r, r\)"),
    ],
)
def test_bad_shapes_are_named(xshape, wshape, padding, err, words):
    with pytest.raises(err, match=words):
        winograd_conv(np.zeros(xshape), np.zeros(wshape), padding, m=2)


@pytest.mark.parametrize("m, size, padding", [
    (2, (13, 10), 1), (4, (13, 10), 1), (6, (13, 10), 1),   # ragged last tiles
    (2, (7, 9), 0), (4, (11, 5), (2, 0)), (6, (9, 14), 2),
    (2, (5, 7, 6), 1), (4, (7, 5, 9), (0, 1, 2)),           # 3-D
])  # fmt: skip
@pytest.mark.parametrize("winograd_relu", [False, True])
def test_separable_torch_path_equals_the_kronecker_path(m, size, padding, winograd_relu):
    # the torch training path (separable transforms, one bmm) against the Kronecker path the
    # integer reference shares: forward and the gradients wrt the input and U, float64
    from winnow.model.algebra.cook_toom import winograd
    from winnow.model.algebra.winograd_conv import winograd_conv_from_u

    alg = winograd(m, 3)
    d = len(size)
    g = torch.Generator().manual_seed(m * 100 + d)
    x = torch.randn((2, 3) + size, dtype=torch.float64, generator=g, requires_grad=True)
    u = torch.randn((4, 3) + (alg.n,) * d, dtype=torch.float64, generator=g, requires_grad=True)
    mask = (torch.rand(u.shape, generator=g) < 0.6).double()
    out = []
    for path in ("kron", "separable"):
        y = winograd_conv_from_u(x, u * mask, alg, padding, winograd_relu, path=path)
        dy = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
        gx, gu = torch.autograd.grad((y * dy).sum(), (x, u))
        out.append([t.detach().numpy() for t in (y, gx, gu)])
    for a, b in zip(*out):
        assert_close(b, a)
    assert np.all(out[1][2][mask.numpy() == 0] == 0)  # pruned positions get no gradient
    assert winograd_conv_from_u(x, u, alg, padding, path="auto").shape == out[0][0].shape


def test_path_names_are_checked():
    from winnow.model.algebra.cook_toom import winograd
    from winnow.model.algebra.winograd_conv import winograd_conv_from_u

    alg = winograd(2, 3)
    x, u = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4))
    with pytest.raises(ConfigError, match="path must be"):
        winograd_conv_from_u(x, u, alg, path="fast")
    with pytest.raises(ConfigError, match="NumPy arrays take 'kron'"):
        winograd_conv_from_u(x, u, alg, path="separable")
