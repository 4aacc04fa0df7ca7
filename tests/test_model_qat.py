"""Fake quantization equals the integer reference; integer networks; bad models."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from winnow.model.nn.convert import convert_to_winograd
from winnow.model.errors import ConfigError
from winnow.model.integer.network import build_integer_network
from winnow.model.nn.layers import winograd_layers
from winnow.model.pruning.winograd import Pruner
from winnow.model.nn.qat import prepare_qat


def tiny_net(dims=2, m=4, wrelu=False, seed=0):
    torch.manual_seed(seed)
    conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
    size = 12 if dims == 2 else 8
    net = nn.Sequential(conv(2, 6, 3, padding=1), nn.ReLU(), pool(2), conv(6, 8, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * (size // 2) ** dims, 5))
    convert_to_winograd(net, m=m, winograd_relu=wrelu)
    return net, (2,) + (size,) * dims


@pytest.mark.parametrize("dims, m, wrelu, density", [(2, 2, False, 1.0), (2, 4, True, 0.3), (2, 6, False, 0.5),
                                                      (3, 2, True, 0.4)])
def test_float64_fake_quant_equals_integer_reference(dims, m, wrelu, density):
    net, shape = tiny_net(dims, m, wrelu)
    Pruner(net).prune(density)
    x = torch.rand((40,) + shape)
    prepare_qat(net, x[:20])
    net = net.double().eval()
    with torch.no_grad():
        fq = net(x.double()).numpy()
    inet = build_integer_network(net)
    logits = inet.run(x.double())
    # the same real numbers: the integer logits times their scale equal the fake-quant logits
    assert np.allclose(logits, fq, rtol=1e-9, atol=1e-9)
    assert np.array_equal(logits.argmax(1), fq.argmax(1))
    # each convolution really is on the integer datapath
    convs = inet.conv_layers()
    assert len(convs) == 2 and convs[0].relu == (not wrelu)  # Winograd-ReLU moved the first ReLU
    assert convs[1].winograd_relu == wrelu
    assert all(np.count_nonzero(c.weights) <= density * c.weights.size + 1 for c in convs)


def test_qat_trains_with_straight_through_gradients():
    net, shape = tiny_net()
    x = torch.rand((16,) + shape)
    prepare_qat(net, x)
    out = net(x)
    out.sum().backward()
    for _, layer in winograd_layers(net):
        assert layer.weight.grad is not None and torch.count_nonzero(layer.weight.grad) > 0


def test_scales_are_chained():
    net, shape = tiny_net()
    report = prepare_qat(net, torch.rand((8,) + shape))
    assert [r["kind"] for r in report] == ["winograd_conv", "winograd_conv", "linear"]
    assert report[0]["out_scale"] == report[1]["in_scale"]
    assert report[1]["out_scale"] == report[2]["in_scale"]


def test_unsupported_models_are_named():
    net, shape = tiny_net()
    with pytest.raises(ConfigError, match="layer 0 has no quantization"):
        build_integer_network(net)
    net2 = nn.Sequential(*list(net), nn.Softmax(dim=1))
    prepare_qat(net2, torch.rand((4,) + shape))
    with pytest.raises(ConfigError, match="must be the last layer"):
        build_integer_network(net2)
    net3 = nn.Sequential(net[0], nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(6 * 144, 2))
    prepare_qat(net3, torch.rand((4,) + shape))
    with pytest.raises(ConfigError, match=r"layer 1 \(BatchNorm2d\) is not supported"):
        build_integer_network(net3)
    with pytest.raises(ConfigError, match="no Winograd or linear layer"):
        prepare_qat(nn.Sequential(nn.ReLU()), torch.rand(2, 3))


def test_impossible_datapath_is_reported():
    net, shape = tiny_net(m=6)
    with pytest.raises(ConfigError, match=r"> 64"):
        prepare_qat(net, torch.rand((4,) + shape), act_bits=16, weight_bits=16)
