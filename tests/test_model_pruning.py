"""Winograd-domain pruning: densities, ranking domain, masks that hold, spatial-Winograd step 1."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.nn.convert import convert_to_winograd
from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv2d, winograd_layers
from winnow.model.training.optim import ScaledAdam, natural_scale, winograd_adam
from winnow.model.pruning.spatial_winograd import SpatialStructuredPruner, winograd_supports
from winnow.model.pruning.winograd import (
    Pruner,
    gradient_factors,
    importance_factors,
    iterative_schedule,
    prune_layer,
    transfer_spatial_zeros,
)


def small_net(m=4, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1))
    convert_to_winograd(net, m=m)
    return net


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 1.0])
def test_prune_layer_reaches_the_density(density):
    layer = WinogradConv2d(4, 8, 3, m=4)
    prune_layer(layer, density)
    assert layer.density() == pytest.approx(round(density * layer.mask.numel()) / layer.mask.numel())
    assert torch.all(layer.weight[layer.mask == 0] == 0)


def test_ranking_uses_output_referred_magnitude():
    layer = WinogradConv2d(1, 1, 3, m=4)
    f = importance_factors(layer)
    with torch.no_grad():
        layer.weight.copy_(1.0 / f)  # every weight moves the output equally ...
        layer.weight[0, 0, 2, 3] *= 0.5  # ... except one, which matters half as much
    prune_layer(layer, 35 / 36)
    assert layer.mask[0, 0, 2, 3] == 0 and int(layer.mask.sum()) == 35
    # plain |U| would have pruned the position with the smallest magnitude instead
    assert (1.0 / f).argmin() != 2 * 6 + 3


def test_importance_is_invariant_to_rescaling_rows_of_b_and_g():
    """|U_p|·F_p does not change if row i of Bᵀ is scaled by s and row i of G by 1/s."""
    from winnow.model.algebra.cook_toom import winograd

    alg = winograd(4, 3)
    s = np.array([3.0, 0.5, 2.0, 1.0, 7.0, 0.25])
    G2, BT2 = alg.G_f64 / s[:, None], alg.BT_f64 * s[:, None]
    g = np.random.default_rng(0).standard_normal((3, 3))
    U1, U2 = alg.G_f64 @ g @ alg.G_f64.T, G2 @ g @ G2.T
    a = np.linalg.norm(alg.AT_f64, axis=0)
    f1 = np.outer(a * np.linalg.norm(alg.BT_f64, axis=1), a * np.linalg.norm(alg.BT_f64, axis=1))
    f2 = np.outer(a * np.linalg.norm(BT2, axis=1), a * np.linalg.norm(BT2, axis=1))
    assert np.allclose(np.abs(U1) * f1, np.abs(U2) * f2)
    assert not np.allclose(np.abs(U1), np.abs(U2))


@pytest.mark.parametrize("opt_name", ["adam", "scaled_adam", "sgd_momentum"])
@pytest.mark.parametrize("scale", [False, True])
def test_masks_hold_through_retraining(opt_name, scale):
    net = small_net()
    pruner = Pruner(net, scale_gradients=scale)
    pruner.prune(0.3)
    opt = {"adam": lambda: torch.optim.Adam(net.parameters(), 1e-2),
           "scaled_adam": lambda: winograd_adam(net, 1e-2),
           "sgd_momentum": lambda: torch.optim.SGD(net.parameters(), 1e-4, momentum=0.9, weight_decay=1e-3)}[opt_name]()
    pruner.attach(opt)
    x = torch.randn(4, 2, 8, 8)
    for _ in range(5):
        opt.zero_grad()
        (net(x) ** 2).mean().backward()
        opt.step()
    for _, layer in winograd_layers(net):
        pruned = layer.mask == 0
        assert torch.all(layer.weight[pruned] == 0)
        for v in opt.state[layer.weight].values():
            if torch.is_tensor(v) and v.shape == pruned.shape:
                assert torch.all(v[pruned] == 0)  # no momentum left to revive a pruned weight
        assert torch.any(layer.weight[~pruned] != 0)
    assert pruner.density() == pytest.approx(0.3, abs=0.01)


def test_gradient_factors_scale_gradients():
    net = small_net()
    layer = winograd_layers(net)[0][1]
    x = torch.randn(2, 2, 8, 8)
    (net(x) ** 2).sum().backward()
    plain = layer.weight.grad.clone()
    layer.weight.grad = None
    p = Pruner(net, scale_gradients=True)
    (net(x) ** 2).sum().backward()
    assert torch.allclose(layer.weight.grad, plain * gradient_factors(layer), rtol=1e-5, atol=1e-8)
    assert float(gradient_factors(layer).max()) == 1.0
    p.remove()


def test_iterative_schedule_and_bad_densities():
    sched = iterative_schedule(0.1, 3)
    assert sched[-1] == pytest.approx(0.1) and sched[0] > sched[1] > sched[2]
    assert sched[0] == pytest.approx(0.1 ** (1 / 3))
    for bad in (0, -0.5, 1.5, True, "0.3"):
        with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
            Pruner(small_net()).prune(bad)
    with pytest.raises(ConfigError, match="no Winograd layers"):
        Pruner(nn.Sequential(nn.Linear(2, 2)))


def test_winograd_supports_f23():
    s = winograd_supports(2, 3, 2)  # G rows: [1,0,0], [½,½,½], [½,−½,½], [0,0,1]
    assert s.shape == (16, 3, 3)
    assert s[0].sum() == 1 and s[0][0, 0]  # U[0,0] = g[0,0]
    assert s[15].sum() == 1 and s[15][2, 2]
    assert s[5].sum() == 9  # an interior position depends on every spatial weight


@pytest.mark.parametrize("m", [2, 4])
def test_spatial_structured_pruning_transfers_exact_zeros(m):
    torch.manual_seed(m)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    sp = SpatialStructuredPruner(net, m=m)
    res = sp.prune(0.7)
    x = torch.randn(2, 3, 8, 8)
    ref = net(x)
    convert_to_winograd(net, m=m)
    transfer_spatial_zeros(net)
    for r, (_, layer) in zip(res, winograd_layers(net)):
        assert layer.density() == pytest.approx(r.winograd_density, abs=1e-6)
        assert 0.7 <= layer.density() < 0.8
        assert r.spatial_density < 1.0
    assert torch.allclose(net(x), ref, atol=1e-5)  # converting the pruned model changes nothing


def test_scaled_adam_with_unit_scale_is_adam():
    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    b = nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    oa = torch.optim.Adam(a.parameters(), 1e-2)
    ob = ScaledAdam(b.parameters(), 1e-2)
    x = torch.randn(8, 4)
    for _ in range(4):
        for mdl, o in ((a, oa), (b, ob)):
            o.zero_grad()
            (mdl(x) ** 2).sum().backward()
            o.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


def test_natural_scale_matches_the_spread_of_u():
    layer = WinogradConv2d(64, 64, 3, m=4)
    with torch.no_grad():
        layer.set_spatial_weight(torch.randn(64, 64, 3, 3))
    std = layer.weight.detach().std(dim=(0, 1))
    ns = natural_scale(layer)
    assert torch.allclose(std / std.max(), ns, rtol=0.1)
