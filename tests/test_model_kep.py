"""KEP: structured per-plane patterns, the regularizer, and the sparse convolution."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.errors import ConfigError
from winnow.model.pruning.kep import KEP, build_patterns, pattern_sparse_conv2d


def test_patterns_come_from_a_small_library():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    pm = build_patterns(w, keep=4, library_size=6)
    assert pm.library.shape[0] <= 6 and pm.library.sum(axis=(1, 2)).tolist() == [4] * pm.library.shape[0]
    assert pm.mask.shape == (16, 8, 3, 3) and np.all(pm.mask.sum(axis=(2, 3)) == 4)
    # every plane gets the library pattern that keeps most of its magnitude
    a = w.abs().numpy().reshape(128, 9)
    kept = (a * pm.mask.reshape(128, 9)).sum(1)
    best = (a @ pm.library.reshape(-1, 9).T).max(1)
    assert np.allclose(kept, best)
    # index overhead by hand: 128 planes × ⌈log2 L⌉ bits + L·9 library bits
    L = pm.library.shape[0]
    assert pm.index_bits() == 128 * math.ceil(math.log2(L)) + L * 9
    assert pm.unstructured_index_bits() == 128 * 4 * 4  # 4 kept elements × ⌈log2 9⌉ = 4 bits
    assert pm.index_bits() < pm.unstructured_index_bits()


@pytest.mark.parametrize("pad", [0, 1])
def test_sparse_convolution_equals_dense_and_skips_zero_taps(pad):
    torch.manual_seed(1)
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64)
    w = torch.randn(6, 5, 3, 3, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    pm = build_patterns(w, keep=3, library_size=4)
    wm = w * torch.as_tensor(pm.mask)
    y, macs = pattern_sparse_conv2d(x, wm, pm.mask, b, padding=pad)
    ref = F.conv2d(x, wm, b, padding=pad)
    assert torch.allclose(y, ref, atol=1e-12)
    assert macs == int(pm.mask.sum()) * 2 * ref.shape[2] * ref.shape[3]  # 1/3 of the dense 9 taps
    assert macs * 3 == 6 * 5 * 9 * 2 * ref.shape[2] * ref.shape[3]


def test_regularizer_shrinks_the_unimportant_elements_and_masks_hold():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    x = torch.randn(16, 2, 8, 8)
    target = torch.randn(16, 4, 8, 8)

    def outside_mass(lam):
        model = nn.Sequential(*[m for m in net])  # same modules
        state = {k: v.clone() for k, v in net.state_dict().items()}
        kep = KEP(model, keep=4, library_size=8, lam=lam)
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        for _ in range(60):
            opt.zero_grad()
            (F.mse_loss(model(x), target) + kep.penalty()).backward()
            opt.step()
        mass = sum(float((c.weight.detach() * torch.as_tensor(~kep.patterns[id(c)].mask)).abs().sum()) for c in kep.convs)
        net.load_state_dict(state)
        return mass

    assert outside_mass(0.05) < 0.5 * outside_mass(0.0)
    kep = KEP(net, keep=4, library_size=8, lam=0.0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    kep.attach(opt)
    kep.prune()
    for _ in range(5):
        opt.zero_grad()
        F.mse_loss(net(x), target).backward()
        opt.step()
    for c in kep.convs:
        assert torch.all(c.weight[torch.as_tensor(~kep.patterns[id(c)].mask)] == 0)
    rep = kep.report()
    assert rep["parameter_reduction"] == pytest.approx(9 / 4)
    assert rep["index_bits"] < rep["index_bits_unstructured"]


def test_bad_kep_settings():
    net = nn.Sequential(nn.Conv2d(2, 2, 3))
    with pytest.raises(ConfigError, match=r"keep must be in \[1, 9\]"):
        KEP(net, keep=10)
    with pytest.raises(ConfigError, match="lam must be >= 0"):
        KEP(net, lam=-1)
    with pytest.raises(ConfigError, match="no square Conv2d"):
        KEP(nn.Sequential(nn.Conv2d(2, 2, 1)))
