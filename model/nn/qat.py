"""Quantization-aware fine-tuning in the Winograd domain, exactly as docs/datapath.md.

:func:`prepare_qat` calibrates one activation scale per quantized layer input on a
batch of real data, links every convolution's output scale to the input scale of the
layer that consumes it (so requantized outputs feed the next layer unchanged, as in
hardware), and switches fake quantization on:

* inputs: round half to even onto ``act_bits`` (the network input clamps to ±qmax, as
  :func:`winnow.model.integer.reference.quantize_input`; inner layers to the full two's-complement
  range their producer saturates to);
* Winograd-domain weights: W̃ = U · fold · 2^{e_p}, per-output-channel scale
  s_w = max|W̃|/qmax, round half to even — the integer reference's quantizer;
* bias: round half to even at lsb = s_in · s_w · 2^{−E};
* output: z · Ŝ rounded half up and saturated, with Ŝ = mult · 2^{−shift} the
  *hardware* multiplier, so a float64 evaluation reproduces the integer reference.

Rounding uses straight-through gradients. Activation scales are frozen after
calibration; the weights fine-tune.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from winnow.model.integer.datapath import DatapathConfig, signed_range
from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv
from winnow.model.integer.quant import qmax
from winnow.model.algebra.winograd_conv import winograd_conv_from_u


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (torch.round), identity gradient."""
    return x + (torch.round(x) - x).detach()


def ste_round_half_up(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x + 0.5) - x).detach()


def fake_quant_input(x: torch.Tensor, scale: float, bits: int, symmetric: bool) -> torch.Tensor:
    lo, hi = (-qmax(bits), qmax(bits)) if symmetric else signed_range(bits)
    return torch.clamp(ste_round(x / scale), lo, hi) * scale


def hardware_multiplier(s: torch.Tensor, mult_bits: int, max_shift: int) -> torch.Tensor:
    """mult · 2^−shift for each scale in ``s``, as :func:`winnow.model.integer.quant.requant_params` rounds it."""
    out = torch.empty_like(s)
    from winnow.model.integer.quant import requant_params

    for i, v in enumerate(s.detach().cpu().tolist()):
        mult, shift = requant_params(float(v), mult_bits, max_shift)
        out[i] = mult * 2.0**-shift
    return out


class LayerQuant:
    """Fake quantization state of one Winograd layer (see module docstring)."""

    def __init__(self, config: DatapathConfig, in_scale: float, out_scale: float, first: bool):
        self.config, self.in_scale, self.out_scale, self.first = config, float(in_scale), float(out_scale), first
        fold = config.transforms.fold(config.dims) * np.exp2(config.exponents)
        self._fold = torch.tensor(fold)

    def fold_like(self, u: torch.Tensor) -> torch.Tensor:
        return self._fold.to(u.dtype).to(u.device)

    def quantize_weights(self, u: torch.Tensor):
        """(fake-quantized U, per-channel s_w): the integer reference's weight quantizer."""
        cfg = self.config
        fold = self.fold_like(u)
        wt = u * fold
        K = wt.shape[0]
        sw = wt.detach().abs().reshape(K, -1).amax(dim=1) / qmax(cfg.weight_bits)
        sw = torch.where(sw > 0, sw, torch.ones_like(sw))
        shape = (K,) + (1,) * (wt.ndim - 1)
        lim = qmax(cfg.weight_bits)
        wq = torch.clamp(ste_round(wt / sw.reshape(shape)), -lim, lim)
        return wq * sw.reshape(shape) / fold, sw

    def forward(self, layer: WinogradConv, x: torch.Tensor, u: torch.Tensor, bias) -> torch.Tensor:
        cfg = self.config
        d = cfg.dims
        xq = fake_quant_input(x, self.in_scale, cfg.act_bits, self.first)
        u_fq, sw = self.quantize_weights(u)
        lsb = self.in_scale * sw * 2.0**-cfg.exponent_max  # (K,)
        bshape = (1, -1) + (1,) * d
        y = winograd_conv_from_u(xq, u_fq, layer.alg, layer.padding, layer.winograd_relu)
        if bias is not None:
            y = y + (ste_round(bias / lsb) * lsb).reshape(bshape)
        s_hw = hardware_multiplier((lsb / self.out_scale).detach(), cfg.mult_bits, cfg.widths.requant_bits - 1)
        lo, hi = signed_range(cfg.act_bits)
        z = y / lsb.reshape(bshape)
        return torch.clamp(ste_round_half_up(z * s_hw.reshape(bshape)), lo, hi) * self.out_scale


