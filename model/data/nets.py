"""Small reference networks (spatial ``nn.Conv*``; :mod:`winnow.model.nn.convert` makes them Winograd).

* :class:`SmallVGG`: VGG-style for 28×28 (or 8×8) single-channel images: two blocks of
  two 3×3 convolutions with ReLU and 2×2 max pooling, then a linear classifier.
* :class:`SmallC3D`: C3D-style for 16³ volumes: two 3×3×3 convolutions with ReLU and
  2×2×2 max pooling, then a linear classifier.
"""

from __future__ import annotations

import torch.nn as nn

from winnow.model.errors import ConfigError


class SmallVGG(nn.Sequential):
    """conv(C→w) relu conv(w→w) relu pool | conv(w→2w) relu conv(2w→2w) relu pool | linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image: int = 28):
        if image % 4:
            raise ConfigError(f"SmallVGG pools twice by 2: image size must be a multiple of 4; got {image}")
        w = width
        super().__init__(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * w * (image // 4) ** 2, num_classes),
        )  # fmt: skip


class SmallC3D(nn.Sequential):
    """conv3d(C→w) relu pool | conv3d(w→2w) relu pool | linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, width: int = 8, size: int = 16):
        if size % 4:
            raise ConfigError(f"SmallC3D pools twice by 2: the volume size must be a multiple of 4; got {size}")
        w = width
        super().__init__(
            nn.Conv3d(in_channels, w, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
            nn.Flatten(), nn.Linear(2 * w * (size // 4) ** 3, num_classes),
        )  # fmt: skip


def model_for(split_name: str, input_shape: tuple[int, ...], classes: int, width: int | None = None) -> nn.Module:
    """The default network for a data set's input shape.

    This is the one *model frontend* today: the pipeline prunes the network it returns.
    Others (a user's ``nn.Module``, torchvision, ONNX) are not implemented; their seam is
    a registry of the same generic class as the methods' and data sets'
    (:class:`winnow.model.training.registry.Registry`).
    """
    if len(input_shape) == 4:
        return SmallC3D(input_shape[0], classes, width or 8, input_shape[1])
    if len(input_shape) == 3:
        return SmallVGG(input_shape[0], classes, width or 16, input_shape[1])
    raise ConfigError(f"no default network for input shape {input_shape} ({split_name})")
