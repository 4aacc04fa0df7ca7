"""Multiplication accounting against counts worked out by hand."""

import pytest
import torch
import torch.nn as nn

from winnow.model.accounting import accounting_markdown, count_multiplications
from winnow.model.nn.layers import WinogradConv2d
from winnow.model.pruning.winograd import prune_layer


def test_counts_for_one_tile_by_hand():
    layer = WinogradConv2d(3, 5, 3, padding=0, m=2)  # 4×4 input → one F(2,3) tile, 2×2 outputs
    prune_layer(layer, 0.25)  # 0.25 · 5·3·16 = 60 weights kept
    x = torch.randn(7, 3, 4, 4)
    acc = count_multiplications(nn.Sequential(layer), x)
    row = acc["layers"][0]
    assert row["tiles"] == 1
    assert row["direct"] == 5 * 3 * 2 * 2 * 9
    assert row["dense_winograd"] == 5 * 3 * 16
    assert row["sparse_weights"] == 60
    assert row["activation_density"] == 1.0  # random inputs: no transformed value is exactly 0
    assert row["sparse_weights_activations"] == pytest.approx(60)
    assert acc["reduction_vs_direct"]["sparse_weights"] == pytest.approx(540 / 60)


def test_activation_sparsity_is_counted_per_channel():
    layer = WinogradConv2d(2, 4, 3, padding=0, m=2, winograd_relu=True)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 1] = torch.randn(4, 4)  # channel 0 is all zero: its V is zero everywhere
    acc = count_multiplications(nn.Sequential(layer), x)
    row = acc["layers"][0]
    v1 = (layer.alg.BT_f64 @ x[0, 1].double().numpy() @ layer.alg.BT_f64.T)
    nonzero_c1 = int((v1 > 0).sum())  # Winograd-ReLU keeps the positive ones
    assert row["sparse_weights_activations"] == pytest.approx(4 * nonzero_c1)  # every weight kept: 4 output channels
    assert row["activation_density"] == pytest.approx(nonzero_c1 / 32)


def test_other_layers_are_listed_not_hidden():
    net = nn.Sequential(WinogradConv2d(1, 2, 3, padding=1, m=2), nn.Conv2d(2, 2, 3, stride=2), nn.Flatten(),
                        nn.Linear(2 * 3 * 3, 4))
    acc = count_multiplications(net, torch.randn(2, 1, 8, 8))
    kinds = [o["type"] for o in acc["other_layers"]]
    assert kinds == ["Conv2d", "Linear"]
    assert acc["other_layers"][1]["multiplications"] == 18 * 4
    assert acc["other_layers"][0]["multiplications"] == 2 * 2 * 9 * 3 * 3
    md = accounting_markdown(acc)
    assert "Not in the Winograd totals" in md and "| **reduction vs direct** |" in md
