"""A small ResNet-style CNN for the import tests: BatchNorm, a residual block with a stride-2 3x3
convolution and a 1x1 stride-2 projection, a 1x1 stride-1 convolution, global average pooling and
a linear head. A 3x3 average pooling first keeps every map at most 9x9 (small RTL runs)."""

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.bp = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + self.bp(self.proj(x)))


class ResNetStyle(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.pool = nn.AvgPool2d(3)
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.block = Block(4, 8)
        self.mix = nn.Conv2d(8, 8, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(self.pool(x))))
        x = self.block(x)
        x = torch.relu(self.mix(x))
        return self.fc(torch.flatten(self.gap(x), 1))


class Branches(nn.Module):
    """For 1x8x8 inputs: a 5x5 stride-1 and a 2x2 stride-2 convolution, concatenation, max and average
    pooling, x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 3, 5, padding=2)
        self.b = nn.Conv2d(3, 2, 2, stride=2)
        self.c = nn.Conv2d(5, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 10)

    def forward(self, x):
        a = torch.relu(self.a(x))
        y = torch.cat([torch.nn.functional.max_pool2d(a, 2), self.b(a)], dim=1)
        y = torch.nn.functional.avg_pool2d(torch.relu(self.c(y)), 2)
        return self.fc(y.view(y.size(0), -1))


def seeded(model, seed=0):
    """Random weights and non-trivial BatchNorm statistics (a fresh BatchNorm folds to the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) - 0.5)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(mod.num_features, generator=g) - 0.5)
            elif isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / mod.weight[0].numel() ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
    return model.eval()


def factory():
    return seeded(ResNetStyle())


def branches():
    return seeded(Branches(), seed=1)
