"""Filter pruning by distribution fitting against plain L1 selection."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from winnow.model.errors import ConfigError
from winnow.model.pruning.filter import conv_flops, ks_distance, prune_filters, select_distribution_fit, select_l1
from winnow.model.data.nets import SmallVGG


def test_distribution_fit_keeps_the_norm_distribution():
    rng = np.random.default_rng(0)
    for trial in range(20):
        norms = rng.lognormal(size=64)
        for keep in (8, 16, 32, 48):
            fit = select_distribution_fit(norms, keep)
            l1 = select_l1(norms, keep)
            assert len(set(fit)) == keep and len(set(l1)) == keep
            assert ks_distance(norms[fit], norms) <= 1 / (2 * keep) + 1e-12  # evenly spaced quantiles
            assert ks_distance(norms[fit], norms) < ks_distance(norms[l1], norms)
            assert np.all(norms[l1] >= np.sort(norms)[-keep])  # L1 keeps exactly the largest


def test_ks_distance_by_hand():
    assert ks_distance(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert ks_distance(np.array([3.0]), np.array([1.0, 2.0])) == 1.0
    assert ks_distance(np.array([2.0]), np.array([1.0, 2.0])) == 0.5


@pytest.mark.parametrize("method", ["l1", "distribution_fit"])
def test_physical_removal_gives_the_same_function_on_kept_channels(method):
    torch.manual_seed(0)
    net = SmallVGG(width=8)
    x = torch.randn(3, 1, 28, 28)
    small, report = prune_filters(net, 0.5, method=method)
    assert [r["kept"] for r in report] == [4, 4, 8, 8]
    assert small[0].weight.shape == (4, 1, 3, 3) and small[2].weight.shape == (4, 4, 3, 3)
    assert small[11].in_features == 8 * 7 * 7
    # the pruned model equals the original with the removed filters' outputs zeroed
    masked = SmallVGG(width=8)
    masked.load_state_dict(net.state_dict())
    with torch.no_grad():
        for r in report:
            conv = masked[int(r["layer"])]
            drop = sorted(set(range(r["filters"])) - set(r["kept_indices"]))
            conv.weight[drop] = 0
            conv.bias[drop] = 0
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    assert conv_flops(small, x) < 0.35 * conv_flops(net, x)


def test_equal_flops_for_both_methods():
    net = SmallVGG(width=8)
    x = torch.randn(1, 1, 28, 28)
    a, _ = prune_filters(net, 0.25, "l1")
    b, _ = prune_filters(net, 0.25, "distribution_fit")
    assert conv_flops(a, x) == conv_flops(b, x)


def test_bad_requests_are_named():
    net = SmallVGG(width=4)
    with pytest.raises(ConfigError, match=r"ratio must be in \[0, 1\) \(1 would remove every filter"):
        prune_filters(net, 1.0)
    with pytest.raises(ConfigError, match="method must be one of"):
        prune_filters(net, 0.5, method="random")
    with pytest.raises(ConfigError, match="nn.Sequential"):
        prune_filters(nn.Module(), 0.5)
    odd = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3))
    with pytest.raises(ConfigError, match="BatchNorm2d would need rewiring"):
        prune_filters(odd, 0.5)