class QuantLinear(nn.Module):
    """A linear classifier head with fake-quantized input and per-tensor weight, float logits."""

    def __init__(self, linear: nn.Linear, in_scale: float, act_bits: int, weight_bits: int, first: bool = False):
        super().__init__()
        self.linear, self.in_scale, self.act_bits, self.weight_bits, self.first = linear, in_scale, act_bits, weight_bits, first

    def weight_scale(self) -> torch.Tensor:
        s = self.linear.weight.detach().abs().max() / qmax(self.weight_bits)
        return torch.where(s > 0, s, torch.ones_like(s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = fake_quant_input(x, self.in_scale, self.act_bits, self.first)
        sw = self.weight_scale()
        lim = qmax(self.weight_bits)
        w = torch.clamp(ste_round(self.linear.weight / sw), -lim, lim) * sw
        y = xq @ w.T
        if self.linear.bias is not None:
            lsb = self.in_scale * sw
            y = y + ste_round(self.linear.bias / lsb) * lsb
        return y


def _set_child(root: nn.Module, qualname: str, new: nn.Module) -> None:
    parent = root
    *path, last = qualname.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def _attach(model: nn.Module, report: list[dict], act_bits: int, weight_bits: int, max_position_shift: int,
            mult_bits: int) -> None:
    """Switch fake quantization on with the scales of ``report`` (layers in execution order)."""
    mods = dict(model.named_modules())
    convs = [mods[r["name"]] for r in report if r["kind"] == "winograd_conv"]
    c_max = max((m.in_channels for m in convs), default=1)
    for i, r in enumerate(report):
        mod = mods.get(r["name"])
        if r["kind"] == "winograd_conv":
            if not isinstance(mod, WinogradConv):
                raise ConfigError(f"layer {r['name']!r} of the scales is not a Winograd convolution in this model")
            cfg = DatapathConfig(dims=mod.dims, m=mod.m, r=mod.r, points=mod.alg.points, act_bits=act_bits,
                                 weight_bits=weight_bits, c_max=c_max, mult_bits=mult_bits,
                                 max_position_shift=max_position_shift)
            mod.qat = LayerQuant(cfg, r["in_scale"], r["out_scale"], first=(i == 0))
        elif r["kind"] == "linear":
            lin = mod.linear if isinstance(mod, QuantLinear) else mod
            if not isinstance(lin, nn.Linear):
                raise ConfigError(f"layer {r['name']!r} of the scales is not a linear layer in this model")
            _set_child(model, r["name"], QuantLinear(lin, r["in_scale"], act_bits, weight_bits, first=(i == 0)))
        else:
            raise ConfigError(f"unknown layer kind {r['kind']!r} in the scales")


def restore_qat(model: nn.Module, report: list[dict], act_bits: int = 8, weight_bits: int = 8,
                max_position_shift: int = 8, mult_bits: int = 15) -> None:
    """Switch fake quantization on with scales :func:`prepare_qat` returned earlier (no calibration).

    Rebuilds a fine-tuned model's quantized structure so that its checkpoint loads.
    """
    if not report:
        raise ConfigError("no scales to restore")
    _attach(model, report, act_bits, weight_bits, max_position_shift, mult_bits)


def prepare_qat(model: nn.Module, calib_x: torch.Tensor, act_bits: int = 8, weight_bits: int = 8,
                max_position_shift: int = 8, mult_bits: int = 15) -> list[dict]:
    """Calibrate scales on ``calib_x`` and switch fake quantization on (module docstring).

    Returns one dict per quantized layer (name, kind, in_scale, out_scale). Raises
    ConfigError if the datapath for these widths and channel counts is impossible.
    """
    order: list[tuple[str, nn.Module]] = []
    stats: dict[str, list[float]] = {}
    hooks = []
    names = {mod: name for name, mod in model.named_modules()}
    for mod in model.modules():
        if isinstance(mod, (WinogradConv, nn.Linear, QuantLinear)):
            def hook(m, inp, out, _name=names[mod]):
                if _name not in stats:
                    order.append((_name, m))
                    stats[_name] = [0.0, 0.0]
                stats[_name][0] = max(stats[_name][0], float(inp[0].detach().abs().max()))
                stats[_name][1] = max(stats[_name][1], float(out.detach().abs().max()))
            hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, WinogradConv):
                    mod.qat = None
            model(calib_x)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ConfigError("the model has no Winograd or linear layer to quantize")
    order = [(n, m.linear if isinstance(m, QuantLinear) else m) for n, m in order]
    in_scales = [max(stats[n][0], 1e-12) / qmax(act_bits) for n, _ in order]
    report = []
    for i, (name, mod) in enumerate(order):
        if isinstance(mod, WinogradConv):
            out_scale = in_scales[i + 1] if i + 1 < len(order) else max(stats[name][1], 1e-12) / qmax(act_bits)
            report.append({"name": name, "kind": "winograd_conv", "in_scale": in_scales[i], "out_scale": out_scale})
        else:
            report.append({"name": name, "kind": "linear", "in_scale": in_scales[i], "out_scale": None})
    _attach(model, report, act_bits, weight_bits, max_position_shift, mult_bits)
    model.train(was_training)
    return report
