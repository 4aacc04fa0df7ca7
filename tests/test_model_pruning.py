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
    STEP_RULES,
    Pruner,
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
@pytest.mark.parametrize("rule", list(STEP_RULES))
def test_masks_hold_through_retraining(opt_name, rule):
    net = small_net()
    pruner = Pruner(net, step_rule=rule)
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


def yu_factors_by_formula(m: int) -> np.ndarray:
    """(F/F_min)^-1.5 with F_ij = ‖Aᵀ[:, i]‖ ‖Bᵀ[i, :]‖ ‖Aᵀ[:, j]‖ ‖Bᵀ[j, :]‖, from the transforms directly."""
    from winnow.model.algebra.cook_toom import winograd

    alg = winograd(m, 3)
    f1 = np.linalg.norm(alg.AT_f64, axis=0) * np.linalg.norm(alg.BT_f64, axis=1)
    F = np.outer(f1, f1)
    return (F / F.min()) ** -1.5


def _train(rule, opt_name, steps, m=4, seed=0):
    """``steps`` optimizer steps of small_net with step rule ``rule``; (initial, final) Winograd weights, layer 0."""
    net = small_net(m=m, seed=seed).double()
    pruner = Pruner(net, step_rule=rule)
    opt = {"adam": lambda: torch.optim.Adam(net.parameters(), 1e-3),
           "scaled_adam": lambda: winograd_adam(net, 1e-3),
           "sgd": lambda: torch.optim.SGD(net.parameters(), 1e-5),  # plain SGD on U diverges at 1e-3
           "sgd_momentum": lambda: torch.optim.SGD(net.parameters(), 1e-5, momentum=0.9)}[opt_name]()
    pruner.attach(opt)
    gen = torch.Generator().manual_seed(seed)
    layer = winograd_layers(net)[0][1]
    w0 = layer.weight.detach().clone()
    for _ in range(steps):
        x = torch.randn(4, 2, 8, 8, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        (net(x) ** 2).mean().backward()
        opt.step()
    return w0, layer.weight.detach().clone()


@pytest.mark.parametrize("opt_name", ["adam", "scaled_adam", "sgd", "sgd_momentum"])
def test_yu_step_rule_changes_training(opt_name):
    """The adjustment is not a no-op under any optimizer: 20 steps end far apart (the earlier gradient scaling
    left Adam's weights equal to eps level), and the positions of large F moved less."""
    w0, plain = _train("none", opt_name, 20)
    _, yu = _train("yu2019", opt_name, 20)
    moved_plain, moved_yu = (plain - w0).abs(), (yu - w0).abs()
    assert float((yu - plain).abs().max()) > 1e-2 * float(moved_plain.max())
    f = torch.tensor(yu_factors_by_formula(4))  # 1 at the least important position, smaller elsewhere
    small, large = f == 1, f < 0.05
    ratio = moved_yu.mean(dim=(0, 1)) / moved_plain.mean(dim=(0, 1))
    assert float(ratio[large].max()) < 0.2 < float(ratio[small].min())


def test_gradient_scaling_is_a_no_op_under_adam():
    """Why the rule scales the step: a fixed per-element gradient factor changes Adam's weights only through eps."""
    torch.manual_seed(0)
    a, b = nn.Linear(6, 4).double(), nn.Linear(6, 4).double()
    b.load_state_dict(a.state_dict())
    factor = torch.rand(4, 6, dtype=torch.float64) * 0.99 + 0.01
    b.weight.register_hook(lambda g: g * factor)
    oa, ob = torch.optim.Adam(a.parameters(), 1e-2, eps=1e-12), torch.optim.Adam(b.parameters(), 1e-2, eps=1e-12)
    x = torch.randn(16, 6, dtype=torch.float64)
    for _ in range(100):
        for mdl, o in ((a, oa), (b, ob)):
            o.zero_grad()
            (mdl(x) ** 2).sum().backward()
            o.step()
    assert torch.allclose(a.weight, b.weight, rtol=0, atol=1e-8)


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_first_step_ratio_is_the_released_factor(m, opt_name):
    """SGD without momentum (and Adam, whose first step is lr·sign(g)): the first update of U_p under yu2019 is
    (F_p/F_min)^-1.5 times the plain one, F computed here from Aᵀ and Bᵀ."""
    w0, plain = _train("none", opt_name, 1, m=m)
    _, yu = _train("yu2019", opt_name, 1, m=m)
    d_plain, d_yu = plain - w0, yu - w0
    ok = d_plain.abs() > 1e-9 * float(d_plain.abs().max())
    expected = torch.tensor(yu_factors_by_formula(m)).expand_as(d_plain)
    assert torch.allclose((d_yu / torch.where(ok, d_plain, torch.ones_like(d_plain)))[ok], expected[ok],
                          rtol=1e-6, atol=0)


def test_sgd_momentum_matches_the_released_gradient_division():
    """Yu et al.'s code divides the gradient by (F/F_min)^1.5 and steps with SGD + momentum; scaling the update
    instead gives the same weights (the momentum recursion is linear), step after step."""
    net_a, net_b = small_net().double(), small_net().double()
    div = torch.tensor(yu_factors_by_formula(4)) ** -1  # (F/F_min)^1.5
    pa = Pruner(net_a, step_rule="yu2019")
    pb = Pruner(net_b)  # no step rule: the gradient is divided by hand, as the released code does
    for _, layer in winograd_layers(net_b):
        layer.weight.register_hook(lambda g: g / div)
    w0 = [layer.weight.detach().clone() for _, layer in winograd_layers(net_a)]
    oa = torch.optim.SGD(net_a.parameters(), 1e-3, momentum=0.9)
    ob = torch.optim.SGD(net_b.parameters(), 1e-3, momentum=0.9)
    pa.attach(oa)
    pb.attach(ob)
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        x = torch.randn(4, 2, 8, 8, generator=gen, dtype=torch.float64)
        for net, o in ((net_a, oa), (net_b, ob)):
            o.zero_grad()
            (net(x) ** 2).mean().backward()
            o.step()
    for w, (_, a), (_, b) in zip(w0, winograd_layers(net_a), winograd_layers(net_b)):
        assert float((a.weight.detach() - w).abs().max()) > 1e-6
        assert torch.allclose(a.weight, b.weight, rtol=1e-9, atol=1e-12)


def test_step_rule_and_criterion_are_checked():
    with pytest.raises(ConfigError, match="step_rule must be one of none, yu2019"):
        Pruner(small_net(), step_rule="yu")
    with pytest.raises(ConfigError, match="criterion must be one of importance, plain"):
        Pruner(small_net(), criterion="l1")


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("density", [0.1, 0.3, 0.5])
def test_plain_criterion_keeps_exactly_the_top_u_set_per_layer(m, density):
    """liu_pool's ranking: in every layer the kept set is the round(density·N) largest |U| (Liu & Pool 2018)."""
    net = small_net(m=m, seed=m)
    weights = [layer.weight.detach().numpy().copy() for _, layer in winograd_layers(net)]
    Pruner(net, criterion="plain").prune(density)
    for w, (_, layer) in zip(weights, winograd_layers(net)):
        a = np.abs(w).ravel()
        k = round(density * a.size)
        top = set(np.argsort(-a, kind="stable")[:k].tolist())
        assert np.sort(a)[::-1][k - 1] > np.sort(a)[::-1][k]  # no tie at the threshold: the set is unique
        kept = set(np.flatnonzero(layer.mask.numpy().ravel()).tolist())
        assert kept == top
        assert np.array_equal(layer.weight.detach().numpy().ravel()[sorted(top)], w.ravel()[sorted(top)])


def test_the_two_criteria_keep_different_sets_at_f43():
    net_a, net_b = small_net(m=4), small_net(m=4)
    Pruner(net_a, criterion="plain").prune(0.3)
    Pruner(net_b).prune(0.3)
    (_, la), (_, lb) = winograd_layers(net_a)[0], winograd_layers(net_b)[0]
    agree = float((la.mask * lb.mask).sum() / la.mask.sum())
    assert agree < 0.9


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
