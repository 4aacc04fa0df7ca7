"""Replace a user's convolutions by native Winograd layers, and report what was left.

Eligible: ``nn.Conv2d``/``nn.Conv3d`` with stride 1, dilation 1, groups 1, zero
padding mode, a cubic kernel, and a tile F(m, r) the algebra can build. Every other
convolution is left in place and *reported with its reason* — nothing is skipped
silently.

The Winograd-ReLU rule (Liu & Pool 2018): a ReLU whose output feeds a converted
convolution, directly or through max pooling (which commutes with ReLU), is removed
and the convolution applies ReLU to its transformed input tiles instead. The rule
works inside ``nn.Sequential`` containers, where the data flow is explicit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from winnow.model.algebra.cook_toom import MAX_TILE
from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv


@dataclass
class ConversionReport:
    """What :func:`convert_to_winograd` did."""

    converted: list[str] = field(default_factory=list)
    unconverted: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    relu_moved: list[str] = field(default_factory=list)  # convs that now use Winograd-ReLU

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} convolution(s) to Winograd layers: {', '.join(self.converted) or '-'}"]
        for name, why in self.unconverted:
            lines.append(f"  left unconverted: {name}: {why}")
        if self.relu_moved:
            lines.append(f"  Winograd-ReLU in: {', '.join(self.relu_moved)}")
        return "\n".join(lines)


def ineligibility(conv: nn.Module, m: int) -> str | None:
    """Why ``conv`` cannot become a Winograd layer, or None if it can."""
    dims = conv.weight.ndim - 2
    if any(s != 1 for s in conv.stride):
        return f"stride {tuple(conv.stride)} (Winograd layers are stride 1)"
    if any(d != 1 for d in conv.dilation):
        return f"dilation {tuple(conv.dilation)} (needs dilation 1)"
    if conv.groups != 1:
        return f"groups = {conv.groups} (needs groups 1)"
    if conv.padding_mode != "zeros":
        return f"padding_mode '{conv.padding_mode}' (only zero padding)"
    if isinstance(conv.padding, str):
        return f"padding '{conv.padding}' (give integer padding)"
    ks = tuple(conv.kernel_size)
    if len(set(ks)) != 1:
        return f"kernel {ks} is not cubic"
    if m + ks[0] - 1 > MAX_TILE:
        return f"F({m},{ks[0]}) has tile {m + ks[0] - 1} > {MAX_TILE}"
    if dims not in (2, 3):
        return f"{dims}-D convolution"
    return None


def convert_to_winograd(model: nn.Module, m: int = 4, points=None, winograd_relu: bool = False,
                        min_kernel: int = 2) -> ConversionReport:
    """Replace eligible convolutions of ``model`` in place.

    Parameters
    ----------
    model : nn.Module
    m : int
        Output tile of every converted layer.
    points : sequence, optional
        Interpolation points.
    winograd_relu : bool
        Apply the Winograd-ReLU rule (module docstring).
    min_kernel : int
        Kernels smaller than this stay spatial (a 1×1 convolution gains nothing).
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ConfigError(f"m must be an integer >= 1; got {m!r}")
    report = ConversionReport()

    def visit(parent: nn.Module, prefix: str):
        for name, child in list(parent.named_children()):
            full = f"{prefix}{name}"
            if isinstance(child, (nn.Conv2d, nn.Conv3d)):
                why = ineligibility(child, m)
                if why is None and child.kernel_size[0] < min_kernel:
                    why = f"kernel {child.kernel_size[0]} < min_kernel {min_kernel}"
                if why is None:
                    setattr(parent, name, WinogradConv.from_conv(child, m=m, points=points))
                    report.converted.append(full)
                else:
                    report.unconverted.append((full, why))
            elif isinstance(child, (nn.Conv1d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                report.unconverted.append((full, f"{type(child).__name__} is not supported"))
            else:
                visit(child, full + ".")
    visit(model, "")
    if winograd_relu:
        _move_relus(model, "", report)
    return report


_TRANSPARENT = (nn.MaxPool2d, nn.MaxPool3d, nn.Identity, nn.Dropout)


def _move_relus(parent: nn.Module, prefix: str, report: ConversionReport) -> None:
    if isinstance(parent, nn.Sequential):
        names = [n for n, _ in parent.named_children()]
        mods = [getattr(parent, n) for n in names]
        for i, mod in enumerate(mods):
            if not isinstance(mod, nn.ReLU):
                continue
            j = i + 1
            while j < len(mods) and isinstance(mods[j], _TRANSPARENT):
                j += 1
            if j < len(mods) and isinstance(mods[j], WinogradConv) and not mods[j].winograd_relu:
                mods[j].winograd_relu = True
                setattr(parent, names[i], nn.Identity())
                report.relu_moved.append(f"{prefix}{names[j]}")
    for name, child in parent.named_children():
        _move_relus(child, f"{prefix}{name}.", report)
