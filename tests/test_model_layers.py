"""Native Winograd layers and the converter."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.nn.convert import convert_to_winograd
from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv2d, WinogradConv3d, winograd_layers


@pytest.mark.parametrize("m, r, pad", [(2, 3, 1), (4, 3, 0), (6, 3, 2), (2, 5, 2), (4, 5, 1)])
def test_from_conv2d_computes_the_same_function(m, r, pad):
    torch.manual_seed(m + r)
    conv = nn.Conv2d(3, 5, r, padding=pad).double()
    layer = WinogradConv2d.from_conv(conv, m=m)
    assert tuple(layer.weight.shape) == (5, 3, m + r - 1, m + r - 1)
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    assert torch.allclose(layer(x), conv(x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("m", [2, 4])
def test_from_conv3d_computes_the_same_function(m):
    torch.manual_seed(m)
    conv = nn.Conv3d(2, 3, 3, padding=1).double()
    layer = WinogradConv3d.from_conv(conv, m=m)
    x = torch.randn(1, 2, 7, 6, 5, dtype=torch.float64)
    assert torch.allclose(layer(x), conv(x), atol=1e-10, rtol=0)


def test_parameter_is_the_winograd_weight_and_mask_applies():
    torch.manual_seed(0)
    layer = WinogradConv2d(2, 3, 3, padding=1, m=2).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        layer.mask.zero_()
    y = layer(x)
    assert torch.allclose(y, layer.bias.reshape(1, -1, 1, 1).expand_as(y))
    assert "density=0.000" in repr(layer)
    (layer(x) ** 2).sum().backward()
    assert torch.count_nonzero(layer.weight.grad) == 0  # masked weights get no gradient through U ⊙ mask


def test_winograd_relu_option_changes_the_function():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 2, 3, padding=1).double()
    a = WinogradConv2d.from_conv(conv, m=4)
    b = WinogradConv2d.from_conv(conv, m=4, winograd_relu=True)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    assert not torch.allclose(a(x), b(x))
    assert "winograd_relu=True" in repr(b)


def test_bad_layer_arguments():
    with pytest.raises(ConfigError, match="in_channels must be an integer >= 1"):
        WinogradConv2d(0, 3)
    with pytest.raises(ConfigError, match="n <= 20"):
        WinogradConv2d(1, 1, 3, m=19)
    layer = WinogradConv2d(2, 3, 3)
    with pytest.raises(ConfigError, match=r"spatial weight must have shape \(3, 2, 3, 3\)"):
        layer.set_spatial_weight(torch.zeros(3, 2, 5, 5))


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.strided = nn.Conv2d(4, 4, 3, stride=2)
        self.dilated = nn.Conv2d(4, 4, 3, dilation=2, padding=2)
        self.grouped = nn.Conv2d(4, 4, 3, groups=2, padding=1)
        self.reflect = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
        self.rect = nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
        self.point = nn.Conv2d(4, 4, 1)
        self.same = nn.Conv2d(4, 4, 3, padding="same")
        self.up = nn.ConvTranspose2d(4, 4, 2)

    def forward(self, x):
        return self.body(x)


def test_converter_reports_every_unconverted_layer_with_its_reason():
    torch.manual_seed(0)
    model = Odd()
    x = torch.randn(2, 1, 8, 8)
    ref = model(x)
    rep = convert_to_winograd(model, m=4)
    assert rep.converted == ["body.0", "body.3"]
    reasons = dict(rep.unconverted)
    assert reasons["strided"].startswith("stride (2, 2)")
    assert reasons["dilated"].startswith("dilation (2, 2)")
    assert reasons["grouped"].startswith("groups = 2")
    assert "padding_mode 'reflect'" in reasons["reflect"]
    assert "not cubic" in reasons["rect"]
    assert "min_kernel" in reasons["point"]
    assert "padding 'same'" in reasons["same"]
    assert "ConvTranspose2d is not supported" in reasons["up"]
    assert len(rep.unconverted) == 8
    assert torch.allclose(model(x), ref, atol=1e-5)  # same function after conversion
    text = str(rep)
    assert "left unconverted: strided" in text


def test_winograd_relu_rule_moves_relu_through_pooling():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.Flatten())
    rep = convert_to_winograd(model, m=2, winograd_relu=True)
    assert rep.relu_moved == ["3"]
    assert isinstance(model[1], nn.Identity) and isinstance(model[4], nn.ReLU)  # the last ReLU has no conv after it
    assert model[3].winograd_relu and not model[0].winograd_relu
    assert [n for n, _ in winograd_layers(model)] == ["0", "3"]


def test_converter_rejects_bad_tile():
    with pytest.raises(ConfigError, match="m must be an integer >= 1"):
        convert_to_winograd(nn.Sequential(nn.Conv2d(1, 1, 3)), m=0)


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("winograd_relu", [False, True])
def test_layer_training_path_equals_the_kronecker_path(m, winograd_relu):
    # float32 as trained: the layer (separable torch path) against the Kronecker path on the
    # same masked U, forward and gradients wrt the input and U, on an odd size (ragged tiles)
    from winnow.model.algebra.winograd_conv import winograd_conv_from_u

    torch.manual_seed(m)
    layer = WinogradConv2d(3, 5, 3, padding=1, m=m, winograd_relu=winograd_relu)
    with torch.no_grad():
        layer.mask.copy_((torch.rand(layer.mask.shape) < 0.5).float())
    x = torch.randn(4, 3, 15, 11, requires_grad=True)
    dy = torch.randn(4, 5, 15, 11)
    y = layer(x)
    gx, gu = torch.autograd.grad((y * dy).sum(), (x, layer.weight))
    yr = winograd_conv_from_u(x, layer.masked_weight(), layer.alg, layer.padding, winograd_relu, path="kron")
    yr = yr + layer.bias.reshape(1, -1, 1, 1)
    gxr, gur = torch.autograd.grad((yr * dy).sum(), (x, layer.weight))
    for a, b in ((y, yr), (gx, gxr), (gu, gur)):
        a, b = a.detach(), b.detach()
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


def test_layer_output_is_channels_last_and_flattens():
    # the torch path returns channels-last memory (the next layer reads it without a transpose)
    layer = WinogradConv2d(3, 4, 3, padding=1, m=4)
    y = layer(torch.randn(2, 3, 9, 9))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y.flatten(1), y.contiguous().reshape(2, -1))
